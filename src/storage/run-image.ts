/**
 * The local image of a subtask's keyed state, in its Durable Object's
 * SQLite, as sorted runs (src/state/runs: an LSM tree of immutable runs
 * with bloom filters and a block cache). Each operator has two run stores:
 * its states, and its timers (so that a restore reads every timer without
 * reading the states).
 *
 * - **Write-back.** A checkpoint's changes are gathered ({@link ImageWrite})
 *   and sealed as ONE run per store, tagged with the checkpoint id:
 *   appended, not upserted key by key, and written in turns of one page.
 *   Deletions are tombstones.
 * - **Reads.** {@link RunImage.backing} reads a key through the bloom
 *   filters and the block cache, newest run first; a full snapshot streams
 *   the merge of the runs.
 * - **Markers.** `image_checkpoints` has a row per operator and checkpoint
 *   whose state the runs hold: written when a checkpoint's runs are sealed
 *   (and at a restore). A local restore to N needs N's row with the same
 *   key-group range, and stores that can still reach N
 *   (`RunStore.canRestoreTo`): it drops the runs above N, in one statement
 *   per store. Otherwise (N compacted away, rows pruned, a rescale, a
 *   savepoint) the restore reads R2 and writes the files as runs of N.
 * - **Compaction** and the deletion of dead pages run in the background
 *   ({@link RunImage.kick}), one page per turn, never over a run newer than
 *   the last completed checkpoint: a failover restores that checkpoint, and
 *   it stays reachable by dropping runs.
 *
 * Tables: those of run-store.ts and state-names.ts (the timer store's
 * operator is `<uid>` + {@link TIMER_STORE_SUFFIX}), and
 *
 *   image_checkpoints (op, checkpoint_id) → key_group_start, key_group_end, keys
 *   image_run_files   (op, run) → file, bytes, entries       a live run's file in R2, once uploaded
 *
 * **Run files.** A checkpoint's upload ({@link RunImage.uploadRuns})
 * references every live run of an operator's stores, and uploads those
 * without a file yet (the run of its changes, and what compactions
 * merged since), RocksDB's incremental checkpoints on SQLite. A restore
 * from R2 imports the files as runs ({@link RunImage.importRuns}), and
 * remembers their files when it imported them whole. A local restore keeps
 * only the files the restored checkpoint references: any other may have
 * been deleted with the task that uploaded it.
 */
import type { RunFileRef } from "../checkpoint/types.js";
import { contains, hashKey, intersect, type KeyGroupRange } from "../graph/key-groups.js";
import type { BackingRow, EntryKind, StateBacking } from "../state/keyed-state.js";
import { BlockCache } from "../state/runs/block-cache.js";
import type { EntryBatch } from "../state/runs/entry-batch.js";
import { type OpenedRunFile, exportRun, importRunRanged, openRunFile } from "../state/runs/run-file.js";
import { RunFill } from "../state/runs/run-fill.js";
import { composite } from "../state/runs/run-format.js";
import { createRunTables, type Pause, type PrefetchKey, RunStore } from "../state/runs/run-store.js";
import { decodeValue, decodeValueJson } from "../state/runs/value-codec.js";
import type { EncodedEntry, SnapshotEntry } from "../state/snapshot-format.js";
import type { Sql } from "./sql.js";
import { type TimeIndex, type TimeIndexChange, parseTimeIndexKey, timeIndexKey, timeIndexPosition } from "../state/time-index.js";
import { type TimeDomain, timerDomainOf, timerStateName } from "../state/timer-queue.js";

/** The entry kinds, by the byte that precedes each value in a run. */
const KINDS: readonly EntryKind[] = ["value", "map", "list", "value-ttl", "map-ttl", "list-ttl", "timer"];
const KIND_CODE = new Map<string, number>(KINDS.map((k, i) => [k, i]));

/** Appended to an operator's uid to name its timer store (a uid holds no NUL). */
export const TIMER_STORE_SUFFIX = "\u0000timers";
/** Appended to an operator's uid to name its time index: its timers sorted by time (time-index.ts), derived, never uploaded. */
export const TIME_INDEX_SUFFIX = "\u0000timeindex";

/** The value of a live time-index entry: nothing (the entry's key says it all). */
const INDEX_VALUE = new Uint8Array(0);

/** What state names are declared as in a store: an entry's own kind is in its value's first byte. */
const NAME_KIND = "keyed";

/** A restore from R2 writes a run once it gathered this many bytes of keys and values… */
export const RESTORE_RUN_BYTES = 8 * 1024 * 1024;
/** …or this many entries. */
export const RESTORE_RUN_ENTRIES = 131_072;
/** Entries a count of the image looks at per turn. */
const COUNT_TURN_ENTRIES = 20_000;

/** Rows of `image_checkpoints` kept per operator at most: the checkpoints a local restore can go back to. */
export const IMAGE_CHECKPOINTS_KEPT = 16;

/**
 * Entry bytes after which a block of the image is cut. A key read back
 * after an eviction reads one block from SQL when the cache misses, and a
 * read costs about what its bytes cost: on node:sqlite, with a 4 MiB cache
 * over 500,000 keys, a read-back took 22 us with 32 KiB blocks and 10 us
 * with 4 KiB ones (RocksDB's default). Batches read their keys' blocks
 * ahead, many to a query (RunStore.prefetch): there a row costs about 4.4
 * us at 4 KiB and 2.4 us at 1 KiB in workerd. The keyed count over
 * 1,000,000 keys under the default budget, one core, ran at 55,047 events/s
 * with 4 KiB blocks, 64,668 with 2 KiB and 61,203 with 1 KiB (whose
 * checkpoints, twice as many rows written, took 1,335 ms at p50 against
 * 686). Writes cost the same per byte, plus a row's overhead.
 */
