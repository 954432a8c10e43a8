/**
 * An operator's keyed state in its Durable Object's SQLite, as a log of
 * immutable sorted runs (an LSM tree, RocksDB's idea on what a Durable
 * Object has): each run is written once, as ~32 KiB BLOB rows (a Durable
 * Object bills per row written), and read block by block.
 *
 * Tables (one set per object, rows keyed by operator uid):
 *
 *   state_runs        (op, run) → seq, epoch, first_epoch, live, sizes, last key, …
 *   state_run_pages   (op, run, kind, page) → bytes     kind 0 block, 1 bloom filter, 2 index piece
 *   state_names       (op, id) → name, kind             (state-names.ts)
 *
 * A run is visible when its `state_runs` row has live = 1. Writing one
 * inserts that row first with live = 0, then the pages, then sets live = 1
 * in one statement; a compaction writes its output the same way and then,
 * in one UPDATE, sets its live to 1 and its inputs' to 0. A store opening
 * finds every live = 0 row (one indexed query on `live`, not a scan of the
 * pages for orphans) and deletes it with its pages later, in bounded steps
 * ({@link RunStore.collectGarbage}): a write cut short is invisible, a
 * compaction cut short before its UPDATE too, one cut short after it has
 * only its inputs left to delete. A lazy restore's run is visible while
 * its blocks arrive, with live = 2 ({@link RunStore.openFill}): a store
 * opening treats it as live = 0 (the blocks not stored are gone with the
 * object's memory), and it becomes live = 1 when whole
 * ({@link RunStore.finishFill}). No statement sequence leaves a
 * half-written run visible, and none needs a transaction (which the `Sql`
 * port does not offer). No call deletes more than
 * {@link GARBAGE_PAGES_PER_STEP} pages: a store that held 100 MB is cleared
 * in one UPDATE, and its pages go in the background.
 *
 * Each run has a `seq` (its age: newer runs win) and an `epoch`: the
 * checkpoint whose snapshot first includes it. A compaction's output has
 * the seq and epoch of its newest input and the `first_epoch` of its
 * oldest, so that {@link RunStore.canRestoreTo} knows which checkpoints can
 * still be reached by dropping runs.
 */
import { type KeyGroupRange, overlaps } from "../../graph/key-groups.js";
import type { Sql, SqlValue } from "../../storage/sql.js";
import { BlockCache, CacheOwner } from "./block-cache.js";
import { type BloomProbe, bloomMayContain, bloomProbe } from "./bloom.js";
import { ByteSink, readUtf8 } from "./byte-sink.js";
import { type CompactionPlan, type CompactionPolicy, DEFAULT_COMPACTION_POLICY, planCompaction, planEpochMerge } from "./compaction-policy.js";
import { EntryBatch } from "./entry-batch.js";
import { MergeCursor, RunCursor, type RunBlocks, firstBlockFor } from "./merge-cursor.js";
import { BLOCK_TARGET_BYTES, BlockView, type EntryRef, composite, entryRef } from "./run-format.js";
import { BLOCKS_PER_BLOOM, PAGE_BLOCK, PAGE_BLOOM, PAGE_INDEX, type RunPage, type RunSummary, RunWriter } from "./run-writer.js";
import { StateNames } from "./state-names.js";

/** The last key group a run may hold: a run that is not clipped holds state of every one. */
const ALL_KEY_GROUPS = 0xffff;
/** The largest key hash (32 bits). */
const MAX_HASH = 0xffffffff;

/** Yields to other work between two turns of a long job (a run write, a compaction). */
export type Pause = () => Promise<void>;

/** Creates the tables of the run stores in a database (each store does too; a reader of them before any store opens needs this). */
export function createRunTables(sql: Sql): void {
  for (const t of TABLES) sql.exec(t);
}

/** A published run, as {@link RunStore.runs} lists it. */
export interface RunInfo {
  readonly id: number;
  /** Age: a larger seq is newer and wins. */
  readonly seq: number;
  /** The checkpoint whose snapshot first includes this run. */
  readonly epoch: number;
  /** The oldest epoch merged into this run (its epoch, unless compacted). */
  readonly firstEpoch: number;
  readonly entries: number;
  readonly tombstones: number;
  readonly blocks: number;
  /** Bytes of its pages (blocks, bloom filters, index). */
  readonly bytes: number;
  /**
   * The only key groups of it that are state, when it holds others too: a
   * file shared by a restore at a higher parallelism, which reads it lazily
   * instead of rewriting its part (absent: every entry is state).
   */
  readonly keyGroups?: KeyGroupRange;
}

/** A key {@link RunStore.prefetch} reads ahead for: a state's id, and the key's group and hash. */
export interface PrefetchKey {
  readonly stateId: number;
  readonly keyGroup: number;
  readonly hash: number;
}

/** An entry a scan gives: the key decoded, the value in persisted form (value-codec.ts). */
export interface ScanEntry {
  readonly stateId: number;
  readonly keyGroup: number;
  readonly hash: number;
  readonly key: string;
  readonly value: Uint8Array;
}

/** An entry {@link RunStore.scanRaw} gives: reused from one entry to the next, its value bytes in place. */
export interface RawScanEntry {
  stateId: number;
  keyGroup: number;
  hash: number;
  key: string;
  bytes: Uint8Array;
  valueOffset: number;
  valueLength: number;
}

const EMPTY = new Uint8Array(0);

/** Options of a {@link RunStore}. */
export interface RunStoreOptions {
  /** The page cache, shared by the stores of a subtask so that its budget is theirs (default: 8 MiB of its own). */
  readonly cache?: BlockCache;
  /** Entry bytes after which a block is cut (default 32 KiB). */
  readonly targetBlockBytes?: number;
  readonly policy?: CompactionPolicy;
  /**
   * Broken on purpose, for a simulator variant that must be caught: a
   * compaction unpublishes its inputs in one turn and publishes its output
   * in the next, so that a crash in between loses both.
   */
  readonly compactionUnpublishesFirst?: boolean;
}

