/**
 * The memory budget of the keyed-state backend, over a real local image
 * (`RunImage` on node:sqlite under Durable Object limits) written back by
 * the real snapshotter: eviction order, read-back, dirty entries never
 * evicted, deletions, TTL timestamps, full snapshots and savepoints with
 * evicted entries, restores (the image's checkpoint, an older one by
 * dropping the runs above it, one a compaction merged across from its
 * file), and the key count.
 */
import { describe, expect, it } from "vitest";
import { doSql } from "../../test/support/do-sql.js";
import { Random } from "../../test/support/random.js";
import { listState, mapState, valueState } from "../api/state.js";
import { RunImage } from "../storage/run-image.js";
import { KeyedStateBackend } from "./keyed-state.js";
import { EVICT_SCAN_MAX, OVERLAY_TIMER_BYTES, estimateEntryBytes, measuredEntryBytes } from "./memory-budget.js";
import { readSnapshot } from "./snapshot-format.js";
import { KeyedSnapshotter, type SnapshotStore } from "./snapshotter.js";

const MAX_PARALLELISM = 128;
const RANGE = { start: 0, end: MAX_PARALLELISM - 1 };
const UID = "op";

const count = valueState<number>("count");
const seen = mapState<number>("seen");
const recent = listState<string>("recent");

/** A subtask's image and R2, the snapshotter writing both as the Subtask does. */
class Harness {
  readonly sql = doSql();
  // Small blocks, so that these few thousand keys make runs of many blocks and filters.
  readonly image = new RunImage(this.sql, { pause: async () => undefined, targetBlockBytes: 1024 });
  readonly files = new Map<string, string>();
  /** Where the last restore read the state from. */
  restoredFrom: "image" | "file" | undefined;
  clockMs = 1_000;
  readonly store: SnapshotStore = {
    fileKey: (uid, id) => `chk-${id}/${uid}`,
    savepointFileKey: (uid, id) => `savepoint-${id}/${uid}`,
    put: async (key, body) => void this.files.set(key, body.join("")),
    writeImage: (id) => this.image.begin(id),
    markImage: (id, keys) => {
      if (id !== null) this.image.mark(id, RANGE, keys ?? {});
    },
    pause: async () => undefined,
  };
  snapshotter = this.newSnapshotter();

  newSnapshotter(): KeyedSnapshotter {
    return new KeyedSnapshotter(this.store, { incremental: false, fullEvery: 1, localRecovery: true }, RANGE);
  }

  /** A backend under `budgetBytes` on a fresh (cleared) image. */
  fresh(budgetBytes: number): KeyedStateBackend {
    this.image.clear();
    return this.withBudget(budgetBytes);
  }

  withBudget(budgetBytes: number): KeyedStateBackend {
    const b = new KeyedStateBackend(MAX_PARALLELISM, UID, { now: () => this.clockMs });
    b.useBudget(budgetBytes, this.image.backing(UID, 0));
    return b;
  }

  /** A checkpoint (full file, image written back), awaited. */
  async checkpoint(b: KeyedStateBackend, id: number): Promise<{ entries: number }> {
    const done = await this.snapshotter.upload(this.snapshotter.prepare(id, new Map([[UID, b]])));
    return { entries: done.handles[UID].entries ?? -1 };
  }

  async savepoint(b: KeyedStateBackend, id: number): Promise<{ entries: number }> {
    const done = await this.snapshotter.upload(this.snapshotter.prepareSavepoint(id, new Map([[UID, b]])));
    return { entries: done.handles[UID].entries ?? -1 };
  }

  /** Every entry of a stored file, as `state/key` → value. */
  file(key: string): Map<string, unknown> {
    const text = this.files.get(key);
    if (text === undefined) throw new Error(`no file ${key}`);
    return new Map(readSnapshot(text).entries.map((e) => [`${e.state}/${e.key}`, e.value]));
  }

  /** Compacts the runs up to checkpoint `completed` as the Subtask does in the background, and waits for it. */
  async compact(completed: number): Promise<void> {
    this.image.kick(completed);
    await this.image.idle();
  }