export const IMAGE_BLOCK_BYTES = 2 * 1024;

/** Default bytes of the block cache (a deployment sets it from its memory budget). */
export const DEFAULT_IMAGE_CACHE_BYTES = 4 * 1024 * 1024;

const TABLES = [
  `CREATE TABLE IF NOT EXISTS image_checkpoints (op TEXT NOT NULL, checkpoint_id INTEGER NOT NULL,
    key_group_start INTEGER NOT NULL, key_group_end INTEGER NOT NULL, keys INTEGER NOT NULL, PRIMARY KEY (op, checkpoint_id))`,
  `CREATE TABLE IF NOT EXISTS image_run_files (op TEXT NOT NULL, run INTEGER NOT NULL, file TEXT NOT NULL, bytes INTEGER NOT NULL,
    entries INTEGER NOT NULL, PRIMARY KEY (op, run))`,
  // Timers per operator, time domain and checkpoint, for an attach that reads none; a row per operator whose time
  // index is kept with its timers (an image written without one, by an older floe, is rebuilt at its restore).
  `CREATE TABLE IF NOT EXISTS image_timer_counts (op TEXT NOT NULL, checkpoint_id INTEGER NOT NULL, domain TEXT NOT NULL,
    timers INTEGER NOT NULL, PRIMARY KEY (op, checkpoint_id, domain))`,
  // Version 2 orders one time's entries by the image's order of their keys (timeIndexKey); an image whose index
  // is of version 1 (keys in text order), as one without an index, is rebuilt at its restore.
  `CREATE TABLE IF NOT EXISTS image_time_index_v2 (op TEXT PRIMARY KEY)`,
  `DROP TABLE IF EXISTS image_time_indexed`,
  // Operators whose lazy restore has not stored every block: their runs are not whole, and a restart loses them.
  `CREATE TABLE IF NOT EXISTS image_filling (op TEXT PRIMARY KEY)`,
];

/** Timers per time domain. */
export type TimerCounts = Readonly<Partial<Record<TimeDomain, number>>>;

/** The two stores of an operator, by the name a {@link RunFileRef} gives them. */
const STORES = ["states", "timers"] as const;

/** Bytes of the parts an upload hands its {@link RunUploader}: pages joined, a pause between two. */
const UPLOAD_CHUNK_BYTES = 256 * 1024;

/** Where the run files of a checkpoint's upload go, and how they are written. */
export interface RunUploader {
  /** The R2 key of run `run` of `store`, first uploaded now. */
  key(store: RunFileRef["store"], run: number): string;
  /** Stores a file given as parts (joined, they are the file), reading them as it goes; resolves when it is durable. */
  put(key: string, parts: AsyncIterable<Uint8Array>): Promise<void>;
}

/** What a checkpoint's runs are, and what its upload added. */
export interface UploadedRuns {
  readonly runs: RunFileRef[];
  /** Bytes uploaded by this call (files new since the last upload). */
  readonly uploadedBytes: number;
}

/** Options of a {@link RunImage}. */
export interface RunImageOptions {
  /** Yields between two turns of background work (compaction, garbage); the image stops it when halted. */
  readonly pause: Pause;
  /** Called with an error of the background work (which stops until kicked again). */
  readonly onError?: (e: unknown) => void;
  /** The simulator's broken variant (see `RunStoreOptions.compactionUnpublishesFirst`). */
  readonly compactionUnpublishesFirst?: boolean;
  /** Entry bytes after which a block is cut (default {@link IMAGE_BLOCK_BYTES}; tests use small blocks). */
  readonly targetBlockBytes?: number;
  /** Bytes a lazy restore reads at once in the background (default: run-file.ts's IMPORT_CHUNK_BYTES; the simulator reads a block at a time). */
  readonly fillChunkBytes?: number;
  /** Yields between two chunks of a lazy restore's background reads (default {@link pause}; the simulator waits longer, so that records meet blocks not read yet). */
  readonly fillPause?: Pause;
}

/** One checkpoint's changes on their way into the image. */
export interface ImageWrite {
  /** Gathers changed entries of operator `uid` (a null value is a deletion). */
  add(uid: string, changed: readonly EncodedEntry[]): void;
  /** Gathers changes of operator `uid`'s time index in `domain`, taken with its timer entries' changes. */
  addTimeIndex(uid: string, domain: TimeDomain, changes: readonly TimeIndexChange[]): void;
  /**
   * Writes what was gathered, one run per store, in turns (`turn()` after
   * each page; it may throw to stop, e.g. when the task was canceled).
   * The runs are in the image once this resolves.
   */
  seal(turn: Pause): Promise<void>;
}

/** A restore from R2 on its way into the image: entries of state files, oldest file first. */
export interface RestoreWrite {
  add(entry: SnapshotEntry): void;
  /** Whether enough was gathered for a run ({@link flush} it before reading on). */
  readonly full: boolean;
  /** Writes what was gathered as runs of the restored checkpoint, in turns. */
  flush(turn: Pause): Promise<void>;
}

/** An operator's stores: its states, its timers, and its timers by time (derived from them). */
interface OperatorImage {
  readonly uid: string;
  readonly states: RunStore;
  readonly timers: RunStore;
  readonly index: RunStore;
}

