/**
 * A lazy restore of run files (issue 20's "restore from R2 lazily by key
 * group, so that processing starts before every byte is loaded").
 *
 * Each file was opened with {@link openRunFile}: its run is published
 * with its bloom filters and index, and no block. From then on the blocks
 * arrive two ways:
 *
 * - **On demand, by key.** Before a record is processed,
 *   {@link RunFill.ensure} reads the blocks of every file that may hold
 *   its key's entries: those the file's index places it in, as a read of
 *   the store would probe them (one block, two at a boundary), the blocks
 *   of a batch's keys joined into few ranged reads. {@link RunFill.has}
 *   answers whether that is needed. A key's entries (every state of it,
 *   every map entry) sort together, in its key group, under its hash.
 * - **In the background.** {@link RunFill.run} reads the rest in chunks of
 *   at most {@link IMPORT_CHUNK_BYTES}, oldest file first, pausing between
 *   chunks, then makes the runs ordinary ({@link RunStore.finishFill}).
 *
 * Each block is read once: a read of a block another read is fetching
 * waits for it, and a background chunk stops at a block stored or in
 * flight. At most {@link MAX_FILL_READS} reads are under way at once.
 */
import type { KeyGroupRange } from "../../graph/key-groups.js";
import { firstBlockFor } from "./merge-cursor.js";
import { type OpenedRunFile, IMPORT_CHUNK_BYTES, readRunBlocks } from "./run-file.js";
import { composite } from "./run-format.js";
import type { Pause, RunStore } from "./run-store.js";

/**
 * Bytes not wanted that a read on demand takes anyway to join two wanted
 * ranges: one request instead of two costs a request's latency (ms) less,
 * and those bytes more (at R2's hundreds of MB/s, about as much).
 */
const JOIN_GAP_BYTES = 256 * 1024;

/**
 * Ranged reads a fill keeps in flight at most, on demand and in the
 * background together (a Worker invocation has 6 simultaneous
 * connections; other subrequests keep the rest).
 */
export const MAX_FILL_READS = 4;

/** A record's key as the store orders it: its key group and hash (hashKey of its canonical text). */
export interface FillKey {
  readonly keyGroup: number;
  readonly hash: number;
}

/** How far a fill has come, for metrics. */
export interface FillProgress {
  /** Blocks to read (a clipped run's outside its clip are not). */
  readonly blocks: number;
  /** Of those, not stored yet. */
  readonly missing: number;
  /** Bytes of blocks read on demand and in the background. */
  readonly bytesRead: number;
  /** Calls of {@link RunFill.ensure} that had to read or wait (a record waited for them). */
  readonly demandReads: number;
}

/** The blocks of one store's run files, still coming: see the module comment. */
export class RunFill {
  /** Per file, the blocks being read (by either way) and the read that stores them. */
  private readonly inFlight = new Map<OpenedRunFile, Map<number, Promise<void>>>();
  private active = 0;
  private readonly queued: (() => void)[] = [];
  private finished = false;
  private bytes = 0;
  private demand = 0;
  /** Blocks to read: a file's, less those outside its run's clip (never read). */
  private readonly wanted: number;

  constructor(
    private readonly store: RunStore,
    private readonly files: readonly OpenedRunFile[],
    private readonly range: KeyGroupRange,
    private readonly chunkBytes = IMPORT_CHUNK_BYTES,
  ) {
    for (const f of files) this.inFlight.set(f, new Map());
    this.wanted = files.reduce((n, f) => n + store.missingBlocks(f.runId), 0);
  }

  /** Whether every run is whole (after {@link run}). */
  get complete(): boolean {
    return this.finished;
  }

  /** Whether the entries of `key` may be read now: every block that may hold them is stored. */
  has(key: FillKey): boolean {
    if (this.finished) return true;
    this.check(key);
    for (const f of this.files) {
      const [from, to] = keyBlocks(f, key);
      if (from < to && this.store.firstMissing(f.runId, from, to) >= 0) return false;
    }
    return true;
  }

  /**
   * Reads and stores the blocks `keys` need (those not stored yet), in as
   * few ranged reads as their places allow, at most {@link MAX_FILL_READS}
   * at once; waits for those another read is fetching. Resolves at once
   * when none is missing.
   */
  async ensure(keys: Iterable<FillKey>): Promise<void> {
    if (this.finished) return;
    const wanted = new Map<OpenedRunFile, number[]>();
    for (const key of keys) {
      this.check(key);
      for (const f of this.files) {
        const [from, to] = keyBlocks(f, key);
        for (let b = from; b < to; b++) {
          if (!this.stored(f, b)) (wanted.get(f) ?? wanted.set(f, []).get(f)!).push(b);
        }
      }
    }
    if (wanted.size === 0) return;
    this.demand++;
    await this.read(wanted);
  }

