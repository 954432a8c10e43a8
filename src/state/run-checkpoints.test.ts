/**
 * Checkpoints as the local image's runs (the default with local recovery):
 * the real backend, image (node:sqlite under Durable Object limits) and
 * snapshotter, with R2 as a map of files. A checkpoint seals its changes
 * as a run and references every live run as a file, uploading only those
 * not uploaded before; restores import the files (whole, or the key groups
 * of a rescaled subtask); and what the barrier touches follows the changed
 * keys, not the state's size.
 */
import { describe, expect, it } from "vitest";
import { doSql } from "../../test/support/do-sql.js";
import { valueState } from "../api/state.js";
import type { KeyedStateHandle } from "../checkpoint/types.js";
import type { KeyGroupRange } from "../graph/key-groups.js";
import { RunImage } from "../storage/run-image.js";
import { SAME_EPOCH_MERGE_RUNS } from "./runs/compaction-policy.js";
import { type ChangeCapture, KeyedStateBackend, type StateCapture, keyGroupOfText } from "./keyed-state.js";
import { KeyedSnapshotter, type SnapshotStore } from "./snapshotter.js";

const MAX_PARALLELISM = 128;
const ALL = { start: 0, end: MAX_PARALLELISM - 1 };
const UID = "op";
const count = valueState<number>("count");
const pause = async () => undefined;

/** R2, shared by every subtask of a test. */
class Bucket {
  readonly files = new Map<string, Uint8Array>();
  puts = 0;
  /** Ranged reads (R2's `get` with a range), counted. */
  reads = 0;
  read = async (key: string, offset: number, length: number): Promise<Uint8Array> => {
    const f = this.files.get(key);
    if (!f) throw new Error(`no file ${key}`);
    if (offset < 0 || offset + length > f.length) throw new Error(`read past the end of ${key}`);
    this.reads++;
    return f.slice(offset, offset + length);
  };
}

/** A backend that counts the entries its snapshots capture at the barrier. */
class CountingBackend extends KeyedStateBackend {
  capturedAtBarrier = 0;
  override captureChanges(range?: KeyGroupRange): ChangeCapture {
    const c = super.captureChanges(range);
    this.capturedAtBarrier += c.count;
    return c;
  }
  override capture(range?: KeyGroupRange): StateCapture {
    const c = super.capture(range);
    this.capturedAtBarrier += c.count;
    return c;
  }
}

/** One subtask: its SQLite image and snapshotter, uploading into `bucket`. */
class Subtask {
  /** Awaited by the image's background work (compactions) at each turn, while set. */
  mergePause: (() => Promise<void>) | undefined;
  readonly image = new RunImage(doSql(), { pause: async () => this.mergePause?.(), targetBlockBytes: 1024 });
  readonly store: SnapshotStore;
  snapshotter: KeyedSnapshotter;
  uploads: string[] = [];
  failWrites = false;
  /** Awaited by each upload before it lands (a slow R2). */
  putGate: Promise<void> | undefined;
  /** Uploads that began (and may be waiting at the gate). */
  putsBegun = 0;

  constructor(
    readonly bucket: Bucket,
    readonly range: KeyGroupRange = ALL,
    readonly index = 0,
    incremental = true,
  ) {
    this.store = {
      fileKey: (uid, id) => `chk-${id}/${uid}/${index}.state`,
      savepointFileKey: (uid, id) => `savepoint-${id}/${uid}/${index}.state`,
      put: async (key, body) => void this.bucket.files.set(key, new TextEncoder().encode(body.join(""))),
      writeImage: (id) => {
        if (this.failWrites) throw new Error("disk full (test)");
        return this.image.begin(id);
      },
      markImage: (id, keys) => {
        if (id !== null) this.image.mark(id, this.range, keys ?? {});
      },
      pause,
      uploadRuns: (uid, id) =>
        this.image.uploadRuns(
          uid,
          id,
          {
            key: (store, run) => `chk-${id}/${uid}/${index}.${store}-${run}.run`,
            put: async (key, stream) => {
              this.putsBegun++;
              if (this.putGate) await this.putGate;
              const parts: Uint8Array[] = [];
              for await (const p of stream) parts.push(p);
              const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
              let at = 0;
              for (const p of parts) {
                bytes.set(p, at);
                at += p.length;
              }
              this.bucket.files.set(key, bytes);
              this.bucket.puts++;
              this.uploads.push(key);
            },
          },
          pause,
        ),
    };
    this.snapshotter = new KeyedSnapshotter(this.store, { incremental, fullEvery: 10, localRecovery: true }, range);
  }