/**
 * Bytes of pages a run write or a compaction stores between two pauses:
 * one turn takes a few milliseconds, and a small run (a checkpoint of a
 * few changes) is written in one.
 */
export const TURN_BYTES = 256 * 1024;

/** Pages a step of the garbage collection deletes at most (≈ 8 MiB of 32 KiB blocks). */
export const GARBAGE_PAGES_PER_STEP = 256;
/** Entries a compaction merges at most between two pauses, also when it writes no page (tombstones dropped). */
const COMPACTION_TURN_ENTRIES = 8192;

const TABLES = [
  `CREATE TABLE IF NOT EXISTS state_runs (op TEXT NOT NULL, run INTEGER NOT NULL, seq INTEGER NOT NULL, epoch INTEGER NOT NULL,
    first_epoch INTEGER NOT NULL, live INTEGER NOT NULL, entries INTEGER NOT NULL, tombstones INTEGER NOT NULL, blocks INTEGER NOT NULL,
    bloom_pages INTEGER NOT NULL, index_pages INTEGER NOT NULL, bytes INTEGER NOT NULL, last REAL NOT NULL, PRIMARY KEY (op, run))`,
  `CREATE INDEX IF NOT EXISTS state_runs_by_live ON state_runs (op, live)`,
  `CREATE TABLE IF NOT EXISTS state_run_pages (op TEXT NOT NULL, run INTEGER NOT NULL, kind INTEGER NOT NULL, page INTEGER NOT NULL,
    bytes BLOB NOT NULL, PRIMARY KEY (op, run, kind, page))`,
  // The key groups a clipped run holds as state (RunInfo.keyGroups); a run without a row has none clipped.
  `CREATE TABLE IF NOT EXISTS state_run_clips (op TEXT NOT NULL, run INTEGER NOT NULL, kg_start INTEGER NOT NULL, kg_end INTEGER NOT NULL,
    PRIMARY KEY (op, run))`,
];
const INSERT_PAGE = `INSERT INTO state_run_pages (op, run, kind, page, bytes) VALUES (?, ?, ?, ?, ?)`;
const SELECT_PAGE = `SELECT bytes FROM state_run_pages WHERE op = ? AND run = ? AND kind = ? AND page = ?`;
/** Consecutive pages of one run in one query, in order: a sequential reader's (compactions, scans, exports). */
const SELECT_PAGE_RANGE = `SELECT page, bytes FROM state_run_pages WHERE op = ? AND run = ? AND kind = ? AND page >= ? AND page < ? ORDER BY page`;
/**
 * Most pages a sequential reader asks for at once. It starts at one and
 * doubles while the reader goes on where the last read stopped: one row
 * of a many-row query costs a third of a one-row query in workerd
 * (docs/state-backend.md, "Reading a batch ahead"), while a cursor that
 * reads one block of a run (a narrow scan) reads one page.
 */
export const SEQUENTIAL_READ_PAGES = 32;
/** Several pages of one run in one query (a Durable Object's query binds at most 100 values: the pages go as one JSON array). */
const PREFETCH_PAGES = `SELECT page, bytes FROM state_run_pages WHERE op = ? AND run = ? AND kind = ? AND page IN (SELECT value FROM json_each(?))`;
/** `live` of a run whose blocks a lazy restore is still storing ({@link RunStore.openFill}). */
const FILLING = 2;
const SET_SUMMARY = `UPDATE state_runs SET live = ?, entries = ?, tombstones = ?, blocks = ?, bloom_pages = ?, index_pages = ?, bytes = ?, last = ? WHERE op = ? AND run = ?`;

/** A run in memory: its metadata and index (never its blocks, which the cache holds). */
class Run implements RunInfo {
  readonly owner = new CacheOwner();
  /** Scans and exports reading it: its pages are deleted only once they are done. */
  readers = 0;
  retired = false;
  /** Retired by a restore or a clear: whoever still reads it is stale, and its pages go regardless. */
  stale = false;
  /** While its blocks are still coming (a lazy restore, {@link RunStore.openFill}): 1 for each block stored. */
  present: Uint8Array | undefined;
  /** Blocks not stored yet. */
  missing = 0;
  /** Its entries outside these key groups are not state (see {@link RunInfo.keyGroups}). */
  keyGroupStart = 0;
  keyGroupEnd = ALL_KEY_GROUPS;

  constructor(
    readonly id: number,
    readonly seq: number,
    readonly epoch: number,
    readonly firstEpoch: number,
    readonly entries: number,
    readonly tombstones: number,
    readonly blocks: number,
    readonly bloomPages: number,
    readonly bytes: number,
    readonly firsts: Float64Array,
    readonly last: number,
  ) {}

  /** Whether an entry at composite `c` of `keyGroup` may be in it: within its entries' range and its clip. */
  mayHold(c: number, keyGroup: number): boolean {
    const firsts = this.firsts;
    return firsts.length > 0 && c >= firsts[0] && c <= this.last && keyGroup >= this.keyGroupStart && keyGroup <= this.keyGroupEnd;
  }

  get clipped(): boolean {
    return this.keyGroupStart > 0 || this.keyGroupEnd < ALL_KEY_GROUPS;
  }

  info(): RunInfo {
    const { id, seq, epoch, firstEpoch, entries, tombstones, blocks, bytes } = this;
    return { id, seq, epoch, firstEpoch, entries, tombstones, blocks, bytes, ...(this.clipped ? { keyGroups: { start: this.keyGroupStart, end: this.keyGroupEnd } } : {}) };
  }
}

/** The runs of one operator in one Durable Object. */
export class RunStore {
  /** The operator's state names and their ids. */
  readonly names: StateNames;
  readonly cache: BlockCache;
  private readonly policy: CompactionPolicy;
  private readonly targetBlockBytes: number;
  private readonly unpublishFirst: boolean;
  /** Live runs, oldest first. */
  private live: Run[] = [];
  /** Runs unpublished (compacted away, dropped) whose pages are still to delete. */
  private dead: Run[] = [];
  /** Ids of rows no longer live whose pages no one reads: written and abandoned, or found dead at open. */
  private abandoned: number[] = [];
  private nextId: number;
  private nextSeq: number;
  /** Seqs of writes in flight: a compaction window must not pass over one. */
  private readonly writing = new Set<number>();
  private compacting = false;
  // Scratch of `get`, reused: a lookup allocates nothing but the value view.
  private readonly keySink = new ByteSink(256);
  private readonly probe: BloomProbe = { h1: 0, h2: 0 };
  private readonly ref: EntryRef = entryRef();

