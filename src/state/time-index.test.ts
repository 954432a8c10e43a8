/**
 * Timers out of memory: the time index's key order, and the real backend,
 * image (node:sqlite under Durable Object limits) and snapshotter against a
 * model of every timer, over seeded runs of registrations, deletions,
 * firings, checkpoints, flushes, compactions and restores (from the image,
 * and from the checkpoint's run files with the index rebuilt), under a memory
 * budget small enough that timer entries are evicted and read back.
 */
import { describe, expect, it, vi } from "vitest";
import { doSql } from "../../test/support/do-sql.js";
import { Random } from "../../test/support/random.js";
import { valueState } from "../api/state.js";
import type { KeyedStateHandle } from "../checkpoint/types.js";
import { RunImage, type TimerCounts } from "../storage/run-image.js";
import { hashKey } from "../graph/key-groups.js";
import { KeyedStateBackend } from "./keyed-state.js";
import { RunStore } from "./runs/run-store.js";
import { PAGE_BLOCK } from "./runs/run-writer.js";
import { KeyedSnapshotter, type SnapshotStore } from "./snapshotter.js";
import { INDEX_CACHE_ENTRIES, type IndexedTimer, IndexedTimerQueue, parseTimeIndexKey, timeIndexKey, timeIndexPosition } from "./time-index.js";
import type { Timer } from "./timer-queue.js";

const MAX_PARALLELISM = 128;
const RANGE = { start: 0, end: MAX_PARALLELISM - 1 };
const UID = "op";
const count = valueState<number>("count");
const SEEDS = Number(process.env.TIME_INDEX_SEEDS ?? 25);

describe("the time index's order", () => {
  it("sorts entries by timestamp (negative, fractional, huge), then by where the image keeps the key, then key, and reads back what it wrote", () => {
    const rnd = new Random(7);
    const stamps = [0, -0.5, 0.5, 1, -1, 1.5, 1_767_225_600_000, -1_767_225_600_000, 2 ** 47 + 5, -(2 ** 47) - 5, 8.64e15, -8.64e15, Number.MAX_SAFE_INTEGER];
    for (let i = 0; i < 200; i++) stamps.push((rnd.next() - 0.5) * 10 ** rnd.int(16));
    // Positions (keyGroup·2^32 + hash) at both ends, and two keys sharing one (equal hashes).
    const positions = new Map([
      ["a", 65535 * 2 ** 32 + 0xffffffff],
      ["b", 0],
      ["k-é", 17 * 2 ** 32 + 0x80000000],
      ["k-f", 17 * 2 ** 32 + 0x80000000],
      ["z", 3 * 2 ** 32 + 5],
    ]);
    const timers = stamps.flatMap((timestampMs) => [...positions.keys()].map((key) => ({ timestampMs, key })));
    const entryKey = (t: { timestampMs: number; key: string }) => timeIndexKey(t.timestampMs, positions.get(t.key)!, t.key);
    const byKey = [...timers].sort((x, y) => {
      const a = entryKey(x);
      const b = entryKey(y);
      return a < b ? -1 : a > b ? 1 : 0;
    });
    const byTime = [...timers].sort(
      (x, y) => x.timestampMs - y.timestampMs || positions.get(x.key)! - positions.get(y.key)! || (x.key < y.key ? -1 : x.key > y.key ? 1 : 0),
    );
    expect(byKey).toEqual(byTime);
    for (const t of timers) expect(parseTimeIndexKey(entryKey(t))).toEqual({ ...t, entryKey: entryKey(t) });
    // Positions never go down with time.
    const runPositions = byTime.map((t) => {
      const p = timeIndexPosition(t.timestampMs);
      return p.keyGroup * 2 ** 32 + p.hash;
    });
    for (let i = 1; i < runPositions.length; i++) expect(runPositions[i]).toBeGreaterThanOrEqual(runPositions[i - 1]);
  });
});

/**
 * A subtask's image, R2 and snapshotter, checkpointing as the image's runs
 * (the default) and restoring as the Subtask does: from the image (its
 * index with it, the timers counted by the checkpoint), else by importing
 * the run files and rebuilding the index from them.
 */