  backend(budgetBytes?: number): CountingBackend {
    const b = new CountingBackend(MAX_PARALLELISM, UID, { now: () => 1_000 });
    if (budgetBytes !== undefined) b.useBudget(budgetBytes, this.image.backing(UID, 0));
    return b;
  }

  /** A checkpoint, awaited: its handle, and the files it uploaded. */
  async checkpoint(b: KeyedStateBackend, id: number): Promise<{ handle: KeyedStateHandle; uploaded: string[] }> {
    this.uploads = [];
    const done = await this.snapshotter.upload(this.snapshotter.prepare(id, new Map([[UID, b]])));
    return { handle: done.handles[UID], uploaded: this.uploads };
  }

  /** Checkpoint `id` completed: the background compaction may merge runs up to it. */
  async completed(id: number): Promise<void> {
    this.image.kick(id);
    await this.image.idle();
  }

  /**
   * Restores checkpoint `id` from `handles` as the Subtask does: from the
   * image when it still holds it, else by importing the run files.
   */
  async restore(id: number, handles: readonly KeyedStateHandle[], local = true): Promise<{ backend: CountingBackend; from: "image" | "files" }> {
    await this.image.halt();
    this.snapshotter = new KeyedSnapshotter(this.store, { incremental: true, fullEvery: 10, localRecovery: true }, this.range);
    const own = handles.length === 1 && handles[0].keyGroups.start === this.range.start && handles[0].keyGroups.end === this.range.end ? handles[0] : undefined;
    let keys = local ? this.image.localRestore(UID, id, this.range, own?.files ?? []) : undefined;
    const from = keys === undefined ? "files" : "image";
    if (keys === undefined) {
      this.image.clearOperator(UID);
      for (const h of handles) {
        if (h.keyGroups.end < this.range.start || h.keyGroups.start > this.range.end) continue;
        await this.image.importRuns(UID, id, h.runs!, h.keyGroups, this.range, this.bucket.read, pause);
      }
      keys = await this.image.count(UID, pause);
    }
    const b = new CountingBackend(MAX_PARALLELISM, UID, { now: () => 1_000 });
    b.attach(this.image.backing(UID, keys));
    this.image.mark(id, this.range, { [UID]: b.size() });
    this.image.resume(id);
    return { backend: b, from };
  }
}

/** Yields to the event loop until `ok()` (a background step under way). */
async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; !ok(); i++) {
    if (i > 1000) throw new Error("never came");
    await new Promise((r) => setTimeout(r, 0));
  }
}

function set(b: KeyedStateBackend, key: string, value: number): void {
  b.setCurrentKey(key);
  b.getState(count).update(value);
}

function get(b: KeyedStateBackend, key: string): number | undefined {
  b.setCurrentKey(key);
  return b.getState(count).value();
}

/** Keys of `n` values, `key-0`…, in the key groups of `range` only. */
function keysIn(range: KeyGroupRange, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const k = `key-${i}`;
    const g = keyGroupOfText(k, MAX_PARALLELISM);
    if (g >= range.start && g <= range.end) out.push(k);
  }
  return out;
}