  private check(key: FillKey): void {
    if (key.keyGroup < this.range.start || key.keyGroup > this.range.end) {
      throw new RangeError(`key group ${key.keyGroup} is outside this fill's range ${this.range.start}..${this.range.end}`);
    }
  }

  private stored(f: OpenedRunFile, block: number): boolean {
    return this.store.firstMissing(f.runId, block, block + 1) < 0;
  }

  /** Reads the blocks of `wanted` not stored nor in flight, joining close ones; waits for those in flight, then looks again. */
  private async read(wanted: ReadonlyMap<OpenedRunFile, number[]>): Promise<void> {
    const reads: Promise<void>[] = [];
    const waits = new Set<Promise<void>>();
    for (const [f, list] of wanted) {
      const blocks = [...new Set(list)].sort((a, b) => a - b);
      const offsets = f.meta.blockOffsets;
      const flying = this.inFlight.get(f)!;
      let i = 0;
      while (i < blocks.length) {
        const from = blocks[i];
        const pending = flying.get(from);
        if (this.stored(f, from) || pending) {
          if (pending) waits.add(pending);
          i++;
          continue;
        }
        let to = from + 1;
        let j = i + 1;
        while (j < blocks.length && offsets[blocks[j]] - offsets[to] <= JOIN_GAP_BYTES && offsets[blocks[j] + 1] - offsets[from] <= this.chunkBytes) {
          to = Math.max(to, blocks[j] + 1);
          j++;
        }
        reads.push(this.readAndStore(f, from, to));
        i = j;
      }
    }
    await Promise.all([...reads, ...[...waits].map((w) => w.catch(() => undefined))]);
    // A read waited for may have failed: what it left missing is read here, on the next pass.
    if (waits.size > 0) await this.read(wanted);
  }

  /** Reads blocks `from..to` of `f` (when a slot is free) and stores them; they count as in flight until then. */
  private readAndStore(f: OpenedRunFile, from: number, to: number): Promise<void> {
    const read = this.slot(() => readRunBlocks(f, from, to)).then((pages) => {
      this.bytes += f.meta.blockOffsets[to] - f.meta.blockOffsets[from];
      this.store.fillBlocks(f.runId, pages);
    });
    const flying = this.inFlight.get(f)!;
    for (let b = from; b < to; b++) flying.set(b, read);
    const settle = () => {
      for (let b = from; b < to; b++) if (flying.get(b) === read) flying.delete(b);
    };
    read.then(settle, settle);
    return read;
  }

  /** Runs `task` once fewer than {@link MAX_FILL_READS} reads are under way. */
  private async slot<T>(task: () => Promise<T>): Promise<T> {
    while (this.active >= MAX_FILL_READS) await new Promise<void>((resolve) => this.queued.push(resolve));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.queued.shift()?.();
    }
  }

  /**
   * Reads every block still missing, oldest file first, in chunks with a
   * `pause` between two, then makes the runs ordinary. Call once; a failure
   * (a read, a restore that dropped the runs) rejects it.
   */
  async run(pause: Pause): Promise<void> {
    for (const f of this.files) {
      const offsets = f.meta.blockOffsets;
      const flying = this.inFlight.get(f)!;
      let b = this.store.firstMissing(f.runId, 0, f.meta.blocks);
      while (b >= 0) {
        const pending = flying.get(b);
        if (pending) {
          // A read on demand has it: wait, and go on from there (read it here if that read failed).
          await pending.catch(() => undefined);
        } else {
          // Up to a chunk's bytes, and not past a block stored or being read.
          let to = b + 1;
          while (to < f.meta.blocks && offsets[to + 1] - offsets[b] <= this.chunkBytes && !this.stored(f, to) && !flying.has(to)) to++;
          await this.readAndStore(f, b, to);
          await pause();
        }
        b = this.store.firstMissing(f.runId, b, f.meta.blocks);
      }
    }
    // Blocks reads on demand are storing: each run is whole once they have.
    await Promise.all([...this.inFlight.values()].flatMap((m) => [...m.values()]));
    for (const f of this.files) this.store.finishFill(f.runId);
    this.finished = true;
  }

  progress(): FillProgress {
    let missing = 0;
    if (!this.finished) for (const f of this.files) missing += this.store.missingBlocks(f.runId);
    return { blocks: this.wanted, missing, bytesRead: this.bytes, demandReads: this.demand };
  }
}

/** The blocks `[from, to)` of file `f` that may hold entries of `key` (as RunStore.get probes them); empty when none may. */
function keyBlocks(f: OpenedRunFile, key: FillKey): [number, number] {
  const { firsts, blocks, last } = f.meta;
  const c = composite(key.keyGroup, key.hash);
  if (blocks === 0 || c < firsts[0] || c > last) return [0, 0];
  const from = firstBlockFor(firsts, c);
  let to = from + 1;
  while (to < blocks && firsts[to] <= c) to++;
  return [from, to];
}