class Harness {
  readonly sql = doSql();
  readonly image = new RunImage(this.sql, { pause: async () => undefined, targetBlockBytes: 512 });
  readonly bucket = new Map<string, Uint8Array>();
  readonly handles = new Map<number, KeyedStateHandle>();
  readonly store: SnapshotStore = {
    fileKey: (uid, id) => `chk-${id}/${uid}`,
    savepointFileKey: (uid, id) => `savepoint-${id}/${uid}`,
    put: async () => undefined,
    writeImage: (id) => this.image.begin(id),
    markImage: (id, keys, timers) => {
      if (id !== null) this.image.mark(id, RANGE, keys ?? {}, timers ?? {});
    },
    pause: async () => undefined,
    uploadRuns: (uid, id) =>
      this.image.uploadRuns(
        uid,
        id,
        {
          key: (store, run) => `chk-${id}/${uid}.${store}-${run}.run`,
          put: async (key, parts) => {
            const chunks: Uint8Array[] = [];
            for await (const p of parts) chunks.push(p.slice());
            const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
            let at = 0;
            for (const c of chunks) {
              bytes.set(c, at);
              at += c.length;
            }
            this.bucket.set(key, bytes);
          },
        },
        async () => undefined,
      ),
  };
  snapshotter = this.newSnapshotter();
  /** Whether the last restore was local (from the image), not from R2. */
  restoredFromImage = false;

  constructor(private readonly budgetBytes: number) {}

  newSnapshotter(): KeyedSnapshotter {
    return new KeyedSnapshotter(this.store, { incremental: true, fullEvery: 10, localRecovery: true }, RANGE);
  }

  fresh(): KeyedStateBackend {
    this.image.clear();
    this.image.startTimeIndex(UID);
    const b = new KeyedStateBackend(MAX_PARALLELISM, UID, { now: () => 1_000 });
    b.useBudget(this.budgetBytes, this.image.backing(UID, 0));
    return b;
  }

  async checkpoint(b: KeyedStateBackend, id: number): Promise<void> {
    const done = await this.snapshotter.upload(this.snapshotter.prepare(id, new Map([[UID, b]])));
    this.handles.set(id, done.handles[UID]);
  }

  async restore(id: number, fromR2: boolean): Promise<KeyedStateBackend> {
    await this.image.halt();
    this.snapshotter = this.newSnapshotter();
    // As the Task does: changes flushed from now on belong to the checkpoint after the restored one.
    this.snapshotter.restoredAt(id);
    const b = new KeyedStateBackend(MAX_PARALLELISM, UID, { now: () => 1_000 });
    b.useBudget(this.budgetBytes, this.image.backing(UID, 0));
    const pause = async () => undefined;
    const handle = this.handles.get(id)!;
    let keys = fromR2 ? undefined : this.image.localRestore(UID, id, RANGE, handle.files);
    this.restoredFromImage = keys !== undefined;
    let timers: TimerCounts | undefined;
    if (keys === undefined) {
      this.image.clearOperator(UID);
      const read = async (key: string, offset: number, length: number) => this.bucket.get(key)!.slice(offset, offset + length);
      await this.image.importRuns(UID, id, handle.runs!, handle.keyGroups, RANGE, read, pause);
      keys = handle.entries!;
    } else timers = this.image.timerCounts(UID, id);
    timers ??= await this.image.rebuildTimeIndex(UID, id, pause);
    b.attach(this.image.backing(UID, keys, timers));
    this.image.mark(id, RANGE, { [UID]: b.size() }, { [UID]: b.timerCounts() });
    this.image.resume(id);
    return b;
  }
}

/**
 * A window's end over `n` keys, sealed and evicted: key `k<i>` counts i and
 * has a timer at 10,000, and a 4 KiB budget holds almost none of them.
 */
async function windowEnd(n: number): Promise<KeyedStateBackend> {
  const h = new Harness(4096);
  const b = h.fresh();
  for (let i = 0; i < n; i++) {
    b.setCurrentKey(`k${i}`);
    b.getState(count).update(i);
    b.timers("event").register(`k${i}`, 10_000);
  }
  await h.checkpoint(b, 1);
  // Clean now: evicted as the runtime does while no record comes (a CLOCK pass marks, the next evicts).
  for (let i = 0; i < 10 && b.wantsEviction; i++) b.evictSome();
  expect(b.bytesInMemory).toBeLessThanOrEqual(4096);
  return b;
}

