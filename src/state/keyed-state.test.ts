import { describe, expect, it } from "vitest";
import { listState, mapState, valueState } from "../api/state.js";
import { hashKey, keyGroupOf, keyText } from "../graph/key-groups.js";
import { KeyedStateBackend, KeyNotOwnedError, type PrefetchEntry, type StateBacking, type StateEntry, keyGroupOfText } from "./keyed-state.js";
import { STATE_ENTRY_BYTES_MAX, StateTooLargeError } from "./state-limits.js";

const count = valueState<number>("count");
const seen = mapState<number>("seen");
const recent = listState<string>("recent");

const byStateAndKey = (a: StateEntry, b: StateEntry) => (a.state + "\0" + a.key < b.state + "\0" + b.key ? -1 : 1);

describe("ValueState", () => {
  it("keeps one value per key", () => {
    const s = new KeyedStateBackend(128, "op");
    const v = s.getState(count);
    s.setCurrentKey("a");
    expect(v.value()).toBeUndefined();
    v.update(1);
    s.setCurrentKey("b");
    expect(v.value()).toBeUndefined();
    v.update(2);
    s.setCurrentKey("a");
    expect(v.value()).toBe(1);
    expect(s.currentKey).toBe("a");
    expect(s.size()).toBe(2);
  });

  it("keeps a number key apart from the same digits as a string", () => {
    const s = new KeyedStateBackend(128, "op");
    const v = s.getState(count);
    s.setCurrentKey(7);
    v.update(70);
    s.setCurrentKey("7");
    expect(v.value()).toBeUndefined();
    v.update(7);
    s.setCurrentKey(7);
    expect(v.value()).toBe(70);
    expect(s.currentKey).toBe(7);
  });

  it("clears the current key only", () => {
    const s = new KeyedStateBackend(128, "op");
    const v = s.getState(count);
    s.setCurrentKey("a");
    v.update(1);
    s.setCurrentKey("b");
    v.update(2);
    v.clear();
    expect(v.value()).toBeUndefined();
    s.setCurrentKey("a");
    expect(v.value()).toBe(1);
    expect(s.size()).toBe(1);
  });

  it("refuses update(undefined), pointing at clear()", () => {
    const s = new KeyedStateBackend(128, "op");
    s.setCurrentKey("a");
    expect(() => s.getState(count).update(undefined as unknown as number)).toThrow(/ValueState "count": update\(undefined\); use clear\(\)/);
    expect(s.hasDirty()).toBe(false);
  });

  it("shares values between accessors of one descriptor name", () => {
    const s = new KeyedStateBackend(128, "op");
    s.setCurrentKey("a");
    s.getState(count).update(5);
    expect(s.getState(valueState<number>("count")).value()).toBe(5);
  });
});

describe("MapState", () => {
  it("keeps one map per key", () => {
    const s = new KeyedStateBackend(128, "op");
    const m = s.getMapState(seen);
    s.setCurrentKey("a");
    expect(m.isEmpty()).toBe(true);
    expect(m.get("x")).toBeUndefined();
    expect(m.contains("x")).toBe(false);
    expect(m.entries()).toEqual([]);
    m.put("x", 1);
    m.put("y", 2);
    m.put("x", 3);
    s.setCurrentKey("b");
    expect(m.isEmpty()).toBe(true);
    m.put("z", 9);
    s.setCurrentKey("a");
    expect(m.get("x")).toBe(3);
    expect(m.contains("y")).toBe(true);
    expect(m.keys()).toEqual(["x", "y"]);
    expect(m.values()).toEqual([3, 2]);
    expect(m.entries()).toEqual([
      ["x", 3],
      ["y", 2],
    ]);
    expect(m.isEmpty()).toBe(false);
  });

  it("removes entries, and the key once its map is empty", () => {
    const s = new KeyedStateBackend(128, "op");
    const m = s.getMapState(seen);
    s.setCurrentKey("a");
    m.put("x", 1);
    m.put("y", 2);
    m.remove("x");
    m.remove("nope");
    expect(m.keys()).toEqual(["y"]);
    expect(s.size()).toBe(1);
    m.remove("y");
    expect(m.isEmpty()).toBe(true);
    expect(s.size()).toBe(0);
  });

  it("clears the current key's map", () => {
    const s = new KeyedStateBackend(128, "op");
    const m = s.getMapState(seen);
    s.setCurrentKey("a");
    m.put("x", 1);
    s.setCurrentKey("b");
    m.put("x", 2);
    m.clear();
    expect(m.isEmpty()).toBe(true);
    s.setCurrentKey("a");
    expect(m.get("x")).toBe(1);
  });

  it("does not let a caller change state through a returned array", () => {
    const s = new KeyedStateBackend(128, "op");
    const m = s.getMapState(seen);
    s.setCurrentKey("a");
    m.put("x", 1);
    m.entries().pop();
    m.keys().pop();
    expect(m.entries()).toEqual([["x", 1]]);
  });
});

