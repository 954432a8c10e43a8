/**
 * Takes the keyed-state part of a subtask's checkpoint.
 *
 * The synchronous part, at the barrier, only captures, so that later
 * mutations of live state cannot leak in: the entries changed since the
 * previous snapshot ({@link ChangeCapture}) and, for a full snapshot, every
 * entry ({@link StateCapture}). Both keep immutable values by reference and
 * serialize the others at once. Everything else is asynchronous, while
 * processing goes on: serializing a full file and appending the changes
 * to the local SQLite image as one sorted run per store (gathered, then
 * written a page per turn), and uploading the file to R2. With local
 * recovery off, nothing reads the image back as a checkpoint, so the
 * changes are not written to it: it keeps the checkpoint last restored
 * into it (which, as a backing store, it still serves for the keys not
 * touched since).
 *
 * Incremental snapshots upload only the entries changed since the previous
 * snapshot and extend its chain of files; every `fullEvery` snapshots the
 * chain is materialized in full, so that a restore reads a bounded number
 * of files. Snapshots finish one after another: an increment is only valid
 * if the files before it exist, so a failed upload forces the next snapshot
 * to be full.
 *
 * Each checkpoint (not a savepoint) first takes one bounded step of the
 * background cleanup of state with a TTL ({@link TTL_CLEANUP_PER_CHECKPOINT}
 * entries per state), so that expired entries leave the image and the
 * next files even where no record reads them; a full file leaves out what
 * is expired anyway.
 */
import type { CheckpointConfig } from "../api/checkpoint-options.js";
import type { KeyedStateHandle, RunFileRef } from "../checkpoint/types.js";
import type { KeyGroupRange } from "../graph/key-groups.js";
import { utf8Length } from "../storage/record-limits.js";
import type { ChangeCapture, EntryKind, KeyedStateBackend, StateCapture } from "./keyed-state.js";
import { type EncodedEntry, SnapshotWriter, writeSnapshotChunks } from "./snapshot-format.js";
import type { TimeIndexChange } from "./time-index.js";
import type { TimeDomain } from "./timer-queue.js";

/** Where the snapshotter writes. */
export interface SnapshotStore {
  /** R2 key of the state file of `uid` at `checkpointId`. */
  fileKey(uid: string, checkpointId: number): string;
  /** R2 key of the state file of `uid` in the savepoint taken as `checkpointId`. */
  savepointFileKey(uid: string, checkpointId: number): string;
  /**
   * Stores a file given as text chunks (joined, they are the file).
   * Resolves with its size in UTF-8 bytes when the store knows it (else the
   * snapshotter counts them).
   */
  put(key: string, body: readonly string[]): Promise<number | void>;
  /** Starts writing checkpoint `checkpointId`'s changes to the local image. */
  writeImage(checkpointId: number): ImageWriter;
  /**
   * Records that the local image holds `checkpointId` (null: a write-back
   * starts), synchronously, with the number of keys of each operator in
   * it, so that a restore need not count them.
   */
  markImage(checkpointId: number | null, keys?: Readonly<Record<string, number>>, timers?: Readonly<Record<string, Partial<Record<TimeDomain, number>>>>): void;
  /** Yields to other work between two turns of snapshot work (serializing a large file, writing the image). */
  pause(): Promise<void>;
  /**
   * The runs of operator `uid`'s local image as files of checkpoint
   * `checkpointId`: uploads those not uploaded before, references the
   * others. Called once the checkpoint's write-back is sealed. A store
   * without it (tests of the file formats) keeps state files.
   */
  uploadRuns?(uid: string, checkpointId: number): Promise<{ readonly runs: RunFileRef[]; readonly uploadedBytes: number }>;
}

/** A checkpoint's changes on their way into the local image. */
export interface ImageWriter {
  /** Gathers changed entries of operator `uid`, synchronously. */
  add(uid: string, changed: readonly EncodedEntry[]): void;
  /** Gathers changes of operator `uid`'s time index in `domain` (taken with its entries' changes), synchronously. */
  addTimeIndex(uid: string, domain: TimeDomain, changes: readonly TimeIndexChange[]): void;
  /**
   * Writes what was gathered into the image (a run per store), in turns:
   * `turn()` between two, which throws to stop. The image holds the
   * changes once this resolves.
   */
  seal(turn: () => Promise<void>): Promise<void>;
}