  /**
   * Restores checkpoint `id` as the Subtask does: from the image when it can
   * still reach that checkpoint (dropping the runs above it), else from the
   * file into it.
   */
  async restore(id: number, budgetBytes: number, entries: number): Promise<KeyedStateBackend> {
    await this.image.halt();
    const b = new KeyedStateBackend(MAX_PARALLELISM, UID, { now: () => this.clockMs });
    b.useBudget(budgetBytes, this.image.backing(UID, 0));
    this.snapshotter = this.newSnapshotter();
    let keys = this.image.localRestore(UID, id, RANGE);
    this.restoredFrom = keys === undefined ? "file" : "image";
    if (keys === undefined) {
      this.image.clearOperator(UID);
      const restoring = this.image.restoring(UID, id);
      for (const e of readSnapshot(this.files.get(`chk-${id}/${UID}`)!).entries) restoring.add(e);
      await restoring.flush(async () => undefined);
      keys = entries;
    }
    b.attach(this.image.backing(UID, keys));
    this.image.mark(id, RANGE, { [UID]: b.size() });
    this.image.resume(id);
    return b;
  }
}

/** Adds one to `key`'s count. */
function bump(b: KeyedStateBackend, key: string): number {
  b.setCurrentKey(key);
  const s = b.getState(count);
  const n = (s.value() ?? 0) + 1;
  s.update(n);
  return n;
}

/** The bytes a count entry of `key` is estimated at. */
const countBytes = (key: string) => estimateEntryBytes(key, 1);