describe("ListState", () => {
  it("keeps one list per key", () => {
    const s = new KeyedStateBackend(128, "op");
    const l = s.getListState(recent);
    s.setCurrentKey("a");
    expect(l.get()).toEqual([]);
    l.add("1");
    l.addAll(["2", "3"]);
    s.setCurrentKey("b");
    l.addAll(["x"]);
    l.add("y");
    s.setCurrentKey("a");
    expect(l.get()).toEqual(["1", "2", "3"]);
    s.setCurrentKey("b");
    expect(l.get()).toEqual(["x", "y"]);
  });

  it("replaces with update and removes the key with update([]) or clear", () => {
    const s = new KeyedStateBackend(128, "op");
    const l = s.getListState(recent);
    s.setCurrentKey("a");
    l.addAll(["1", "2"]);
    l.update(["9"]);
    expect(l.get()).toEqual(["9"]);
    l.update([]);
    expect(l.get()).toEqual([]);
    expect(s.size()).toBe(0);
    l.add("1");
    l.clear();
    expect(l.get()).toEqual([]);
    expect(s.size()).toBe(0);
  });

  it("copies lists in and out", () => {
    const s = new KeyedStateBackend(128, "op");
    const l = s.getListState(recent);
    s.setCurrentKey("a");
    const input = ["1"];
    l.addAll(input);
    input.push("changed later");
    l.get().push("pushed on a copy");
    const replacement = ["2"];
    l.update(replacement);
    replacement.push("changed later");
    expect(l.get()).toEqual(["2"]);
  });
});

describe("state kinds", () => {
  it("refuses one name used for two kinds of state, naming operator and state", () => {
    const s = new KeyedStateBackend(128, "count-per-user");
    s.getState(valueState<number>("x"));
    expect(() => s.getMapState(mapState<number>("x"))).toThrow('operator "count-per-user": state "x" is value state, not map state');
    expect(() => s.getListState(listState<number>("x"))).toThrow(TypeError);
    expect(s.kindOf("x")).toBe("value");
    expect(s.kindOf("never")).toBeUndefined();
  });

  it("hands out one accessor per state, which follows the current key, and still refuses another kind", () => {
    const s = new KeyedStateBackend(128, "op");
    const v = s.getState(count);
    expect(s.getState(count)).toBe(v);
    expect(s.getMapState(seen)).toBe(s.getMapState(seen));
    expect(s.getListState(recent)).toBe(s.getListState(recent));
    s.setCurrentKey("a");
    v.update(1);
    s.setCurrentKey("b");
    expect(s.getState(count).value()).toBeUndefined();
    s.getState(count).update(2);
    s.setCurrentKey("a");
    expect(v.value()).toBe(1);
    expect(() => s.getMapState(mapState<number>("count"))).toThrow("state \"count\" is value state, not map state");
    expect(() => s.getState(valueState<number>("seen"))).toThrow("state \"seen\" is map state, not value state");
  });

  it("keeps each kind's states apart", () => {
    const s = new KeyedStateBackend(128, "op");
    s.setCurrentKey("k");
    s.getState(count).update(1);
    s.getMapState(seen).put("a", 1);
    s.getListState(recent).add("r");
    expect([s.kindOf("count"), s.kindOf("seen"), s.kindOf("recent")]).toEqual(["value", "map", "list"]);
    expect(s.size()).toBe(3);
  });
});