/** Entries of one operator gathered for a run of each store. */
interface Gathered {
  readonly op: OperatorImage;
  readonly states: EntryBatch;
  readonly timers: EntryBatch;
  readonly index: EntryBatch;
  /** Timer entries were gathered… */
  timerEntries: boolean;
  /** …and the time index's changes with them. */
  indexed: boolean;
}

/** Stops the background work at its next turn. */
class Halted extends Error {}

/** The keyed-state image of one Durable Object. */
export class RunImage {
  /** The page cache every store of the object shares. */
  readonly cache = new BlockCache(DEFAULT_IMAGE_CACHE_BYTES);
  private readonly ops = new Map<string, OperatorImage>();
  /** Run writes in flight (write-backs, restores): a restore waits for them before it drops runs. */
  private readonly writes = new Set<Promise<unknown>>();
  /** The background loop, while it runs. */
  private loop: Promise<void> | undefined;
  /** Background work stopped: a deployment is restoring. */
  private halted = false;
  /** Kicked while the loop ran: it looks for work once more before it ends. */
  private kicked = false;
  /** The loop has not decided to end (set and cleared synchronously, unlike {@link loop}). */
  private running = false;
  /**
   * Counts halts: an upload that began before the last one (a canceled
   * task's, still running) records no file, since the restore after the
   * halt decided which files the image keeps.
   */
  private generation = 0;
  /** The last completed checkpoint: runs up to it may be compacted. */
  private completedCheckpointId = 0;
  /**
   * A write-back failed while its task went on: later checkpoints' runs may
   * miss its changes, so none is marked until the next restore (which drops
   * or replaces every run above the checkpoint it restores).
   */
  private broken = false;
  /** A merge of one epoch's runs under way (see {@link uploadRuns}): their epoch, and its end. */
  private epochMerge: { readonly epoch: number; readonly done: Promise<void> } | undefined;
  /** Lazy restores under way, by operator: their fill, and the end of its background reads. */
  private readonly fills = new Map<string, { fill: RunFill; done: Promise<void> }>();

  constructor(
    private readonly sql: Sql,
    private readonly options: RunImageOptions,
  ) {
    createRunTables(sql);
    for (const t of TABLES) sql.exec(t);
  }

  /** Operator `uid`'s stores, opened on first use. */
  private operator(uid: string): OperatorImage {
    let op = this.ops.get(uid);
    if (!op) {
      const o = { cache: this.cache, compactionUnpublishesFirst: this.options.compactionUnpublishesFirst, targetBlockBytes: this.options.targetBlockBytes ?? IMAGE_BLOCK_BYTES };
      op = { uid, states: new RunStore(this.sql, uid, o), timers: new RunStore(this.sql, uid + TIMER_STORE_SUFFIX, o), index: new RunStore(this.sql, uid + TIME_INDEX_SUFFIX, o) };
      this.ops.set(uid, op);
    }
    return op;
  }

  /** Every store opened so far, and those SQLite holds runs of (opened now). */
  private allOperators(): OperatorImage[] {
    for (const r of this.sql.exec<{ op: string }>(`SELECT DISTINCT op FROM state_runs`)) {
      const suffix = [TIMER_STORE_SUFFIX, TIME_INDEX_SUFFIX].find((x) => r.op.endsWith(x));
      const uid = suffix ? r.op.slice(0, -suffix.length) : r.op;
      this.operator(uid);
    }
    return [...this.ops.values()];
  }

  /** Sets the block cache's size (from a deployment's memory budget). */
  setCacheBytes(bytes: number): void {
    this.cache.resize(bytes);
  }

  // ---- write-back ----

  /** Starts gathering checkpoint `checkpointId`'s changes. */
  begin(checkpointId: number): ImageWrite {
    const gathered = new Map<string, Gathered>();
    const of = (uid: string): Gathered => {
      let g = gathered.get(uid);
      if (!g) {
        const op = this.operator(uid);
        gathered.set(uid, (g = { op, states: op.states.batch(), timers: op.timers.batch(), index: op.index.batch(), timerEntries: false, indexed: false }));
      }
      return g;
    };
    return {
      addTimeIndex: (uid, domain, changes) => {
        const g = of(uid);
        g.indexed = true;
        addIndexChanges(g.op.index, g.index, domain, changes);
      },
      add: (uid, changed) => {
        const g = of(uid);
        for (const { entry: e, valueJson } of changed) {
          const timer = e.kind === "timer";
          if (timer) g.timerEntries = true;
          const store = timer ? g.op.timers : g.op.states;
          const batch = timer ? g.timers : g.states;
          const stateId = store.stateId(e.state, NAME_KIND);
          if (valueJson === null) batch.delete(stateId, e.keyGroup, hashKey(e.key), e.key);
          else batch.putJson(stateId, e.keyGroup, hashKey(e.key), e.key, kindCode(e.kind), valueJson);
        }
      },
      seal: (turn) =>
        this.track(
          (async () => {
            try {
              for (const g of gathered.values()) {
                // Timers changed without the index's changes (a backend keeping its timers in memory): the index lags.
                if (g.timerEntries && !g.indexed) this.sql.exec(`DELETE FROM image_time_index_v2 WHERE op = ?`, g.op.uid);
                await g.op.states.writeRun(g.states, checkpointId, turn);
                await g.op.timers.writeRun(g.timers, checkpointId, turn);
                await g.op.index.writeRun(g.index, checkpointId, turn);
              }
              // Runs of one epoch pile up between two checkpoints when changes are flushed: merged in the background.
              this.kick();
            } catch (e) {
              this.broken = true;
              throw e;
            }
          })(),
        ),
    };
  }

