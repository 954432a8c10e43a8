/**
 * Reads runs in key order: one {@link RunCursor} walks a run's entries
 * within a key-group range block by block, and a {@link MergeCursor}
 * merges several, newest run winning on equal (stateId, key). Scans and
 * compactions use it; entries stay bytes inside their blocks (an
 * {@link EntryRef}), nothing is decoded that is not asked for.
 */
import { compareBytes } from "./byte-sink.js";
import { type BlockView, type EntryRef, composite, entryRef } from "./run-format.js";

/** The blocks of one run, read on demand. */
export interface RunBlocks {
  /** The first (keyGroup, hash) of each block, as composites. */
  readonly firsts: Float64Array;
  /** Block `index` (from the cache or storage). */
  readBlock(index: number): BlockView;
}

/** The first block that may hold an entry with (keyGroup, hash) ≥ `c`: the last whose first is < c (equal hashes may span blocks). */
export function firstBlockFor(firsts: Float64Array, c: number): number {
  let lo = 0;
  let hi = firsts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (firsts[mid] < c) lo = mid + 1;
    else hi = mid;
  }
  return Math.max(lo - 1, 0);
}

/** A position in one run, over key groups `keyGroupStart..keyGroupEnd`. */
export class RunCursor {
  readonly ref: EntryRef = entryRef();
  view: BlockView | undefined;
  private block: number;
  private i = 0;
  /** Whether the cursor is on an entry. */
  valid = false;

  constructor(
    private readonly run: RunBlocks,
    keyGroupStart: number,
    private readonly keyGroupEnd: number,
    /** Where in `keyGroupStart` to start: the first entry with a hash at least this. */
    fromHash = 0,
  ) {
    this.block = firstBlockFor(run.firsts, composite(keyGroupStart, fromHash));
    if (run.firsts.length === 0) return;
    this.view = run.readBlock(this.block);
    this.i = this.view.lowerBound(keyGroupStart, fromHash);
    this.settle();
  }

  /** Moves to the next entry. */
  next(): void {
    this.i++;
    this.settle();
  }

  private settle(): void {
    let v = this.view!;
    while (this.i >= v.count) {
      // Not a block that begins past the range: it holds nothing of it (and a clipped run may not have it).
      if (++this.block >= this.run.firsts.length || this.run.firsts[this.block] > composite(this.keyGroupEnd, 0xffffffff)) {
        this.valid = false;
        return;
      }
      v = this.view = this.run.readBlock(this.block);
      this.i = 0;
    }
    if (v.keyGroups[this.i] > this.keyGroupEnd) {
      this.valid = false;
      return;
    }
    v.read(this.i, this.ref);
    this.valid = true;
  }
}

/** Orders two cursors' entries by (keyGroup, hash, stateId, key bytes). */
export function compareCursors(a: RunCursor, b: RunCursor): number {
  const x = a.ref;
  const y = b.ref;
  return (
    x.keyGroup - y.keyGroup ||
    (x.hash === y.hash ? 0 : x.hash < y.hash ? -1 : 1) ||
    x.stateId - y.stateId ||
    compareBytes(a.view!.bytes, x.keyOffset, x.keyLength, b.view!.bytes, y.keyOffset, y.keyLength)
  );
}

/**
 * The merge of runs' cursors, given newest first: each (stateId, key)
 * once, from the newest run that has it (a tombstone included: the caller
 * decides whether to drop it).
 */
export class MergeCursor {
  /** The cursor whose entry is current. */
  current: RunCursor | undefined;

  constructor(private readonly cursors: readonly RunCursor[]) {
    this.pick();
  }

  /** Moves past the current entry (and the older runs' entries for the same key). */
  next(): void {
    const cur = this.current;
    if (!cur) return;
    for (const c of this.cursors) if (c !== cur && c.valid && compareCursors(c, cur) === 0) c.next();
    cur.next();
    this.pick();
  }

  private pick(): void {
    let best: RunCursor | undefined;
    // Newest first, and only a strictly smaller entry displaces: on a tie the newest run wins.
    for (const c of this.cursors) if (c.valid && (best === undefined || compareCursors(c, best) < 0)) best = c;
    this.current = best;
  }
}
