import { describe, expect, it } from "vitest";
import { listState, mapState, valueState } from "../api/state.js";
import type { KeyedStateHandle } from "../checkpoint/types.js";
import { KeyedStateBackend, type StateEntry } from "./keyed-state.js";
import { type EncodedEntry, type SnapshotEntry, readSnapshot } from "./snapshot-format.js";
import { KeyedSnapshotter, type PreparedSnapshot, type SnapshotStore } from "./snapshotter.js";

const MAX_PARALLELISM = 128;
const RANGE = { start: 0, end: MAX_PARALLELISM - 1 };

const count = valueState<number>("count");
const seen = mapState<number>("seen");
const recent = listState<string>("recent");

/** An in-memory R2 and SQLite image, recording every call. */
class MemoryStore implements SnapshotStore {
  readonly objects = new Map<string, string>();
  readonly puts: string[] = [];
  readonly calls: string[] = [];
  readonly images: { uid: string; changed: readonly EncodedEntry[] }[] = [];
  readonly marked: number[] = [];
  /** Keys whose put fails. */
  readonly failing = new Set<string>();
  /** When set, puts wait for their key's release. */
  held: Map<string, () => void> | null = null;

  fileKey(uid: string, checkpointId: number): string {
    return `chk-${checkpointId}/${uid}`;
  }

  async put(key: string, body: string): Promise<void> {
    this.calls.push(`put ${key}`);
    this.puts.push(key);
    if (this.held) await new Promise<void>((resolve) => this.held!.set(key, resolve));
    if (this.failing.has(key)) throw new Error(`R2 refused ${key}`);
    this.objects.set(key, body);
  }

  writeImage(uid: string, changed: readonly EncodedEntry[]): void {
    this.calls.push(`writeImage ${uid}`);
    this.images.push({ uid, changed });
  }

  markImage(checkpointId: number): void {
    this.calls.push(`markImage ${checkpointId}`);
    this.marked.push(checkpointId);
  }
}

function setup(config: { incremental: boolean; fullEvery: number }) {
  const store = new MemoryStore();
  const snapshotter = new KeyedSnapshotter(store, config, RANGE);
  const backend = new KeyedStateBackend(MAX_PARALLELISM, "op");
  const backends = new Map([["counter", backend]]);
  /** prepare + upload, awaiting the upload. */
  const checkpoint = async (id: number, forceFull = false): Promise<PreparedSnapshot> => {
    const p = snapshotter.prepare(id, backends, forceFull);
    await snapshotter.upload(p);
    return p;
  };
  return { store, snapshotter, backend, backends, checkpoint };
}

function setCounts(backend: KeyedStateBackend, keys: Iterable<string>, value: (k: string) => number): void {
  const v = backend.getState(count);
  for (const k of keys) {
    backend.setCurrentKey(k);
    v.update(value(k));
  }
}

const keys = (n: number, prefix = "user-") => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/** Applies a handle's files in order, as a restore does: later entries overwrite, deletions remove. */
function restore(store: MemoryStore, files: readonly string[], range?: { start: number; end: number }): Map<string, SnapshotEntry> {
  const merged = new Map<string, SnapshotEntry>();
  for (const f of files) {
    const body = store.objects.get(f);
    if (body === undefined) throw new Error(`missing file ${f}`);
    for (const e of readSnapshot(body, range).entries) {
      const id = `${e.state}\u0000${e.key}`;
      if (e.value === undefined) merged.delete(id);
      else merged.set(id, e);
    }
  }
  return merged;
}

const sorted = (xs: Iterable<StateEntry | SnapshotEntry>) =>
  [...xs]
    .map(({ state, kind, key, keyGroup, value }) => ({ state, kind, key, keyGroup, value }))
    .sort((a, b) => (a.state + "\0" + a.key < b.state + "\0" + b.key ? -1 : 1));