  private async track<T>(p: Promise<T>): Promise<T> {
    this.writes.add(p);
    try {
      return await p;
    } finally {
      this.writes.delete(p);
    }
  }

  // ---- markers ----

  /**
   * Records that the runs hold checkpoint `checkpointId` of key groups
   * `range`, with `keys[uid]` keys per operator; rows above it are of
   * another history (a restore went back to it) and go.
   */
  mark(checkpointId: number, range: KeyGroupRange, keys: Readonly<Record<string, number>>, timers: Readonly<Record<string, TimerCounts>> = {}): void {
    this.sql.exec(`DELETE FROM image_checkpoints WHERE checkpoint_id > ?`, checkpointId);
    this.sql.exec(`DELETE FROM image_timer_counts WHERE checkpoint_id > ?`, checkpointId);
    if (this.broken) return;
    for (const [uid, n] of Object.entries(keys)) {
      this.sql.exec(`INSERT OR REPLACE INTO image_checkpoints VALUES (?, ?, ?, ?, ?)`, uid, checkpointId, range.start, range.end, n);
    }
    for (const [uid, counts] of Object.entries(timers)) {
      for (const [domain, n] of Object.entries(counts)) this.sql.exec(`INSERT OR REPLACE INTO image_timer_counts VALUES (?, ?, ?, ?)`, uid, checkpointId, domain, n);
    }
  }

  /**
   * The timers of operator `uid` at checkpoint `checkpointId` per domain,
   * when its time index is kept and the checkpoint counted them; undefined
   * when the index must be rebuilt ({@link rebuildTimeIndex}).
   */
  timerCounts(uid: string, checkpointId: number): TimerCounts | undefined {
    if (this.sql.exec(`SELECT 1 FROM image_time_index_v2 WHERE op = ?`, uid).toArray().length === 0) return undefined;
    const rows = this.sql.exec<{ domain: string; timers: number }>(`SELECT domain, timers FROM image_timer_counts WHERE op = ? AND checkpoint_id = ?`, uid, checkpointId).toArray();
    const op = this.operator(uid);
    // Timers without a count: a checkpoint marked before its operator kept them in the index.
    if (rows.length === 0 && op.timers.runs().length > 0) return undefined;
    return Object.fromEntries(rows.map((r) => [r.domain, r.timers]));
  }

  /**
   * Writes operator `uid`'s time index again from its timer entries, as
   * runs of `checkpointId` (after a restore from R2, or of an image whose
   * index lags), in turns; returns the timers per domain.
   */
  async rebuildTimeIndex(uid: string, checkpointId: number, pause: Pause): Promise<TimerCounts> {
    const op = this.operator(uid);
    op.index.clear();
    const counts: Record<string, number> = {};
    let batch = op.index.batch();
    let gathered = 0;
    for (const e of op.timers.scan()) {
      const domain = timerDomainOf(op.timers.names.describe(e.stateId));
      if (!domain) continue;
      const timestamps = decodeValue(e.value, 1) as number[];
      const position = composite(e.keyGroup, e.hash);
      addIndexChanges(op.index, batch, domain, timestamps.map((timestampMs) => ({ key: e.key, timestampMs, live: true, position })));
      counts[domain] = (counts[domain] ?? 0) + timestamps.length;
      gathered += timestamps.length;
      if (gathered >= RESTORE_RUN_ENTRIES) {
        await this.track(op.index.writeRun(batch, checkpointId, pause));
        batch = op.index.batch();
        gathered = 0;
      } else if (gathered % COUNT_TURN_ENTRIES === 0) await pause();
    }
    await this.track(op.index.writeRun(batch, checkpointId, pause));
    this.sql.exec(`INSERT OR REPLACE INTO image_time_index_v2 VALUES (?)`, uid);
    return counts;
  }

  /** Operator `uid` starts with no state: its (empty) time index is kept from now on. */
  startTimeIndex(uid: string): void {
    const op = this.operator(uid);
    if (op.timers.runs().length === 0) {
      op.index.clear();
      this.sql.exec(`INSERT OR REPLACE INTO image_time_index_v2 VALUES (?)`, uid);
    }
  }

  /**
   * A local restore of operator `uid` to checkpoint `checkpointId` of
   * `range`: when the image can still reach it, drops the runs above it
   * and returns its number of keys; else undefined (restore from R2).
   * Call {@link halt} first.
   */
  localRestore(uid: string, checkpointId: number, range: KeyGroupRange, files: readonly string[] = []): number | undefined {
    const row = this.sql
      .exec<{ keys: number }>(
        `SELECT keys FROM image_checkpoints WHERE op = ? AND checkpoint_id = ? AND key_group_start = ? AND key_group_end = ?`,
        uid,
        checkpointId,
        range.start,
        range.end,
      )
      .toArray()[0];
    if (!row) return undefined;
    // A lazy restore that did not end: blocks are missing, and gone for good if the object restarted.
    if (this.sql.exec(`SELECT 1 FROM image_filling WHERE op = ?`, uid).toArray().length > 0) return undefined;
    const op = this.operator(uid);
    if (!op.states.canRestoreTo(checkpointId) || !op.timers.canRestoreTo(checkpointId)) return undefined;
    op.states.dropAbove(checkpointId);
    op.timers.dropAbove(checkpointId);
    // The index follows its timers; when it cannot reach the checkpoint, the restore rebuilds it (timerCounts: undefined).
    if (op.index.canRestoreTo(checkpointId)) op.index.dropAbove(checkpointId);
    else this.sql.exec(`DELETE FROM image_time_index_v2 WHERE op = ?`, uid);
    // Only the restored checkpoint's files are sure to exist: another may have been deleted with the task that wrote it.
    const kept = new Set(files);
    for (const store of [op.states, op.timers]) {
      for (const r of this.sql.exec<{ run: number; file: string }>(`SELECT run, file FROM image_run_files WHERE op = ?`, store.uid).toArray()) {
        if (!kept.has(r.file)) this.sql.exec(`DELETE FROM image_run_files WHERE op = ? AND run = ?`, store.uid, r.run);
      }
    }
    this.pruneRunFiles();
    return row.keys;
  }

