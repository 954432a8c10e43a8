/**
 * A lazy restore of run files (issue 20's "restore from R2 lazily by key
 * group, so that processing starts before every byte is loaded").
 *
 * Each file was opened with {@link openRunFile}: its run is published
 * with its bloom filters and index, and no block. From then on the blocks
 * arrive two ways:
 *
 * - **On demand, by key group.** Before a record (or timer) of key group
 *   `g` is processed, {@link RunFill.ensure} reads the blocks of every file
 *   that may hold `g` (ranged reads, adjacent blocks in one) and stores
 *   them. {@link RunFill.has} answers whether that is needed.
 * - **In the background.** {@link RunFill.run} reads the rest in chunks of
 *   at most {@link IMPORT_CHUNK_BYTES}, oldest file first, pausing between
 *   chunks, then makes the runs ordinary ({@link RunStore.finishFill}).
 *
 * A read on demand of a block the background is reading waits for that
 * read instead, and a background chunk stops at a block a read on demand
 * stored. A block read twice anyway (inside a joined range) is stored
 * once: storing is synchronous and skips blocks already stored.
 */
import type { KeyGroupRange } from "../../graph/key-groups.js";
import { type OpenedRunFile, IMPORT_CHUNK_BYTES, blockRangeFor, readRunBlocks } from "./run-file.js";
import type { Pause, RunStore } from "./run-store.js";

/** Blocks not wanted that a read on demand takes anyway to join two wanted ranges (one request instead of two). */
const JOIN_GAP_BLOCKS = 4;

/** How far a fill has come, for metrics. */
export interface FillProgress {
  readonly blocks: number;
  readonly missing: number;
  /** Bytes of blocks read on demand and in the background. */
  readonly bytesRead: number;
  /** Reads on demand (a record waited for them). */
  readonly demandReads: number;
}

/** The blocks of one store's run files, still coming: see the module comment. */
export class RunFill {
  /** 1 for a key group of the range whose blocks are all stored (0: not known yet). */
  private readonly loaded: Uint8Array;
  /** Key groups being read on demand. */
  private readonly reading = new Map<number, Promise<void>>();
  private finished = false;
  /** The background's read under way: a read on demand of one of its blocks waits for it instead of reading it too. */
  private background: { file: OpenedRunFile; from: number; to: number; read: Promise<void> } | undefined;
  private bytes = 0;
  private demand = 0;

  constructor(
    private readonly store: RunStore,
    private readonly files: readonly OpenedRunFile[],
    private readonly range: KeyGroupRange,
    private readonly chunkBytes = IMPORT_CHUNK_BYTES,
  ) {
    this.loaded = new Uint8Array(range.end - range.start + 1);
  }

  /** Whether every run is whole (after {@link run}). */
  get complete(): boolean {
    return this.finished;
  }

  /** Whether key group `keyGroup`'s entries may be read now: every block that may hold it is stored. */
  has(keyGroup: number): boolean {
    if (this.finished) return true;
    const i = keyGroup - this.range.start;
    if (i < 0 || i >= this.loaded.length) throw new RangeError(`key group ${keyGroup} is outside this fill's range ${this.range.start}..${this.range.end}`);
    if (this.loaded[i]) return true;
    for (const f of this.files) {
      const r = blockRangeFor(f.meta, keyGroup, keyGroup);
      if (this.store.firstMissing(f.runId, r.from, r.to) >= 0) return false;
    }
    this.loaded[i] = 1;
    return true;
  }

  /**
   * Reads and stores what key groups `keyGroups` need (those {@link has}
   * says are missing), in as few ranged reads as their blocks allow.
   * Resolves at once when none is missing.
   */
  async ensure(keyGroups: Iterable<number>): Promise<void> {
    const waits: Promise<void>[] = [];
    const wanted: number[] = [];
    for (const g of keyGroups) {
      if (this.has(g)) continue;
      const pending = this.reading.get(g);
      if (pending) waits.push(pending);
      else if (!wanted.includes(g)) wanted.push(g);
    }
    if (wanted.length > 0) {
      this.demand++;
      const read = this.read(wanted);
      for (const g of wanted) this.reading.set(g, read);
      void read.then(
        () => wanted.forEach((g) => this.reading.get(g) === read && this.reading.delete(g)),
        () => wanted.forEach((g) => this.reading.get(g) === read && this.reading.delete(g)),
      );
      waits.push(read);
    }
    if (waits.length > 0) await Promise.all(waits);
  }

  private async read(keyGroups: readonly number[]): Promise<void> {
    for (const f of this.files) {
      const blocks: number[] = [];
      for (const g of keyGroups) {
        const r = blockRangeFor(f.meta, g, g);
        for (let b = r.from; b < r.to; b++) blocks.push(b);
      }
      blocks.sort((a, b) => a - b);
      let i = 0;
      let waited: Promise<void> | undefined;
      while (i < blocks.length) {
        // Skip what is stored; join wanted blocks closer than a few blocks, up to a chunk's bytes.
        const from = this.store.firstMissing(f.runId, blocks[i], blocks[i] + 1) >= 0 ? blocks[i] : -1;
        if (from < 0) {
          i++;
          continue;
        }
        const bg = this.background;
        if (bg && bg.file === f && from >= bg.from && from < bg.to && bg.read !== waited) {
          // The background is reading it: wait, then look again (read it here if that read failed).
          waited = bg.read;
          await bg.read.catch(() => undefined);
          continue;
        }
        let to = from + 1;
        let j = i + 1;
        const offsets = f.meta.blockOffsets;
        while (j < blocks.length && blocks[j] - to <= JOIN_GAP_BLOCKS && offsets[blocks[j] + 1] - offsets[from] <= this.chunkBytes) {
          to = Math.max(to, blocks[j] + 1);
          j++;
        }
        await this.readAndStore(f, from, to);
        i = j;
      }
    }
  }

  private async readAndStore(f: OpenedRunFile, from: number, to: number): Promise<void> {
    const pages = await readRunBlocks(f, from, to);
    this.bytes += f.meta.blockOffsets[to] - f.meta.blockOffsets[from];
    this.store.fillBlocks(f.runId, pages);
  }

  /**
   * Reads every block still missing, oldest file first, in chunks with a
   * `pause` between two, then makes the runs ordinary. Call once; a failure
   * (a read, a restore that dropped the runs) rejects it.
   */
  async run(pause: Pause): Promise<void> {
    for (const f of this.files) {
      const offsets = f.meta.blockOffsets;
      let b = this.store.firstMissing(f.runId, 0, f.meta.blocks);
      while (b >= 0) {
        // Up to a chunk's bytes, and not past a block a read on demand stored.
        let to = b + 1;
        while (to < f.meta.blocks && offsets[to + 1] - offsets[b] <= this.chunkBytes && this.store.firstMissing(f.runId, to, to + 1) === to) to++;
        const read = this.readAndStore(f, b, to);
        this.background = { file: f, from: b, to, read };
        try {
          await read;
        } finally {
          this.background = undefined;
        }
        await pause();
        b = this.store.firstMissing(f.runId, to, f.meta.blocks);
      }
    }
    // Blocks a read on demand stored while the background passed them are stored: each run is whole.
    await Promise.all(this.reading.values());
    for (const f of this.files) this.store.finishFill(f.runId);
    this.finished = true;
  }

  progress(): FillProgress {
    let blocks = 0;
    let missing = 0;
    for (const f of this.files) {
      blocks += f.meta.blocks;
      missing += this.finished ? 0 : this.store.missingBlocks(f.runId);
    }
    return { blocks, missing, bytesRead: this.bytes, demandReads: this.demand };
  }
}