describe("memory budget: eviction", () => {
  it("never evicts dirty entries: over budget until a checkpoint writes them back, then evicts down to the budget", async () => {
    const h = new Harness();
    const budget = 64 * 1024;
    const b = h.fresh(budget);
    const keys = Array.from({ length: 3000 }, (_, i) => `key-${i}`);
    for (const k of keys) bump(b, k);
    // ≈ 3000 × 97 bytes, all dirty: nothing may go.
    expect(b.bytesInMemory).toBe(keys.reduce((n, k) => n + countBytes(k), 0));
    expect(b.bytesInMemory).toBeGreaterThan(4 * budget);
    expect(b.entriesEvicted).toBe(0);
    await h.checkpoint(b, 1);
    // Clean now; the next new keys evict down to 90% of the budget, each eviction looking at EVICT_SCAN_MAX entries
    // at most (the first pass over the table clears the reference bits every new entry starts with).
    bump(b, "late");
    expect(b.entriesEvicted).toBeGreaterThan(0);
    expect(b.entriesEvicted).toBeLessThan(EVICT_SCAN_MAX);
    for (let i = 0; i < 4; i++) bump(b, `late-${i}`);
    expect(b.entriesEvicted).toBeGreaterThan(2000);
    expect(b.bytesInMemory).toBeLessThanOrEqual(budget);
    expect(b.size()).toBe(3005);
    // Every evicted key reads back with its value, and counts on.
    for (const k of keys) expect(bump(b, k)).toBe(2);
    expect(b.readbacks).toBeGreaterThan(2000);
    expect(b.size()).toBe(3005);
  });

  it("evicts the least recently used first: keys read since the hand last passed stay in memory", async () => {
    const h = new Harness();
    const budget = 64 * 1024;
    const b = h.fresh(budget);
    const hot = Array.from({ length: 100 }, (_, i) => `hot-${i}`);
    const cold = Array.from({ length: 400 }, (_, i) => `cold-${i}`);
    for (const k of [...hot, ...cold]) bump(b, k);
    await h.checkpoint(b, 1);
    // A stream of new keys, each followed by reads of the hot keys: they keep their reference bits set.
    let cp = 2;
    for (let i = 0; i < 4000; i++) {
      bump(b, `new-${i}`);
      b.setCurrentKey(hot[i % hot.length]);
      b.getState(count).value();
      if (i % 200 === 199) await h.checkpoint(b, cp++);
    }
    expect(b.entriesEvicted).toBeGreaterThan(2000);
    const before = b.readbacks;
    for (const k of hot) {
      b.setCurrentKey(k);
      expect(b.getState(count).value()).toBe(1);
    }
    expect(b.readbacks - before).toBe(0);
    // The cold keys, never read again, went.
    for (const k of cold) {
      b.setCurrentKey(k);
      expect(b.getState(count).value()).toBe(1);
    }
    expect(b.readbacks - before).toBe(cold.length);
  });

  it("does not evict what a checkpoint's unfinished write-back captured, nor the current key; timers go to the image's time index", async () => {
    const h = new Harness();
    const budget = 64 * 1024;
    const b = h.fresh(budget);
    for (let i = 0; i < 2000; i++) {
      bump(b, `k${i}`);
      b.timers("event").register(`k${i}`, 1000 + i);
    }
    const prepared = h.snapshotter.prepare(1, new Map([[UID, b]]));
    bump(b, "during");
    expect(b.entriesEvicted).toBe(0);
    await h.snapshotter.upload(prepared);
    bump(b, "after");
    expect(b.entriesEvicted).toBeGreaterThan(0);
    expect(b.getState(count).value()).toBe(1);
    expect(b.timerCount()).toBe(2000);
    // The timers' entries are evicted like any state (the time index holds them by time): memory is back within the budget.
    expect(b.bytesInMemory).toBeLessThanOrEqual(budget);
    const readbacks = b.readbacks;
    const fired = b.timers("event").poll(1000 + 1999);
    expect(fired.map((t) => t.timestampMs)).toEqual(Array.from({ length: 2000 }, (_, i) => 1000 + i));
    expect(fired.map((t) => t.key)).toEqual(Array.from({ length: 2000 }, (_, i) => `k${i}`));
    expect(b.readbacks).toBeGreaterThan(readbacks);
    expect(b.timerCount()).toBe(0);
  });

  it("counts the timers changed since their seal (the time index's overlay) in the estimate, until a seal takes them out", async () => {
    const h = new Harness();
    const budget = 64 * 1024;
    const b = h.fresh(budget);
    const before = b.bytesInMemory;
    const keys = Array.from({ length: 1000 }, (_, i) => `t${i}`);
    keys.forEach((k, i) => b.timers("event").register(k, 5000 + i));
    // Each timer: its key's entry (as any state) and its place in the overlay.
    const expected = keys.reduce((n, k) => n + estimateEntryBytes(k, [5000]) + OVERLAY_TIMER_BYTES + k.length, 0);
    expect(b.bytesInMemory - before).toBe(expected);
    // All of it changed since the last capture: nothing to evict, so the changes want a flush.
    expect(b.wantsFlush).toBe(true);
    await h.checkpoint(b, 1);
    // The seal put them in the index: the overlay is empty, and the clean timer entries go down to the budget.
    bump(b, "after");
    expect(b.bytesInMemory).toBeLessThanOrEqual(budget);
    const fired = b.timers("event").poll(5000 + 999);
    expect(fired.map((t) => t.key)).toEqual(keys);
  });

  it("evicts clean entries while a write-back is under way, but never the entries it captured", async () => {
    const h = new Harness();
    const budget = 64 * 1024;
    const b = h.fresh(budget);
    for (let i = 0; i < 1000; i++) bump(b, `old-${i}`);
    await h.checkpoint(b, 1);
    // Checkpoint 2 captures 300 changed keys; while its write-back is pending, new keys push the estimate over budget.
    for (let i = 0; i < 300; i++) bump(b, `old-${i}`);
    const prepared = h.snapshotter.prepare(2, new Map([[UID, b]]));
    const evictedBefore = b.entriesEvicted;
    for (let i = 0; i < 1500; i++) bump(b, `new-${i}`);
    expect(b.entriesEvicted - evictedBefore).toBeGreaterThan(0);
    // Not one of the captured keys went: reading them reads nothing back.
    const readbacks = b.readbacks;
    for (let i = 0; i < 300; i++) {
      b.setCurrentKey(`old-${i}`);
      expect(b.getState(count).value()).toBe(2);
    }
    expect(b.readbacks).toBe(readbacks);
    await h.snapshotter.upload(prepared);
    // Every key, evicted or not, has its value.
    for (let i = 0; i < 1000; i++) {
      b.setCurrentKey(`old-${i}`);
      expect(b.getState(count).value()).toBe(i < 300 ? 2 : 1);
    }
  });

  it("never evicts entries loaded without an image (load), which nothing could read back", async () => {
    const h = new Harness();
    const b = h.fresh(64 * 1024);
    b.load(Array.from({ length: 2000 }, (_, i) => ({ state: "count", key: `k${i}`, kind: "value" as const, value: i })));
    bump(b, "new");
    expect(b.bytesInMemory).toBeGreaterThan(64 * 1024);
    expect(b.entriesEvicted).toBe(0);
    b.setCurrentKey("k1999");
    expect(b.getState(count).value()).toBe(1999);
  });

  it("counts new keys written blind (no read before) when written, and evicts them like any other", async () => {
    const h = new Harness();
    const b = h.fresh(64 * 1024);
    for (let i = 0; i < 2000; i++) {
      b.setCurrentKey(`k${i}`);
      b.getState(count).update(i);
    }
    // Counted as the table grew: all dirty, over the budget, so a flush would be asked for (checkpoints here are full files).
    expect(b.bytesInMemory).toBe(Array.from({ length: 2000 }, (_, i) => countBytes(`k${i}`)).reduce((x, y) => x + y, 0));
    expect(b.wantsFlush).toBe(true);
    await h.checkpoint(b, 1);
    // Evicted down to the budget once written back.
    expect(b.entriesEvicted).toBeGreaterThan(0);
    expect(b.bytesInMemory).toBeLessThanOrEqual(64 * 1024);
    for (let i = 0; i < 2000; i++) {
      b.setCurrentKey(`k${i}`);
      expect(b.getState(count).value()).toBe(i);
    }
    expect(b.size()).toBe(2000);
  });

  it("measures an object entry by its JSON when a checkpoint captures it or it is read back", async () => {
    const h = new Harness();
    const b = h.fresh(1 << 20);
    b.setCurrentKey("a");
    b.getListState(recent).addAll(["x".repeat(100), "y".repeat(100)]);
    const guessed = b.bytesInMemory;
    await h.checkpoint(b, 1);
    const json = JSON.stringify(["x".repeat(100), "y".repeat(100)]);
    expect(b.bytesInMemory).toBe(measuredEntryBytes("a", json.length));
    expect(b.bytesInMemory).not.toBe(guessed);
  });
});