/** One operator's part of a prepared snapshot. */
interface PreparedOperator {
  readonly uid: string;
  /** The entries changed since the previous snapshot, for the image (and a delta file). */
  readonly changed: ChangeCapture;
  /** The file to upload, if any: every entry as captured at the barrier (full), or the changes (delta). */
  readonly file: { key: string; kind: "full"; capture: StateCapture } | { key: string; kind: "delta" } | null;
  readonly chain: ChainState;
  /** The chain a delta extends (its size is known only once its own upload finished). */
  readonly base: ChainState | null;
  /** Keys in the snapshot (a savepoint's: counted as its file is serialized, when it streams entries from the image). */
  entries: number;
  /** Restored keys not in `entries` yet: a lazy restore still counts them (KeyedStateBackend.countRestoredLater). */
  readonly uncounted?: Promise<number>;
  /** Timers per time domain at the barrier (for the image's marker: a restore then reads none to count them). */
  readonly timers?: Partial<Record<TimeDomain, number>>;
  /** The state goes up as the image's runs (the changes are sealed as one, then every live run is referenced). */
  readonly runs?: boolean;
}

/** A snapshot after its synchronous part. */
export interface PreparedSnapshot {
  readonly checkpointId: number;
  /** A savepoint: self-contained full files, no image write-back, no effect on the incremental chain. */
  readonly savepoint?: boolean;
  readonly operators: readonly PreparedOperator[];
  /** Some file extends an earlier chain, so earlier uploads must have succeeded. */
  readonly dependsOnEarlier: boolean;
}

/** What an uploaded snapshot reports. */
export interface CompletedSnapshot {
  readonly handles: Record<string, KeyedStateHandle>;
  readonly checkpointedBytes: number;
  readonly stateBytes: number;
}

interface ChainState {
  files: string[];
  /** Byte sizes of `files`, as far as known. */
  bytes: number;
  deltas: number;
}

/** Changed entries gathered for the image per turn. */
const IMAGE_TURN_ENTRIES = 2000;

/** Entries of a full file serialized per turn (a few milliseconds each). */
const SERIALIZE_TURN_ENTRIES = 20_000;

const NO_CHANGES: ChangeCapture = { count: 0, encode: () => [] };

/**
 * Entries of each state with a TTL that a checkpoint looks at for expiry
 * before it captures (map entries and list elements count one each): a
 * bounded step of the background cleanup, at most a few milliseconds of
 * the synchronous part.
 */
export const TTL_CLEANUP_PER_CHECKPOINT = 1000;

export class KeyedSnapshotter {
  private readonly chains = new Map<string, ChainState>();
  private forceFull = false;
  private canceled = false;
  /**
   * A write-back failed while the task went on: the image misses changes
   * that no longer count as dirty, so no later checkpoint may reference its
   * runs. Each one fails until a restore replaces the task.
   */
  private imageFailed: string | undefined;
  /** The newest checkpoint this subtask took part in or restored: a flush's runs belong to the next one. */
  private lastBarrier = 0;
  /** A flush is capturing or sealing. */
  private flushing = false;
  private uploads: Promise<boolean> = Promise.resolve(true);
  /**
   * The seals into the image (the write-backs of checkpoints as runs, and
   * flushes), one after the other so that a later one's runs are newer.
   * Not behind the uploads to R2: a checkpoint's upload lists its runs
   * (epochs up to its own id) when it begins, so runs sealed while it goes
   * on are not part of it, and the changes they seal may be evicted
   * without waiting for R2.
   */
  private seals: Promise<void> = Promise.resolve();
  /** Seals begun and not ended. */
  private sealsInFlight = 0;

  constructor(
    private readonly store: SnapshotStore,
    private readonly config: Pick<CheckpointConfig, "incremental" | "fullEvery"> & { readonly localRecovery?: boolean },
    private readonly range: KeyGroupRange,
  ) {}