describe("dirty tracking", () => {
  it("reports each changed entry once, with its latest value", () => {
    const s = new KeyedStateBackend(128, "op");
    expect(s.hasDirty()).toBe(false);
    const v = s.getState(count);
    s.setCurrentKey("a");
    v.update(1);
    v.update(2);
    s.setCurrentKey(42);
    v.update(10);
    expect(s.hasDirty()).toBe(true);
    expect(s.takeDirty().sort(byStateAndKey)).toEqual([
      { state: "count", kind: "value", key: keyText(42), keyGroup: keyGroupOf(42, 128), value: 10 },
      { state: "count", kind: "value", key: "a", keyGroup: keyGroupOf("a", 128), value: 2 },
    ]);
    expect(s.hasDirty()).toBe(false);
    expect(s.takeDirty()).toEqual([]);
  });

  it("does not mark reads or no-op deletions", () => {
    const s = new KeyedStateBackend(128, "op");
    s.setCurrentKey("a");
    s.getState(count).value();
    s.getState(count).clear();
    s.getMapState(seen).get("x");
    s.getMapState(seen).remove("x");
    s.getMapState(seen).clear();
    s.getListState(recent).get();
    s.getListState(recent).addAll([]);
    s.getListState(recent).clear();
    expect(s.hasDirty()).toBe(false);
    expect(s.takeDirty()).toEqual([]);
  });

  it("reports deletions with value undefined", () => {
    const s = new KeyedStateBackend(128, "op");
    s.setCurrentKey("a");
    s.getState(count).update(1);
    s.getMapState(seen).put("x", 1);
    s.getListState(recent).add("r");
    s.takeDirty();
    s.getState(count).clear();
    s.getMapState(seen).remove("x");
    s.getListState(recent).update([]);
    expect(s.takeDirty().sort(byStateAndKey)).toEqual([
      { state: "count", kind: "value", key: "a", keyGroup: keyGroupOf("a", 128), value: undefined },
      { state: "recent", kind: "list", key: "a", keyGroup: keyGroupOf("a", 128), value: undefined },
      { state: "seen", kind: "map", key: "a", keyGroup: keyGroupOf("a", 128), value: undefined },
    ]);
  });

  it("reports an entry that existed at the last capture and was changed, then deleted, as deleted; one created and deleted since, not at all", () => {
    const s = new KeyedStateBackend(128, "op");
    s.setCurrentKey("a");
    s.getState(count).update(1);
    s.takeDirty();
    s.getState(count).update(2);
    s.getState(count).clear();
    // Created and deleted between two captures: nothing persisted holds it, so there is nothing to delete.
    s.setCurrentKey("new");
    s.getState(count).update(1);
    s.getState(count).clear();
    expect(s.takeDirty()).toEqual([{ state: "count", kind: "value", key: "a", keyGroup: keyGroupOf("a", 128), value: undefined }]);
    // Created again after that capture, deleted in the next: still nothing; deleted, then created again: a value.
    s.getState(count).update(3);
    s.getState(count).clear();
    s.setCurrentKey("a");
    s.getState(count).update(4);
    expect(s.takeDirty()).toEqual([{ state: "count", kind: "value", key: "a", keyGroup: keyGroupOf("a", 128), value: 4 }]);
    s.getState(count).clear();
    s.getState(count).update(5);
    s.getState(count).clear();
    // Existed at the last capture: deleted, created and deleted again is a deletion.
    expect(s.takeDirty()).toEqual([{ state: "count", kind: "value", key: "a", keyGroup: keyGroupOf("a", 128), value: undefined }]);
  });

  it("persists a map as entry pairs and a list as an array", () => {
    const s = new KeyedStateBackend(16, "op");
    s.setCurrentKey("u");
    s.getMapState(seen).put("x", 1);
    s.getMapState(seen).put("y", 2);
    s.getListState(recent).addAll(["a", "b"]);
    expect(s.takeDirty().sort(byStateAndKey)).toEqual([
      { state: "recent", kind: "list", key: "u", keyGroup: keyGroupOf("u", 16), value: ["a", "b"] },
      {
        state: "seen",
        kind: "map",
        key: "u",
        keyGroup: keyGroupOf("u", 16),
        value: [
          ["x", 1],
          ["y", 2],
        ],
      },
    ]);
  });

  it("only reports what changed since the last take", () => {
    const s = new KeyedStateBackend(128, "op");
    const v = s.getState(count);
    for (const k of ["a", "b", "c"]) {
      s.setCurrentKey(k);
      v.update(1);
    }
    s.takeDirty();
    s.setCurrentKey("b");
    v.update(2);
    expect(s.takeDirty().map((e) => [e.key, e.value])).toEqual([["b", 2]]);
  });
});

describe("keyGroupOfText", () => {
  it("agrees with keyGroupOf on the key a text stands for", () => {
    for (const key of ["a", "user-17", "", "héllo"]) expect(keyGroupOfText(key, 128)).toBe(keyGroupOf(key, 128));
    for (const key of [0, 7, -3, 1.5]) expect(keyGroupOfText(keyText(key), 128)).toBe(keyGroupOf(key, 128));
  });
});