describe("memory budget: correctness across eviction", () => {
  it("a key deleted after it was persisted stays deleted, evicted or not, before and after the deletion is written back", async () => {
    const h = new Harness();
    const budget = 64 * 1024;
    const b = h.fresh(budget);
    for (let i = 0; i < 1000; i++) bump(b, `k${i}`);
    await h.checkpoint(b, 1);
    // Deleted while nothing was evicted yet: the first eviction attaches the image, which still holds k0..k9.
    for (let i = 0; i < 10; i++) {
      b.setCurrentKey(`k${i}`);
      b.getState(count).clear();
    }
    for (let i = 0; i < 1000; i++) bump(b, `m${i}`);
    expect(b.entriesEvicted).toBeGreaterThan(0);
    const unread = () => {
      for (let i = 0; i < 10; i++) {
        b.setCurrentKey(`k${i}`);
        expect(b.getState(count).value()).toBeUndefined();
      }
    };
    // Before the deletions' write-back (the image still holds them), and after.
    unread();
    await h.checkpoint(b, 2);
    bump(b, "x");
    unread();
    // Deleted after being evicted and read back, then evicted again after the deletion's write-back.
    b.setCurrentKey("k500");
    b.getState(count).clear();
    expect(b.size()).toBe(1000 - 10 + 1000 + 1 - 1);
    await h.checkpoint(b, 3);
    for (let i = 0; i < 1000; i++) bump(b, `n${i}`);
    b.setCurrentKey("k500");
    expect(b.getState(count).value()).toBeUndefined();
    expect(b.size()).toBe(2990);
    // Written again after its deletion: a new key, counted once.
    expect(bump(b, "k500")).toBe(1);
    expect(b.size()).toBe(2991);
    const full = h.file("chk-3/op");
    expect(full.has("count/k500")).toBe(false);
    expect(full.has("count/k0")).toBe(false);
  });

  it("reads the image once for a new key, though its write reads it again; a key written since is read back with its value", async () => {
    const h = new Harness();
    const budget = 64 * 1024;
    h.image.clear();
    const b = new KeyedStateBackend(MAX_PARALLELISM, UID, { now: () => h.clockMs });
    const backing = h.image.backing(UID, 0);
    let gets = 0;
    const get = backing.get.bind(backing);
    backing.get = (state, key, keyGroup) => {
      gets++;
      return get(state, key, keyGroup);
    };
    b.useBudget(budget, backing);
    for (let i = 0; i < 1000; i++) bump(b, `k${i}`);
    await h.checkpoint(b, 1);
    for (let i = 0; i < 1000; i++) bump(b, `m${i}`);
    expect(b.entriesEvicted).toBeGreaterThan(0);
    // The same miss twice (value(), then update()) and a blind write after a miss of another key: one read each.
    gets = 0;
    for (let i = 0; i < 100; i++) bump(b, `n${i}`);
    expect(gets).toBe(100);
    gets = 0;
    b.setCurrentKey("p0");
    expect(b.getState(count).value()).toBeUndefined();
    b.setCurrentKey("p1");
    b.getState(count).update(7);
    expect(gets).toBe(2);
    // The miss is forgotten once the key is written: evicted after its write-back, it is read back with its value.
    await h.checkpoint(b, 2);
    for (let i = 0; i < 2000; i++) bump(b, `q${i}`);
    await h.checkpoint(b, 3);
    for (let i = 0; i < 2000; i++) bump(b, `r${i}`);
    const readbacks = b.readbacks;
    expect(bump(b, "n0")).toBe(2);
    expect(bump(b, "p1")).toBe(8);
    expect(b.readbacks).toBe(readbacks + 2);
  });

  it("keeps TTL timestamps across eviction and read-back: an entry expires when it would have in memory", async () => {
    const h = new Harness();
    const b = h.fresh(64 * 1024);
    const v = valueState<number>("v", { ttl: { ttlMs: 10_000 } });
    b.setCurrentKey("old");
    b.getState(v).update(7);
    h.clockMs += 6_000;
    for (let i = 0; i < 2000; i++) {
      b.setCurrentKey(`k${i}`);
      b.getState(v).update(i);
    }
    await h.checkpoint(b, 1);
    for (let i = 0; i < 3; i++) bump(b, `trigger-${i}`);
    // The oldest entry, never read since, is among the first evicted.
    expect(b.entriesEvicted).toBeGreaterThan(1000);
    b.setCurrentKey("old");
    h.clockMs += 3_000;
    const readbacks = b.readbacks;
    expect(b.getState(v).value()).toBe(7);
    expect(b.readbacks).toBe(readbacks + 1);
    // Read back, not rewritten: OnCreateAndWrite keeps the first timestamp, so at 10 s after the write it is gone.
    for (let i = 0; i < 2000; i++) bump(b, `z${i}`);
    await h.checkpoint(b, 2);
    for (let i = 0; i < 3; i++) bump(b, `trigger2-${i}`);
    h.clockMs += 1_001;
    b.setCurrentKey("old");
    const readbacks2 = b.readbacks;
    expect(b.getState(v).value()).toBeUndefined();
    // Evicted again and read back with its first timestamp: expired by it, not by a time the read-back made up.
    expect(b.readbacks).toBe(readbacks2 + 1);
    b.setCurrentKey("k1");
    expect(b.getState(v).value()).toBe(1);
  });

  it("full snapshots and savepoints hold every entry, evicted ones included, streamed from the image; counts stay right", async () => {
    const h = new Harness();
    const budget = 64 * 1024;
    const b = h.fresh(budget);
    const model = new Map<string, unknown>();
    for (let i = 0; i < 1500; i++) {
      const k = `k${i}`;
      model.set(`count/${k}`, bump(b, k));
      if (i % 3 === 0) {
        b.getMapState(seen).put("a", i);
        model.set(`seen/${k}`, [["a", i]]);
      }
      if (i % 5 === 0) {
        b.getListState(recent).add(`r${i}`);
        model.set(`recent/${k}`, [`r${i}`]);
      }
    }
    await h.checkpoint(b, 1);
    for (let i = 0; i < 1500; i += 7) model.set(`count/k${i}`, bump(b, `k${i}`));
    for (let i = 0; i < 1500; i += 11) {
      b.setCurrentKey(`k${i}`);
      b.getState(count).clear();
      model.delete(`count/k${i}`);
    }
    const cp2 = await h.checkpoint(b, 2);
    bump(b, "x");
    model.set("count/x", 1);
    expect(b.entriesEvicted).toBeGreaterThan(1000);
    const sp = await h.savepoint(b, 3);
    expect(h.file("savepoint-3/op")).toEqual(model);
    expect(sp.entries).toBe(model.size);
    const cp4 = await h.checkpoint(b, 4);
    expect(h.file("chk-4/op")).toEqual(model);
    expect(cp4.entries).toBe(model.size);
    expect(b.size()).toBe(model.size);
    expect(cp2.entries).toBe(model.size - 1);
  });

  it("a full snapshot is what the state was at its barrier, though keys are read back, changed and evicted while it streams", async () => {
    const h = new Harness();
    const b = h.fresh(64 * 1024);
    const model = new Map<string, unknown>();
    for (let i = 0; i < 2000; i++) model.set(`count/k${i}`, bump(b, `k${i}`));
    await h.checkpoint(b, 1);
    bump(b, "x");
    model.set("count/x", 1);
    const prepared = h.snapshotter.prepareSavepoint(2, new Map([[UID, b]]));
    // After the barrier: evicted keys read back and changed, others evicted in their place.
    for (let i = 0; i < 2000; i += 3) bump(b, `k${i}`);
    await h.snapshotter.upload(prepared);
    expect(h.file("savepoint-2/op")).toEqual(model);
  });
});