/** The model: every live timer as "ts|key". */
type Model = Map<string, Timer>;
const id = (t: Timer) => `${t.timestampMs}|${t.key}`;
const sorted = (ts: readonly Timer[]) => [...ts].sort((a, b) => a.timestampMs - b.timestampMs || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

async function run(seed: number): Promise<{ fired: number; restores: number; readbacks: number }> {
  const rnd = new Random(seed);
  // A budget of a few dozen entries: timers' entries are evicted and read back.
  const h = new Harness(rnd.pick([1024, 4096, 16384]));
  let b = h.fresh();
  const keys = Array.from({ length: 40 + rnd.int(200) }, (_, i) => `key-${i}`);
  let model: Model = new Map();
  let watermark = 0;
  let checkpointId = 0;
  /** Completed checkpoints: the model and watermark each holds. */
  const completed = new Map<number, { model: Model; watermark: number }>();
  let fired = 0;
  let restores = 0;
  let readbacks = 0;
  const steps = 400 + rnd.int(400);
  const trace = process.env.TIME_INDEX_TRACE === "1" ? (m: string) => console.log(m) : () => undefined;
  for (let step = 0; step < steps; step++) {
    const r = rnd.next();
    const queue = b.timers("event");
    if (r < 0.45) {
      // Register, sometimes in the past (fires at the next advance), sometimes a duplicate.
      const t = { key: rnd.pick(keys), timestampMs: watermark - 5 + rnd.int(300) + (rnd.chance(0.1) ? 0.5 : 0) };
      const added = queue.register(t.key, t.timestampMs);
      trace(`register ${t.key} ${t.timestampMs} ${added}`);
      expect(added).toBe(!model.has(id(t)));
      model.set(id(t), t);
      b.setCurrentKey(t.key);
      b.getState(count).update((b.getState(count).value() ?? 0) + 1);
    } else if (r < 0.55) {
      const live = [...model.values()];
      const t = live.length > 0 && rnd.chance(0.8) ? rnd.pick(live) : { key: rnd.pick(keys), timestampMs: rnd.int(10_000) };
      trace(`delete ${t.key} ${t.timestampMs}`);
      expect(queue.delete(t.key, t.timestampMs)).toBe(model.delete(id(t)));
    } else if (r < 0.8) {
      watermark += rnd.int(40);
      const got = queue.poll(watermark);
      trace(`poll ${watermark}: ${got.map((t) => `${t.key}@${t.timestampMs}`).join(" ")}`);
      const want = sorted([...model.values()].filter((t) => t.timestampMs <= watermark));
      // Keys at one time fire in no set order; times do.
      expect(got.map((t) => t.timestampMs)).toEqual(want.map((t) => t.timestampMs));
      expect(sorted(got)).toEqual(want);
      for (const t of want) model.delete(id(t));
      fired += got.length;
      expect(queue.peek()).toBe(sorted([...model.values()])[0]?.timestampMs);
    } else if (r < 0.88) {
      checkpointId++;
      trace(`checkpoint ${checkpointId}`);
      await h.checkpoint(b, checkpointId);
      completed.set(checkpointId, { model: new Map(model), watermark });
      if (rnd.chance(0.5)) {
        h.image.kick(checkpointId);
        await h.image.idle();
      }
    } else if (r < 0.93) {
      trace("flush");
      await h.snapshotter.flush(new Map([[UID, b]]));
    } else if (completed.size > 0) {
      // A failover to the last completed checkpoint: from the image (dropping what was sealed after it), or from its file.
      const last = Math.max(...completed.keys());
      readbacks += b.readbacks;
      const fromR2 = rnd.chance(0.3);
      trace(`restore ${last} ${fromR2 ? "from R2" : "local"}`);
      b = await h.restore(last, fromR2);
      model = new Map(completed.get(last)!.model);
      watermark = completed.get(last)!.watermark;
      checkpointId = Math.max(checkpointId, last);
      restores++;
    }
    expect(b.timerCount()).toBe(model.size);
  }
  // Everything left fires, in order, exactly once.
  const rest = b.timers("event").poll(Number.MAX_SAFE_INTEGER);
  expect(sorted(rest)).toEqual(sorted([...model.values()]));
  return { fired: fired + rest.length, restores, readbacks: readbacks + b.readbacks };
}

describe("timers in the image's time index", () => {
  it("fire as a model says, across checkpoints, flushes, compactions and restores, with their entries evicted", async () => {
    let restores = 0;
    let readbacks = 0;
    let fired = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      try {
        const r = await run(seed);
        restores += r.restores;
        readbacks += r.readbacks;
        fired += r.fired;
      } catch (e) {
        throw new Error(`seed ${seed}: ${(e as Error).message}`, { cause: e });
      }
    }
    // The runs did what they are for: timers fired, restores happened, timer entries came back from the image.
    console.log(`time index: ${SEEDS} seeds, ${fired} timers fired, ${restores} restores, ${readbacks} read back`);
    expect(fired).toBeGreaterThan(3_000);
    expect(restores).toBeGreaterThan(25);
    expect(readbacks).toBeGreaterThan(600);
  }, 120_000);

  it("fires thousands of timers at one time (a window's end) in one poll, sealed or not, each once", async () => {
    const h = new Harness(4096);
    const b = h.fresh();
    const n = 9 * INDEX_CACHE_ENTRIES + 17;
    for (let i = 0; i < n; i++) b.timers("event").register(`k${i}`, 10_000);
    await h.checkpoint(b, 1);
    // Half sealed, half only in memory: the poll merges both.
    for (let i = n; i < 2 * n; i++) b.timers("event").register(`k${i}`, 10_000);
    b.timers("event").register("early", 9_999);
    const fired = b.timers("event").poll(10_000);
    expect(fired[0]).toEqual({ key: "early", timestampMs: 9_999 });
    expect(new Set(fired.slice(1).map((t) => t.key)).size).toBe(2 * n);
    expect(fired.length).toBe(2 * n + 1);
    expect(b.timerCount()).toBe(0);
    expect(b.timers("event").peek()).toBeUndefined();
  });

  it("fires a time's timers in slices, sealed or not, each once", async () => {
    const h = new Harness(4096);
    const b = h.fresh();
    const n = 3 * INDEX_CACHE_ENTRIES + 5;
    for (let i = 0; i < n; i++) b.timers("event").register(`k${i}`, 10_000);
    await h.checkpoint(b, 1);
    for (let i = n; i < 2 * n; i++) b.timers("event").register(`k${i}`, 10_000);
    const keys: string[] = [];
    for (let slice = b.timers("event").poll(10_000, 100); slice.length > 0; slice = b.timers("event").poll(10_000, 100)) {
      expect(slice.length).toBeLessThanOrEqual(100);
      keys.push(...slice.map((t) => t.key));
    }
    expect(keys.length).toBe(2 * n);
    expect(new Set(keys).size).toBe(2 * n);
    expect(b.timerCount()).toBe(0);
  });

  it("fires the timers of one time in the image's order of their keys, each block of their entries read once", async () => {
    const n = 3000;
    const b = await windowEnd(n);
    const reads = vi.spyOn(RunStore.prototype, "readPage");
    try {
      const fired = b.timers("event").poll(10_000);
      // As a window's end does: each fired key's state is read as its timer fires.
      for (const t of fired) {
        b.setCurrentKey(t.key);
        expect(b.getState(count).value()).toBe(Number(t.key.slice(1)));
      }
      // By (key group, hash), the order of the image's runs (across times, by time: the test above).
      const position = (key: string) => (hashKey(key) % MAX_PARALLELISM) * 2 ** 32 + hashKey(key);
      const positions = fired.map((t) => position(t.key));
      expect(positions).toEqual([...positions].sort((x, y) => x - y));
      expect(fired.length).toBe(n);
      // Two passes over each run's blocks in order: the poll's over the keys' timer entries, the firing's over their
      // counts (a block holds both states' entries of its keys). Each block is read once per pass, not once per key.
      const blocks = reads.mock.calls.filter(([, kind]) => kind === PAGE_BLOCK);
      expect(blocks.length).toBeGreaterThan(50);
      expect(blocks.length).toBeLessThanOrEqual(2 * new Set(blocks.map(([run, , page]) => `${run}/${page}`)).size);
      const byRun = new Map<number, number[]>();
      for (const [run, , page] of blocks) byRun.set(run, [...(byRun.get(run) ?? []), page]);
      for (const pages of byRun.values()) expect(pages.filter((p, i) => i > 0 && p < pages[i - 1]).length).toBeLessThanOrEqual(1);
    } finally {
      reads.mockRestore();
    }
  });

  it("fires the timers of one time in slices that follow the image's order: each block read once over all the slices", async () => {
    const n = 3000;
    const b = await windowEnd(n);
    const reads = vi.spyOn(RunStore.prototype, "readPage");
    try {
      // As the task fires a window's end: a slice, its windows, the next slice (here six of them).
      const fired: string[] = [];
      for (let slice = b.timers("event").poll(10_000, n / 6); slice.length > 0; slice = b.timers("event").poll(10_000, n / 6)) {
        for (const t of slice) {
          b.setCurrentKey(t.key);
          expect(b.getState(count).value()).toBe(Number(t.key.slice(1)));
          fired.push(t.key);
        }
      }
      expect(fired.length).toBe(n);
      // The slices come in the image's order one after another (by key text, each would be scattered over the image).
      const position = (key: string) => (hashKey(key) % MAX_PARALLELISM) * 2 ** 32 + hashKey(key);
      const positions = fired.map(position);
      expect(positions).toEqual([...positions].sort((x, y) => x - y));
      // Each block read once by the polls and once by the firing, not once per slice that needs one of its keys.
      const blocks = reads.mock.calls.filter(([, kind]) => kind === PAGE_BLOCK);
      expect(blocks.length).toBeGreaterThan(50);
      expect(blocks.length).toBeLessThanOrEqual(2 * new Set(blocks.map(([run, , page]) => `${run}/${page}`)).size);
    } finally {
      reads.mockRestore();
    }
  });

  it("rebuilds, at a local restore, an index of the version before (one time's keys in text order), then fires from it", async () => {
    const h = new Harness(4096);
    const b = h.fresh();
    for (let i = 0; i < 500; i++) {
      b.setCurrentKey(`k${i}`);
      b.timers("event").register(`k${i}`, 10_000 + (i % 3));
    }
    await h.checkpoint(b, 1);
    // An image written by the version before has no mark of version 2 (its own table is dropped when the image opens).
    h.sql.exec(`DELETE FROM image_time_index_v2`);
    expect(h.image.timerCounts(UID, 1)).toBeUndefined();
    const restored = await h.restore(1, false);
    expect(h.restoredFromImage).toBe(true);
    expect(restored.timerCounts()).toEqual({ event: 500, processing: 0 });
    const fired = restored.timers("event").poll(10_002);
    expect(fired.length).toBe(500);
    expect(new Set(fired.map((t) => t.key)).size).toBe(500);
    for (let i = 1; i < fired.length; i++) expect(fired[i].timestampMs).toBeGreaterThanOrEqual(fired[i - 1].timestampMs);
    // Its index is of version 2 now: the next local restore reads it as it is.
    await h.checkpoint(restored, 2);
    expect(h.image.timerCounts(UID, 2)).toEqual({ event: 0, processing: 0 });
  });

  it("reads the index ahead a few hundred timers at a time, not all of them", async () => {
    const h = new Harness(4096);
    const b = h.fresh();
    const n = 5 * INDEX_CACHE_ENTRIES;
    for (let i = 0; i < n; i++) {
      b.setCurrentKey(`k${i}`);
      b.timers("event").register(`k${i}`, i);
    }
    await h.checkpoint(b, 1);
    // Sealed: the queue holds none of them in memory, the image holds them by time.
    expect(b.timers("event").peek()).toBe(0);
    expect(b.bytesInMemory).toBeLessThanOrEqual(4096);
    const first = b.timers("event").poll(9);
    expect(first.map((t) => t.key)).toEqual(Array.from({ length: 10 }, (_, i) => `k${i}`));
    // A restore reads no timer to start: the checkpoint counted them.
    const restored = await h.restore(1, false);
    expect(restored.timerCount()).toBe(n);
    expect(restored.readbacks).toBe(0);
    expect(restored.timers("event").poll(n).length).toBe(n);
  });
});