describe("checkpoints as runs", () => {
  it("uploads each run once: later checkpoints reference the files of the runs they share", async () => {
    const bucket = new Bucket();
    const s = new Subtask(bucket);
    const b = s.backend();
    for (let i = 0; i < 2000; i++) set(b, `key-${i}`, i);
    const first = await s.checkpoint(b, 1);
    expect(first.uploaded).toHaveLength(1);
    expect(first.handle.runs!.map((r) => r.store)).toEqual(["states"]);
    expect(first.handle.files).toEqual(first.handle.runs!.map((r) => r.file));
    expect(first.handle.checkpointedBytes).toBe(first.handle.stateBytes);
    expect(first.handle.entries).toBe(2000);

    // 1% changed: one new run, the first referenced as it is.
    for (let i = 0; i < 20; i++) set(b, `key-${i}`, -i);
    const second = await s.checkpoint(b, 2);
    expect(second.uploaded).toHaveLength(1);
    expect(second.handle.files).toEqual([first.handle.files[0], second.uploaded[0]]);
    expect(second.handle.checkpointedBytes).toBeLessThan(first.handle.checkpointedBytes / 10);

    // Nothing changed: nothing uploaded, the same files.
    const third = await s.checkpoint(b, 3);
    expect(third.uploaded).toEqual([]);
    expect(third.handle.files).toEqual(second.handle.files);
    expect(third.handle.checkpointedBytes).toBe(0);
  });

  it("references a compaction's output once it merged the runs, uploading it once", async () => {
    const bucket = new Bucket();
    const s = new Subtask(bucket);
    const b = s.backend();
    let handle: KeyedStateHandle | undefined;
    for (let cp = 1; cp <= 14; cp++) {
      for (let i = 0; i < 300; i++) set(b, `key-${(cp * 97 + i * 13) % 3000}`, cp * 1000 + i);
      handle = (await s.checkpoint(b, cp)).handle;
      await s.completed(cp);
    }
    // The runs stay few (the compaction policy's cap), so a restore reads a bounded number of files.
    expect(handle!.runs!.length).toBeLessThanOrEqual(12);
    const compacted = (await s.checkpoint(b, 15)).handle;
    expect(compacted.files.length).toBeLessThanOrEqual(12);
    // Restored from the files into a new object, every key has its last value.
    const other = new Subtask(bucket);
    const { backend, from } = await other.restore(15, [compacted]);
    expect(from).toBe("files");
    for (let i = 0; i < 3000; i++) expect(get(backend, `key-${i}`)).toBe(get(b, `key-${i}`));
  });

  it("restores from its own image without reading R2, and from the files into a new object, remembering them", async () => {
    const bucket = new Bucket();
    const s = new Subtask(bucket);
    const b = s.backend(64 * 1024);
    for (let i = 0; i < 3000; i++) set(b, `key-${i}`, i);
    const { handle: h1 } = await s.checkpoint(b, 1);
    for (let i = 0; i < 100; i++) set(b, `key-${i}`, 10_000 + i);
    const { handle: h2 } = await s.checkpoint(b, 2);
    // SQLite moves past checkpoint 2; then a failover restores it.
    for (let i = 0; i < 100; i++) set(b, `key-${i}`, 20_000 + i);
    await s.checkpoint(b, 3);
    const local = await s.restore(2, [h2]);
    expect(local.from).toBe("image");
    expect(get(local.backend, "key-5")).toBe(10_005);
    expect(get(local.backend, "key-500")).toBe(500);
    // The files of checkpoint 2 are remembered: the next checkpoint uploads its changes only.
    set(local.backend, "key-1", -1);
    const { handle: h4, uploaded } = await s.checkpoint(local.backend, 4);
    expect(uploaded).toHaveLength(1);
    expect(h4.files).toEqual([...h2.files, uploaded[0]]);

    // A new object restores checkpoint 1 from its files, and its next checkpoint shares them.
    const fresh = new Subtask(bucket);
    const restored = await fresh.restore(1, [h1]);
    expect(restored.from).toBe("files");
    expect(restored.backend.size()).toBe(3000);
    expect(get(restored.backend, "key-5")).toBe(5);
    set(restored.backend, "key-2", -2);
    const next = await fresh.checkpoint(restored.backend, 5);
    expect(next.uploaded).toHaveLength(1);
    expect(next.handle.files).toEqual([...h1.files, next.uploaded[0]]);
  });

  it("a local restore forgets the files the restored checkpoint does not reference (a canceled task's may be gone)", async () => {
    const bucket = new Bucket();
    const s = new Subtask(bucket);
    const b = s.backend();
    for (let i = 0; i < 500; i++) set(b, `key-${i}`, i);
    const { handle: h1 } = await s.checkpoint(b, 1);
    // Checkpoint 1 completes; a compaction could merge nothing yet. Checkpoint 2's run is uploaded, then its task is
    // canceled and its files deleted (never acknowledged); the image drops the run above 1 anyway.
    set(b, "key-1", -1);
    const { uploaded } = await s.checkpoint(b, 2);
    for (const f of uploaded) bucket.files.delete(f);
    const { backend } = await s.restore(1, [h1]);
    set(backend, "key-3", -3);
    const { handle } = await s.checkpoint(backend, 3);
    for (const f of handle.files) expect(bucket.files.has(f)).toBe(true);
  });

  it("rescales: each subtask imports the key groups it owns from the files of every old subtask", async () => {
    const bucket = new Bucket();
    const halves = [
      { start: 0, end: 63 },
      { start: 64, end: 127 },
    ];
    const handles: KeyedStateHandle[] = [];
    const expected = new Map<string, number>();
    for (const [index, range] of halves.entries()) {
      const s = new Subtask(bucket, range, index);
      const b = s.backend();
      for (const [i, k] of keysIn(range, 700).entries()) {
        set(b, k, i);
        expected.set(k, i);
      }
      await s.checkpoint(b, 1);
      for (const k of keysIn(range, 50)) {
        set(b, k, -1);
        expected.set(k, -1);
      }
      handles.push((await s.checkpoint(b, 2)).handle);
    }
    // Scale in to one subtask, then out to three.
    const one = new Subtask(bucket, ALL);
    const merged = await one.restore(2, handles);
    expect(merged.backend.size()).toBe(1400);
    for (const [k, v] of expected) expect(get(merged.backend, k)).toBe(v);
    const thirds = [
      { start: 0, end: 41 },
      { start: 42, end: 85 },
      { start: 86, end: 127 },
    ];
    let total = 0;
    for (const [index, range] of thirds.entries()) {
      const s = new Subtask(bucket, range, index);
      const { backend } = await s.restore(2, handles);
      total += backend.size();
      for (const [k, v] of expected) {
        const g = keyGroupOfText(k, MAX_PARALLELISM);
        if (g >= range.start && g <= range.end) expect(get(backend, k)).toBe(v);
      }
      // Filtered imports are not the old files: the next checkpoint uploads the subtask's own.
      const { handle } = await s.checkpoint(backend, 3);
      expect(handle.files.every((f) => f.startsWith("chk-3/"))).toBe(true);
    }
    expect(total).toBe(1400);
  });

  it("an upload that ends after a restore began records no file (the canceled task's file is deleted)", async () => {
    const bucket = new Bucket();
    const s = new Subtask(bucket);
    const b = s.backend();
    for (let i = 0; i < 200; i++) set(b, `key-${i}`, i);
    const { handle: h1 } = await s.checkpoint(b, 1);
    set(b, "key-1", -1);
    // Checkpoint 2's upload is slow; meanwhile the task is canceled and a restore of checkpoint 1 halts the image.
    let release!: () => void;
    s.putGate = new Promise<void>((r) => (release = r));
    const prepared = s.snapshotter.prepare(2, new Map([[UID, b]]));
    const upload = s.snapshotter.upload(prepared);
    upload.catch(() => undefined);
    // The run is sealed and its upload waits on R2.
    await new Promise((r) => setTimeout(r, 10));
    expect(s.image.runs(UID).states).toHaveLength(2);
    const halted = s.image.halt();
    s.putGate = undefined;
    release();
    await expect(upload).rejects.toThrow(/ended after a restore began/);
    await halted;
    const { backend } = await s.restore(1, [h1]);
    set(backend, "key-2", -2);
    const { handle } = await s.checkpoint(backend, 3);
    for (const f of handle.files) expect(f.startsWith("chk-2/"), f).toBe(false);
  });

  it("a checkpoint of run files restored without local recovery starts a new chain of state files with a full one", async () => {
    const bucket = new Bucket();
    const s = new Subtask(bucket);
    const b = s.backend();
    for (let i = 0; i < 100; i++) set(b, `key-${i}`, i);
    const { handle } = await s.checkpoint(b, 1);
    const heap = new KeyedSnapshotter(s.store, { incremental: true, fullEvery: 10, localRecovery: false }, ALL);
    heap.restoredFrom({ [UID]: handle });
    set(b, "key-1", -1);
    const done = await heap.upload(heap.prepare(2, new Map([[UID, b]])));
    expect(done.handles[UID].runs).toBeUndefined();
    expect(done.handles[UID].files).toEqual([`chk-2/${UID}/0.state`]);
    expect(done.handles[UID].entries).toBe(100);
  });

  it("fails every checkpoint after a write-back failed, until a restore", async () => {
    const bucket = new Bucket();
    const s = new Subtask(bucket);
    const b = s.backend();
    set(b, "a", 1);
    await s.checkpoint(b, 1);
    set(b, "a", 2);
    s.failWrites = true;
    await expect(s.checkpoint(b, 2)).rejects.toThrow(/disk full/);
    s.failWrites = false;
    set(b, "b", 1);
    await expect(s.checkpoint(b, 3)).rejects.toThrow(/write-back of checkpoint 2 failed/);
  });
});