describe("memory budget: restore", () => {
  it("restores the image's own checkpoint lazily, an older one by dropping the runs above it, and one a compaction merged across from its file, with evictions throughout", async () => {
    const rnd = new Random(7);
    const h = new Harness();
    const budget = 64 * 1024;
    let b = h.fresh(budget);
    const model = new Map<string, number>();
    const at = new Map<number, { model: Map<string, number>; entries: number }>();
    let cp = 0;
    const run = async (ops: number) => {
      for (let i = 0; i < ops; i++) {
        const k = `k${rnd.int(3000)}`;
        if (rnd.int(10) === 0) {
          b.setCurrentKey(k);
          b.getState(count).clear();
          model.delete(k);
        } else model.set(k, bump(b, k));
        if (i % 500 === 499) {
          const done = await h.checkpoint(b, ++cp);
          at.set(cp, { model: new Map(model), entries: done.entries });
          expect(b.size()).toBe(model.size);
        }
      }
    };
    const check = () => {
      for (let i = 0; i < 3000; i++) {
        b.setCurrentKey(`k${i}`);
        expect(b.getState(count).value()).toBe(model.get(`k${i}`));
      }
      expect(b.size()).toBe(model.size);
    };
    await run(6000);
    expect(b.entriesEvicted).toBeGreaterThan(0);
    const restore = async (id: number, from: "image" | "file") => {
      b = await h.restore(id, budget, at.get(id)!.entries);
      expect(h.restoredFrom).toBe(from);
      model.clear();
      for (const [k, v] of at.get(id)!.model) model.set(k, v);
      expect(b.size()).toBe(model.size);
    };
    // Failover to the latest checkpoint: the image holds it.
    const latest = cp;
    await restore(latest, "image");
    check();
    await run(3000);
    // Back to a checkpoint SQLite has moved past (taken after the last completed one, so no compaction merged across
    // it): the runs above it are dropped.
    const older = cp - 2;
    await restore(older, "image");
    check();
    await run(3000);
    check();
    // Runs up to the latest checkpoint compacted into one: an older checkpoint is out of the image's reach, and read from its file.
    await h.compact(cp);
    expect(h.image.runs(UID).states.length).toBe(1);
    await restore(cp - 1, "file");
    check();
    await run(3000);
    check();
    const done = await h.checkpoint(b, ++cp);
    expect(h.file(`chk-${cp}/op`)).toEqual(new Map([...model].map(([k, v]) => [`count/${k}`, v])));
    expect(done.entries).toBe(model.size);
    expect(b.bytesInMemory).toBeLessThanOrEqual(budget * 1.5);
  });
});