  // ---- restore from R2, and clearing ----

  /** Drops operator `uid`'s state and rows (its pages go in the background). Call {@link halt} first. */
  clearOperator(uid: string): void {
    const op = this.operator(uid);
    op.states.clear();
    op.timers.clear();
    op.index.clear();
    this.sql.exec(`DELETE FROM image_checkpoints WHERE op = ?`, uid);
    this.sql.exec(`DELETE FROM image_timer_counts WHERE op = ?`, uid);
    this.sql.exec(`DELETE FROM image_time_index_v2 WHERE op = ?`, uid);
    this.sql.exec(`DELETE FROM image_filling WHERE op = ?`, uid);
    this.fills.delete(uid);
    this.pruneRunFiles();
  }

  /** Drops every operator's state and rows. Call {@link halt} first. */
  clear(): void {
    for (const op of this.allOperators()) {
      op.states.clear();
      op.timers.clear();
      op.index.clear();
    }
    this.sql.exec(`DELETE FROM image_checkpoints`);
    this.sql.exec(`DELETE FROM image_timer_counts`);
    this.sql.exec(`DELETE FROM image_time_index_v2`);
    this.sql.exec(`DELETE FROM image_run_files`);
    this.sql.exec(`DELETE FROM image_filling`);
    this.fills.clear();
  }

  /** Writes a restore of operator `uid` (cleared first) from R2 as runs of checkpoint `checkpointId`. */
  restoring(uid: string, checkpointId: number): RestoreWrite {
    const op = this.operator(uid);
    let states = op.states.batch();
    let timers = op.timers.batch();
    return {
      add: (e) => {
        const timer = e.kind === "timer";
        const store = timer ? op.timers : op.states;
        const batch = timer ? timers : states;
        const stateId = store.stateId(e.state, NAME_KIND);
        if (e.value === undefined) batch.delete(stateId, e.keyGroup, hashKey(e.key), e.key);
        else batch.putPrefixed(stateId, e.keyGroup, hashKey(e.key), e.key, kindCode(e.kind), e.value);
      },
      get full() {
        return states.sizeBytes + timers.sizeBytes >= RESTORE_RUN_BYTES || states.count + timers.count >= RESTORE_RUN_ENTRIES;
      },
      flush: (turn) =>
        this.track(
          (async () => {
            // Later files overwrite earlier ones: a later run is newer.
            await op.states.writeRun(states, checkpointId, turn);
            await op.timers.writeRun(timers, checkpointId, turn);
            states = op.states.batch();
            timers = op.timers.batch();
          })(),
        ),
    };
  }

  // ---- run files ----

  /**
   * The runs operator `uid`'s state is made of at checkpoint
   * `checkpointId`, as files: those uploaded before are referenced, the
   * others exported and uploaded (`pause` between two pages of an export).
   * Take it after the checkpoint's runs were sealed and before the next
   * one's are: the live runs up to its epoch then hold exactly that
   * checkpoint (a compaction meanwhile changes the runs, not what they
   * hold; a flush since its barrier writes runs of a later epoch).
   */
  async uploadRuns(uid: string, checkpointId: number, uploader: RunUploader, pause: Pause): Promise<UploadedRuns> {
    // A merge of this checkpoint's own flushes under way (its runs have no files yet): listed once it ends, its output
    // goes up now, once, instead of its inputs now and its output with the next checkpoint (a second checkpoint after
    // a load uploaded 46.6 MB for 1% of the keys changed).
    const generation = this.generation;
    while (this.epochMerge && this.epochMerge.epoch <= checkpointId) await this.epochMerge.done;
    if (generation !== this.generation) throw new Error(`the upload of checkpoint ${checkpointId} began before a restore`);
    const op = this.operator(uid);
    // One instant: the list of live runs and their files.
    const listed = STORES.map((name) => {
      const store = op[name === "states" ? "states" : "timers"];
      const files = new Map(
        this.sql
          .exec<{ run: number; file: string; bytes: number; entries: number }>(`SELECT run, file, bytes, entries FROM image_run_files WHERE op = ?`, store.uid)
          .toArray()
          .map((r) => [r.run, r]),
      );
      // Not runs of a later checkpoint (changes flushed since this one's barrier): they are not its state.
      return { name, store, runs: store.runs().filter((r) => r.epoch <= checkpointId).map((r) => ({ run: r, file: files.get(r.id) })) };
    });
    // Held until the upload ends: a compaction may merge a listed run meanwhile (flushed runs of one epoch are merged
    // before it completes), and its pages must stay to be exported.
    const leases = new Map(listed.flatMap(({ store, runs }) => runs.filter((r) => !r.file).map((r) => [r.run, store.lease(r.run.id)] as const)));
    const refs: RunFileRef[] = [];
    let uploadedBytes = 0;
    try {
      for (const { name, store, runs } of listed) {
        for (const { run, file } of runs) {
          if (file) {
            refs.push({ file: file.file, store: name, bytes: file.bytes, entries: file.entries, ...(run.keyGroups ? { keyGroups: run.keyGroups } : {}) });
            continue;
          }
          // A run a lazy restore is still filling (of a savepoint's file, which is not referenced): whole first.
          if (store.isFilling(run.id)) await this.fills.get(uid)?.done;
          let bytes = 0;
          // The file's pages joined into chunks: a step of an async generator costs microseconds, and a page is 2 KiB
          // (the first checkpoint of 126 MB spent 0.8 s in those steps, one per page).
          const parts = async function* (): AsyncGenerator<Uint8Array> {
            let chunk = new Uint8Array(UPLOAD_CHUNK_BYTES);
            let used = 0;
            for (const part of exportRun(store, leases.get(run)!)) {
              bytes += part.length;
              if (used + part.length > chunk.length) {
                if (used > 0) yield chunk.subarray(0, used);
                await pause();
                chunk = new Uint8Array(Math.max(UPLOAD_CHUNK_BYTES, part.length));
                used = 0;
              }
              chunk.set(part, used);
              used += part.length;
            }
            if (used > 0) yield chunk.subarray(0, used);
          };
          const key = uploader.key(name, run.id);
          await uploader.put(key, parts());
          uploadedBytes += bytes;
          // Still live: remembered, so that the next checkpoint references it. (Gone: a compaction merged it meanwhile.
          // Halted since: a restore chose the files to keep, and this upload's task was canceled.)
          if (generation !== this.generation) throw new Error(`the upload of ${key} ended after a restore began`);
          if (store.runs().some((r) => r.id === run.id)) {
            this.sql.exec(`INSERT OR REPLACE INTO image_run_files VALUES (?, ?, ?, ?, ?)`, store.uid, run.id, key, bytes, run.entries);
          }
          refs.push({ file: key, store: name, bytes, entries: run.entries });
        }
      }
    } finally {
      for (const { release } of leases.values()) release();
    }
    return { runs: refs, uploadedBytes };
  }