describe("flushes between checkpoints", () => {
  it("seals changes over the budget as runs of the next checkpoint: they are evicted, the next checkpoint includes them, a restore to the last drops them", async () => {
    const bucket = new Bucket();
    const s = new Subtask(bucket);
    const budget = 64 * 1024;
    const b = s.backend(budget);
    for (let i = 0; i < 500; i++) set(b, `key-${i}`, i);
    const { handle: h1 } = await s.checkpoint(b, 1);
    await s.completed(1);
    // Far more new keys than the budget holds, all changed since checkpoint 1: nothing may be evicted.
    let flushes = 0;
    for (let i = 500; i < 6000; i++) {
      set(b, `key-${i}`, i);
      if (b.wantsFlush) {
        flushes++;
        await s.snapshotter.flush(new Map([[UID, b]]));
      }
    }
    expect(flushes).toBeGreaterThan(1);
    // The flushed runs are of checkpoint 2, the next one: sealed, evictable, and not a checkpoint of their own; merged
    // among themselves as they pile up (a restore keeps or drops them together).
    await s.image.idle();
    const runs = s.image.runs(UID).states;
    expect(runs.filter((r) => r.epoch === 2).length).toBeGreaterThanOrEqual(1);
    expect(runs.filter((r) => r.epoch === 2).length).toBeLessThan(SAME_EPOCH_MERGE_RUNS);
    expect(runs.filter((r) => r.epoch === 1).length).toBe(1);
    expect(b.entriesEvicted).toBeGreaterThan(3000);
    expect(b.bytesInMemory).toBeLessThan(4 * budget);
    // Checkpoint 2 references them; restored from its files into a new object, every key has its value.
    set(b, "key-0", -1);
    const { handle: h2 } = await s.checkpoint(b, 2);
    expect(h2.runs!.length).toBeGreaterThan(1);
    const other = new Subtask(bucket);
    const restored = await other.restore(2, [h2], false);
    expect(restored.backend.size()).toBe(6000);
    expect(get(restored.backend, "key-0")).toBe(-1);
    for (const i of [1, 499, 500, 3333, 5999]) expect(get(restored.backend, `key-${i}`)).toBe(i);
    // More flushed after checkpoint 2, then a failover to it: the runs of checkpoint 3 go, the state is checkpoint 2's.
    for (let i = 6000; i < 9000; i++) {
      set(b, `key-${i}`, i);
      if (b.wantsFlush) await s.snapshotter.flush(new Map([[UID, b]]));
    }
    expect(s.image.runs(UID).states.some((r) => r.epoch === 3)).toBe(true);
    const local = await s.restore(2, [h2]);
    expect(local.from).toBe("image");
    expect(s.image.runs(UID).states.every((r) => r.epoch <= 2)).toBe(true);
    expect(local.backend.size()).toBe(6000);
    expect(get(local.backend, "key-7000")).toBeUndefined();
    expect(get(local.backend, "key-5999")).toBe(5999);
    // And checkpoint 1's files still restore checkpoint 1.
    const first = await new Subtask(bucket).restore(1, [h1], false);
    expect(first.backend.size()).toBe(500);
  });

  it("a checkpoint whose barrier came before a flush does not take the flushed runs", async () => {
    const bucket = new Bucket();
    const s = new Subtask(bucket);
    const b = s.backend(64 * 1024);
    for (let i = 0; i < 300; i++) set(b, `key-${i}`, i);
    // Barrier 1, then (before its upload ran) more changes flushed as checkpoint 2's.
    const prepared = s.snapshotter.prepare(1, new Map([[UID, b]]));
    const upload = s.snapshotter.upload(prepared);
    for (let i = 300; i < 600; i++) set(b, `key-${i}`, i);
    set(b, "key-0", -1);
    const flushed = s.snapshotter.flush(new Map([[UID, b]]));
    const h1 = (await upload).handles[UID];
    await flushed;
    expect(s.image.runs(UID).states.map((r) => r.epoch)).toEqual([1, 2]);
    const restored = await new Subtask(bucket).restore(1, [h1], false);
    expect(restored.backend.size()).toBe(300);
    expect(get(restored.backend, "key-0")).toBe(0);
  });

  it("a flush seals (and its entries may be evicted) while the checkpoint before it is still uploading to R2", async () => {
    const bucket = new Bucket();
    const s = new Subtask(bucket);
    const b = s.backend(16 * 1024);
    for (let i = 0; i < 200; i++) set(b, `key-${i}`, i);
    let openGate!: () => void;
    s.putGate = new Promise((r) => (openGate = r));
    const upload = s.snapshotter.upload(s.snapshotter.prepare(1, new Map([[UID, b]])));
    let uploaded = false;
    void upload.then(() => (uploaded = true));
    // Checkpoint 1's runs are sealed; its R2 upload waits. Meanwhile new keys fill the budget and are flushed.
    await until(() => s.image.runs(UID).states.length === 1);
    for (let i = 200; i < 600; i++) set(b, `key-${i}`, i);
    expect(b.wantsFlush).toBe(true);
    await s.snapshotter.flush(new Map([[UID, b]]));
    expect(uploaded).toBe(false);
    expect(s.image.runs(UID).states.map((r) => r.epoch)).toEqual([1, 2]);
    // Sealed, so clean: the next write evicts down to the budget without waiting for R2.
    set(b, "key-600", 600);
    expect(b.bytesInMemory).toBeLessThanOrEqual(16 * 1024);
    openGate();
    const h1 = (await upload).handles[UID];
    // Checkpoint 1 is what its barrier saw, not the flushed keys sealed during its upload.
    const restored = await new Subtask(bucket).restore(1, [h1], false);
    expect(restored.backend.size()).toBe(200);
    expect(get(restored.backend, "key-300")).toBeUndefined();
    // Checkpoint 2 takes the flushed run with its own changes.
    const { handle: h2 } = await s.checkpoint(b, 2);
    const second = await new Subtask(bucket).restore(2, [h2], false);
    expect(second.backend.size()).toBe(601);
    expect(get(second.backend, "key-450")).toBe(450);
  });

  it("a checkpoint uploads the runs it listed even when a merge of one epoch's runs retires them during the upload", async () => {
    const bucket = new Bucket();
    const s = new Subtask(bucket);
    const b = s.backend(1024 * 1024);
    // Three flushes of checkpoint 1's changes, then its write-back: four runs of epoch 1, which the background merges.
    for (let f = 0; f < SAME_EPOCH_MERGE_RUNS - 1; f++) {
      for (let i = 0; i < 50; i++) set(b, `key-${f}-${i}`, i);
      await s.snapshotter.flush(new Map([[UID, b]]));
    }
    for (let i = 0; i < 50; i++) set(b, `key-last-${i}`, i);
    let openGate!: () => void;
    s.putGate = new Promise((r) => (openGate = r));
    // The merge waits until the upload has listed its runs (a merge under way before would be waited for, below).
    let openMerge!: () => void;
    const merging = new Promise<void>((r) => (openMerge = r));
    s.mergePause = () => merging;
    const upload = s.snapshotter.upload(s.snapshotter.prepare(1, new Map([[UID, b]])));
    // Listed (and leased) by the upload, then merged while the upload waits for R2.
    await until(() => s.putsBegun > 0);
    s.mergePause = undefined;
    openMerge();
    await s.image.idle();
    await until(() => s.image.runs(UID).states.length === 1);
    openGate();
    const h1 = (await upload).handles[UID];
    expect(h1.runs).toHaveLength(SAME_EPOCH_MERGE_RUNS);
    const restored = await new Subtask(bucket).restore(1, [h1], false);
    expect(restored.backend.size()).toBe(50 * SAME_EPOCH_MERGE_RUNS);
    // The merged run was never uploaded: the next checkpoint uploads it once and references only it.
    const { handle: h2, uploaded } = await s.checkpoint(b, 2);
    expect(uploaded).toHaveLength(1);
    expect(h2.runs).toHaveLength(1);
  });

  it("a checkpoint waits for a merge of its own epoch's runs under way, and uploads its output once instead of its inputs", async () => {
    const bucket = new Bucket();
    const s = new Subtask(bucket);
    const b = s.backend(1024 * 1024);
    // Enough entries that the merge pauses within (every 8,192 entries).
    const n = 2500;
    for (let f = 0; f < SAME_EPOCH_MERGE_RUNS - 1; f++) {
      for (let i = 0; i < n; i++) set(b, `key-${f}-${i}`, i);
      await s.snapshotter.flush(new Map([[UID, b]]));
    }
    for (let i = 0; i < n; i++) set(b, `key-last-${i}`, i);
    // The write-back makes four runs of epoch 1: their merge starts (its first turn passes) and then waits, before
    // the upload lists the runs.
    let openMerge!: () => void;
    const merging = new Promise<void>((r) => (openMerge = r));
    let turns = 0;
    s.mergePause = async () => {
      if (turns++ > 0) await merging;
    };
    const upload = s.snapshotter.upload(s.snapshotter.prepare(1, new Map([[UID, b]])));
    await until(() => turns > 1);
    await new Promise((r) => setTimeout(r, 5));
    expect(s.putsBegun).toBe(0);
    s.mergePause = undefined;
    openMerge();
    const h1 = (await upload).handles[UID];
    expect(h1.runs).toHaveLength(1);
    expect(s.uploads).toHaveLength(1);
    const restored = await new Subtask(bucket).restore(1, [h1], false);
    expect(restored.backend.size()).toBe(n * SAME_EPOCH_MERGE_RUNS);
    // The next checkpoint uploads its own changes only.
    set(b, "key-0-0", 7);
    const { handle: h2, uploaded } = await s.checkpoint(b, 2);
    expect(uploaded).toHaveLength(1);
    expect(h2.runs).toHaveLength(2);
    expect(h2.runs![0].file).toBe(h1.runs![0].file);
  });
});

describe("what a checkpoint's barrier touches", () => {
  /** Entries captured at the barrier of a checkpoint after `changed` keys of `total` changed. */
  async function touched(total: number, changed: number, incremental: boolean): Promise<number> {
    const s = new Subtask(new Bucket(), ALL, 0, incremental);
    const b = s.backend();
    for (let i = 0; i < total; i++) set(b, `k${i}`, i);
    await s.checkpoint(b, 1);
    await s.completed(1);
    for (let i = 0; i < changed; i++) set(b, `k${(i * 7919) % total}`, -i);
    b.capturedAtBarrier = 0;
    await s.checkpoint(b, 2);
    return b.capturedAtBarrier;
  }

  it("grows with the changed keys, not with the state: 10,000 and 1,000,000 keys, 1,000 changed", async () => {
    const small = await touched(10_000, 1000, true);
    const large = await touched(1_000_000, 1000, true);
    expect(small).toBe(1000);
    expect(large).toBe(1000);
    // The measure would see a full capture: without incremental checkpoints every entry is copied.
    expect(await touched(10_000, 1000, false)).toBe(11_000);
  }, 120_000);
});
