import { describe, expect, it } from "vitest";
import type { StateEntry } from "./keyed-state.js";
import {
  SNAPSHOT_FORMAT,
  SNAPSHOT_VERSION,
  SnapshotFormatError,
  encodeEntries,
  readSnapshot,
  writeSnapshot,
} from "./snapshot-format.js";

const entry = (state: string, key: string, keyGroup: number, value: unknown, kind: StateEntry["kind"] = "value"): StateEntry => ({
  state,
  kind,
  key,
  keyGroup,
  value,
});

const entries: StateEntry[] = [
  entry("count", "alice", 7, 3),
  entry("count", "bob", 2, 10),
  entry("seen", "carol", 5, [["x", 1], ["y", { deep: [true, null] }]], "map"),
  entry("events", "dave", 0, ["a", "b"], "list"),
  entry("count", 'quote"and\nnewline', 9, "text with \"quotes\"\nand a newline"),
  entry("count", "zero", 2, 0),
];

function expectFormatError(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(SnapshotFormatError);
  expect((caught as Error).name).toBe("SnapshotFormatError");
  expect((caught as Error).message).toMatch(pattern);
}

describe("encodeEntries", () => {
  it("serializes values now, so later mutation of live state does not leak in", () => {
    const live = { n: 1 };
    const encoded = encodeEntries([entry("s", "k", 0, live)]);
    live.n = 2;
    const { entries: back } = readSnapshot(writeSnapshot({ uid: "op", kind: "full", checkpointId: 1 }, encoded));
    expect(back[0].value).toEqual({ n: 1 });
  });

  it("encodes a deletion as null", () => {
    expect(encodeEntries([entry("s", "k", 0, undefined)])[0].valueJson).toBeNull();
    expect(encodeEntries([entry("s", "k", 0, null)])[0].valueJson).toBe("null");
  });
});

describe("timer entries (version 2)", () => {
  it("round-trips a key's sorted timestamps per time domain, and their deletion in a delta", () => {
    const timers = [entry("timer:event", "alice", 7, [100, 250], "timer"), entry("timer:processing", "\u0000n42", 3, [5], "timer")];
    const full = readSnapshot(writeSnapshot({ uid: "op", kind: "full", checkpointId: 2 }, encodeEntries(timers)));
    expect(full.header.version).toBe(SNAPSHOT_VERSION);
    expect(full.entries).toEqual([
      { state: "timer:processing", kind: "timer", keyGroup: 3, key: "\u0000n42", value: [5] },
      { state: "timer:event", kind: "timer", keyGroup: 7, key: "alice", value: [100, 250] },
    ]);
    const delta = readSnapshot(writeSnapshot({ uid: "op", kind: "delta", checkpointId: 3 }, encodeEntries([entry("timer:event", "alice", 7, undefined, "timer")])));
    expect(delta.entries).toEqual([{ state: "timer:event", kind: "timer", keyGroup: 7, key: "alice", value: undefined }]);
  });
});

describe("entries of state with a TTL (version 3)", () => {
  it("round-trips the last-access timestamps of a value, of each map entry and of each list element", () => {
    const ttl = [
      entry("session", "a", 1, ["x", 1000], "value-ttl"),
      entry("seen", "b", 2, [["/home", true, 1500], ["/docs", false, 900]], "map-ttl"),
      entry("recent", "c", 3, [["e1", 700], ["e2", 800]], "list-ttl"),
    ];
    const text = writeSnapshot({ uid: "op", kind: "full", checkpointId: 5 }, encodeEntries(ttl));
    expect(text.split("\n")[1]).toBe('["session","value-ttl",1,"a",["x",1000]]');
    const back = readSnapshot(text);
    expect(back.header.version).toBe(3);
    expect(back.entries).toEqual(ttl.map(({ state, kind, keyGroup, key, value }) => ({ state, kind, keyGroup, key, value })));
  });
});