  /**
   * Whether checkpoints go up as the image's runs: with local recovery (the
   * image holds every checkpoint's changes) unless `incremental` is false,
   * which asks for a full state file at every checkpoint.
   */
  get usesRuns(): boolean {
    return this.config.localRecovery !== false && this.config.incremental !== false && this.store.uploadRuns !== undefined;
  }

  /** Sets the chains a restore started from, so that the next increments extend them. */
  restoredFrom(handles: Readonly<Record<string, KeyedStateHandle>>): void {
    for (const [uid, h] of Object.entries(handles)) {
      // Run files are no chain of state files to extend: without runs (local recovery off), the next snapshot is full.
      if (h.runs) this.chains.delete(uid);
      else this.chains.set(uid, { files: [...h.files], bytes: h.stateBytes, deltas: h.files.length - 1 });
    }
  }

  /** A restore of checkpoint `checkpointId`: changes flushed from now on belong to a later checkpoint. */
  restoredAt(checkpointId: number): void {
    this.lastBarrier = Math.max(this.lastBarrier, checkpointId);
  }

  /** The restore could not reuse chains (e.g. rescaled): the next snapshot is full. */
  requireFull(): void {
    this.forceFull = true;
    this.chains.clear();
  }

  /** Stops writing: a canceled task must not touch the image a new attempt restores into. */
  cancel(): void {
    this.canceled = true;
  }

  /** The synchronous part: capture changed (or all) entries as serialized values. */
  prepare(checkpointId: number, backends: ReadonlyMap<string, KeyedStateBackend>, forceFull = false): PreparedSnapshot {
    this.lastBarrier = Math.max(this.lastBarrier, checkpointId);
    const operators: PreparedOperator[] = [];
    let dependsOnEarlier = false;
    const runs = this.usesRuns;
    for (const [uid, backend] of backends) {
      // Before the capture: what the cleanup removes goes into this checkpoint's changes.
      backend.cleanupExpired(TTL_CLEANUP_PER_CHECKPOINT);
      const changed = backend.captureChanges(this.range);
      if (runs) {
        // The changes only: what the image holds already is referenced, not copied.
        const uncounted = backend.uncountedRestoredKeys;
        operators.push({
          uid,
          changed,
          file: null,
          chain: { files: [], bytes: 0, deltas: 0 },
          base: null,
          entries: backend.size(),
          timers: backend.timerCounts(),
          runs: true,
          ...(uncounted ? { uncounted } : {}),
        });
        continue;
      }
      const chain = this.chains.get(uid);
      const full = forceFull || this.forceFull || !this.config.incremental || !chain || chain.deltas + 1 >= this.config.fullEvery;
      let file: PreparedOperator["file"] = null;
      let base: ChainState | null = null;
      let next: ChainState;
      if (full) {
        const key = this.store.fileKey(uid, checkpointId);
        const capture = backend.capture(this.range);
        // Entries streamed from the image (`rest`) are known only when serialized: a file is written if there may be any.
        file = capture.count > 0 || (capture.rest && (backend.size() > 0 || backend.uncountedRestoredKeys)) ? { key, kind: "full", capture } : null;
        next = { files: file ? [key] : [], bytes: 0, deltas: 0 };
      } else if (changed.count === 0) {
        next = chain;
        if (chain.files.length > 0) dependsOnEarlier = true;
      } else {
        const key = this.store.fileKey(uid, checkpointId);
        file = { key, kind: "delta" };
        next = { files: [...chain.files, key], bytes: 0, deltas: chain.deltas + 1 };
        base = chain;
        dependsOnEarlier = true;
      }
      this.chains.set(uid, next);
      operators.push({ uid, changed, file, chain: next, base, entries: backend.size(), timers: backend.timerCounts() });
    }
    this.forceFull = false;
    return { checkpointId, operators, dependsOnEarlier };
  }