  constructor(
    private readonly sql: Sql,
    /** The operator's uid. */
    readonly uid: string,
    options: RunStoreOptions = {},
  ) {
    for (const t of TABLES) sql.exec(t);
    this.names = new StateNames(sql, uid);
    this.cache = options.cache ?? new BlockCache(8 * 1024 * 1024);
    this.policy = options.policy ?? DEFAULT_COMPACTION_POLICY;
    this.targetBlockBytes = options.targetBlockBytes ?? BLOCK_TARGET_BYTES;
    this.unpublishFirst = options.compactionUnpublishesFirst === true;
    // What a crash left half done (writes never published, inputs of a published compaction, runs whose blocks a
    // lazy restore had not all stored: live = 2), deleted in the background.
    for (const r of sql.exec<{ run: number }>(`SELECT run FROM state_runs WHERE op = ? AND live <> 1`, uid).toArray()) this.abandoned.push(r.run);
    const rows = sql.exec<Record<string, number>>(`SELECT * FROM state_runs WHERE op = ? AND live = 1 ORDER BY seq`, uid).toArray();
    const clips = new Map(
      sql
        .exec<{ run: number; kg_start: number; kg_end: number }>(`SELECT run, kg_start, kg_end FROM state_run_clips WHERE op = ?`, uid)
        .toArray()
        .map((c) => [c.run, c]),
    );
    for (const r of rows) {
      const firsts = this.readIndex(r.run, r.blocks, r.index_pages);
      const run = new Run(r.run, r.seq, r.epoch, r.first_epoch, r.entries, r.tombstones, r.blocks, r.bloom_pages, r.bytes, firsts, r.last);
      const clip = clips.get(r.run);
      if (clip) {
        run.keyGroupStart = clip.kg_start;
        run.keyGroupEnd = clip.kg_end;
      }
      this.live.push(run);
    }
    const top = sql.exec<{ run: number | null; seq: number | null }>(`SELECT MAX(run) AS run, MAX(seq) AS seq FROM state_runs WHERE op = ?`, uid).one();
    this.nextId = (top.run ?? 0) + 1;
    this.nextSeq = (top.seq ?? 0) + 1;
  }

  /** The id of state `name` of `kind`, declared now if new (see {@link StateNames.id}). */
  stateId(name: string, kind: string): number {
    return this.names.id(name, kind);
  }

  /** An empty batch whose errors name this operator and its states. */
  batch(): EntryBatch {
    return new EntryBatch(this.uid, (id) => this.names.describe(id));
  }

  /** The seq of the newest live run (0: none): {@link scanRaw} up to it reads the state as it is now, later runs aside. */
  get newestSeq(): number {
    return this.live.length > 0 ? this.live[this.live.length - 1].seq : 0;
  }

  /** The live runs, oldest first. */
  runs(): RunInfo[] {
    return this.live.map((r) => r.info());
  }

  /**
   * Writes `batch` as a new run of `epoch` (the checkpoint whose snapshot
   * first includes it), newest of all, in turns: `pause()` after every
   * {@link TURN_BYTES} of pages. It is visible to {@link get} once the promise resolves; leave the
   * batch unchanged until then. An empty batch writes nothing (undefined).
   */
  async writeRun(batch: EntryBatch, epoch: number, pause: Pause): Promise<RunInfo | undefined> {
    if (batch.count === 0) return undefined;
    const order = batch.sortedOrder();
    return this.writeNew(epoch, epoch, pause, async (writer, flush) => {
      // The columns in sorted order first, one tight loop each: their reads at random positions
      // then overlap in the memory system, where one loop reading all six at once waits for each.
      const n = order.length;
      const gather = <T extends Uint32Array | Uint16Array | Int32Array>(col: T, out: T): T => {
        for (let j = 0; j < n; j++) out[j] = col[order[j]];
        return out;
      };
      const keyGroups = gather(batch.keyGroups, new Uint16Array(n));
      const hashes = gather(batch.hashes, new Uint32Array(n));
      const stateIds = gather(batch.stateIds, new Uint32Array(n));
      const keyStarts = gather(batch.keyStarts, new Int32Array(n));
      const valueStarts = gather(batch.valueStarts, new Int32Array(n));
      const valueEnds = gather(batch.valueEnds, new Int32Array(n));
      const bytes = batch.bytes.bytes;
      for (let j = 0; j < n; j++) {
        const k = keyStarts[j];
        const v = valueStarts[j];
        const end = valueEnds[j];
        writer.addBytes(keyGroups[j], hashes[j], stateIds[j], bytes, k, v - k, bytes, v, end < 0 ? -1 : end - v);
        if (writer.hasPages) await flush();
      }
    });
  }

  /**
   * Writes a run from pages already built (an imported file's blocks,
   * run-file.ts), as {@link writeRun} does; `summary` may be known only
   * once the pages are all read.
   * @internal
   */
  async writePages(
    summary: RunSummary | (() => RunSummary),
    pages: Iterable<RunPage> | AsyncIterable<RunPage>,
    epoch: number,
    firstEpoch: number,
    pause: Pause,
  ): Promise<RunInfo> {
    return (await this.storeRun(summary, pages, epoch, firstEpoch, pause, 1)).info();
  }