describe("load", () => {
  function filled(): KeyedStateBackend {
    const s = new KeyedStateBackend(128, "op");
    for (const [k, n] of [
      ["a", 1],
      ["b", 2],
    ] as const) {
      s.setCurrentKey(k);
      s.getState(count).update(n);
      s.getMapState(seen).put(`url-${n}`, n);
      s.getListState(recent).addAll([`${k}1`, `${k}2`]);
    }
    s.setCurrentKey(9);
    s.getState(count).update(99);
    return s;
  }

  it("round-trips allEntries, through JSON as storage would", () => {
    const a = filled();
    const entries = a.allEntries();
    expect(entries).toHaveLength(7);
    const b = new KeyedStateBackend(128, "op");
    b.load(JSON.parse(JSON.stringify(entries)) as StateEntry[]);
    expect(b.allEntries().sort(byStateAndKey)).toEqual([...entries].sort(byStateAndKey));
    expect(b.size()).toBe(7);
    expect(b.hasDirty()).toBe(false);

    b.setCurrentKey("b");
    expect(b.getState(count).value()).toBe(2);
    expect(b.getMapState(seen).get("url-2")).toBe(2);
    expect(b.getMapState(seen).entries()).toEqual([["url-2", 2]]);
    expect(b.getListState(recent).get()).toEqual(["b1", "b2"]);
    b.setCurrentKey(9);
    expect(b.getState(count).value()).toBe(99);
    expect(b.kindOf("seen")).toBe("map");
  });

  it("state loaded can be changed and is tracked again", () => {
    const b = new KeyedStateBackend(128, "op");
    b.load(filled().allEntries());
    b.setCurrentKey("a");
    b.getMapState(seen).put("url-3", 3);
    expect(b.takeDirty()).toEqual([
      {
        state: "seen",
        kind: "map",
        key: "a",
        keyGroup: keyGroupOf("a", 128),
        value: [
          ["url-1", 1],
          ["url-3", 3],
        ],
      },
    ]);
  });

  it("replaces the working set and forgets pending changes", () => {
    const s = new KeyedStateBackend(128, "op");
    s.setCurrentKey("old");
    s.getState(count).update(1);
    s.load([{ state: "count", kind: "value", key: "new", value: 5 }]);
    expect(s.hasDirty()).toBe(false);
    expect(s.takeDirty()).toEqual([]);
    expect(s.getState(count).value()).toBeUndefined();
    s.setCurrentKey("new");
    expect(s.getState(count).value()).toBe(5);
    expect(s.allEntries()).toEqual([{ state: "count", kind: "value", key: "new", keyGroup: keyGroupOf("new", 128), value: 5 }]);
  });
});