/** A seeded random source (mulberry32), so a failure replays. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const kindOf = (store: MemoryStore, key: string) => readSnapshot(store.objects.get(key)!).header.kind;

describe("KeyedSnapshotter, full mode", () => {
  it("uploads every entry in one full file at each checkpoint, changed or not", async () => {
    const { store, backend, checkpoint } = setup({ incremental: false, fullEvery: 10 });
    setCounts(backend, keys(50), () => 1);

    const p1 = await checkpoint(1);
    expect(p1.files.map((f) => f.key)).toEqual(["chk-1/counter"]);
    expect(p1.dependsOnEarlier).toBe(false);
    expect(readSnapshot(store.objects.get("chk-1/counter")!).header).toMatchObject({ kind: "full", entries: 50, checkpointId: 1, uid: "counter" });

    setCounts(backend, ["user-3"], () => 2);
    const p2 = await checkpoint(2);
    expect(p2.files.map((f) => f.key)).toEqual(["chk-2/counter"]);
    expect(p2.handles.counter.files).toEqual(["chk-2/counter"]);
    expect(readSnapshot(store.objects.get("chk-2/counter")!).header.entries).toBe(50);

    // Nothing changed: still a full file.
    const p3 = await checkpoint(3);
    expect(p3.files.map((f) => f.key)).toEqual(["chk-3/counter"]);
    expect(p3.dependsOnEarlier).toBe(false);
    expect(p3.checkpointedBytes).toBe(p3.stateBytes);
    expect(p3.checkpointedBytes).toBeGreaterThan(0);
    expect(store.puts).toEqual(["chk-1/counter", "chk-2/counter", "chk-3/counter"]);
  });

  it("describes each file in a handle: key groups, sizes and entry count", async () => {
    const { backend, checkpoint } = setup({ incremental: false, fullEvery: 10 });
    setCounts(backend, keys(20), (k) => k.length);
    const p = await checkpoint(1);
    const body = p.files[0].body;
    expect(p.handles.counter).toEqual({ files: ["chk-1/counter"], keyGroups: RANGE, stateBytes: body.length, checkpointedBytes: body.length, entries: 20 });
    expect(p.checkpointId).toBe(1);
    expect(p.checkpointedBytes).toBe(body.length);
    expect(p.stateBytes).toBe(body.length);
  });

  it("uploads no file for an operator without state", async () => {
    const { store, checkpoint } = setup({ incremental: false, fullEvery: 10 });
    const p = await checkpoint(1);
    expect(p.files).toEqual([]);
    expect(p.handles.counter).toEqual({ files: [], keyGroups: RANGE, stateBytes: 0, checkpointedBytes: 0, entries: 0 });
    expect(store.puts).toEqual([]);
  });

  it("snapshots every operator of the chain, summing the sizes", async () => {
    const store = new MemoryStore();
    const s = new KeyedSnapshotter(store, { incremental: false, fullEvery: 10 }, RANGE);
    const a = new KeyedStateBackend(MAX_PARALLELISM, "a");
    const b = new KeyedStateBackend(MAX_PARALLELISM, "b");
    setCounts(a, keys(5), () => 1);
    setCounts(b, keys(7), () => 2);
    const p = s.prepare(4, new Map([["a", a], ["b", b]]));
    await s.upload(p);
    expect(Object.keys(p.handles).sort()).toEqual(["a", "b"]);
    expect(p.handles.a.entries).toBe(5);
    expect(p.handles.b.entries).toBe(7);
    expect(p.stateBytes).toBe(p.handles.a.stateBytes + p.handles.b.stateBytes);
    expect(p.checkpointedBytes).toBe(p.handles.a.checkpointedBytes + p.handles.b.checkpointedBytes);
    expect([...store.objects.keys()].sort()).toEqual(["chk-4/a", "chk-4/b"]);
  });
});

describe("KeyedSnapshotter, incremental mode", () => {
  it("uploads only the changed keys: a 1% change costs a small fraction of the full state", async () => {
    const { store, backend, checkpoint } = setup({ incremental: true, fullEvery: 10 });
    setCounts(backend, keys(10_000), (k) => k.length * 1_000);

    const full = await checkpoint(1);
    expect(kindOf(store, "chk-1/counter")).toBe("full");
    expect(full.handles.counter.entries).toBe(10_000);

    setCounts(backend, keys(100), () => 7);
    const delta = await checkpoint(2);
    expect(delta.files.map((f) => f.key)).toEqual(["chk-2/counter"]);
    const header = readSnapshot(store.objects.get("chk-2/counter")!).header;
    expect(header).toMatchObject({ kind: "delta", entries: 100 });

    const ratio = delta.checkpointedBytes / full.checkpointedBytes;
    expect(ratio).toBeGreaterThan(0);
    expect(ratio).toBeLessThan(0.02);
    expect(delta.handles.counter).toEqual({
      files: ["chk-1/counter", "chk-2/counter"],
      keyGroups: RANGE,
      stateBytes: full.checkpointedBytes + delta.checkpointedBytes,
      checkpointedBytes: delta.checkpointedBytes,
      entries: 10_000,
    });
    expect(delta.dependsOnEarlier).toBe(true);
  });

  it("records deletions in the increment", async () => {
    const { store, backend, checkpoint } = setup({ incremental: true, fullEvery: 10 });
    setCounts(backend, ["a", "b", "c"], () => 1);
    await checkpoint(1);
    backend.setCurrentKey("b");
    backend.getState(count).clear();
    await checkpoint(2);
    expect(readSnapshot(store.objects.get("chk-2/counter")!).entries).toEqual([
      { state: "count", kind: "value", keyGroup: expect.any(Number), key: "b", value: undefined },
    ]);
    expect(sorted(restore(store, ["chk-1/counter", "chk-2/counter"]).values()).map((e) => e.key)).toEqual(["a", "c"]);
  });

  it("uploads nothing when nothing changed, and reuses the chain", async () => {
    const { store, backend, checkpoint } = setup({ incremental: true, fullEvery: 10 });
    setCounts(backend, keys(10), () => 1);
    const p1 = await checkpoint(1);
    const p2 = await checkpoint(2);
    expect(p2.files).toEqual([]);
    expect(p2.checkpointedBytes).toBe(0);
    expect(p2.stateBytes).toBe(p1.stateBytes);
    expect(p2.handles.counter.files).toEqual(["chk-1/counter"]);
    expect(p2.handles.counter.checkpointedBytes).toBe(0);
    // It still relies on the files of checkpoint 1.
    expect(p2.dependsOnEarlier).toBe(true);
    expect(store.puts).toEqual(["chk-1/counter"]);
  });

  it("grows the chain and materializes it in full every `fullEvery` checkpoints", async () => {
    const { store, backend, checkpoint } = setup({ incremental: true, fullEvery: 3 });
    const chains: (readonly string[])[] = [];
    const kinds: string[] = [];
    for (let id = 1; id <= 7; id++) {
      setCounts(backend, [`k${id}`, "shared"], () => id);
      const p = await checkpoint(id);
      chains.push(p.handles.counter.files);
      kinds.push(kindOf(store, `chk-${id}/counter`));
    }
    expect(kinds).toEqual(["full", "delta", "delta", "full", "delta", "delta", "full"]);
    expect(chains).toEqual([
      ["chk-1/counter"],
      ["chk-1/counter", "chk-2/counter"],
      ["chk-1/counter", "chk-2/counter", "chk-3/counter"],
      ["chk-4/counter"],
      ["chk-4/counter", "chk-5/counter"],
      ["chk-4/counter", "chk-5/counter", "chk-6/counter"],
      ["chk-7/counter"],
    ]);
    // A restore never reads more than fullEvery files.
    expect(Math.max(...chains.map((c) => c.length))).toBe(3);
    // The materialized file holds the whole state.
    expect(readSnapshot(store.objects.get("chk-4/counter")!).header.entries).toBe(5);
  });

  it("with fullEvery 1, every snapshot is full", async () => {
    const { store, backend, checkpoint } = setup({ incremental: true, fullEvery: 1 });
    for (let id = 1; id <= 3; id++) {
      setCounts(backend, [`k${id}`], () => id);
      const p = await checkpoint(id);
      expect(p.handles.counter.files).toEqual([`chk-${id}/counter`]);
      expect(kindOf(store, `chk-${id}/counter`)).toBe("full");
    }
  });

  it("state sizes add up over the chain", async () => {
    const { backend, checkpoint } = setup({ incremental: true, fullEvery: 10 });
    setCounts(backend, keys(100), () => 1);
    const p1 = await checkpoint(1);
    setCounts(backend, keys(5), () => 2);
    const p2 = await checkpoint(2);
    setCounts(backend, keys(3, "new-"), () => 3);
    const p3 = await checkpoint(3);
    expect(p3.stateBytes).toBe(p1.checkpointedBytes + p2.checkpointedBytes + p3.checkpointedBytes);
    expect(p3.handles.counter.entries).toBe(103);
  });

  it("a forced-full snapshot (savepoint) materializes the chain, and later increments extend it", async () => {
    const { store, backend, checkpoint } = setup({ incremental: true, fullEvery: 10 });
    setCounts(backend, ["a"], () => 1);
    await checkpoint(1);
    setCounts(backend, ["b"], () => 1);
    await checkpoint(2);
    setCounts(backend, ["c"], () => 1);
    const sp = await checkpoint(3, true);
    expect(sp.handles.counter.files).toEqual(["chk-3/counter"]);
    expect(sp.dependsOnEarlier).toBe(false);
    expect(kindOf(store, "chk-3/counter")).toBe("full");
    setCounts(backend, ["d"], () => 1);
    const p4 = await checkpoint(4);
    expect(p4.handles.counter.files).toEqual(["chk-3/counter", "chk-4/counter"]);
  });

  it("restoring a chain of increments equals restoring a full snapshot of the same state", async () => {
    const rand = random(20240601);
    const incremental = setup({ incremental: true, fullEvery: 100 });
    const b = incremental.backend;
    const v = b.getState(count);
    const m = b.getMapState(seen);
    const l = b.getListState(recent);
    let chain: readonly string[] = [];
    for (let id = 1; id <= 12; id++) {
      for (let i = 0; i < 200; i++) {
        const key = `k${Math.floor(rand() * 150)}`;
        b.setCurrentKey(key);
        const op = rand();
        if (op < 0.3) v.update(Math.floor(rand() * 1_000));
        else if (op < 0.4) v.clear();
        else if (op < 0.6) m.put(`f${Math.floor(rand() * 5)}`, id);
        else if (op < 0.7) m.remove(`f${Math.floor(rand() * 5)}`);
        else if (op < 0.85) l.add(`e${id}.${i}`);
        else if (op < 0.9) l.update([]);
        else l.clear();
      }
      // Numeric keys too: their canonical text differs from a string's.
      b.setCurrentKey(id);
      v.update(id);
      chain = (await incremental.checkpoint(id)).handles.counter.files;
    }
    expect(chain).toHaveLength(12);

    // The same state, snapshotted in full.
    const full = new KeyedSnapshotter(incremental.store, { incremental: false, fullEvery: 1 }, RANGE);
    const pf = full.prepare(999, incremental.backends);
    await full.upload(pf);
    expect(pf.handles.counter.files).toEqual(["chk-999/counter"]);

    const fromChain = restore(incremental.store, chain);
    const fromFull = restore(incremental.store, ["chk-999/counter"]);
    expect(sorted(fromChain.values())).toEqual(sorted(fromFull.values()));
    expect(sorted(fromChain.values())).toEqual(sorted(b.allEntries()));

    // Loaded into a fresh backend, the chain gives back the live state, and so does a key-group range of it.
    const restored = new KeyedStateBackend(MAX_PARALLELISM, "op");
    restored.load(fromChain.values());
    expect(sorted(restored.allEntries())).toEqual(sorted(b.allEntries()));
    const half = { start: 0, end: 63 };
    expect(sorted(restore(incremental.store, chain, half).values())).toEqual(
      sorted(b.allEntries().filter((e) => e.keyGroup >= half.start && e.keyGroup <= half.end)),
    );
  });

  it("captures values at prepare time: later updates do not leak into the upload", async () => {
    const { store, snapshotter, backend, backends } = setup({ incremental: true, fullEvery: 10 });
    const m = backend.getMapState(seen);
    backend.setCurrentKey("a");
    m.put("x", 1);
    const p = snapshotter.prepare(1, backends);
    m.put("y", 2);
    await snapshotter.upload(p);
    expect(readSnapshot(store.objects.get("chk-1/counter")!).entries[0].value).toEqual([["x", 1]]);
  });

  it("uploads one snapshot after another", async () => {
    const { store, snapshotter, backend, backends } = setup({ incremental: true, fullEvery: 10 });
    store.held = new Map();
    setCounts(backend, ["a"], () => 1);
    const p1 = snapshotter.prepare(1, backends);
    setCounts(backend, ["b"], () => 1);
    const p2 = snapshotter.prepare(2, backends);
    const u1 = snapshotter.upload(p1);
    const u2 = snapshotter.upload(p2);
    await new Promise((r) => setTimeout(r, 0));
    expect(store.puts).toEqual(["chk-1/counter"]);
    store.held.get("chk-1/counter")!();
    await u1;
    await new Promise((r) => setTimeout(r, 0));
    expect(store.puts).toEqual(["chk-1/counter", "chk-2/counter"]);
    store.held.get("chk-2/counter")!();
    await u2;
    expect([...store.objects.keys()]).toEqual(["chk-1/counter", "chk-2/counter"]);
  });
});

describe("KeyedSnapshotter, failed uploads", () => {
  it("fails the next dependent upload without writing it, and makes the one after full", async () => {
    const { store, snapshotter, backend, backends } = setup({ incremental: true, fullEvery: 10 });
    store.failing.add("chk-1/counter");
    setCounts(backend, ["a"], () => 1);
    const p1 = snapshotter.prepare(1, backends);
    setCounts(backend, ["b"], () => 2);
    // Prepared before the failure is known: a delta on top of checkpoint 1.
    const p2 = snapshotter.prepare(2, backends);
    expect(p2.dependsOnEarlier).toBe(true);
    const u1 = snapshotter.upload(p1);
    const u2 = snapshotter.upload(p2);
    await expect(u1).rejects.toThrow(/R2 refused chk-1\/counter/);
    await expect(u2).rejects.toThrow(/snapshot 2 extends files of an earlier snapshot whose upload failed/);
    expect(store.puts).toEqual(["chk-1/counter"]);

    setCounts(backend, ["c"], () => 3);
    const p3 = snapshotter.prepare(3, backends);
    expect(p3.dependsOnEarlier).toBe(false);
    expect(p3.handles.counter.files).toEqual(["chk-3/counter"]);
    await snapshotter.upload(p3);
    expect(readSnapshot(store.objects.get("chk-3/counter")!).header).toMatchObject({ kind: "full", entries: 3 });

    // Back to increments after the full one.
    setCounts(backend, ["d"], () => 4);
    const p4 = snapshotter.prepare(4, backends);
    expect(p4.handles.counter.files).toEqual(["chk-3/counter", "chk-4/counter"]);
    await snapshotter.upload(p4);
  });

  it("a snapshot that only reuses earlier files also fails after their upload failed", async () => {
    const { store, snapshotter, backend, backends } = setup({ incremental: true, fullEvery: 10 });
    store.failing.add("chk-1/counter");
    setCounts(backend, ["a"], () => 1);
    const p1 = snapshotter.prepare(1, backends);
    const p2 = snapshotter.prepare(2, backends);
    expect(p2.files).toEqual([]);
    const u1 = snapshotter.upload(p1);
    const u2 = snapshotter.upload(p2);
    await expect(u1).rejects.toThrow();
    await expect(u2).rejects.toThrow(/snapshot 2 extends/);
  });

  it("a failure known before the next prepare makes that snapshot full", async () => {
    const { store, snapshotter, backend, backends, checkpoint } = setup({ incremental: true, fullEvery: 10 });
    setCounts(backend, keys(10), () => 1);
    await checkpoint(1);
    setCounts(backend, ["user-1"], () => 2);
    store.failing.add("chk-2/counter");
    await expect(checkpoint(2)).rejects.toThrow(/R2 refused/);
    expect(kindOf(store, "chk-1/counter")).toBe("full");

    setCounts(backend, ["user-2"], () => 3);
    const p3 = snapshotter.prepare(3, backends);
    expect(p3.handles.counter.files).toEqual(["chk-3/counter"]);
    expect(p3.dependsOnEarlier).toBe(false);
    await snapshotter.upload(p3);
    const restored = restore(store, p3.handles.counter.files);
    expect(sorted(restored.values())).toEqual(sorted(backend.allEntries()));
  });

  it("a full snapshot does not depend on an earlier failed upload", async () => {
    const { store, snapshotter, backend, backends } = setup({ incremental: false, fullEvery: 10 });
    store.failing.add("chk-1/counter");
    setCounts(backend, ["a"], () => 1);
    const p1 = snapshotter.prepare(1, backends);
    const p2 = snapshotter.prepare(2, backends);
    const u1 = snapshotter.upload(p1);
    const u2 = snapshotter.upload(p2);
    await expect(u1).rejects.toThrow();
    await expect(u2).resolves.toBeUndefined();
    expect(store.objects.has("chk-2/counter")).toBe(true);
  });
});

describe("KeyedSnapshotter and the local image", () => {
  it("writes the changed entries to the image and marks it, synchronously in prepare", () => {
    const { store, snapshotter, backend, backends } = setup({ incremental: true, fullEvery: 10 });
    setCounts(backend, ["a", "b"], () => 1);
    backend.setCurrentKey("a");
    backend.getState(count).clear();
    snapshotter.prepare(5, backends);
    expect(store.calls).toEqual(["writeImage counter", "markImage 5"]);
    expect(store.marked).toEqual([5]);
    const changed = store.images[0].changed.map((e) => [e.entry.key, e.valueJson]).sort();
    expect(changed).toEqual([
      ["a", null],
      ["b", "1"],
    ]);
    expect(store.puts).toEqual([]);
  });

  it("writes only what changed since the previous prepare, even for a full snapshot", () => {
    const { store, snapshotter, backend, backends } = setup({ incremental: false, fullEvery: 10 });
    setCounts(backend, keys(10), () => 1);
    snapshotter.prepare(1, backends);
    setCounts(backend, ["user-4"], () => 9);
    snapshotter.prepare(2, backends);
    expect(store.images.map((i) => i.changed.length)).toEqual([10, 1]);
    expect(store.images[1].changed[0].valueJson).toBe("9");
    expect(store.marked).toEqual([1, 2]);
  });

  it("writes the image of every operator before marking it once", () => {
    const store = new MemoryStore();
    const s = new KeyedSnapshotter(store, { incremental: true, fullEvery: 10 }, RANGE);
    s.prepare(3, new Map([["a", new KeyedStateBackend(MAX_PARALLELISM, "a")], ["b", new KeyedStateBackend(MAX_PARALLELISM, "b")]]));
    expect(store.calls).toEqual(["writeImage a", "writeImage b", "markImage 3"]);
  });
});

describe("KeyedSnapshotter after a restore", () => {
  const handle = (files: string[], stateBytes: number): KeyedStateHandle => ({ files, keyGroups: RANGE, stateBytes, checkpointedBytes: 0, entries: 1 });

  it("restoredFrom: the next increments extend the restored chain", async () => {
    const { backend, snapshotter, checkpoint } = setup({ incremental: true, fullEvery: 10 });
    snapshotter.restoredFrom({ counter: handle(["old/chk-7", "old/chk-8"], 500) });
    setCounts(backend, ["a"], () => 1);
    const p = await checkpoint(9);
    expect(p.handles.counter.files).toEqual(["old/chk-7", "old/chk-8", "chk-9/counter"]);
    expect(p.handles.counter.stateBytes).toBe(500 + p.checkpointedBytes);
    expect(p.dependsOnEarlier).toBe(true);
  });

  it("restoredFrom: with nothing changed, the restored files are the checkpoint", async () => {
    const { snapshotter, checkpoint } = setup({ incremental: true, fullEvery: 10 });
    snapshotter.restoredFrom({ counter: handle(["old/chk-7"], 300) });
    const p = await checkpoint(8);
    expect(p.files).toEqual([]);
    expect(p.handles.counter.files).toEqual(["old/chk-7"]);
    expect(p.stateBytes).toBe(300);
  });

  it("restoredFrom: a restored chain already at fullEvery files is materialized", async () => {
    const { backend, snapshotter, checkpoint } = setup({ incremental: true, fullEvery: 3 });
    snapshotter.restoredFrom({ counter: handle(["old/1", "old/2", "old/3"], 900) });
    setCounts(backend, ["a"], () => 1);
    const p = await checkpoint(4);
    expect(p.handles.counter.files).toEqual(["chk-4/counter"]);
    expect(p.dependsOnEarlier).toBe(false);
  });

  it("requireFull: the next snapshot is full even in incremental mode, then increments resume", async () => {
    const { store, backend, snapshotter, checkpoint } = setup({ incremental: true, fullEvery: 10 });
    setCounts(backend, keys(5), () => 1);
    await checkpoint(1);
    snapshotter.requireFull();
    setCounts(backend, ["user-1"], () => 2);
    const p2 = await checkpoint(2);
    expect(p2.handles.counter.files).toEqual(["chk-2/counter"]);
    expect(kindOf(store, "chk-2/counter")).toBe("full");
    setCounts(backend, ["user-2"], () => 2);
    const p3 = await checkpoint(3);
    expect(p3.handles.counter.files).toEqual(["chk-2/counter", "chk-3/counter"]);
  });

  it("requireFull after restoredFrom drops the restored chains", async () => {
    const { backend, snapshotter, checkpoint } = setup({ incremental: true, fullEvery: 10 });
    snapshotter.restoredFrom({ counter: handle(["old/1"], 100) });
    snapshotter.requireFull();
    setCounts(backend, ["a"], () => 1);
    const p = await checkpoint(2);
    expect(p.handles.counter.files).toEqual(["chk-2/counter"]);
    expect(p.stateBytes).toBe(p.checkpointedBytes);
  });
});

describe("KeyedSnapshotter sizes", () => {
  // BUG: sizes are `body.length`, UTF-16 code units, not the bytes stored in R2
  // (snapshotter.ts, `uploaded = body.length` and `bytes: body.length`): state with
  // non-ASCII keys or values is under-reported in checkpointed_size / state_size.
  // Fix: measure the UTF-8 length (e.g. `new TextEncoder().encode(body).byteLength`,
  // and upload those bytes so the text is encoded once).
  it("reports checkpointed and state sizes in UTF-8 bytes, as stored", async () => {
    const { backend, checkpoint } = setup({ incremental: false, fullEvery: 10 });
    setCounts(backend, ["ключ", "キー", "🔑"], () => 1);
    const p = await checkpoint(1);
    const bytes = new TextEncoder().encode(p.files[0].body).byteLength;
    expect(p.checkpointedBytes).toBe(bytes);
    expect(p.handles.counter.stateBytes).toBe(bytes);
  });
});