  /** Inserts a run's row (live = 0), then its pages, then publishes it with `live` (see the module comment). */
  private async storeRun(
    summary: RunSummary | (() => RunSummary),
    pages: Iterable<RunPage> | AsyncIterable<RunPage>,
    epoch: number,
    firstEpoch: number,
    pause: Pause,
    live: 1 | typeof FILLING,
    clip?: KeyGroupRange,
  ): Promise<Run> {
    const seq = this.nextSeq++;
    const id = this.nextId++;
    this.writing.add(seq);
    try {
      this.sql.exec(`INSERT INTO state_runs VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0, 0, 0, 0, -1)`, this.uid, id, seq, epoch, firstEpoch);
      // Before it is published: a live run and its clip appear in one instant.
      if (clip) this.sql.exec(`INSERT OR REPLACE INTO state_run_clips VALUES (?, ?, ?, ?)`, this.uid, id, clip.start, clip.end);
      const stored = metered(pause);
      for await (const p of pages) {
        this.sql.exec(INSERT_PAGE, this.uid, id, p.kind, p.page, buffer(p.bytes));
        await stored(p.bytes.length);
      }
      return this.publish(id, seq, epoch, firstEpoch, typeof summary === "function" ? summary() : summary, live, clip);
    } catch (e) {
      this.abandoned.push(id);
      throw e;
    } finally {
      this.writing.delete(seq);
    }
  }

  /** Writes a new run whose entries `fill` adds to a writer, storing its pages whenever `flush` is called. */
  private async writeNew(epoch: number, firstEpoch: number, pause: Pause, fill: (writer: RunWriter, flush: () => Promise<void>) => Promise<void>): Promise<RunInfo> {
    const writer = new RunWriter(this.targetBlockBytes);
    const seq = this.nextSeq++;
    const id = this.nextId++;
    this.writing.add(seq);
    try {
      this.sql.exec(`INSERT INTO state_runs VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0, 0, 0, 0, -1)`, this.uid, id, seq, epoch, firstEpoch);
      const stored = metered(pause);
      const flush = async () => {
        for (const p of writer.takePages()) {
          this.sql.exec(INSERT_PAGE, this.uid, id, p.kind, p.page, buffer(p.bytes));
          await stored(p.bytes.length);
        }
      };
      await fill(writer, flush);
      const summary = writer.finish();
      await flush();
      return this.publish(id, seq, epoch, firstEpoch, summary).info();
    } catch (e) {
      this.abandoned.push(id);
      throw e;
    } finally {
      this.writing.delete(seq);
    }
  }

  /**
   * Publishes a run whose blocks come later (a lazy restore from R2, which
   * reads the blocks a key needs before the key is read, and the others in
   * the background): its bloom filters and index (`pages`) are stored now,
   * so that a lookup knows which blocks could hold a key. {@link fillBlocks}
   * stores blocks as they come, and {@link finishFill} makes the run
   * durable once they all have. Until then its row has live = 2: a store
   * that opens again drops it, as it drops a write never published. Read a
   * key only once {@link missingBlocks} says its blocks are in; scans,
   * exports and compactions of the run wait for its end (a read of a block
   * not stored throws).
   *
   * Given `clip`, only the entries of those key groups are state (see
   * {@link RunInfo.keyGroups}): the blocks that cannot hold any of them are
   * never read, nor stored, and count as stored from the start.
   */
  async openFill(summary: RunSummary, pages: Iterable<RunPage>, epoch: number, firstEpoch: number, pause: Pause, clip?: KeyGroupRange): Promise<RunInfo> {
    const uid = this.uid;
    const withoutBlocks = function* (): Iterable<RunPage> {
      for (const p of pages) {
        if (p.kind === PAGE_BLOCK) throw new Error(`operator "${uid}": a run's blocks are filled after it opens`);
        yield p;
      }
    };
    const clipped = clip && (clip.start > 0 || clip.end < ALL_KEY_GROUPS) ? clip : undefined;
    return (await this.storeRun(summary, withoutBlocks(), epoch, firstEpoch, pause, FILLING, clipped)).info();
  }

  /** Stores blocks of run `id` that {@link openFill} opened (those stored already are skipped). Throws once the run was dropped. */
  fillBlocks(id: number, blocks: Iterable<{ readonly page: number; readonly bytes: Uint8Array }>): void {
    const run = this.fillingRun(id);
    const present = run.present!;
    for (const b of blocks) {
      if (b.page < 0 || b.page >= present.length) throw new RangeError(`operator "${this.uid}": run ${id} has no block ${b.page}`);
      if (present[b.page]) continue;
      this.sql.exec(INSERT_PAGE, this.uid, id, PAGE_BLOCK, b.page, buffer(b.bytes));
      present[b.page] = 1;
      run.missing--;
    }
  }

  /** The first block from `from` up to `to` (exclusive) of run `id` not stored yet, or -1 (also once it is whole). Throws once the run was dropped. */
  firstMissing(id: number, from: number, to: number): number {
    const run = this.live.find((r) => r.id === id);
    if (!run) throw new Error(`operator "${this.uid}": run ${id} is no longer live (a restore or clear dropped it while it was filled)`);
    const present = run.present;
    if (!present) return -1;
    for (let b = from; b < to; b++) if (!present[b]) return b;
    return -1;
  }

  /** Blocks of run `id` not stored yet (0 once it is whole). */
  missingBlocks(id: number): number {
    return this.live.find((r) => r.id === id)?.missing ?? 0;
  }

  /** Whether run `id` is open for filling. */
  isFilling(id: number): boolean {
    return this.live.find((r) => r.id === id)?.present !== undefined;
  }

  /** Every block of run `id` is stored: it becomes an ordinary run, kept across restarts (one statement). */
  finishFill(id: number): void {
    const run = this.fillingRun(id);
    if (run.missing > 0) throw new Error(`operator "${this.uid}": run ${id} still misses ${run.missing} of its ${run.blocks} blocks`);
    this.sql.exec(`UPDATE state_runs SET live = 1 WHERE op = ? AND run = ? AND live = ?`, this.uid, id, FILLING);
    run.present = undefined;
  }

  private fillingRun(id: number): Run {
    const run = this.live.find((r) => r.id === id);
    if (!run) throw new Error(`operator "${this.uid}": run ${id} is no longer live (a restore or clear dropped it while it was filled)`);
    if (!run.present) throw new Error(`operator "${this.uid}": run ${id} is not being filled`);
    return run;
  }