  /**
   * Imports run files of a checkpoint into operator `uid`'s stores
   * (cleared first) as runs of `checkpointId`, in the order given (newer
   * last), keeping only key groups `range`. A file whose key groups
   * `fileRange` lie within `range` goes in whole and is remembered as its
   * run's file.
   */
  async importRuns(
    uid: string,
    checkpointId: number,
    refs: readonly RunFileRef[],
    fileRange: KeyGroupRange,
    range: KeyGroupRange,
    read: (file: string, offset: number, length: number) => Promise<Uint8Array>,
    pause: Pause,
    /** Whether a file imported whole may be referenced by later checkpoints (not a savepoint's: users delete those). */
    shareable: (file: string) => boolean = () => true,
    /** Given, the state files within `range` are opened and added here instead of read ({@link startFill} reads them). */
    lazy?: OpenedRunFile[],
  ): Promise<void> {
    const op = this.operator(uid);
    for (const ref of refs) {
      const store = ref.store === "timers" ? op.timers : op.states;
      // The key groups of the file that are the handle's state, and of those the ones this subtask owns.
      const held = ref.keyGroups ?? fileRange;
      const own = intersect(held, range);
      if (!own) continue;
      // Every entry of the file is state of this subtask: it may go in as it is.
      const whole = !ref.keyGroups && contains(range, fileRange);
      if (lazy && store === op.states && (whole || shareable(ref.file))) {
        // Opened, not read: its blocks come as records need them (see startFill). Clipped to the key groups owned
        // when it holds others too (a rescale out): those blocks are never read, and later checkpoints reference the
        // file with that clip. A file of other state ids is read now.
        const clip = whole ? undefined : own;
        const opened = await this.track(openRunFile(store, (offset, length) => read(ref.file, offset, length), ref.bytes, pause, checkpointId, clip));
        if (opened) {
          lazy.push(opened);
          if (shareable(ref.file)) this.sql.exec(`INSERT OR REPLACE INTO image_run_files VALUES (?, ?, ?, ?, ?)`, store.uid, opened.runId, ref.file, ref.bytes, ref.entries);
          continue;
        }
      }
      const runs = await this.track(
        importRunRanged(store, (offset, length) => read(ref.file, offset, length), ref.bytes, pause, {
          epoch: checkpointId,
          ...(whole ? {} : { keyGroupStart: own.start, keyGroupEnd: own.end }),
        }),
      );
      // One run, the file as it is: the next checkpoint references the file instead of uploading the run again.
      if (runs.length === 1 && whole && shareable(ref.file)) this.sql.exec(`INSERT OR REPLACE INTO image_run_files VALUES (?, ?, ?, ?, ?)`, store.uid, runs[0].id, ref.file, ref.bytes, ref.entries);
    }
  }

  /**
   * Starts the lazy part of a restore from R2 of operator `uid`: the state
   * files {@link importRuns} opened (`files`, oldest first) are read in the
   * background, and on demand by key through the fill returned
   * (run-fill.ts). Until their last block is stored the operator is marked
   * filling, and a local restore reads R2 instead (a restarted object has
   * lost the runs not whole). `done` settles when the fill ended, or
   * rejects (a read failed; a restore began).
   */
  startFill(uid: string, files: readonly OpenedRunFile[], range: KeyGroupRange): { fill: RunFill; done: Promise<void> } {
    const op = this.operator(uid);
    this.sql.exec(`INSERT OR REPLACE INTO image_filling VALUES (?)`, uid);
    const fill = new RunFill(op.states, files, range, this.options.fillChunkBytes);
    const generation = this.generation;
    const pause: Pause = async () => {
      await (this.options.fillPause ?? this.options.pause)();
      if (generation !== this.generation) throw new Halted();
    };
    const done = fill.run(pause).then(() => {
      if (generation !== this.generation) throw new Halted();
      this.sql.exec(`DELETE FROM image_filling WHERE op = ?`, uid);
      if (this.fills.get(uid)?.fill === fill) this.fills.delete(uid);
      // The runs may be compacted now.
      this.kick();
    });
    // A rejection is the task's to report (see Task); this one only keeps it from being unhandled.
    done.catch(() => undefined);
    this.fills.set(uid, { fill, done });
    return { fill, done };
  }