  /**
   * The synchronous part of a savepoint: full files in the canonical format,
   * under the savepoint's own keys. The changes since the last checkpoint
   * stay marked, so the next incremental checkpoint still carries them.
   */
  prepareSavepoint(checkpointId: number, backends: ReadonlyMap<string, KeyedStateBackend>): PreparedSnapshot {
    this.lastBarrier = Math.max(this.lastBarrier, checkpointId);
    const operators: PreparedOperator[] = [];
    for (const [uid, backend] of backends) {
      const key = this.store.savepointFileKey(uid, checkpointId);
      const capture = backend.capture(this.range);
      operators.push({ uid, changed: NO_CHANGES, file: { key, kind: "full", capture }, chain: { files: [key], bytes: 0, deltas: 0 }, base: null, entries: capture.count });
    }
    return { checkpointId, operators, dependsOnEarlier: false, savepoint: true };
  }

  /**
   * The asynchronous part, after every earlier snapshot: write back the
   * image, build and upload the files. Resolves with the handles to ack.
   */
  upload(s: PreparedSnapshot): Promise<CompletedSnapshot> {
    if (s.operators.some((op) => op.runs)) return this.uploadAsRuns(s);
    const earlier = this.uploads;
    const done = (async (): Promise<CompletedSnapshot> => {
      const earlierOk = await earlier;
      if (this.canceled) throw new Error(`snapshot ${s.checkpointId} canceled`);
      if (!earlierOk && s.dependsOnEarlier) {
        // The image must still get these changes: they were taken off the dirty list.
        if (this.writesImage(s)) await this.writeBack(s);
        throw new Error(`snapshot ${s.checkpointId} extends files of an earlier snapshot whose upload failed`);
      }
      // Build each file (CPU, in turns for a full one) and upload it while the next is built and the image is written back.
      const uploads = new Map<PreparedOperator, Promise<number>>();
      // A delta's encoded changes are written back too: encoded once.
      const encoded = new Map<PreparedOperator, EncodedEntry[]>();
      for (const op of s.operators) {
        const f = op.file;
        if (!f) continue;
        let body: string[];
        if (f.kind === "full") {
          const serialized = await this.serialize({ uid: op.uid, kind: "full", checkpointId: s.checkpointId }, f.capture);
          body = serialized.body;
          if (s.savepoint) op.entries = serialized.entries;
        } else {
          const changes = op.changed.encode(0, op.changed.count);
          encoded.set(op, changes);
          body = writeSnapshotChunks({ uid: op.uid, kind: "delta", checkpointId: s.checkpointId }, changes);
        }
        const put = this.store.put(f.key, body).then((bytes) => (typeof bytes === "number" ? bytes : body.reduce((n, c) => n + utf8Length(c), 0)));
        // Not lost: `await put` below throws it. This only keeps an upload that fails while an earlier one
        // is awaited from counting as an unhandled rejection meanwhile.
        put.catch(() => undefined);
        uploads.set(op, put);
      }
      if (this.writesImage(s)) await this.writeBack(s, encoded);
      const sizes = new Map<PreparedOperator, number>();
      for (const [op, put] of uploads) sizes.set(op, await put);
      const handles: Record<string, KeyedStateHandle> = {};
      let checkpointedBytes = 0;
      let stateBytes = 0;
      for (const op of s.operators) {
        const uploaded = sizes.get(op) ?? 0;
        // Sizes become known here; later snapshots share the chain object, so it is updated in place.
        if (sizes.has(op)) op.chain.bytes = (op.base?.bytes ?? 0) + uploaded;
        handles[op.uid] = { files: op.chain.files, keyGroups: this.range, stateBytes: op.chain.bytes, checkpointedBytes: uploaded, entries: op.entries };
        checkpointedBytes += uploaded;
        stateBytes += op.chain.bytes;
      }
      return { handles, checkpointedBytes, stateBytes };
    })();
    this.uploads = done.then(
      () => true,
      () => {
        this.forceFull = true;
        return false;
      },
    );
    return done;
  }

  /**
   * Whether a flush may start now: checkpoints go up as runs (a flush's
   * run joins the next checkpoint's), and none is under way.
   */
  get mayFlush(): boolean {
    return this.usesRuns && !this.flushing && !this.canceled && this.imageFailed === undefined;
  }