  /** Makes a written run visible: one statement. */
  private publish(id: number, seq: number, epoch: number, firstEpoch: number, s: RunSummary, live: 1 | typeof FILLING = 1, clip?: KeyGroupRange): Run {
    this.sql.exec(SET_SUMMARY, live, s.entries, s.tombstones, s.blocks, s.bloomPages, s.indexPages, s.bytes, s.last, this.uid, id);
    const run = new Run(id, seq, epoch, firstEpoch, s.entries, s.tombstones, s.blocks, s.bloomPages, s.bytes, s.firsts, s.last);
    if (clip) {
      run.keyGroupStart = clip.start;
      run.keyGroupEnd = clip.end;
    }
    if (live === FILLING) {
      // Visible as filling from the moment it is live: nothing may take its blocks as stored.
      run.present = new Uint8Array(s.blocks);
      run.missing = s.blocks;
      if (clip) {
        // Blocks no read within the clip can reach: never needed (a cursor or a lookup of a clipped key group
        // starts at the block firstBlockFor gives, and stops before a block that begins past the clip).
        const from = composite(clip.start, 0);
        const to = composite(clip.end, MAX_HASH);
        for (let b = 0; b < s.blocks; b++) {
          if (s.firsts[b] > to || (b + 1 < s.blocks && s.firsts[b + 1] < from)) {
            run.present[b] = 1;
            run.missing--;
          }
        }
      }
    }
    // Writes finish in any order; the list stays ordered by age.
    let at = this.live.length;
    while (at > 0 && this.live[at - 1].seq > seq) at--;
    this.live.splice(at, 0, run);
    return run;
  }

  /**
   * The persisted value of `key` (its canonical text; `hash` its hashKey,
   * `keyGroup` its key group) in state `stateId`, from the newest run that
   * has it: its bytes (decode with value-codec.ts), null when that run
   * holds a tombstone, undefined when no run has the key. Synchronous: the
   * blocks it needs are read from SQL on a cache miss.
   */
  get(stateId: number, keyGroup: number, hash: number, key: string): Uint8Array | null | undefined {
    const c = composite(keyGroup, hash);
    const sink = this.keySink;
    sink.clear();
    const keyLength = sink.writeUtf8(key);
    const keyBytes = sink.bytes;
    let probed = false;
    const ref = this.ref;
    for (let r = this.live.length - 1; r >= 0; r--) {
      const run = this.live[r];
      if (!run.mayHold(c, keyGroup)) continue;
      const firsts = run.firsts;
      if (!probed) {
        bloomProbe(stateId, hash, this.probe);
        probed = true;
      }
      // Usually one block; more when entries with this hash span a block boundary.
      let lastFilter = -1;
      for (let b = firstBlockFor(firsts, c); b < firsts.length && firsts[b] <= c; b++) {
        const part = Math.floor(b / BLOCKS_PER_BLOOM);
        if (part !== lastFilter) {
          lastFilter = part;
          if (!bloomMayContain(this.bloom(run, part), this.probe)) {
            b = (part + 1) * BLOCKS_PER_BLOOM - 1;
            continue;
          }
        }
        const view = this.block(run, b, true);
        const i = view.find(keyGroup, hash, stateId, keyBytes, keyLength, ref);
        if (i >= 0) return ref.valueLength < 0 ? null : view.bytes.subarray(ref.valueOffset, ref.valueOffset + ref.valueLength);
      }
    }
    return undefined;
  }

  /**
   * Reads into the block cache the blocks that {@link get} would read from
   * SQL first for each of `keys` (state id, key group and hash): per key,
   * the block of the newest run whose bloom filter may hold it, unless
   * cached. One query per run for all of them, instead of a query per
   * lookup: a query costs several microseconds besides its rows (in
   * workerd, 9.5-10.8 µs for one 4 KiB row alone, 4.4 µs a row in a query
   * of 100). At most `maxBlocks` are read (the cache must hold them until
   * the lookups come); returns how many. A miss of the bloom filter's
   * guess, or a key across two blocks, is read by its lookup as before.
   */
  prefetch(keys: readonly PrefetchKey[], maxBlocks: number): number {
    let wanted: Map<Run, Set<number>> | undefined;
    let n = 0;
    const probe = this.probe;
    for (let i = 0; i < keys.length && n < maxBlocks; i++) {
      const k = keys[i];
      const c = composite(k.keyGroup, k.hash);
      bloomProbe(k.stateId, k.hash, probe);
      for (let r = this.live.length - 1; r >= 0; r--) {
        const run = this.live[r];
        if (!run.mayHold(c, k.keyGroup)) continue;
        const firsts = run.firsts;
        const from = firstBlockFor(firsts, c);
        if (!bloomMayContain(this.bloom(run, Math.floor(from / BLOCKS_PER_BLOOM)), probe)) continue;
        // The run a lookup finds it in (unless the filter erred), and the blocks it probes there: one, or more when
        // entries of that hash begin the next. Not a block a lazy restore has still to bring.
        for (let b = from; b < firsts.length && (b === from || firsts[b] <= c); b++) {
          if (this.cache.has(run.owner, b * 2) || (run.present && !run.present[b])) continue;
          let blocks = (wanted ??= new Map()).get(run);
          if (blocks === undefined) wanted.set(run, (blocks = new Set<number>()));
          if (!blocks.has(b)) {
            blocks.add(b);
            n++;
          }
        }
        break;
      }
    }
    if (!wanted) return 0;
    for (const [run, blocks] of wanted) {
      const rows = this.sql.exec<{ page: number; bytes: SqlValue }>(PREFETCH_PAGES, this.uid, run.id, PAGE_BLOCK, JSON.stringify([...blocks])).toArray();
      for (const row of rows) {
        const view = new BlockView(bytesOf(row.bytes));
        this.cache.put(run.owner, row.page * 2, view, view.sizeBytes);
      }
    }
    return n;
  }

