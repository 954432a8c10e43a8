/**
 * State TTL through the keyed-state backend, on a clock the test moves:
 * expiry under both update types and both visibilities for value, map and
 * list state, the background cleanup, full snapshots, restore and rescale.
 */
import { describe, expect, it } from "vitest";
import { listState, mapState, type StateTtlConfig, valueState } from "../api/state.js";
import { JobDefinitionError } from "../errors.js";
import { keyGroupOf, keyText } from "../graph/key-groups.js";
import { KeyedStateBackend, type StateEntry, TTL_CLEANUP_ACCESSES } from "./keyed-state.js";
import { encodeEntries, readSnapshot, writeSnapshot } from "./snapshot-format.js";
import { STATE_ENTRY_BYTES_MAX, StateTooLargeError } from "./state-limits.js";

const MAX_PARALLELISM = 128;
const TTL_MS = 1000;

/** A clock the test moves. */
class Clock {
  constructor(public ms = 10_000) {}
  readonly now = () => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

const ttl = (over: Partial<StateTtlConfig> = {}): StateTtlConfig => ({ ttlMs: TTL_MS, ...over });

/** A backend on `clock`; `cleanupPerAccess` 0 keeps other keys' expired entries for the cleanup tests to find. */
function backend(clock: Clock, cleanupPerAccess?: number): KeyedStateBackend {
  return new KeyedStateBackend(MAX_PARALLELISM, "op", { now: clock.now, cleanupPerAccess });
}

/** Every entry's key and value, as persisted, sorted. */
function persisted(b: KeyedStateBackend): { state: string; kind: string; key: string; value: unknown }[] {
  return b
    .allEntries()
    .map(({ state, kind, key, value }) => ({ state, kind, key, value }))
    .sort((x, y) => (x.state + "\0" + x.key < y.state + "\0" + y.key ? -1 : 1));
}

/** A full snapshot's entries, as a restore reads them. */
function fullSnapshot(b: KeyedStateBackend, range?: { start: number; end: number }): StateEntry[] {
  const capture = b.capture();
  const encoded: { entry: Omit<StateEntry, "value">; valueJson: string }[] = [];
  capture.forEach(0, capture.count, (state, kind, key, keyGroup, valueJson) => encoded.push({ entry: { state, kind, key, keyGroup }, valueJson }));
  for (const [state, kind, key, keyGroup, valueJson] of capture.rest?.() ?? []) encoded.push({ entry: { state, kind, key, keyGroup }, valueJson });
  return readSnapshot(writeSnapshot({ uid: "op", kind: "full", checkpointId: 1 }, encoded), range).entries;
}

describe("ValueState with a TTL", () => {
  it("expires ttlMs after the last write (OnCreateAndWrite): reads do not extend it", () => {
    const clock = new Clock();
    const b = backend(clock);
    const v = b.getState(valueState<number>("v", { ttl: ttl() }));
    b.setCurrentKey("a");
    v.update(1);
    clock.advance(TTL_MS - 1);
    expect(v.value()).toBe(1);
    clock.advance(1);
    expect(v.value()).toBeUndefined();
    expect(b.size()).toBe(0);
    // A write starts a new life.
    v.update(2);
    clock.advance(TTL_MS / 2);
    v.update(3);
    clock.advance(TTL_MS - 1);
    expect(v.value()).toBe(3);
  });

  it("OnReadAndWrite: each read extends the life of the value", () => {
    const clock = new Clock();
    const b = backend(clock);
    const v = b.getState(valueState<string>("v", { ttl: ttl({ updateType: "OnReadAndWrite" }) }));
    b.setCurrentKey("a");
    v.update("x");
    for (let i = 0; i < 5; i++) {
      clock.advance(TTL_MS - 1);
      expect(v.value()).toBe("x");
    }
    expect(persisted(b)).toEqual([{ state: "v", kind: "value-ttl", key: "a", value: ["x", clock.ms] }]);
    clock.advance(TTL_MS);
    expect(v.value()).toBeUndefined();
  });

  it("ReturnExpiredIfNotCleanedUp returns an expired value once, as the read cleans it up; NeverReturnExpired never does", () => {
    const clock = new Clock();
    const b = backend(clock);
    const lax = b.getState(valueState<number>("lax", { ttl: ttl({ stateVisibility: "ReturnExpiredIfNotCleanedUp" }) }));
    const strict = b.getState(valueState<number>("strict", { ttl: ttl({ stateVisibility: "NeverReturnExpired" }) }));
    b.setCurrentKey("a");
    lax.update(1);
    strict.update(1);
    // Captured: the removal below is then a change (of an entry created and removed between two captures, it is none).
    b.takeDirty();
    clock.advance(TTL_MS);
    expect(lax.value()).toBe(1);
    expect(lax.value()).toBeUndefined();
    expect(strict.value()).toBeUndefined();
    expect(b.size()).toBe(0);
    // The removal is a change the next checkpoint carries.
    expect(b.takeDirty().filter((e) => e.value === undefined).map((e) => e.state).sort()).toEqual(["lax", "strict"]);
  });

  it("keeps keys apart: each key's value has its own timestamp", () => {
    const clock = new Clock();
    const b = backend(clock, 0);
    const v = b.getState(valueState<number>("v", { ttl: ttl() }));
    b.setCurrentKey("early");
    v.update(1);
    clock.advance(TTL_MS / 2);
    b.setCurrentKey("late");
    v.update(2);
    clock.advance(TTL_MS / 2);
    expect(v.value()).toBe(2);
    b.setCurrentKey("early");
    expect(v.value()).toBeUndefined();
  });
});

describe("MapState with a TTL (per map entry)", () => {
  it("expires each map entry on its own; the key's map goes with its last entry", () => {
    const clock = new Clock();
    const b = backend(clock);
    const m = b.getMapState(mapState<number>("m", { ttl: ttl() }));
    b.setCurrentKey("a");
    m.put("old", 1);
    clock.advance(TTL_MS / 2);
    m.put("new", 2);
    clock.advance(TTL_MS / 2);
    expect(m.get("old")).toBeUndefined();
    expect(m.contains("old")).toBe(false);
    expect(m.entries()).toEqual([["new", 2]]);
    expect(m.keys()).toEqual(["new"]);
    expect(m.isEmpty()).toBe(false);
    clock.advance(TTL_MS / 2);
    expect(m.values()).toEqual([]);
    expect(m.isEmpty()).toBe(true);
    expect(b.size()).toBe(0);
  });

  it("OnReadAndWrite: get, contains and iteration refresh what they read, and nothing else", () => {
    const clock = new Clock();
    const b = backend(clock);
    const m = b.getMapState(mapState<string>("m", { ttl: ttl({ updateType: "OnReadAndWrite" }) }));
    b.setCurrentKey("a");
    m.put("read", "r");
    m.put("unread", "u");
    m.put("listed", "l");
    clock.advance(TTL_MS - 1);
    expect(m.get("read")).toBe("r");
    expect(m.contains("listed")).toBe(true);
    clock.advance(1);
    expect(m.entries()).toEqual([
      ["read", "r"],
      ["listed", "l"],
    ]);
    expect(persisted(b)[0].value).toEqual([
      ["read", "r", clock.ms],
      ["listed", "l", clock.ms],
    ]);
  });

  it("ReturnExpiredIfNotCleanedUp: an expired entry is read once, then gone", () => {
    const clock = new Clock();
    const b = backend(clock);
    const m = b.getMapState(mapState<number>("m", { ttl: ttl({ stateVisibility: "ReturnExpiredIfNotCleanedUp" }) }));
    b.setCurrentKey("a");
    m.put("x", 1);
    m.put("y", 2);
    clock.advance(TTL_MS);
    expect(m.get("x")).toBe(1);
    expect(m.get("x")).toBeUndefined();
    expect(m.entries()).toEqual([["y", 2]]);
    expect(m.entries()).toEqual([]);
  });

  it("remove and clear work as without a TTL", () => {
    const clock = new Clock();
    const b = backend(clock);
    const m = b.getMapState(mapState<number>("m", { ttl: ttl() }));
    b.setCurrentKey("a");
    m.put("x", 1);
    m.put("y", 2);
    m.remove("x");
    expect(m.keys()).toEqual(["y"]);
    m.remove("y");
    expect(b.size()).toBe(0);
    m.put("z", 3);
    m.clear();
    expect(m.isEmpty()).toBe(true);
    expect(b.size()).toBe(0);
  });
});

describe("ListState with a TTL (per element)", () => {
  it("expires each element on its own: a list under a TTL is a time-bounded buffer", () => {
    const clock = new Clock();
    const b = backend(clock);
    const l = b.getListState(listState<string>("l", { ttl: ttl() }));
    b.setCurrentKey("a");
    l.add("e1");
    clock.advance(400);
    l.addAll(["e2", "e3"]);
    clock.advance(400);
    l.add("e4");
    expect(l.get()).toEqual(["e1", "e2", "e3", "e4"]);
    clock.advance(200);
    expect(l.get()).toEqual(["e2", "e3", "e4"]);
    clock.advance(400);
    expect(l.get()).toEqual(["e4"]);
    expect(persisted(b)).toEqual([{ state: "l", kind: "list-ttl", key: "a", value: [["e4", 10_800]] }]);
    clock.advance(400);
    expect(l.get()).toEqual([]);
    expect(b.size()).toBe(0);
  });

  it("OnReadAndWrite: get() refreshes every element it returns; update() stamps all anew", () => {
    const clock = new Clock();
    const b = backend(clock);
    const l = b.getListState(listState<number>("l", { ttl: ttl({ updateType: "OnReadAndWrite" }) }));
    b.setCurrentKey("a");
    l.update([1, 2]);
    clock.advance(TTL_MS - 1);
    l.add(3);
    expect(l.get()).toEqual([1, 2, 3]);
    clock.advance(TTL_MS - 1);
    expect(l.get()).toEqual([1, 2, 3]);
    l.update([9]);
    clock.advance(TTL_MS);
    expect(l.get()).toEqual([]);
  });

  it("ReturnExpiredIfNotCleanedUp: expired elements are returned once, in order, then gone", () => {
    const clock = new Clock();
    const b = backend(clock);
    const l = b.getListState(listState<number>("l", { ttl: ttl({ stateVisibility: "ReturnExpiredIfNotCleanedUp" }) }));
    b.setCurrentKey("a");
    l.add(1);
    clock.advance(TTL_MS / 2);
    l.add(2);
    clock.advance(TTL_MS / 2);
    expect(l.get()).toEqual([1, 2]);
    expect(l.get()).toEqual([2]);
  });
});

describe("background cleanup", () => {
  it("accesses clean up a few expired entries of other keys each (16 accesses at a time), never the current key, which the accessor reads itself", () => {
    const clock = new Clock();
    const b = backend(clock, 5);
    // Restored, so that no access moved the cleanup yet: it starts at k0.
    b.load(Array.from({ length: 200 }, (_, i) => ({ state: "v", kind: "value-ttl" as const, key: `k${i}`, value: [i, clock.ms] })));
    const v = b.getState(valueState<number>("v", { ttl: ttl({ stateVisibility: "ReturnExpiredIfNotCleanedUp" }) }));
    clock.advance(TTL_MS);
    b.setCurrentKey("x");
    for (let i = 0; i < TTL_CLEANUP_ACCESSES - 1; i++) v.update(i);
    expect(b.size()).toBe(201);
    // The 16th access looks at 16 × 5 entries, k0..k79, and skips k3: the read returns it once, as it cleans it up.
    b.setCurrentKey("k3");
    expect(v.value()).toBe(3);
    expect(b.size()).toBe(201 - 79 - 1);
    const removed = b.takeDirty().filter((e) => e.value === undefined).map((e) => e.key);
    expect(removed).toHaveLength(80);
    expect(removed).toEqual(expect.arrayContaining(["k0", "k3", "k79"]));
    // The next 16 accesses go on where the last stopped.
    b.setCurrentKey("x");
    for (let i = 0; i < TTL_CLEANUP_ACCESSES; i++) v.update(i);
    expect(b.size()).toBe(121 - 80);
  });

  it("cleanupExpired takes bounded steps around the table, counting map entries and list elements, and goes on where it stopped", () => {
    const clock = new Clock();
    const b = backend(clock, 0);
    const v = b.getState(valueState<number>("v", { ttl: ttl() }));
    const m = b.getMapState(mapState<number>("m", { ttl: ttl() }));
    const plain = b.getState(valueState<number>("plain"));
    for (let i = 0; i < 100; i++) {
      b.setCurrentKey(`k${i}`);
      v.update(i);
      plain.update(i);
    }
    b.setCurrentKey("big");
    for (let i = 0; i < 30; i++) m.put(`e${i}`, i);
    clock.advance(TTL_MS / 2);
    b.setCurrentKey("k0");
    v.update(-1); // k0 lives on
    clock.advance(TTL_MS / 2);
    expect(b.cleanupExpired(10)).toBe(9 + 1); // v: k0 (alive) and k1..k9; m: the one key, its 30 entries in one step
    expect(b.cleanupExpired(40)).toBe(40);
    expect(b.cleanupExpired(1000)).toBe(50);
    expect(b.cleanupExpired(1000)).toBe(0);
    // Only what expired went: the state without a TTL is untouched.
    expect(persisted(b).filter((e) => e.state === "v")).toEqual([{ state: "v", kind: "value-ttl", key: "k0", value: [-1, 10_500] }]);
    expect(persisted(b).filter((e) => e.state === "plain")).toHaveLength(100);
  });

  it("drops the expired parts of maps and lists in place, marking the key changed", () => {
    const clock = new Clock();
    const b = backend(clock, 0);
    const m = b.getMapState(mapState<number>("m", { ttl: ttl() }));
    const l = b.getListState(listState<number>("l", { ttl: ttl() }));
    b.setCurrentKey("a");
    m.put("old", 1);
    l.add(1);
    clock.advance(TTL_MS / 2);
    m.put("new", 2);
    l.add(2);
    b.takeDirty();
    clock.advance(TTL_MS / 2);
    expect(b.cleanupExpired(100)).toBe(0);
    expect(b.takeDirty().map((e) => [e.state, e.value])).toEqual([
      ["m", [["new", 2, 10_500]]],
      ["l", [[2, 10_500]]],
    ]);
  });
});

describe("snapshots, restore and rescale", () => {
  it("a full snapshot leaves expired entries, map entries and list elements out; the live state keeps them until cleaned up", () => {
    const clock = new Clock();
    const b = backend(clock, 0);
    const v = b.getState(valueState<number>("v", { ttl: ttl() }));
    const m = b.getMapState(mapState<number>("m", { ttl: ttl() }));
    const l = b.getListState(listState<number>("l", { ttl: ttl() }));
    const plain = b.getState(valueState<number>("plain"));
    b.setCurrentKey("gone");
    v.update(1);
    m.put("x", 1);
    l.add(1);
    plain.update(1);
    clock.advance(TTL_MS / 2);
    b.setCurrentKey("kept");
    v.update(2);
    m.put("y", 2);
    l.add(2);
    b.setCurrentKey("gone");
    m.put("z", 3);
    l.add(3);
    clock.advance(TTL_MS / 2);
    const entries = fullSnapshot(b);
    expect(entries.map((e) => [e.state, e.key, e.value]).sort()).toEqual(
      [
        ["v", "kept", [2, 10_500]],
        ["m", "kept", [["y", 2, 10_500]]],
        ["m", "gone", [["z", 3, 10_500]]],
        ["l", "kept", [[2, 10_500]]],
        ["l", "gone", [[3, 10_500]]],
        ["plain", "gone", 1],
      ].sort(),
    );
    expect(b.size()).toBe(7);
  });

  it("a restore keeps the timestamps: an entry expires ttlMs after its last access, not after the restore", () => {
    const clock = new Clock();
    const b = backend(clock);
    const d = valueState<string>("v", { ttl: ttl() });
    const v = b.getState(d);
    b.setCurrentKey("a");
    v.update("x");
    clock.advance(TTL_MS / 2);
    b.setCurrentKey("b");
    v.update("y");
    const snapshot = fullSnapshot(b);

    clock.advance(TTL_MS / 4);
    const restored = backend(clock);
    restored.load(snapshot);
    const r = restored.getState(d);
    restored.setCurrentKey("a");
    expect(r.value()).toBe("x");
    clock.advance(TTL_MS / 4);
    expect(r.value()).toBeUndefined();
    restored.setCurrentKey("b");
    expect(r.value()).toBe("y");
    clock.advance(TTL_MS / 2);
    expect(r.value()).toBeUndefined();
  });

  it("a restore before the state is used again still leaves expired entries out of the next full snapshot when the function declares the state", () => {
    const clock = new Clock();
    const d = mapState<number>("m", { ttl: ttl() });
    const b = backend(clock);
    b.getMapState(d);
    b.setCurrentKey("a");
    b.getMapState(d).put("x", 1);
    const snapshot = fullSnapshot(b);
    clock.advance(TTL_MS);
    const declared = backend(clock);
    declared.declare(d);
    declared.load(snapshot);
    expect(fullSnapshot(declared)).toEqual([]);
    // Not declared: the backend cannot know the TTL, so the entry passes through as it is (until the state is used).
    const undeclared = backend(clock);
    undeclared.load(snapshot);
    expect(fullSnapshot(undeclared).map((e) => e.kind)).toEqual(["map-ttl"]);
  });

  it("rescaling: each key's entry moves with its key group and keeps its timestamp", () => {
    const clock = new Clock();
    const d = listState<number>("l", { ttl: ttl() });
    const b = backend(clock);
    const l = b.getListState(d);
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
    for (const [i, k] of keys.entries()) {
      b.setCurrentKey(k);
      l.add(i);
      clock.advance(10);
    }
    const half = MAX_PARALLELISM / 2;
    const parts = [
      { start: 0, end: half - 1 },
      { start: half, end: MAX_PARALLELISM - 1 },
    ].map((range) => {
      const r = backend(clock);
      r.load(fullSnapshot(b, range));
      return { range, backend: r, list: r.getListState(d) };
    });
    expect(parts[0].backend.size() + parts[1].backend.size()).toBe(40);
    // Written 10 ms apart from 10,000: key i expires at 10,000 + 10 i + TTL_MS.
    clock.ms = 10_000 + 10 * 20 + TTL_MS;
    for (const [i, k] of keys.entries()) {
      const part = parts.find((p) => keyGroupOf(k, MAX_PARALLELISM) >= p.range.start && keyGroupOf(k, MAX_PARALLELISM) <= p.range.end)!;
      part.backend.setCurrentKey(k);
      expect(part.list.get(), k).toEqual(i <= 20 ? [] : [i]);
    }
  });

  it("a TTL added by a newer job version starts on the first read of an entry; one removed drops the timestamps", () => {
    const clock = new Clock();
    const before = backend(clock);
    before.getState(valueState<number>("v"));
    before.getMapState(mapState<number>("m"));
    before.setCurrentKey("a");
    before.getState(valueState<number>("v")).update(1);
    before.getMapState(mapState<number>("m")).put("x", 1);
    const plain = fullSnapshot(before);

    clock.advance(5 * TTL_MS);
    const added = backend(clock, 0);
    added.load(plain);
    const v = added.getState(valueState<number>("v", { ttl: ttl() }));
    const m = added.getMapState(mapState<number>("m", { ttl: ttl() }));
    added.setCurrentKey("a");
    expect(v.value()).toBe(1);
    expect(m.get("x")).toBe(1);
    expect(persisted(added)).toEqual([
      { state: "m", kind: "map-ttl", key: "a", value: [["x", 1, clock.ms]] },
      { state: "v", kind: "value-ttl", key: "a", value: [1, clock.ms] },
    ]);
    const stamped = fullSnapshot(added);
    clock.advance(TTL_MS);
    expect(v.value()).toBeUndefined();

    const removed = backend(clock);
    removed.load(stamped);
    const v2 = removed.getState(valueState<number>("v"));
    removed.setCurrentKey("a");
    expect(v2.value()).toBe(1);
    expect(removed.getMapState(mapState<number>("m")).entries()).toEqual([["x", 1]]);
    expect(persisted(removed)).toEqual([
      { state: "m", kind: "map", key: "a", value: [["x", 1]] },
      { state: "v", kind: "value", key: "a", value: 1 },
    ]);
  });

  it("the background cleanup stamps entries restored from before a TTL was added, so that untouched ones expire too", () => {
    const clock = new Clock();
    const added = backend(clock, 0);
    added.load([{ state: "v", kind: "value", key: keyText("a"), value: 1 }]);
    added.getState(valueState<number>("v", { ttl: ttl() }));
    expect(added.cleanupExpired(10)).toBe(0);
    expect(persisted(added)).toEqual([{ state: "v", kind: "value-ttl", key: "a", value: [1, clock.ms] }]);
    clock.advance(TTL_MS);
    expect(added.cleanupExpired(10)).toBe(1);
  });

  it("entries of both forms in one capture keep their own kinds (a TTL added, some keys not read yet)", () => {
    const clock = new Clock();
    const b = backend(clock, 0);
    b.load([
      { state: "v", kind: "value", key: "a", value: 1 },
      { state: "v", kind: "value", key: "b", value: 2 },
    ]);
    const v = b.getState(valueState<number>("v", { ttl: ttl() }));
    b.setCurrentKey("a");
    v.value();
    const text = writeSnapshot({ uid: "op", kind: "full", checkpointId: 1 }, encodeEntries(b.allEntries()));
    expect(readSnapshot(text).entries.map((e) => [e.key, e.kind, e.value]).sort()).toEqual([
      ["a", "value-ttl", [1, clock.ms]],
      ["b", "value", 2],
    ]);
    expect(fullSnapshot(b).map((e) => [e.key, e.kind]).sort()).toEqual([
      ["a", "value-ttl"],
      ["b", "value"],
    ]);
  });
});

describe("limits", () => {
  it("refuses at the barrier a value with a TTL too large for a row of the image, as without a TTL", () => {
    const b = backend(new Clock());
    const v = b.getState(valueState<string>("v", { ttl: ttl() }));
    b.setCurrentKey("a");
    v.update("x".repeat(STATE_ENTRY_BYTES_MAX));
    expect(() => b.capture()).toThrow(StateTooLargeError);
    expect(() => b.captureChanges()).toThrow(StateTooLargeError);
  });
});

describe("declaring a TTL", () => {
  it("refuses a TTL of 0, a negative or a non-finite one, naming the operator and the state", () => {
    const b = backend(new Clock());
    for (const ttlMs of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      const bad = { kind: "value" as const, name: "session", ttl: { ttlMs } };
      expect(() => b.getState(bad)).toThrow(JobDefinitionError);
      expect(() => b.getState(bad)).toThrow(/operator "op": state "session": ttl.ttlMs must be a finite number of milliseconds > 0/);
    }
  });

  it("refuses one state used with two different TTLs, and accepts the same TTL from another descriptor", () => {
    const b = backend(new Clock());
    b.getState(valueState<number>("v", { ttl: ttl() }));
    expect(() => b.getState(valueState<number>("v", { ttl: ttl() }))).not.toThrow();
    expect(() => b.getState(valueState<number>("v", { ttl: ttl({ ttlMs: 5 }) }))).toThrow(/state "v" is used with two different TTLs/);
    expect(() => b.getState(valueState<number>("v"))).toThrow(/two different TTLs/);
  });

  it("needs a clock", () => {
    const b = new KeyedStateBackend(MAX_PARALLELISM, "op");
    expect(() => b.getState(valueState<number>("v", { ttl: ttl() }))).toThrow(/has a TTL, but its keyed-state backend has no clock/);
  });
});