  /**
   * Seals the entries changed since the last capture as runs of the next
   * checkpoint, between checkpoints (RocksDB's memtable flush): once
   * sealed they are clean, so a memory budget may evict them. The runs'
   * epoch is the newest checkpoint seen + 1: a restore to that one or an
   * earlier one drops them, and the next checkpoint's listing (epochs up
   * to its own id) includes them. Sealed after every earlier snapshot's
   * write-back, so that its runs are newer. A failure fails every later
   * checkpoint, as a failed write-back does.
   */
  flush(backends: ReadonlyMap<string, KeyedStateBackend>): Promise<void> {
    if (!this.mayFlush) return Promise.resolve();
    const epoch = this.lastBarrier + 1;
    const operators: PreparedOperator[] = [];
    for (const [uid, backend] of backends) {
      const changed = backend.captureChanges(this.range);
      if (changed.count > 0 || changed.timeIndex) operators.push({ uid, changed, file: null, chain: { files: [], bytes: 0, deltas: 0 }, base: null, entries: backend.size(), runs: true });
    }
    if (operators.length === 0) return Promise.resolve();
    this.flushing = true;
    const what = `the flush of changes after checkpoint ${epoch - 1}`;
    const sealed = this.sealInTurn(what, async () => {
      await this.seal(epoch, operators, new Map(), `${what} was canceled`);
      for (const op of operators) op.changed.persisted?.();
    });
    return sealed.then(
      () => {
        this.flushing = false;
      },
      () => {
        this.flushing = false;
      },
    );
  }

  /**
   * Runs `work` (a seal into the image) after every earlier seal. A
   * failure leaves the image without changes no longer marked dirty, so it
   * fails every later seal and checkpoint until a restore.
   */
  private sealInTurn(what: string, work: () => Promise<void>): Promise<void> {
    const earlier = this.seals;
    this.sealsInFlight++;
    const sealed = (async () => {
      try {
        await earlier;
        if (this.canceled) throw new Error(`${what} was canceled`);
        if (this.imageFailed) throw new Error(`${what} cannot go to the local image: ${this.imageFailed}`);
        await work();
      } catch (e) {
        if (!this.canceled) this.imageFailed ??= `${what} failed (${(e as Error)?.message ?? e}); a restore is needed`;
        throw e;
      } finally {
        this.sealsInFlight--;
      }
    })();
    this.seals = sealed.catch(() => undefined);
    return sealed;
  }

  /**
   * While changes are being sealed into the image: resolves when every
   * seal begun so far has ended (succeeded or not). What they sealed may
   * then be evicted.
   */
  get sealing(): Promise<void> | undefined {
    return this.sealsInFlight > 0 ? this.seals : undefined;
  }

  /**
   * A snapshot as runs: the changes sealed as the image's newest runs (in
   * turn with other seals), then, after every earlier snapshot's upload,
   * each operator's live runs uploaded where new and referenced.
   */
  private uploadAsRuns(s: PreparedSnapshot): Promise<CompletedSnapshot> {
    const sealed = this.sealInTurn(`the write-back of checkpoint ${s.checkpointId}`, () => this.writeBack(s));
    const earlier = this.uploads;
    const done = (async (): Promise<CompletedSnapshot> => {
      await sealed;
      await earlier;
      if (this.canceled) throw new Error(`snapshot ${s.checkpointId} canceled`);
      return this.uploadRuns(s);
    })();
    this.uploads = done.then(
      () => true,
      () => false,
    );
    return done;
  }

  /** Each operator's live runs up to the snapshot's epoch, uploaded where new and referenced. */
  private async uploadRuns(s: PreparedSnapshot): Promise<CompletedSnapshot> {
    const handles: Record<string, KeyedStateHandle> = {};
    let checkpointedBytes = 0;
    let stateBytes = 0;
    for (const op of s.operators) {
      if (this.canceled) throw new Error(`snapshot ${s.checkpointId} canceled`);
      const up = await this.store.uploadRuns!(op.uid, s.checkpointId);
      const bytes = up.runs.reduce((n, r) => n + r.bytes, 0);
      // The handle counts every key: one taken while a lazy restore still counted its keys completes once it has.
      const entries = op.entries + (op.uncounted ? await op.uncounted : 0);
      handles[op.uid] = { files: up.runs.map((r) => r.file), runs: up.runs, keyGroups: this.range, stateBytes: bytes, checkpointedBytes: up.uploadedBytes, entries };
      checkpointedBytes += up.uploadedBytes;
      stateBytes += bytes;
    }
    return { handles, checkpointedBytes, stateBytes };
  }