describe("the time index's changes", () => {
  /** A queue over an empty sealed index and per-key entries in a map. */
  function queue(): IndexedTimerQueue {
    const entries = new Map<string, readonly number[]>();
    const empty = { scan: (): Iterator<IndexedTimer> => [][Symbol.iterator]() };
    return new IndexedTimerQueue({ get: (k) => entries.get(k), set: (k, t) => (t ? entries.set(k, t) : entries.delete(k)) }, empty);
  }

  it("fire each live timer of one time once, also when the time's keys change between polls", () => {
    const q = queue();
    for (let i = 0; i < 1000; i++) q.register(`k${i}`, 5);
    // Gone and back before the poll: it fires once, after the others that stayed.
    q.delete("k3", 5);
    q.register("k3", 5);
    const first = q.poll(5).map((t) => t.key);
    expect(first.length).toBe(1000);
    expect(new Set(first).size).toBe(1000);
    expect(first.at(-1)).toBe("k3");
    // The same time again (registered in the past): a new set of keys, polled from its start.
    q.register("late", 5);
    q.register("later", 5);
    expect(q.poll(5).map((t) => t.key)).toEqual(["late", "later"]);
    expect(q.poll(5)).toEqual([]);
    expect(q.size()).toBe(0);
  });

  it("come out by time, and at one time by the position given for their keys, with the keys' entries kept right", () => {
    const entries = new Map<string, readonly number[]>();
    const empty = { scan: (): Iterator<IndexedTimer> => [][Symbol.iterator]() };
    const position = (key: string) => -Number(key.slice(1));
    const q = new IndexedTimerQueue({ get: (k) => entries.get(k), set: (k, t) => (t ? entries.set(k, t) : entries.delete(k)) }, empty, 0, () => {}, { positionOf: position, wanted: () => true });
    for (let i = 0; i < 50; i++) q.register(`k${i}`, 5 + (i % 3));
    q.register("k10", 9);
    const fired = q.poll(8);
    expect(fired.map((t) => t.timestampMs)).toEqual([...fired.map((t) => t.timestampMs)].sort((a, b) => a - b));
    for (const ts of [5, 6, 7]) {
      const keys = fired.filter((t) => t.timestampMs === ts).map((t) => t.key);
      expect(keys).toEqual([...keys].sort((a, b) => position(a) - position(b)));
      expect(keys.length).toBe(ts === 5 ? 17 : ts === 6 ? 17 : 16);
    }
    // Only k10's later timer is left, in its entry and in the queue.
    expect([...entries]).toEqual([["k10", [9]]]);
    expect(q.size()).toBe(1);
    expect(q.poll(9)).toEqual([{ key: "k10", timestampMs: 9 }]);
    // At most `max` a poll: the rest of a time's keys come with the next.
    for (let i = 0; i < 30; i++) q.register(`m${i}`, 20);
    const some = q.poll(20, 12);
    const others = q.poll(20, 100);
    expect([some.length, others.length]).toEqual([12, 18]);
    expect(new Set([...some, ...others].map((t) => t.key)).size).toBe(30);
    expect(q.size()).toBe(0);
    expect(entries.size).toBe(0);
    // Not wanted (every entry in memory): the overlay's order, with no sort to pay for.
    const entries2 = new Map<string, readonly number[]>();
    const unordered = new IndexedTimerQueue({ get: (k) => entries2.get(k), set: (k, t) => (t ? entries2.set(k, t) : entries2.delete(k)) }, empty, 0, () => {}, { positionOf: position, wanted: () => false });
    for (let i = 0; i < 20; i++) unordered.register(`k${i}`, 5);
    expect(unordered.poll(5).map((t) => t.key)).toEqual(Array.from({ length: 20 }, (_, i) => `k${i}`));
  });

  it("leave out a timer registered and gone between two captures (nothing to write for it), and only that one", () => {
    const q = queue();
    // Registered and fired before a capture: the index never held it.
    q.register("a", 5);
    q.register("b", 5);
    expect(q.poll(5).map((t) => t.key)).toEqual(["a", "b"]);
    // Registered and deleted before a capture.
    q.register("c", 7);
    q.delete("c", 7);
    expect(q.overlayBytes).toBe(0);
    expect(q.captureIndex().changes).toEqual([]);
    // Registered, captured (on its way into the index), then fired: the index must hear of it.
    q.register("d", 9);
    expect(q.captureIndex().changes).toEqual([{ key: "d", timestampMs: 9, live: true, position: 0 }]);
    expect(q.poll(9)).toEqual([{ key: "d", timestampMs: 9 }]);
    expect(q.captureIndex().changes).toEqual([{ key: "d", timestampMs: 9, live: false, position: 0 }]);
    // Deleted, then registered again and fired in one generation: the tombstone stands.
    q.register("e", 11);
    q.captureIndex();
    q.delete("e", 11);
    q.register("e", 11);
    expect(q.poll(11)).toEqual([{ key: "e", timestampMs: 11 }]);
    expect(q.captureIndex().changes).toEqual([{ key: "e", timestampMs: 11, live: false, position: 0 }]);
    expect(q.size()).toBe(0);
  });
});