  /**
   * Every live entry of key groups `keyGroupStart..keyGroupEnd` in
   * (keyGroup, hash, stateId, key) order, newest run winning, tombstones
   * dropped. The runs are those live when iteration starts; their pages
   * stay until it ends (finish or `return()` the iterator). Blocks it reads
   * are not put in the cache.
   */
  *scan(keyGroupStart = 0, keyGroupEnd = 0xffff): Generator<ScanEntry> {
    for (const e of this.scanRaw(keyGroupStart, keyGroupEnd)) {
      yield { stateId: e.stateId, keyGroup: e.keyGroup, hash: e.hash, key: e.key, value: e.bytes.subarray(e.valueOffset, e.valueOffset + e.valueLength) };
    }
  }

  /**
   * {@link scan} without an object per entry: the entry yielded is reused,
   * and its value is `valueLength` bytes of `bytes` (its block) at
   * `valueOffset`. Read it before asking for the next.
   */
  *scanRaw(keyGroupStart = 0, keyGroupEnd = 0xffff, fromHash = 0, upToSeq = Number.POSITIVE_INFINITY): Generator<RawScanEntry> {
    // A clipped run only where its clip meets the range: it may lack the blocks elsewhere.
    const range = { start: keyGroupStart, end: keyGroupEnd };
    const runs = [...this.live].reverse().filter((r) => r.seq <= upToSeq && overlaps(range, { start: r.keyGroupStart, end: r.keyGroupEnd }));
    for (const r of runs) r.readers++;
    const out: RawScanEntry = { stateId: 0, keyGroup: 0, hash: 0, key: "", bytes: EMPTY, valueOffset: 0, valueLength: 0 };
    try {
      // A clipped run within its clip only (from its first key group's start when the clip begins later).
      const merge = new MergeCursor(
        runs.map(
          (r) =>
            new RunCursor(
              this.blocksOf(r, false),
              Math.max(keyGroupStart, r.keyGroupStart),
              Math.min(keyGroupEnd, r.keyGroupEnd),
              r.keyGroupStart > keyGroupStart ? 0 : fromHash,
            ),
        ),
      );
      for (let cur = merge.current; cur; cur = merge.current) {
        const e = cur.ref;
        if (e.valueLength >= 0) {
          const bytes = cur.view!.bytes;
          out.stateId = e.stateId;
          out.keyGroup = e.keyGroup;
          out.hash = e.hash;
          out.key = readUtf8(bytes, e.keyOffset, e.keyLength);
          out.bytes = bytes;
          out.valueOffset = e.valueOffset;
          out.valueLength = e.valueLength;
          yield out;
        }
        merge.next();
      }
    } finally {
      for (const r of runs) r.readers--;
    }
  }

  /**
   * Whether dropping the runs newer than checkpoint `epoch` gives back the
   * state as of that checkpoint: false when a compaction merged runs from
   * both sides of it.
   */
  canRestoreTo(epoch: number): boolean {
    return this.live.every((r) => r.epoch <= epoch || r.firstEpoch > epoch);
  }

  /**
   * Drops the runs whose epoch is above `epoch` (a local restore to
   * checkpoint `epoch` when SQLite has moved past it), in one statement;
   * returns how many. Their pages are deleted later ({@link collectGarbage}),
   * whoever still reads them: a restore drops them, so readers are stale.
   * Throws when {@link canRestoreTo} is false or a write or compaction is
   * in flight.
   */
  dropAbove(epoch: number): number {
    this.checkIdle("drop runs");
    if (!this.canRestoreTo(epoch)) {
      const r = this.live.find((x) => x.epoch > epoch && x.firstEpoch <= epoch)!;
      throw new Error(`operator "${this.uid}": cannot restore to checkpoint ${epoch} from SQLite: run ${r.id} merges checkpoints ${r.firstEpoch}..${r.epoch}`);
    }
    const drop = this.live.filter((r) => r.epoch > epoch);
    if (drop.length === 0) return 0;
    this.sql.exec(`UPDATE state_runs SET live = 0 WHERE op = ? AND live <> 0 AND epoch > ?`, this.uid, epoch);
    this.retire(drop, true);
    return drop.length;
  }

  /**
   * Unpublishes every run in one statement (the operator's state is
   * replaced: a fresh start, a restore from R2); their pages are deleted
   * later, as {@link dropAbove}'s are. Throws while a write or compaction
   * is in flight.
   */
  clear(): void {
    this.checkIdle("clear the runs");
    if (this.live.length === 0) return;
    this.sql.exec(`UPDATE state_runs SET live = 0 WHERE op = ? AND live <> 0`, this.uid);
    this.retire([...this.live], true);
  }

  /** Whether a run is being written or compacted. */
  get busy(): boolean {
    return this.writing.size > 0 || this.compacting;
  }

  private checkIdle(what: string): void {
    if (this.busy) throw new Error(`operator "${this.uid}": cannot ${what} while a run is being written or compacted`);
  }

  /**
   * The compaction due now under the store's policy, among runs whose
   * epochs are ≤ `completedCheckpointId` (undefined: none due). `all`
   * merges every such run into one (a full materialization).
   */
  planCompaction(completedCheckpointId: number, all = false): CompactionPlan | undefined {
    // Not over a write in flight, nor over a run still filling (its blocks are not all there to merge).
    let blocked = this.writing.size > 0 ? Math.min(...this.writing) : Infinity;
    for (const r of this.live) if (r.present && r.seq < blocked) blocked = r.seq;
    return planCompaction(this.live, completedCheckpointId, blocked, this.policy, all) ?? (all ? undefined : planEpochMerge(this.live, completedCheckpointId, blocked));
  }