  /** Whether snapshot `s` goes to the local image: checkpoints do when local recovery is on; savepoints never. */
  private writesImage(s: PreparedSnapshot): boolean {
    return !s.savepoint && this.config.localRecovery !== false;
  }

  /**
   * Serializes a full file from its capture, in turns that let processing
   * go on between them: the entries captured from memory, then those
   * streamed from the image (a memory budget evicted them, or no record
   * read them since a restore).
   */
  private async serialize(header: { uid: string; kind: "full"; checkpointId: number }, capture: StateCapture): Promise<{ body: string[]; entries: number }> {
    const writer = new SnapshotWriter();
    const add = (state: string, kind: EntryKind, key: string, keyGroup: number, valueJson: string) => writer.add(state, kind, keyGroup, key, valueJson);
    let turns = 0;
    const turn = async () => {
      if (turns++ === 0) return;
      await this.store.pause();
      if (this.canceled) throw new Error(`snapshot ${header.checkpointId} canceled`);
    };
    for (let i = 0; i < capture.count; i += SERIALIZE_TURN_ENTRIES) {
      await turn();
      capture.forEach(i, i + SERIALIZE_TURN_ENTRIES, add);
    }
    let entries = capture.count;
    if (capture.rest) {
      let inTurn = SERIALIZE_TURN_ENTRIES;
      for (const [state, kind, key, keyGroup, valueJson] of capture.rest()) {
        if (inTurn++ >= SERIALIZE_TURN_ENTRIES) {
          await turn();
          inTurn = 1;
        }
        writer.add(state, kind, keyGroup, key, valueJson);
        entries++;
      }
    }
    return { body: writer.finish(header), entries };
  }

  /**
   * Seals the operators' captured changes into the image as runs of
   * `epoch`: gathered in small turns, each encoded in its turn unless
   * given, then written a page per turn. Throws `canceled` once the
   * snapshotter is canceled.
   */
  private async seal(epoch: number, operators: readonly PreparedOperator[], encoded: ReadonlyMap<PreparedOperator, readonly EncodedEntry[]>, canceled: string): Promise<void> {
    const writer = this.store.writeImage(epoch);
    let turns = 0;
    const turn = async () => {
      if (turns++ > 0) await this.store.pause();
      if (this.canceled) throw new Error(canceled);
    };
    for (const op of operators) {
      for (const t of op.changed.timeIndex ?? []) writer.addTimeIndex(op.uid, t.domain, t.changes);
      const all = encoded.get(op);
      for (let i = 0; i < op.changed.count; i += IMAGE_TURN_ENTRIES) {
        await turn();
        const end = Math.min(i + IMAGE_TURN_ENTRIES, op.changed.count);
        writer.add(op.uid, all ? all.slice(i, end) : op.changed.encode(i, end));
      }
    }
    await writer.seal(turn);
    if (this.canceled) throw new Error(canceled);
  }

  /**
   * Writes the captured changes to the local image: gathered in small
   * turns, each encoded in its turn unless given, then sealed as runs (a
   * page per turn); marks the image when whole.
   */
  private async writeBack(s: PreparedSnapshot, encoded: ReadonlyMap<PreparedOperator, readonly EncodedEntry[]> = new Map()): Promise<void> {
    this.store.markImage(null);
    await this.seal(s.checkpointId, s.operators, encoded, `snapshot ${s.checkpointId} canceled`);
    this.store.markImage(
      s.checkpointId,
      // Not an operator whose restored keys are still being counted: a local restore to this checkpoint could not
      // know its keys, and restores it from R2.
      Object.fromEntries(s.operators.filter((op) => !op.uncounted).map((op) => [op.uid, op.entries])),
      Object.fromEntries(s.operators.flatMap((op) => (op.timers ? [[op.uid, op.timers]] : []))),
    );
    // Sealed into the image: what these changes captured is clean again (a memory budget may evict it).
    for (const op of s.operators) op.changed.persisted?.();
  }
}