describe("capture", () => {
  type Row = { state: string; kind: string; key: string; keyGroup: number; value: unknown };
  const rows = (c: ReturnType<KeyedStateBackend["capture"]>, start = 0, end = c.count): Row[] => {
    const out: Row[] = [];
    c.forEach(start, end, (state, kind, key, keyGroup, valueJson) => out.push({ state, kind, key, keyGroup, value: JSON.parse(valueJson) }));
    return out;
  };
  /** Every entry of a capture: those captured from memory, then those streamed from the backing. */
  const allRows = (c: ReturnType<KeyedStateBackend["capture"]>): Row[] => {
    const out = rows(c);
    for (const [state, kind, key, keyGroup, valueJson] of c.rest?.() ?? []) out.push({ state, kind, key, keyGroup, value: JSON.parse(valueJson) });
    return out;
  };
  const byKey = (a: Row, b: Row) => (a.state + "\0" + a.key < b.state + "\0" + b.key ? -1 : 1);

  it("is the state at the moment of the call: later updates, deletions, new keys and in-place mutations do not show", () => {
    const s = new KeyedStateBackend(128, "op");
    const doc = valueState<{ n: number }>("doc");
    for (const k of ["a", "b"]) {
      s.setCurrentKey(k);
      s.getState(count).update(1);
      s.getState(doc).value() ?? s.getState(doc).update({ n: 1 });
      s.getMapState(seen).put("x", 1);
      s.getListState(recent).add("x");
    }
    const c = s.capture();
    expect(c.count).toBe(8);
    const before = rows(c).sort(byKey);
    s.setCurrentKey("a");
    s.getState(count).update(2);
    s.getState(doc).value()!.n = 2;
    s.getMapState(seen).put("y", 2);
    s.getListState(recent).add("y");
    s.setCurrentKey("b");
    s.getState(count).clear();
    s.getMapState(seen).clear();
    s.setCurrentKey("c");
    s.getState(count).update(3);
    expect(rows(c).sort(byKey)).toEqual(before);
    expect(before.filter((r) => r.key === "a")).toEqual([
      { state: "count", kind: "value", key: "a", keyGroup: keyGroupOfText("a", 128), value: 1 },
      { state: "doc", kind: "value", key: "a", keyGroup: keyGroupOfText("a", 128), value: { n: 1 } },
      { state: "recent", kind: "list", key: "a", keyGroup: keyGroupOfText("a", 128), value: ["x"] },
      { state: "seen", kind: "map", key: "a", keyGroup: keyGroupOfText("a", 128), value: [["x", 1]] },
    ]);
  });

  it("hands out entries by range, across states, each once", () => {
    const s = new KeyedStateBackend(128, "op");
    for (let i = 0; i < 10; i++) {
      s.setCurrentKey(`k${i}`);
      s.getState(count).update(i);
      if (i % 2 === 0) s.getListState(recent).add(`v${i}`);
    }
    const c = s.capture();
    expect(c.count).toBe(15);
    const all = rows(c);
    // 0–4 and 4–10 are in the first state, 10–11 crosses into the second, 15–20 is past the end.
    expect(rows(c, 0, 4).concat(rows(c, 4, 10), rows(c, 10, 11), rows(c, 11, 15), rows(c, 15, 20))).toEqual(all);
    expect(all.map((r) => `${r.state}/${r.key}`).sort()).toEqual(s.allEntries().map((e) => `${e.state}/${e.key}`).sort());
  });

  it("holds the backing's untouched keys, and not those changed or deleted since it was attached", () => {
    const s = new KeyedStateBackend(128, "op");
    const persisted = [
      { state: "count", key: "a", kind: "value" as const, value: 1 },
      { state: "count", key: "b", kind: "value" as const, value: 2 },
      { state: "count", key: "c", kind: "value" as const, value: 3 },
    ];
    s.attach({
      get: (state, key) => persisted.find((e) => e.state === state && e.key === key),
      entries: () => persisted,
      timers: () => [],
      count: () => persisted.length,
    });
    s.setCurrentKey("a");
    s.getState(count).update(10);
    s.setCurrentKey("b");
    s.getState(count).clear();
    const c = s.capture();
    expect(allRows(c).map((r) => [r.key, r.value]).sort()).toEqual([
      ["a", 10],
      ["c", 3],
    ]);
  });
});

describe("forEachValue", () => {
  it("visits every key's value of one state, in memory and in the backing, skipping keys changed or deleted since it was attached", () => {
    const s = new KeyedStateBackend(128, "op");
    const persisted = [
      { state: "seen", key: "a", kind: "map" as const, value: [["x", 1]] },
      { state: "seen", key: "b", kind: "map" as const, value: [["x", 1], ["y", 2]] },
      { state: "seen", key: "c", kind: "map" as const, value: [["z", 3]] },
      { state: "count", key: "a", kind: "value" as const, value: 7 },
    ];
    s.attach({
      get: (state, key) => persisted.find((e) => e.state === state && e.key === key),
      entries: () => persisted,
      timers: () => [],
      count: () => persisted.length,
    });
    const m = s.getMapState(seen);
    s.setCurrentKey("a");
    m.put("w", 0);
    s.setCurrentKey("c");
    m.clear();
    s.setCurrentKey("d");
    m.put("v", 4);
    const sizes: number[] = [];
    s.forEachValue("seen", (v) => sizes.push((v as Map<string, number>).size));
    expect(sizes.sort()).toEqual([1, 2, 2]);
    const values: unknown[] = [];
    s.forEachValue("count", (v) => values.push(v));
    expect(values).toEqual([7]);
    s.forEachValue("never-declared", () => expect.unreachable());
  });
});