  /**
   * Merges the runs of `plan` into one, in turns (`pause()` after every
   * {@link TURN_BYTES} of pages written, and every few thousand entries
   * merged), and publishes it in place of its inputs in one
   * statement. Resolves with the new run, or undefined when the plan went
   * stale meanwhile (its inputs dropped): then nothing changed.
   */
  async compact(plan: CompactionPlan, pause: Pause): Promise<RunInfo | undefined> {
    if (this.compacting) throw new Error(`operator "${this.uid}": one compaction at a time`);
    const inputs = plan.inputs.map((id) => this.live.find((r) => r.id === id));
    if (inputs.some((r) => r === undefined)) return undefined;
    const runs = inputs as Run[];
    this.compacting = true;
    for (const r of runs) r.readers++;
    const seq = runs[runs.length - 1].seq;
    const epoch = Math.max(...runs.map((r) => r.epoch));
    const firstEpoch = Math.min(...runs.map((r) => r.firstEpoch));
    const id = this.nextId++;
    try {
      this.sql.exec(`INSERT INTO state_runs VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0, 0, 0, 0, -1)`, this.uid, id, seq, epoch, firstEpoch);
      const writer = new RunWriter(this.targetBlockBytes);
      const stored = metered(pause);
      const flush = async () => {
        for (const p of writer.takePages()) {
          this.sql.exec(INSERT_PAGE, this.uid, id, p.kind, p.page, buffer(p.bytes));
          await stored(p.bytes.length);
        }
      };
      // A clipped input gives its clip's entries only: the output holds state alone, and is not clipped.
      const merge = new MergeCursor([...runs].reverse().map((r) => new RunCursor(this.blocksOf(r, false), r.keyGroupStart, r.keyGroupEnd)));
      let inTurn = 0;
      for (let cur = merge.current; cur; cur = merge.current) {
        const e = cur.ref;
        if (e.valueLength >= 0 || !plan.dropTombstones) {
          const b = cur.view!.bytes;
          writer.addBytes(e.keyGroup, e.hash, e.stateId, b, e.keyOffset, e.keyLength, b, e.valueOffset, e.valueLength);
          if (writer.hasPages) {
            await flush();
            inTurn = 0;
          }
        }
        merge.next();
        // Tombstones dropped write nothing: the turn still ends after so many entries.
        if (++inTurn >= COMPACTION_TURN_ENTRIES) {
          await pause();
          inTurn = 0;
        }
      }
      const s = writer.finish();
      await flush();
      this.sql.exec(SET_SUMMARY, 0, s.entries, s.tombstones, s.blocks, s.bloomPages, s.indexPages, s.bytes, s.last, this.uid, id);
      if (runs.some((r) => r.retired)) {
        this.abandoned.push(id);
        return undefined;
      }
      if (this.unpublishFirst) {
        // The broken variant: inputs out in one turn, output in the next; a crash in between loses both.
        this.sql.exec(`UPDATE state_runs SET live = 0 WHERE op = ? AND live = 1 AND seq BETWEEN ? AND ?`, this.uid, plan.seqFrom, plan.seqTo);
        await pause();
        this.sql.exec(`UPDATE state_runs SET live = 1 WHERE op = ? AND run = ?`, this.uid, id);
      } else {
        // The one step that publishes: the output live, its inputs not, in one statement.
        this.sql.exec(`UPDATE state_runs SET live = (run = ?) WHERE op = ? AND (run = ? OR (live = 1 AND seq BETWEEN ? AND ?))`, id, this.uid, id, plan.seqFrom, plan.seqTo);
      }
      const out = new Run(id, seq, epoch, firstEpoch, s.entries, s.tombstones, s.blocks, s.bloomPages, s.bytes, s.firsts, s.last);
      const at = this.live.indexOf(runs[0]);
      this.live.splice(at, runs.length, out);
      this.retire(runs);
      return out.info();
    } catch (e) {
      this.abandoned.push(id);
      throw e;
    } finally {
      for (const r of runs) r.readers--;
      this.compacting = false;
    }
  }

  /** Plans and runs the compaction due now, if any (see {@link planCompaction}, {@link compact}). */
  async maybeCompact(completedCheckpointId: number, pause: Pause): Promise<RunInfo | undefined> {
    const plan = this.planCompaction(completedCheckpointId);
    return plan ? this.compact(plan, pause) : undefined;
  }

  /**
   * Deletes the pages of runs no longer live (compacted away, dropped,
   * cleared, or found dead at open), {@link GARBAGE_PAGES_PER_STEP} pages
   * per turn, each run once no scan or export reads it.
   */
  async collectGarbage(pause: Pause): Promise<void> {
    while (this.collectStep()) await pause();
  }

  /** Deletes what {@link collectGarbage} would, now. */
  collectGarbageNow(): void {
    while (this.collectStep());
  }

  /** Whether pages of runs no longer live wait to be deleted (and no reader holds them). */
  get hasGarbage(): boolean {
    return this.abandoned.length > 0 || this.dead.some((r) => r.readers === 0 || r.stale);
  }

  /**
   * One bounded step of {@link collectGarbage}: deletes up to
   * {@link GARBAGE_PAGES_PER_STEP} pages of dead runs (a run's row too once
   * its pages are all gone). Returns whether there is more to do.
   */
  collectStep(): boolean {
    let budget = GARBAGE_PAGES_PER_STEP;
    while (budget > 0) {
      let id = this.abandoned[this.abandoned.length - 1];
      if (id === undefined) {
        const run = this.dead.find((r) => r.readers === 0 || r.stale);
        if (!run) break;
        this.abandoned.push((id = run.id));
        this.dead.splice(this.dead.indexOf(run), 1);
      }
      const { deleted, done } = this.deletePages(id, budget);
      budget -= Math.max(deleted, 1);
      if (done) {
        this.sql.exec(`DELETE FROM state_runs WHERE op = ? AND run = ?`, this.uid, id);
        this.sql.exec(`DELETE FROM state_run_clips WHERE op = ? AND run = ?`, this.uid, id);
        this.abandoned.pop();
      }
    }
    return this.hasGarbage;
  }

  /** Deletes up to `max` pages of run `id`: how many, and whether none is left. */
  private deletePages(id: number, max: number): { deleted: number; done: boolean } {
    const rows = this.sql.exec<{ kind: number; page: number }>(`SELECT kind, page FROM state_run_pages WHERE op = ? AND run = ? ORDER BY kind, page LIMIT ?`, this.uid, id, max + 1).toArray();
    if (rows.length === 0) return { deleted: 0, done: true };
    const deleted = Math.min(rows.length, max);
    const last = rows[deleted - 1];
    this.sql.exec(`DELETE FROM state_run_pages WHERE op = ? AND run = ? AND (kind, page) <= (?, ?)`, this.uid, id, last.kind, last.page);
    return { deleted, done: rows.length <= max };
  }