  /** Forgets the files of runs no longer live (compacted away, dropped, cleared). */
  private pruneRunFiles(): void {
    this.sql.exec(
      `DELETE FROM image_run_files WHERE NOT EXISTS (SELECT 1 FROM state_runs r WHERE r.op = image_run_files.op AND r.run = image_run_files.run AND r.live <> 0)`,
    );
  }

  /** Counts operator `uid`'s keys (every state's and timers' entries), in turns (a rescaled restore's). */
  async count(uid: string, turn: Pause): Promise<number> {
    return this.counter(uid)(turn);
  }

  /**
   * Counts operator `uid`'s keys as they are now, later: the counter reads
   * only the runs live now (and what compactions make of them alone), so
   * it may run once a lazy restore has stored their blocks, while changes
   * since go into newer runs. A compaction that merged them with a newer
   * run before the count began would leave nothing to count: call it
   * before a checkpoint after now completes (none merges runs of
   * checkpoints not completed).
   */
  counter(uid: string): (turn: Pause) => Promise<number> {
    const op = this.operator(uid);
    const stores = [op.states, op.timers].map((store) => ({ store, upTo: store.newestSeq }));
    return async (turn) => {
      let n = 0;
      for (const { store, upTo } of stores) {
        for (const _ of store.scanRaw(0, 0xffff, 0, upTo)) {
          if (++n % COUNT_TURN_ENTRIES === 0) await turn();
        }
      }
      return n;
    };
  }

  // ---- reads ----

  /**
   * Operator `uid`'s state, read on demand; `count` its number of keys
   * (a marker recorded it). A live view: reads see every run sealed since.
   */
  backing(uid: string, count: number, timerCounts?: TimerCounts): StateBacking {
    const op = this.operator(uid);
    const { states, timers, index } = op;
    // A state's store: the timers' entries have one of their own.
    const storeOf = (state: string) => (state.startsWith("timer:") ? timers : states);
    return {
      timeIndex: (domain) => timeIndexOf(index, domain),
      timerCount: (domain) => timerCounts?.[domain],
      prefetch: (entries) => {
        const byStore = new Map<RunStore, PrefetchKey[]>();
        for (const e of entries) {
          const store = storeOf(e.state);
          const id = store.names.byNameOf(e.state)?.id;
          if (id === undefined) continue;
          let keys = byStore.get(store);
          if (!keys) byStore.set(store, (keys = []));
          keys.push({ stateId: id, keyGroup: e.keyGroup, hash: e.hash });
        }
        // At most a quarter of the cache's blocks: the lookups that follow find them still there.
        const max = Math.max(16, Math.floor(states.cache.capacityBytes / 4 / (this.options.targetBlockBytes ?? IMAGE_BLOCK_BYTES)));
        for (const [store, keys] of byStore) store.prefetch(keys, max);
      },
      mayHold: (state) => storeOf(state).names.byNameOf(state) !== undefined,
      get: (state, key, keyGroup) => {
        const store = storeOf(state);
        const id = store.names.byNameOf(state)?.id;
        if (id === undefined) return undefined;
        const bytes = store.get(id, keyGroup, hashKey(key), key);
        if (bytes == null) return undefined;
        // The value's own bytes, less its tag: about the JSON text's length for the objects the budget measures.
        return { kind: KINDS[bytes[0]], value: decodeValue(bytes, 1), bytes: bytes.length - 2 };
      },
      entries: function* () {
        for (const store of [states, timers]) {
          for (const e of store.scan()) {
            yield { state: store.names.describe(e.stateId), key: e.key, kind: KINDS[e.value[0]], value: decodeValue(e.value, 1) };
          }
        }
      },
      timers: function* () {
        for (const e of timers.scan()) yield { state: timers.names.describe(e.stateId), key: e.key, value: decodeValue(e.value, 1) };
      },
      rows: function* () {
        const row: { -readonly [K in keyof BackingRow]: BackingRow[K] } = { state: "", kind: "value", key: "", keyGroup: 0, valueJson: "" };
        for (const store of [states, timers]) {
          for (const e of store.scanRaw()) {
            row.state = store.names.describe(e.stateId);
            row.kind = KINDS[e.bytes[e.valueOffset]];
            row.key = e.key;
            row.keyGroup = e.keyGroup;
            row.valueJson = decodeValueJson(e.bytes, e.valueOffset + 1, e.valueLength - 1);
            yield row;
          }
        }
      },
      count: () => count,
    };
  }

  // ---- background work ----

  /**
   * Stops the background work and waits for it and for run writes in flight
   * (a canceled task's write-back stops at its next turn), so that a
   * restore may drop or clear runs. Background work stays stopped until
   * {@link resume}.
   */
  async halt(): Promise<void> {
    this.halted = true;
    this.generation++;
    while (this.loop || this.writes.size > 0) {
      await Promise.allSettled([this.loop, ...this.writes]);
    }
    this.broken = false;
  }

  /** Lets background work run again after a restore of `restoredCheckpointId` (0: a fresh start). */
  resume(restoredCheckpointId: number): void {
    this.halted = false;
    this.completedCheckpointId = restoredCheckpointId;
    this.kick();
  }