describe("captureChanges", () => {
  it("takes what changed since the previous capture, as it was then, and clears the marks", () => {
    const s = new KeyedStateBackend(128, "op");
    const doc = valueState<{ n: number }>("doc");
    s.setCurrentKey("b");
    s.getState(count).update(2);
    s.captureChanges();
    s.setCurrentKey("a");
    s.getState(count).update(1);
    s.getState(doc).update({ n: 1 });
    s.getListState(recent).add("x");
    s.setCurrentKey("b");
    s.getState(count).update(3);
    s.getState(count).clear();
    // Created and deleted since the last capture: no change.
    s.setCurrentKey("c");
    s.getState(count).update(1);
    s.getState(count).clear();
    s.setCurrentKey("a");
    const c = s.captureChanges();
    expect(s.hasDirty()).toBe(false);
    expect(s.captureChanges().count).toBe(0);
    // Changed after the capture: must not show in it.
    s.setCurrentKey("a");
    s.getState(count).update(5);
    s.getState(doc).value()!.n = 5;
    s.getListState(recent).add("y");
    expect(c.count).toBe(4);
    const all = c.encode(0, c.count).map(({ entry, valueJson }) => [entry.state, entry.key, entry.kind, entry.keyGroup, valueJson]);
    expect(all.sort()).toEqual(
      [
        ["count", "a", "value", keyGroupOfText("a", 128), "1"],
        ["count", "b", "value", keyGroupOfText("b", 128), null],
        ["doc", "a", "value", keyGroupOfText("a", 128), '{"n":1}'],
        ["recent", "a", "list", keyGroupOfText("a", 128), '["x"]'],
      ].sort(),
    );
    expect(c.encode(1, 3)).toEqual(c.encode(0, 4).slice(1, 3));
  });
});