describe("writeSnapshot / readSnapshot", () => {
  it("round-trips entries of every kind, with the header", () => {
    const text = writeSnapshot({ uid: "counter", kind: "full", checkpointId: 42 }, encodeEntries(entries));
    const { header, entries: back } = readSnapshot(text);
    expect(header).toEqual({ format: SNAPSHOT_FORMAT, version: SNAPSHOT_VERSION, uid: "counter", kind: "full", checkpointId: 42, entries: 6 });
    const byKey = (xs: readonly { state: string; key: string }[]) => [...xs].sort((a, b) => `${a.state}/${a.key}`.localeCompare(`${b.state}/${b.key}`));
    expect(byKey(back)).toEqual(byKey(entries.map(({ state, kind, keyGroup, key, value }) => ({ state, kind, keyGroup, key, value }))));
  });

  it("writes one header line and one line per entry", () => {
    const text = writeSnapshot({ uid: "counter", kind: "full", checkpointId: 1 }, encodeEntries(entries));
    const lines = text.split("\n");
    expect(lines).toHaveLength(1 + entries.length);
    expect(JSON.parse(lines[0])).toMatchObject({ format: "floe-keyed-state", version: 3, entries: entries.length });
    expect(JSON.parse(lines[1])).toEqual(["events", "list", 0, "dave", ["a", "b"]]);
  });

  it("sorts entries by key group, keeping the input order within a group", () => {
    const text = writeSnapshot({ uid: "op", kind: "full", checkpointId: 1 }, encodeEntries(entries));
    const { entries: back } = readSnapshot(text);
    expect(back.map((e) => e.keyGroup)).toEqual([0, 2, 2, 5, 7, 9]);
    expect(back.filter((e) => e.keyGroup === 2).map((e) => e.key)).toEqual(["bob", "zero"]);
  });

  it("reads only the key groups of a range, inclusive at both ends", () => {
    const text = writeSnapshot({ uid: "op", kind: "full", checkpointId: 1 }, encodeEntries(entries));
    expect(readSnapshot(text, { start: 2, end: 7 }).entries.map((e) => e.key)).toEqual(["bob", "zero", "carol", "alice"]);
    expect(readSnapshot(text, { start: 0, end: 0 }).entries.map((e) => e.key)).toEqual(["dave"]);
    expect(readSnapshot(text, { start: 10, end: 127 }).entries).toEqual([]);
    // The header still tells the whole file's entry count.
    expect(readSnapshot(text, { start: 10, end: 127 }).header.entries).toBe(6);
  });

  it("keeps deletions in delta files, and reads them back with value undefined", () => {
    const changed = [entry("count", "alice", 7, 4), entry("count", "bob", 2, undefined), entry("seen", "carol", 5, undefined, "map")];
    const text = writeSnapshot({ uid: "op", kind: "delta", checkpointId: 3 }, encodeEntries(changed));
    const { header, entries: back } = readSnapshot(text);
    expect(header.kind).toBe("delta");
    expect(header.entries).toBe(3);
    expect(back).toEqual([
      { state: "count", kind: "value", keyGroup: 2, key: "bob", value: undefined },
      { state: "seen", kind: "map", keyGroup: 5, key: "carol", value: undefined },
      { state: "count", kind: "value", keyGroup: 7, key: "alice", value: 4 },
    ]);
    expect(text.split("\n")[1]).toBe('["count","value",2,"bob"]');
  });

  it("tells a stored null apart from a deletion", () => {
    const text = writeSnapshot({ uid: "op", kind: "delta", checkpointId: 3 }, encodeEntries([entry("s", "k", 1, null)]));
    const [e] = readSnapshot(text).entries;
    expect(e.value).toBeNull();
  });

  it("drops deletions from full files", () => {
    const mixed = [entry("count", "alice", 7, 4), entry("count", "bob", 2, undefined)];
    const text = writeSnapshot({ uid: "op", kind: "full", checkpointId: 3 }, encodeEntries(mixed));
    const { header, entries: back } = readSnapshot(text);
    expect(header.entries).toBe(1);
    expect(back.map((e) => e.key)).toEqual(["alice"]);
  });

  it("writes and reads an empty file (header only)", () => {
    const text = writeSnapshot({ uid: "op", kind: "full", checkpointId: 9 }, []);
    expect(text).not.toContain("\n");
    const { header, entries: back } = readSnapshot(text);
    expect(header.entries).toBe(0);
    expect(header.checkpointId).toBe(9);
    expect(back).toEqual([]);
  });
});

describe("readSnapshot header checks", () => {
  const good = writeSnapshot({ uid: "op", kind: "full", checkpointId: 1 }, encodeEntries(entries));
  const [head, ...rows] = good.split("\n");

  it("refuses a file without a readable header", () => {
    expectFormatError(() => readSnapshot(""), /no readable header/);
    expectFormatError(() => readSnapshot("not json\n[1]"), /no readable header/);
  });

  it("refuses a file of another format", () => {
    const other = JSON.stringify({ ...JSON.parse(head), format: "something-else" });
    expectFormatError(() => readSnapshot([other, ...rows].join("\n")), /not a floe state file \(format "something-else"\)/);
    expectFormatError(() => readSnapshot('{"hello":1}'), /not a floe state file/);
  });

  it("refuses an unsupported version", () => {
    const v4 = JSON.stringify({ ...JSON.parse(head), version: 4 });
    expectFormatError(() => readSnapshot([v4, ...rows].join("\n")), /version 4 is not supported \(this floe reads versions 1, 2, 3\)/);
  });

  it("reads a version-2 file (written before state TTL), and refuses a TTL entry in one", () => {
    const v2 = JSON.stringify({ ...JSON.parse(head), version: 2 });
    const { header, entries: back } = readSnapshot([v2, ...rows].join("\n"));
    expect(header.version).toBe(2);
    expect(back).toHaveLength(6);
    const ttl = JSON.stringify(["session", "value-ttl", 3, "k", [1, 20]]);
    const v2WithTtl = JSON.stringify({ ...JSON.parse(head), version: 2, entries: 7 });
    expectFormatError(() => readSnapshot([v2WithTtl, ...rows, ttl].join("\n")), /version 2\) holds a "value-ttl" entry, which only version 3 and later have/);
  });

  it("reads a version-1 file (written before timers), and refuses a timer entry in one", () => {
    const v1 = JSON.stringify({ ...JSON.parse(head), version: 1 });
    const { header, entries: back } = readSnapshot([v1, ...rows].join("\n"));
    expect(header.version).toBe(1);
    expect(back).toHaveLength(6);
    const timer = JSON.stringify(["timer:event", "timer", 3, "k", [10, 20]]);
    const v1WithTimer = JSON.stringify({ ...JSON.parse(head), version: 1, entries: 7 });
    expectFormatError(() => readSnapshot([v1WithTimer, ...rows, timer].join("\n")), /version 1\) holds a "timer" entry, which only version 2 and later have/);
  });

  it("refuses a file truncated at a line boundary", () => {
    expectFormatError(() => readSnapshot([head, ...rows.slice(0, 4)].join("\n")), /"op" is truncated: 4 of 6 entries/);
    expectFormatError(() => readSnapshot(head), /truncated: 0 of 6 entries/);
  });

  it("refuses a file cut in the middle of a line", () => {
    expectFormatError(() => readSnapshot(good.slice(0, good.length - 5)), /"op" is corrupt or truncated/);
  });

  it("refuses a file with more entries than its header says", () => {
    expectFormatError(() => readSnapshot([head, ...rows, rows[0]].join("\n")), /7 of 6 entries/);
  });
});