  private retire(runs: readonly Run[], stale = false): void {
    for (const r of runs) {
      r.retired = true;
      r.stale = stale;
      this.cache.dropOwner(r.owner);
      const i = this.live.indexOf(r);
      if (i >= 0) this.live.splice(i, 1);
      this.dead.push(r);
    }
  }

  /**
   * The blocks of a run for a cursor.
   * @internal
   */
  blocksOf(run: RunInfo, fillCache: boolean): RunBlocks {
    const r = run as Run;
    if (fillCache) return { firsts: r.firsts, readBlock: (i) => this.block(r, i, true) };
    // A reader that does not fill the cache reads on, block after block: pages ahead come with the one asked for.
    const ahead = this.sequentialPages(r.id, PAGE_BLOCK, r.blocks);
    return { firsts: r.firsts, readBlock: (i) => this.block(r, i, false, ahead) };
  }

  /**
   * Reads pages of kind `kind` of run `id` (`count` of them) for a reader
   * that goes through them in order: page `i` of the function returned,
   * with up to {@link SEQUENTIAL_READ_PAGES} pages after it read in the
   * same query while the reader keeps on where it stopped.
   * @internal
   */
  sequentialPages(id: number, kind: number, count: number): (page: number) => Uint8Array {
    let from = 0;
    let pages: (Uint8Array | undefined)[] = [];
    return (page) => {
      const held = page >= from && page < from + pages.length ? pages[page - from] : undefined;
      if (held) return held;
      // Going on where the last read stopped: read twice as many at once; else (the first read, a seek) one.
      const next = pages.length > 0 && page === from + pages.length ? Math.min(pages.length * 2, SEQUENTIAL_READ_PAGES) : 1;
      const n = Math.max(1, Math.min(next, count - page));
      pages = new Array<Uint8Array | undefined>(n);
      from = page;
      for (const row of this.sql.exec<{ page: number; bytes: SqlValue }>(SELECT_PAGE_RANGE, this.uid, id, kind, page, page + n)) pages[row.page - page] = bytesOf(row.bytes);
      const bytes = pages[0];
      if (!bytes) throw new Error(`operator "${this.uid}": run ${id} has no page ${page} of kind ${kind}`);
      return bytes;
    };
  }

  /**
   * Page `page` of kind `kind` of run `id`, from SQL.
   * @internal
   */
  readPage(id: number, kind: number, page: number): Uint8Array {
    const row = this.sql.exec<{ bytes: SqlValue }>(SELECT_PAGE, this.uid, id, kind, page).toArray()[0];
    if (!row) throw new Error(`operator "${this.uid}": run ${id} has no page ${page} of kind ${kind}`);
    return bytesOf(row.bytes);
  }

  /**
   * Holds a run's pages until `release` (an export reading them).
   * @internal
   */
  lease(id: number): { run: RunInfo & { bloomPages: number; firsts: Float64Array; last: number }; release: () => void } {
    const run = this.live.find((r) => r.id === id);
    if (!run) throw new Error(`operator "${this.uid}": no live run ${id}`);
    // Its pages hold key groups that are not state: it goes up as the file it came from, with its clip.
    if (run.clipped) throw new Error(`operator "${this.uid}": run ${id} holds key groups ${run.keyGroupStart}..${run.keyGroupEnd} of its file only, and cannot be exported`);
    run.readers++;
    let released = false;
    return {
      run,
      release: () => {
        if (!released) run.readers--;
        released = true;
      },
    };
  }

  /** Block `index` of `run`: from the cache, else read by `read` (given: a sequential reader's), else alone. */
  private block(run: Run, index: number, fillCache: boolean, read?: (page: number) => Uint8Array): BlockView {
    const cached = this.cache.get<BlockView>(run.owner, index * 2);
    if (cached) return cached;
    if (run.present && !run.present[index]) throw new Error(`operator "${this.uid}": block ${index} of run ${run.id} is not restored yet`);
    const view = new BlockView(read ? read(index) : this.readPage(run.id, PAGE_BLOCK, index));
    if (fillCache) this.cache.put(run.owner, index * 2, view, view.sizeBytes);
    return view;
  }

  private bloom(run: Run, part: number): Uint8Array {
    const cached = this.cache.get<Uint8Array>(run.owner, part * 2 + 1);
    if (cached) return cached;
    const filter = this.readPage(run.id, PAGE_BLOOM, part);
    this.cache.put(run.owner, part * 2 + 1, filter, filter.length);
    return filter;
  }

  private readIndex(id: number, blocks: number, pages: number): Float64Array {
    const firsts = new Float64Array(blocks);
    const out = new Uint8Array(firsts.buffer);
    let at = 0;
    for (let p = 0; p < pages; p++) {
      const piece = this.readPage(id, PAGE_INDEX, p);
      out.set(piece, at);
      at += piece.length;
    }
    if (at !== out.length) throw new Error(`operator "${this.uid}": run ${id}'s index has ${at} bytes, not ${out.length}`);
    return firsts;
  }
}

/** A pause after every {@link TURN_BYTES} bytes stored. */
function metered(pause: Pause): (bytes: number) => Promise<void> {
  let since = 0;
  return async (bytes) => {
    since += bytes;
    if (since < TURN_BYTES) return;
    since = 0;
    await pause();
  };
}

/** A page's bytes as SQL binds them: its own ArrayBuffer. */
function buffer(bytes: Uint8Array): ArrayBuffer {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes.buffer as ArrayBuffer;
  return bytes.slice().buffer as ArrayBuffer;
}

/** A BLOB as SQL gives it back: an ArrayBuffer in a Durable Object, a Uint8Array on node:sqlite. */
function bytesOf(v: SqlValue): Uint8Array {
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return v as unknown as Uint8Array;
  throw new TypeError(`expected a BLOB, got ${typeof v}`);
}