  /**
   * Starts the background work if it is not running: compactions due
   * among runs up to the last completed checkpoint (`completedCheckpointId`
   * when a checkpoint just completed), the pages of dead runs, and rows no
   * restore will use.
   */
  kick(completedCheckpointId?: number): void {
    if (completedCheckpointId !== undefined) this.completedCheckpointId = Math.max(this.completedCheckpointId, completedCheckpointId);
    this.kicked = true;
    if (this.halted || this.running) return;
    this.pruneRows();
    this.running = true;
    const loop: Promise<void> = this.maintain()
      .catch((e) => {
        if (!(e instanceof Halted)) this.options.onError?.(e);
      })
      .finally(() => {
        if (this.loop === loop) this.loop = undefined;
      });
    this.loop = loop;
  }

  private async maintain(): Promise<void> {
    const pause: Pause = async () => {
      await this.options.pause();
      if (this.halted) throw new Halted();
    };
    try {
      await this.maintainWhileKicked(pause);
    } catch (e) {
      this.running = false;
      throw e;
    }
  }

  private async maintainWhileKicked(pause: Pause): Promise<void> {
    for (;;) {
      if (this.halted) {
        this.running = false;
        return;
      }
      this.kicked = false;
      let worked = false;
      for (const op of [...this.ops.values()]) {
        for (const store of [op.states, op.timers, op.index]) {
          const plan = store.planCompaction(this.completedCheckpointId);
          if (!plan) continue;
          await pause();
          const epoch = plan.reason === "epoch" ? store.runs().find((r) => r.id === plan.inputs[0])?.epoch : undefined;
          const merge = store.compact(plan, pause);
          if (epoch !== undefined) this.epochMerge = { epoch, done: merge.then(() => undefined, () => undefined) };
          try {
            await merge;
          } finally {
            this.epochMerge = undefined;
          }
          worked = true;
          this.pruneRows();
        }
      }
      for (const op of [...this.ops.values()]) {
        for (const store of [op.states, op.timers, op.index]) {
          while (store.hasGarbage) {
            await pause();
            store.collectStep();
            worked = true;
          }
        }
      }
      if (!worked && !this.kicked) {
        // In the same turn as the check: a kick from now on starts a new loop.
        this.running = false;
        return;
      }
    }
  }

  /**
   * Deletes rows no restore will use: those a compaction merged across, and
   * all but the newest {@link IMAGE_CHECKPOINTS_KEPT} of each operator (a
   * job whose state does not change writes no runs, and no compaction
   * prunes its rows).
   */
  private pruneRows(): void {
    this.pruneRunFiles();
    const rows = this.sql.exec<{ op: string; checkpoint_id: number }>(`SELECT op, checkpoint_id FROM image_checkpoints ORDER BY op, checkpoint_id DESC`).toArray();
    let op = "";
    let kept = 0;
    for (const r of rows) {
      if (r.op !== op) {
        op = r.op;
        kept = 0;
      }
      const stores = this.ops.get(r.op);
      const reachable = !stores || (stores.states.canRestoreTo(r.checkpoint_id) && stores.timers.canRestoreTo(r.checkpoint_id));
      if (reachable && kept++ < IMAGE_CHECKPOINTS_KEPT) continue;
      this.sql.exec(`DELETE FROM image_checkpoints WHERE op = ? AND checkpoint_id = ?`, r.op, r.checkpoint_id);
      this.sql.exec(`DELETE FROM image_timer_counts WHERE op = ? AND checkpoint_id = ?`, r.op, r.checkpoint_id);
    }
  }

  /** Live runs of operator `uid`'s stores (for tests and metrics). */
  runs(uid: string): { states: ReturnType<RunStore["runs"]>; timers: ReturnType<RunStore["runs"]>; index: ReturnType<RunStore["runs"]> } {
    const op = this.operator(uid);
    return { states: op.states.runs(), timers: op.timers.runs(), index: op.index.runs() };
  }

  /** Waits until the background work is done (tests). */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }
}

/** Adds changes of the time index of `domain` to `batch` (of store `index`). */
function addIndexChanges(index: RunStore, batch: EntryBatch, domain: TimeDomain, changes: readonly TimeIndexChange[]): void {
  const stateId = index.stateId(timerStateName(domain), NAME_KIND);
  for (const c of changes) {
    const { keyGroup, hash } = timeIndexPosition(c.timestampMs);
    const key = timeIndexKey(c.timestampMs, c.position, c.key);
    if (c.live) batch.putEncoded(stateId, keyGroup, hash, key, INDEX_VALUE);
    else batch.delete(stateId, keyGroup, hash, key);
  }
}

/** The time index of `domain` in store `index`, read from the runs live at each scan. */
function timeIndexOf(index: RunStore, domain: TimeDomain): TimeIndex {
  return {
    scan: function* (fromMs) {
      const stateId = index.names.byNameOf(timerStateName(domain))?.id;
      if (stateId === undefined) return;
      const { keyGroup, hash } = timeIndexPosition(fromMs);
      for (const e of index.scanRaw(keyGroup, 0xffff, hash)) {
        if (e.stateId !== stateId) continue;
        const t = parseTimeIndexKey(e.key);
        if (t.timestampMs >= fromMs) yield t;
      }
    },
  };
}

function kindCode(kind: string): number {
  const code = KIND_CODE.get(kind);
  if (code === undefined) throw new TypeError(`unknown state entry kind ${JSON.stringify(kind)}`);
  return code;
}