describe("keys a subtask does not own", () => {
  /** A backend with state under keys that fall in both halves of 128 key groups. */
  function spread() {
    const s = new KeyedStateBackend(128, "count per user");
    const keys = Array.from({ length: 40 }, (_, i) => `user-${i}`);
    for (const k of keys) {
      s.setCurrentKey(k);
      s.getState(count).update(1);
    }
    const foreign = keys.find((k) => keyGroupOf(k, 128) > 63)!;
    return { s, keys, foreign };
  }
  const lowerHalf = { start: 0, end: 63 };

  it("fail a capture's serialization, naming operator, state, key, key group and the owned range", () => {
    const { s, foreign } = spread();
    const capture = s.capture(lowerHalf);
    let thrown: unknown;
    try {
      capture.forEach(0, capture.count, () => undefined);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(KeyNotOwnedError);
    expect((thrown as Error).message).toMatch(/^operator "count per user": state "count" has key "user-\d+" in key group \d+, but this subtask owns key groups 0\.\.63/);
    expect((thrown as Error).message).toContain("JSON round trip");
    expect((thrown as KeyNotOwnedError).keyGroup).toBeGreaterThan(63);
    expect(() => s.capture({ start: 0, end: 127 }).forEach(0, 40, () => undefined)).not.toThrow();
    expect(foreign).toBeDefined();
  });

  it("fail the encoding of captured changes, deletions included", () => {
    const { s, foreign } = spread();
    s.captureChanges();
    s.setCurrentKey(foreign);
    s.getState(count).clear();
    const changes = s.captureChanges(lowerHalf);
    expect(changes.count).toBe(1);
    expect(() => changes.encode(0, 1)).toThrow(new RegExp(`state "count" has key "${foreign}" in key group ${keyGroupOf(foreign, 128)}, but this subtask owns key groups 0\\.\\.63`));
  });

  it("show a number key as the number", () => {
    const s = new KeyedStateBackend(128, "op");
    const n = Array.from({ length: 100 }, (_, i) => i).find((i) => keyGroupOf(i, 128) > 63)!;
    s.setCurrentKey(n);
    s.getState(count).update(1);
    expect(() => s.captureChanges(lowerHalf).encode(0, 1)).toThrow(`has key ${n} in key group`);
  });
});

describe("state values too large for a row of the image", () => {
  const big = (chars: number) => "x".repeat(chars);

  it("fail the capture at the barrier, naming operator, state and key: objects, maps and lists", () => {
    const doc = valueState<{ text: string }>("doc");
    const s = new KeyedStateBackend(128, "documents");
    s.setCurrentKey("d-1");
    s.getState(doc).update({ text: big(STATE_ENTRY_BYTES_MAX) });
    expect(() => s.captureChanges()).toThrow(StateTooLargeError);
    const s2 = new KeyedStateBackend(128, "documents");
    s2.setCurrentKey("d-1");
    s2.getState(doc).update({ text: big(STATE_ENTRY_BYTES_MAX) });
    expect(() => s2.capture()).toThrow(/^operator "documents": state "doc" for key "d-1" takes 1999817 bytes .*at most 1999800 bytes/);

    const m = new KeyedStateBackend(128, "op");
    m.setCurrentKey(7);
    for (let i = 0; i < 30; i++) m.getMapState(seen).put(`url-${i}-${big(70_000)}`, i);
    expect(() => m.captureChanges()).toThrow(/^operator "op": state "seen" for key 7 takes \d+ bytes/);

    const l = new KeyedStateBackend(128, "op");
    l.setCurrentKey("k");
    for (let i = 0; i < 3; i++) l.getListState(recent).add(big(700_000));
    expect(() => l.captureChanges()).toThrow(/state "recent" for key "k" takes 2100\d+ bytes/);
  });

  it("count UTF-8 bytes, not characters: multi-byte text reaches the limit sooner", () => {
    const doc = valueState<string[]>("doc");
    const s = new KeyedStateBackend(128, "op");
    s.setCurrentKey("k");
    // 700,000 characters of "é" are 1,400,000 bytes: fine; "€" takes 3 bytes each: 2,100,000.
    s.getState(doc).update(["é".repeat(700_000)]);
    expect(() => s.captureChanges()).not.toThrow();
    s.getState(doc).update(["€".repeat(700_000)]);
    expect(() => s.captureChanges()).toThrow(StateTooLargeError);
  });

  it("catch a string value, kept by reference until it is serialized, and a string that escapes grow", () => {
    const text = valueState<string>("text");
    const s = new KeyedStateBackend(128, "op");
    s.setCurrentKey("k");
    s.getState(text).update(big(STATE_ENTRY_BYTES_MAX));
    expect(() => s.captureChanges()).toThrow(/state "text" for key "k" takes 1999807 bytes/);
    // 400,000 control characters: each is 6 characters of JSON (\u0001), 2,400,002 bytes of JSON.
    s.getState(text).update("\u0001".repeat(400_000));
    expect(() => s.captureChanges()).toThrow(/takes 2400007 bytes/);
  });

  it("let values up to the limit through, as captured", () => {
    const text = valueState<string>("text");
    const s = new KeyedStateBackend(128, "op");
    s.setCurrentKey("k");
    // state name (4) + key (1) + JSON (the value and its 2 quotes) = the limit exactly.
    const value = big(STATE_ENTRY_BYTES_MAX - 4 - 1 - 2);
    s.getState(text).update(value);
    const changes = s.captureChanges();
    expect(changes.encode(0, 1)[0].valueJson).toBe(JSON.stringify(value));
    s.getState(text).update(value + "x");
    expect(() => s.captureChanges()).toThrow(StateTooLargeError);
  });
});

describe("timers as keyed state", () => {
  const timerRows = (s: KeyedStateBackend) =>
    s
      .allEntries()
      .filter((e) => e.kind === "timer")
      .map((e) => [e.state, e.key, e.value])
      .sort();

  it("keeps each key's timers as an entry of kind timer per time domain, tracked as changed", () => {
    const s = new KeyedStateBackend(128, "op");
    const event = s.timers("event");
    event.register("a", 20);
    event.register("a", 10);
    s.timers("processing").register(keyText(7), 5);
    expect(timerRows(s)).toEqual([
      ["timer:event", "a", [10, 20]],
      ["timer:processing", keyText(7), [5]],
    ]);
    expect(s.timerCount()).toBe(3);
    expect(s.size()).toBe(2);
    const c = s.captureChanges();
    expect(c.encode(0, c.count).map((e) => [e.entry.state, e.entry.kind, e.entry.keyGroup, e.valueJson]).sort()).toEqual(
      [
        ["timer:event", "timer", keyGroupOfText("a", 128), "[10,20]"],
        ["timer:processing", "timer", keyGroupOf(7, 128), "[5]"],
      ].sort(),
    );
    // Polled: the entry changes again (to none), and the change is a deletion.
    expect(event.poll(100)).toHaveLength(2);
    const d = s.captureChanges();
    expect(d.encode(0, d.count).map((e) => [e.entry.state, e.entry.key, e.valueJson])).toEqual([["timer:event", "a", null]]);
    expect(s.size()).toBe(1);
  });

  it("captures timers as they were at the barrier, though the live arrays change after", () => {
    const s = new KeyedStateBackend(128, "op");
    const q = s.timers("event");
    q.register("a", 10);
    const full = s.capture();
    const changes = s.captureChanges();
    q.register("a", 20);
    let json = "";
    full.forEach(0, full.count, (_state, _kind, _key, _kg, valueJson) => (json = valueJson));
    expect(json).toBe("[10]");
    expect(changes.encode(0, 1)[0].valueJson).toBe("[10]");
  });

  it("rebuilds its queues from restored entries (load)", () => {
    const s = new KeyedStateBackend(128, "op");
    const q = s.timers("event");
    q.register("old", 1);
    s.load([
      { state: "timer:event", key: "a", kind: "timer", value: [30, 40] },
      { state: "timer:event", key: "b", kind: "timer", value: [35] },
      { state: "count", key: "a", kind: "value", value: 1 },
    ]);
    expect(q.size()).toBe(3);
    expect(q.poll(35).map((t) => `${t.key}@${t.timestampMs}`)).toEqual(["a@30", "b@35"]);
    expect(timerRows(s)).toEqual([["timer:event", "a", [40]]]);
  });

  it("reads only the timer entries of a backing when attached, and keeps its key count right", () => {
    const s = new KeyedStateBackend(128, "op");
    const persisted = [
      { state: "count", key: "a", kind: "value" as const, value: 1 },
      { state: "timer:event", key: "a", kind: "timer" as const, value: [5, 9] },
      { state: "timer:processing", key: "b", kind: "timer" as const, value: [7] },
    ];
    let entriesRead = 0;
    s.attach({
      get: (state, key) => persisted.find((e) => e.state === state && e.key === key),
      entries: () => {
        entriesRead++;
        return persisted;
      },
      timers: () => persisted.filter((e) => e.kind === "timer"),
      count: () => persisted.length,
    });
    expect(entriesRead).toBe(0);
    expect(s.timerCount()).toBe(0);
    const event = s.timers("event");
    expect(event.size()).toBe(2);
    expect(s.timers("processing").poll(10)).toEqual([{ key: "b", timestampMs: 7 }]);
    event.register("c", 1);
    expect(s.size()).toBe(3);
    expect(timerRows(s)).toEqual([
      ["timer:event", "a", [5, 9]],
      ["timer:event", "c", [1]],
    ]);
  });

  it("refuses user state declared under a timer's kind", () => {
    const s = new KeyedStateBackend(128, "op");
    s.timers("event");
    expect(() => s.load([{ state: "timer:event", key: "a", kind: "value", value: 1 }])).toThrow(/operator "op": state "timer:event" is timer state, not value state/);
  });
});

describe("prefetch", () => {
  it("asks the image for each key's entries of the states that do not hold it in memory, and for nothing without an image", () => {
    const asked: PrefetchEntry[][] = [];
    const image: StateBacking = {
      get: (state, key) => (state === "count" && key === "old" ? { kind: "value", value: 7 } : undefined),
      entries: () => [],
      timers: () => [],
      count: () => 1,
      prefetch: (entries) => void asked.push([...entries]),
    };
    const s = new KeyedStateBackend(128, "op");
    s.prefetch(["a"], 0, 1);
    expect(s.prefetches).toBe(false);
    s.attach(image);
    expect(s.prefetches).toBe(true);
    const c = s.getState(count);
    s.getMapState(seen);
    s.setCurrentKey("a");
    c.update(1);
    s.setCurrentKey("old");
    expect(c.value()).toBe(7);
    c.clear();
    s.prefetch(["a", "b", "old", 5, "x"], 1, 5);
    const byState = (state: string) => asked[0].filter((e) => e.state === state).map((e) => e.hash);
    // "a" is outside the range; "old" is deleted (nothing to read for count), but not in memory for seen.
    expect(byState("count")).toEqual([keyGroupHash("b"), keyGroupHash(5), keyGroupHash("x")]);
    expect(byState("seen")).toEqual([keyGroupHash("b"), keyGroupHash("old"), keyGroupHash(5), keyGroupHash("x")]);
    for (const e of asked[0]) expect(e.keyGroup).toBe(e.hash % 128);
    // An image that holds nothing of a state is asked for none of it; holding none of any, it is not asked.
    image.mayHold = (state) => state === "seen";
    s.prefetch(["b"], 0, 1);
    expect(asked[1]).toEqual([{ state: "seen", keyGroup: keyGroupHash("b") % 128, hash: keyGroupHash("b") }]);
    image.mayHold = () => false;
    s.prefetch(["b"], 0, 1);
    expect(asked).toHaveLength(2);
  });
});

function keyGroupHash(key: string | number): number {
  return hashKey(keyText(key));
}
