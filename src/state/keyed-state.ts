/**
 * The heap keyed-state backend: the working set of every keyed state lives
 * in JS maps (millions of updates per second), and what changed since the
 * last snapshot is tracked so that it can be captured at the barrier and
 * written back to the subtask's SQLite image.
 *
 * After a local restore the maps start empty over a {@link StateBacking}
 * (the image): a key is read from it on first access and cached. Restoring
 * is then O(1) instead of O(state), so a restarted job processes its first
 * record at once; keys no one touches stay on disk.
 *
 * Timers are keyed state too (entries of kind "timer", see
 * `timer-queue.ts`): per operator and time domain, a {@link TimerQueue}
 * over the key's sorted timestamps. Under a budget, with the local image,
 * an {@link IndexedTimerQueue} fires them from the image's time index
 * (`time-index.ts`), and their entries are evicted and read back like any
 * state; a restore reads none of them. Otherwise they are all in memory
 * (a {@link HeapTimerQueue}): a restore reads every timer entry and
 * rebuilds the queues, since firing needs the earliest timer of all keys.
 *
 * A state declared with a TTL (`ttl.ts`, `ttl-state.ts`) keeps each entry
 * with its last-access time on the backend's clock. Expired entries are
 * cleaned up in the background, a bounded number at a time: a few per
 * access of the state ({@link KeyedStateOptions.cleanupPerAccess}, Flink's
 * incremental cleanup) and more at each checkpoint
 * ({@link KeyedStateBackend.cleanupExpired}); a full snapshot leaves them
 * out ({@link KeyedStateBackend.capture}). The cleanup walks the in-memory
 * table only: keys of a local image that no record touched since the
 * restore are dropped by the next full snapshot, or when read.
 *
 * With a memory budget ({@link KeyedStateBackend.useBudget}, see
 * `memory-budget.ts` and docs/state-backend.md), the bytes of the entries
 * held in memory are estimated, and when they go over the budget, clean
 * entries are evicted, least recently used first by a CLOCK over each
 * state's table: an entry is clean when the image holds its value (it was
 * read from the image, or a checkpoint captured it and finished writing it
 * back) and nothing changed it since. An evicted key is read back through
 * the backing on its next access, as after a restore. Dirty entries are
 * never evicted, nor the entries a capture still being written back holds.
 */
import {
  checkStateTtl,
  type ListState,
  type ListStateDescriptor,
  type MapState,
  type MapStateDescriptor,
  type StateDescriptor,
  type StateTtlConfig,
  type ValueState,
  type ValueStateDescriptor,
} from "../api/state.js";
import { JobDefinitionError } from "../errors.js";
import { type Key, type KeyGroupRange, hashKey, inRange, keyText } from "../graph/key-groups.js";
import type { EncodedEntry } from "./snapshot-format.js";
import { checkStateEntry, displayKey, stringEntryMayBeTooLarge } from "./state-limits.js";
import { EVICT_SCAN_MAX, EVICT_TO_FRACTION, estimateEntryBytes, isMeasuredByJson, measuredEntryBytes } from "./memory-budget.js";
import { composite } from "./runs/run-format.js";
import { type ImageKeyOrder, IndexedTimerQueue, type TimeIndex, type TimeIndexChange, type TimerEntryStore } from "./time-index.js";
import { HeapTimerQueue, type TimeDomain, type TimerQueue, timerStateName } from "./timer-queue.js";
import {
  adoptLive,
  isTtlKind,
  isTtlLive,
  liveSize,
  plainKindOf,
  pruneLive,
  sameTtl,
  Stamped,
  type TtlKind,
  ttlFromPersisted,
  ttlKindOf,
  type TtlLive,
  ttlPolicy,
  type TtlPolicy,
  ttlToPersisted,
  unexpiredLive,
  unexpiredPersisted,
} from "./ttl.js";
import { type TtlCell, ttlListState, ttlMapState, ttlValueState } from "./ttl-state.js";

/** One key's value of one state, as persisted. `value` undefined means deleted. */
export interface StateEntry {
  readonly state: string;
  readonly kind: EntryKind;
  readonly key: string;
  readonly keyGroup: number;
  readonly value: unknown;
}

/**
 * What an entry holds: a user state's value, map or list (with the
 * last-access times of its parts when the state has a TTL: "value-ttl",
 * "map-ttl", "list-ttl", see `ttl.ts`), or a key's timers (sorted
 * timestamps) in one time domain.
 */
export type EntryKind = StateDescriptor["kind"] | TtlKind | "timer";

type Kind = EntryKind;

/** A state's kind as declared (an entry's kind without its TTL). */
type DeclaredKind = StateDescriptor["kind"] | "timer";

/** Options of a {@link KeyedStateBackend}. */
export interface KeyedStateOptions {
  /** The subtask's clock (processing time): what a TTL counts on. A state with a TTL needs it. */
  readonly now?: () => number;
  /**
   * Entries of a state with a TTL that each access of it looks at for
   * expiry, among other keys (Flink's incremental cleanupSize). Default 5.
   * They are looked at {@link TTL_CLEANUP_ACCESSES} accesses at a time.
   */
  readonly cleanupPerAccess?: number;
}

/** Default of {@link KeyedStateOptions.cleanupPerAccess}, as Flink's. */
export const TTL_CLEANUP_PER_ACCESS = 5;

/**
 * The cleanup on access runs every this many accesses of a state, for
 * that many accesses' worth of entries: one step's fixed cost (the clock,
 * resuming the walk) would otherwise cost more than looking at 5 entries.
 */
export const TTL_CLEANUP_ACCESSES = 16;

/**
 * Every entry of a backend as it was when {@link KeyedStateBackend.capture}
 * was called, to be serialized later while the live state changes.
 */
export interface StateCapture {
  /** Number of entries captured from memory. */
  readonly count: number;
  /**
   * Calls `fn` for the entries from `start` (0-based) up to `end`
   * (exclusive), in capture order, with each value's JSON.
   */
  forEach(start: number, end: number, fn: (state: string, kind: Kind, key: string, keyGroup: number, valueJson: string) => void): void;
  /**
   * The entries that were only in the image at the capture (never read, or
   * evicted), read from it as the iteration goes, after the others: a full
   * snapshot streams them instead of holding them all in memory. Valid
   * until the next write-back to the image starts (snapshots finish one
   * after another, see `snapshotter.ts`): the image changes only for keys
   * that were in memory at the capture, which this leaves out.
   */
  rest?(): Iterable<CapturedRow>;
}

/** An entry of a {@link StateCapture} read from the image: state, kind, key, key group, value's JSON. */
export type CapturedRow = readonly [state: string, kind: Kind, key: string, keyGroup: number, valueJson: string];

/**
 * The entries changed since the previous capture, as they were when
 * {@link KeyedStateBackend.captureChanges} was called, to be encoded later.
 */
export interface ChangeCapture {
  /** Number of changed entries (deletions included). */
  readonly count: number;
  /** Entries from `start` (0-based) up to `end` (exclusive), each value's JSON computed now (null: deleted). */
  encode(start: number, end: number): EncodedEntry[];
  /**
   * The changes are in the image now (written back and sealed): the
   * entries they captured that did not change since are clean again, and
   * may be evicted. Not called when the image does not get them.
   */
  persisted?(): void;
  /** The time index's changes taken with these entries (timers kept in the image's time index), to seal with them. */
  readonly timeIndex?: readonly { readonly domain: TimeDomain; readonly changes: readonly TimeIndexChange[] }[];
}

/** An entry {@link StateBacking.prefetch} reads ahead for: a state, and its key's group and hash. */
export interface PrefetchEntry {
  readonly state: string;
  readonly keyGroup: number;
  readonly hash: number;
}

/** An entry of {@link StateBacking.rows}: as a full snapshot writes it, its value's JSON text not parsed. */
export interface BackingRow {
  readonly state: string;
  readonly kind: Kind;
  readonly key: string;
  readonly keyGroup: number;
  readonly valueJson: string;
}

/** Persisted state read on demand (the local image). Values are in persisted form. */
export interface StateBacking {
  /** The persisted value of `key` (whose key group is `keyGroup`) in `state`. */
  get(state: string, key: string, keyGroup: number): { kind: Kind; value: unknown; bytes?: number } | undefined;
  /** Every persisted entry, read as the iteration goes (it may be suspended between entries). */
  entries(): Iterable<{ state: string; key: string; kind: Kind; value: unknown }>;
  /** Every persisted timer entry (kind "timer"), without reading the others: a restore loads all timers at once. */
  timers(): Iterable<{ state: string; key: string; value: unknown }>;
  /** The timers of `domain` by time (the local image's time index), when the backing keeps one. */
  timeIndex?(domain: TimeDomain): TimeIndex;
  /** The number of timers of `domain` it holds, when known without reading them. */
  timerCount?(domain: TimeDomain): number | undefined;
  /**
   * Reads ahead, together, what {@link get} would read one by one for these
   * entries (state, key group and key hash): a batch's keys, before its
   * records are processed. Optional; nothing is returned.
   */
  prefetch?(entries: readonly PrefetchEntry[]): void;
  /** Whether it may hold entries of `state` (false: no entry was ever written): a read ahead skips the others. Optional. */
  mayHold?(state: string): boolean;
  count(): number;
  /**
   * {@link entries} as a full snapshot streams them: with the key group and
   * the value's JSON text, nothing parsed. The row yielded may be reused:
   * read it before asking for the next. Optional.
   */
  rows?(): Iterable<BackingRow>;
}

/** Keyed state of one operator in one subtask. */
export class KeyedStateBackend {
  private readonly tables = new Map<string, Map<string, unknown>>();
  private readonly kinds = new Map<string, Kind>();
  /**
   * Per state, the keys changed since the last capture with their live
   * value (undefined: deleted). Keeping the value spares a capture one
   * lookup per key in a large table.
   */
  private readonly dirty = new Map<string, Map<string, unknown>>();
  private keyTextNow = "";
  private keyNow: Key = "";
  private backing: StateBacking | undefined;
  /** Keys in every slot's {@link Slot.deleted}: none, no miss needs to look. */
  private deletedCount = 0;
  /** Number of keys with state, over all states, while a backing is attached. */
  private count = 0;
  /** The restored keys, while the restore still counts them (see {@link countRestoredLater}): not in {@link count} yet. */
  private restoredUncounted: Promise<number> | undefined;
  /** Each declared state's table, changes and accessor, found with one lookup per record. */
  private readonly slots = new Map<string, Slot>();
  /** The descriptor {@link declared} took last, with its TTL then, and its slot. */
  private lastDeclared?: StateDescriptor;
  private lastDeclaredTtl?: StateDescriptor["ttl"];
  private lastDeclaredSlot?: Slot;
  /** The timer queue of each time domain, once asked for. */
  private readonly timerQueues = new Map<TimeDomain, HeapTimerQueue | IndexedTimerQueue>();
  /**
   * Under a budget, the image whose time index holds the timers (the
   * backing, or the spill of a fresh start): timers are then read from it in
   * time order and their per-key entries are evicted like any state.
   * Undefined: every timer is in memory (a {@link HeapTimerQueue}).
   */
  private timeIndexSource: StateBacking | undefined;

  /** The clock TTLs count on. */
  private readonly now: () => number;
  private readonly cleanupPerAccess: number;
  /** The states declared with a TTL, for the background cleanup. */
  private readonly ttlSlots: Slot[] = [];

  // ---- memory budget (see useBudget) ----
  /** The budget in bytes; undefined: none, nothing is evicted. */
  private budgetBytes: number | undefined;
  /** The image to evict to when no backing is attached (a fresh start): attached at the first eviction. */
  private spill: StateBacking | undefined;
  /** Estimated bytes of the entries in memory (timers included). */
  private bytesNow = 0;
  /** Of {@link bytesNow}, the indexed timer queues' overlays (they live as long as their queues, across a reset). */
  private overlayBytes = 0;
  private readonly countOverlay = (delta: number): void => {
    this.bytesNow += delta;
    this.overlayBytes += delta;
  };
  /** Entries evicted, over the backend's life. */
  private evictedTotal = 0;
  /** Entries read from the backing, over the backend's life. */
  private readbacksTotal = 0;
  /** Captures of changes not yet written back to the image. */
  private unpersisted = 0;
  /** Under a budget, those captures' tables: their keys are not evicted (the image lacks their values) until written back. */
  private readonly pendingCaptures = new Set<readonly CapturedTable[]>();
  /** Counts restores: a capture taken before the last one reports its write-back to no one. */
  private restores = 0;
  /** Dirty marks were cleared without a write-back (takeDirty): the image may lag memory, nothing is evicted. */
  private imageUnknown = false;
  /** The eviction found nothing to evict in two passes: it waits for the next write-back. */
  private evictBlocked = false;
  /** Entries the eviction looked at since it last evicted one. */
  private scannedSinceEvict = 0;
  /** The slot the CLOCK hand is in (an index into {@link evictable}). */
  private handSlot = 0;
  /** Slots the eviction walks: user states, not timers. */
  private readonly evictable: Slot[] = [];
  /** The state and key of the last read that found nothing: the write that follows adds an entry. */
  private missSlot: Slot | undefined;
  private missKey = "";

  constructor(
    private readonly maxParallelism: number,
    private readonly operatorLabel: string,
    private readonly options: KeyedStateOptions = {},
  ) {
    this.now = options.now ?? noClock(operatorLabel);
    this.cleanupPerAccess = options.cleanupPerAccess ?? TTL_CLEANUP_PER_ACCESS;
  }

  /** The image's order of keys, for the timers of one time ({@link IndexedTimerQueue}). */
  private readonly imageKeyOrder: ImageKeyOrder = {
    positionOf: (text) => {
      // A key's text hashes as the key does (keyText of a string is the string).
      const hash = hashKey(text);
      return composite(hash % this.maxParallelism, hash);
    },
    wanted: () => this.someOutOfMemory(),
  };

  /** Sets the key that state accessors read and write. */
  setCurrentKey(key: Key): void {
    this.keyNow = key;
    this.keyTextNow = keyText(key);
  }

  get currentKey(): Key {
    return this.keyNow;
  }

  /** The canonical text of the current key (what state and timers are stored under). */
  get currentKeyText(): string {
    return this.keyTextNow;
  }

  /**
   * Bounds the bytes of entries held in memory to `budgetBytes` (see
   * `memory-budget.ts` for the estimate), evicting clean entries to the
   * image, which `spill` reads when no backing is attached (a fresh
   * start; the image is then empty until checkpoints write it). Needs
   * checkpoints that write the image back and call
   * {@link ChangeCapture.persisted}: without them nothing is ever clean
   * and nothing is evicted.
   */
  useBudget(budgetBytes: number, spill: StateBacking): void {
    this.budgetBytes = budgetBytes;
    this.spill = spill;
    if (spill.timeIndex && !this.timeIndexSource) this.indexTimers(spill);
  }

  /**
   * Keeps timers in `source`'s time index from now on (a fresh start under a
   * budget): timers already registered are handed to the indexed queues,
   * which put them in the index at the next seal.
   */
  private indexTimers(source: StateBacking): void {
    this.timeIndexSource = source;
    for (const [domain, q] of [...this.timerQueues]) {
      this.timerQueues.delete(domain);
      if (q.size() === 0) continue;
      const indexed = this.timers(domain) as IndexedTimerQueue;
      for (const [key, timestamps] of this.slot(timerStateName(domain), "timer").table) for (const ts of timestamps as number[]) indexed.adopt(key, ts);
    }
    this.syncEvictableTimers();
  }

  /** Timer entries are evicted when an index holds the timers by time; never otherwise (the heap queue reads them in memory). */
  private syncEvictableTimers(): void {
    for (const slot of this.slots.values()) {
      if (slot.kind !== "timer") continue;
      const at = this.evictable.indexOf(slot);
      if (this.timeIndexSource && at < 0) this.evictable.push(slot);
      else if (!this.timeIndexSource && at >= 0) this.evictable.splice(at, 1);
    }
    if (this.handSlot >= this.evictable.length) this.handSlot = 0;
  }

  /** Estimated bytes of keyed state in memory. */
  get bytesInMemory(): number {
    return this.bytesNow;
  }

  /**
   * Over budget with nothing the eviction may take (every entry in memory
   * changed since the last capture) and no write-back pending: the changes
   * should be flushed to the image now ({@link KeyedSnapshotter.flush})
   * rather than wait for the next checkpoint, which would let memory grow
   * with the input rate times the checkpoint interval.
   */
  get wantsFlush(): boolean {
    return this.budgetBytes !== undefined && this.evictBlocked && this.bytesNow > this.budgetBytes;
  }

  /**
   * Over budget with clean entries the eviction may still take (e.g. after
   * a write-back, while no record comes to trigger it): {@link evictSome}
   * frees some.
   */
  get wantsEviction(): boolean {
    return this.budgetBytes !== undefined && !this.evictBlocked && !this.imageUnknown && this.bytesNow > this.budgetBytes && (this.backing !== undefined || this.spill !== undefined);
  }

  /** One step of eviction ({@link EVICT_SCAN_MAX} entries looked at, at most). */
  evictSome(): void {
    if (this.budgetBytes !== undefined && this.bytesNow > this.budgetBytes) this.evict();
  }

  /** Entries evicted to the image so far. */
  get entriesEvicted(): number {
    return this.evictedTotal;
  }

  /** Entries read from the image (after a restore or an eviction) so far. */
  get readbacks(): number {
    return this.readbacksTotal;
  }

  getState<T>(d: ValueStateDescriptor<T>): ValueState<T> {
    const slot = this.declared(d);
    if (slot.accessor) return slot.accessor as ValueState<T>;
    if (slot.ttl) return (slot.accessor = ttlValueState<T>(this.cell(slot), slot.ttl, d.name) as ValueState<unknown>) as ValueState<T>;
    const accessor: ValueState<T> = {
      value: () => this.read(slot) as T | undefined,
      update: (v) => {
        if (v === undefined) throw new TypeError(`ValueState "${d.name}": update(undefined); use clear()`);
        this.write(slot, v);
      },
      clear: () => this.remove(slot),
    };
    slot.accessor = accessor;
    return accessor;
  }

  getMapState<V>(d: MapStateDescriptor<V>): MapState<V> {
    const slot = this.declared(d);
    if (slot.accessor) return slot.accessor as MapState<V>;
    if (slot.ttl) return (slot.accessor = ttlMapState<V>(this.cell(slot), slot.ttl) as MapState<unknown>) as MapState<V>;
    const read = () => this.read(slot) as Map<string, V> | undefined;
    const write = () => {
      let m = read();
      if (!m) this.write(slot, (m = new Map()));
      else this.touch(slot, m);
      return m;
    };
    const accessor: MapState<V> = {
      get: (k) => read()?.get(k),
      put: (k, v) => void write().set(k, v),
      remove: (k) => {
        const m = read();
        if (m?.delete(k)) {
          if (m.size === 0) this.remove(slot);
          else this.touch(slot, m);
        }
      },
      contains: (k) => read()?.has(k) ?? false,
      entries: () => [...(read()?.entries() ?? [])],
      keys: () => [...(read()?.keys() ?? [])],
      values: () => [...(read()?.values() ?? [])],
      isEmpty: () => (read()?.size ?? 0) === 0,
      clear: () => this.remove(slot),
    };
    slot.accessor = accessor;
    return accessor;
  }

  getListState<T>(d: ListStateDescriptor<T>): ListState<T> {
    const slot = this.declared(d);
    if (slot.accessor) return slot.accessor as ListState<T>;
    if (slot.ttl) return (slot.accessor = ttlListState<T>(this.cell(slot), slot.ttl) as ListState<unknown>) as ListState<T>;
    const read = () => this.read(slot) as T[] | undefined;
    const accessor: ListState<T> = {
      get: () => [...(read() ?? [])],
      add: (v) => {
        const l = read();
        if (l) {
          l.push(v);
          this.touch(slot, l);
        } else this.write(slot, [v]);
      },
      addAll: (vs) => {
        if (vs.length === 0) return;
        const l = read();
        if (l) {
          l.push(...vs);
          this.touch(slot, l);
        } else this.write(slot, [...vs]);
      },
      update: (vs) => {
        if (vs.length === 0) this.remove(slot);
        else this.write(slot, [...vs]);
      },
      clear: () => this.remove(slot),
    };
    slot.accessor = accessor;
    return accessor;
  }

  /**
   * Declares a state ahead of its first use, so that its TTL applies from
   * the start (a full snapshot leaves its expired entries out, the
   * background cleanup walks it) even before a record asks for it. Throws
   * a {@link JobDefinitionError} for a bad TTL, or a TTL other than the
   * one the state was declared with.
   */
  declare(d: StateDescriptor): void {
    this.declared(d);
  }

  /**
   * Cleans up expired entries of every state with a TTL, looking at up to
   * `budget` entries (map entries and list elements count one each) per
   * state, from where the previous cleanup stopped: one bounded step of
   * the background cleanup (a checkpoint takes one). Returns how many
   * keys' entries went.
   */
  cleanupExpired(budget: number): number {
    let removed = 0;
    for (const slot of this.ttlSlots) removed += this.cleanupStep(slot, budget, false);
    return removed;
  }

  /** Whether anything changed since the last {@link takeDirty}. */
  hasDirty(): boolean {
    for (const s of this.dirty.values()) if (s.size > 0) return true;
    return false;
  }

  /** The entries changed since the last call, in persistable form; clears the dirty marks. */
  takeDirty(): StateEntry[] {
    // Nothing tells when (if ever) these reach the image: no entry is known clean from now on.
    this.imageUnknown = true;
    const out: StateEntry[] = [];
    for (const slot of this.slots.values()) {
      for (const [key, v] of slot.changed) out.push(this.entry(slot, key, v));
      slot.changed.clear();
      slot.fresh.clear();
    }
    return out;
  }

  /**
   * What changed since the last call (or {@link takeDirty}), cheap enough to
   * take at a barrier: it clears the dirty marks and keeps values as
   * {@link capture} does, so that serializing them can wait. With `owned`,
   * encoding throws for a key outside those key groups (see {@link capture}).
   */
  captureChanges(owned?: KeyGroupRange): ChangeCapture {
    const tables: CapturedTable[] = [];
    let count = 0;
    for (const slot of this.slots.values()) {
      if (slot.changed.size === 0) continue;
      const captured = captureTable(this.operatorLabel, slot, slot.changed);
      slot.changed.clear();
      slot.fresh.clear();
      this.measure(slot, captured);
      tables.push(captured);
      count += captured.keys.length;
    }
    const keyGroupOf = ownedKeyGroup(this.operatorLabel, this.maxParallelism, owned);
    // The time index's changes, at the same moment: sealed with the entries, they leave the queues' memory.
    const indexed: { queue: IndexedTimerQueue; generation: number }[] = [];
    const timeIndex: { domain: TimeDomain; changes: readonly TimeIndexChange[] }[] = [];
    for (const [domain, q] of this.timerQueues) {
      if (!(q instanceof IndexedTimerQueue)) continue;
      const c = q.captureIndex();
      indexed.push({ queue: q, generation: c.generation });
      if (c.changes.length > 0) timeIndex.push({ domain, changes: c.changes });
    }
    let persisted: (() => void) | undefined;
    if (count > 0 || indexed.length > 0) {
      if (count > 0) {
        this.unpersisted++;
        if (this.budgetBytes !== undefined) this.holdPending(tables);
      }
      const restores = this.restores;
      let done = false;
      persisted = () => {
        if (done || restores !== this.restores) return;
        done = true;
        for (const { queue, generation } of indexed) queue.persisted(generation);
        if (count > 0) this.persistedChanges(tables);
      };
    }
    return {
      count,
      persisted,
      ...(timeIndex.length > 0 ? { timeIndex } : {}),
      encode(start, end) {
        const out: EncodedEntry[] = [];
        forRange(tables, start, end, (t, i) => {
          const v = t.values[i];
          const key = t.keys[i];
          out.push({ entry: { state: t.state, kind: t.kinds?.[i] ?? t.kind, key, keyGroup: keyGroupOf(t.state, key) }, valueJson: v === undefined ? null : thaw(v) });
        });
        return out;
      },
    };
  }

  /** Every entry, in persistable form (the backing's untouched keys included). */
  allEntries(): StateEntry[] {
    const out: StateEntry[] = [];
    for (const slot of this.slots.values()) for (const [key, v] of slot.table) out.push(this.entry(slot, key, v));
    if (this.backing) {
      for (const e of this.backing.entries()) {
        const slot = this.slots.get(e.state);
        if (slot && (slot.table.has(e.key) || slot.deleted.has(e.key))) continue;
        out.push({ state: e.state, kind: e.kind, key: e.key, keyGroup: keyGroupOfText(e.key, this.maxParallelism), value: e.value });
      }
    }
    return out;
  }

  /**
   * A consistent copy of every entry (the backing's untouched keys
   * included), cheap enough to take at a barrier: values that cannot change
   * in place (numbers, strings, booleans, null) are kept by reference and
   * serialized later; objects, maps and lists, which user code may mutate
   * in place, are serialized now. An entry too large for a row of the
   * image throws a `StateTooLargeError` here, at the barrier.
   *
   * Entries of a state with a TTL that are expired now are left out (a map's
   * expired entries and a list's expired elements too); the live state
   * keeps them until the cleanup or a read removes them.
   *
   * With `owned` (the subtask's key groups), serializing throws for a key
   * outside them: a record whose key changed across a batch's JSON round
   * trip reached a subtask that does not own it, and its state must not be
   * checkpointed where no restore or rescale would look for it. The key
   * group is computed there anyway, so the check costs one comparison.
   */
  capture(owned?: KeyGroupRange): StateCapture {
    const tables: CapturedTable[] = [];
    let count = 0;
    const nowMs = this.ttlSlots.length > 0 ? this.now() : 0;
    for (const slot of this.slots.values()) {
      if (slot.table.size === 0) continue;
      const captured = captureTable(this.operatorLabel, slot, slot.table, nowMs);
      tables.push(captured);
      count += captured.keys.length;
    }
    const keyGroupOf = ownedKeyGroup(this.operatorLabel, this.maxParallelism, owned);
    const forEach: StateCapture["forEach"] = (start, end, fn) => {
      forRange(tables, start, end, (t, i) => fn(t.state, t.kinds?.[i] ?? t.kind, t.keys[i], keyGroupOf(t.state, t.keys[i]), thaw(t.values[i])));
    };
    if (!this.backing) return { count, forEach };
    // The image's other keys are streamed later, leaving out the keys in memory now (captured above, or
    // deleted): until this capture's file is written, the image changes only for those (see StateCapture.rest).
    const inMemory = new Map<string, Set<string>>();
    for (const slot of this.slots.values()) if (slot.table.size > 0) inMemory.set(slot.name, new Set(slot.table.keys()));
    const deleted = new Map<string, Set<string>>();
    for (const slot of this.slots.values()) if (slot.deleted.size > 0) deleted.set(slot.name, new Set(slot.deleted));
    const backing = this.backing;
    const ttlOf = (state: string) => this.slots.get(state)?.ttl;
    const operator = this.operatorLabel;
    return {
      count,
      forEach,
      *rest() {
        if (!backing.rows) {
          for (const e of backing.entries()) {
            if (inMemory.get(e.state)?.has(e.key) || deleted.get(e.state)?.has(e.key)) continue;
            let value = e.value;
            const ttl = ttlOf(e.state);
            if (ttl && isTtlKind(e.kind)) {
              value = unexpiredPersisted(e.kind, value, ttl, nowMs);
              if (value === undefined) continue;
            }
            yield [e.state, e.kind, e.key, keyGroupOf(e.state, e.key), JSON.stringify(value)] as const;
          }
          return;
        }
        // Values as the image keeps their JSON, and key groups as it knows them: per entry, a lookup in the set of
        // keys in memory, and no parse, stringify or hash (what a full snapshot of state ≫ memory spends its time on).
        let table: Set<string> | undefined;
        let gone: Set<string> | undefined;
        let tableOf: string | undefined;
        let ttl: TtlPolicy | undefined;
        for (const r of backing.rows()) {
          if (r.state !== tableOf) {
            tableOf = r.state;
            table = inMemory.get(r.state);
            gone = deleted.get(r.state);
            ttl = ttlOf(r.state);
          }
          if (table?.has(r.key) || gone?.has(r.key)) continue;
          let json = r.valueJson;
          if (ttl && isTtlKind(r.kind)) {
            const value = unexpiredPersisted(r.kind, JSON.parse(json), ttl, nowMs);
            if (value === undefined) continue;
            json = JSON.stringify(value);
          }
          if (owned && !inRange(owned, r.keyGroup)) throw new KeyNotOwnedError(operator, r.state, r.key, r.keyGroup, owned);
          yield [r.state, r.kind, r.key, r.keyGroup, json] as const;
        }
      },
    };
  }

  /** Replaces the working set with persisted entries. */
  load(entries: Iterable<{ state: string; key: string; kind: Kind; value: unknown }>): void {
    this.reset();
    // Not from the image: its time index does not hold these timers.
    this.timeIndexSource = undefined;
    // Loaded entries are clean but not in any image: a budget must not evict them (nothing could read them back).
    this.imageUnknown = true;
    for (const e of entries) {
      const slot = this.slot(e.state, plainKindOf(e.kind));
      const v = fromPersisted(e.kind, e.value);
      if (!slot.table.has(e.key)) this.admit(slot, e.key, v);
      slot.table.set(e.key, v);
      slot.forms |= isTtlKind(e.kind) ? TTL_FORM : PLAIN_FORM;
    }
    for (const slot of this.slots.values()) updateForeign(slot);
    this.rebuildTimers();
  }

  /** Replaces the working set with a backing read on demand. */
  attach(backing: StateBacking): void {
    this.reset();
    this.backing = backing;
    this.count = backing.count();
    this.restoredUncounted = undefined;
    if (this.budgetBytes !== undefined && backing.timeIndex) {
      // The image's time index holds the timers in time order: none is read now.
      this.timeIndexSource = backing;
    } else {
      // Every timer in memory (firing needs the earliest of all keys): read them now, and only them.
      this.timeIndexSource = undefined;
      for (const e of backing.timers()) {
        const slot = this.slot(e.state, "timer");
        slot.table.set(e.key, e.value);
        this.admit(slot, e.key, e.value);
      }
    }
    this.rebuildTimers();
  }

  /**
   * Calls `fn` with every key's value of state `name` (a map state's as a
   * Map), the backing's untouched keys included, without caching them: one
   * pass over the state, for a gauge that an operator counts once after a
   * restore and then keeps up to date itself.
   */
  forEachValue(name: string, fn: (value: unknown) => void): void {
    const slot = this.slots.get(name);
    if (slot) for (const v of slot.table.values()) fn(v);
    if (!this.backing) return;
    for (const e of this.backing.entries()) {
      if (e.state !== name || slot?.table.has(e.key) || slot?.deleted.has(e.key)) continue;
      fn(fromPersisted(e.kind, e.value));
    }
  }

  /**
   * The keys (canonical text) that have state `name`, the backing's
   * untouched keys included: taken before a caller goes over them
   * (applyToKeyedState), so that what it changes meanwhile does not change
   * what it visits.
   */
  keysOf(name: string): string[] {
    const slot = this.slots.get(name);
    const keys = slot ? [...slot.table.keys()] : [];
    if (!this.backing) return keys;
    for (const e of this.backing.entries()) {
      if (e.state !== name || slot?.table.has(e.key) || slot?.deleted.has(e.key)) continue;
      keys.push(e.key);
    }
    return keys;
  }

  /**
   * The backing's keys are counted later (a lazy restore of part of a
   * file counts them once it has read them): `restored` gives their
   * number, which {@link size} adds once it settles. Until then, size()
   * counts only the keys added and removed since the restore, and
   * {@link uncountedRestoredKeys} gives what to add to it.
   */
  countRestoredLater(restored: Promise<number>): void {
    const pending: Promise<number> = restored.then((n) => {
      if (this.restoredUncounted === pending) {
        this.count += n;
        this.restoredUncounted = undefined;
      }
      return n;
    });
    // A failed count fails the restore's fill, which the task reports.
    pending.catch(() => undefined);
    this.restoredUncounted = pending;
  }

  /** The number of restored keys that {@link size} does not count yet, while they are being counted. */
  get uncountedRestoredKeys(): Promise<number> | undefined {
    return this.restoredUncounted;
  }

  /** Whether {@link prefetch} may read anything: an image is attached that reads ahead. */
  get prefetches(): boolean {
    return this.backing?.prefetch !== undefined;
  }

  /**
   * Reads ahead from the image, together, what records of `keys[start..end)`
   * would read from it one by one: each key's entries of the states that
   * do not hold it in memory (a batch's keys, before its records). Fills
   * the image's block cache only; nothing without an image attached.
   */
  prefetch(keys: readonly Key[], start: number, end: number): void {
    const backing = this.backing;
    if (!backing?.prefetch) return;
    const wanted: PrefetchEntry[] = [];
    const anyDeleted = this.deletedCount > 0;
    // The states the image holds nothing of (a window operator's unused maps) cost a lookup per key for nothing.
    const slots = [...this.slots.values()].filter((slot) => backing.mayHold?.(slot.name) ?? true);
    if (slots.length === 0) return;
    for (let i = start; i < end; i++) {
      const text = keyText(keys[i]);
      let hash = -1;
      for (const slot of slots) {
        if (slot.table.has(text) || (anyDeleted && slot.deleted.has(text))) continue;
        if (hash < 0) hash = hashKey(text);
        wanted.push({ state: slot.name, keyGroup: hash % this.maxParallelism, hash });
      }
    }
    if (wanted.length > 0) backing.prefetch(wanted);
  }

  /** Whether some entries are in the image only: evicted, or restored and not read yet. */
  private someOutOfMemory(): boolean {
    if (!this.backing) return false;
    if (this.restoredUncounted !== undefined) return true;
    let inMemory = 0;
    for (const slot of this.slots.values()) inMemory += slot.table.size;
    return inMemory < this.count;
  }

  /** Number of keys with state, over all states. */
  size(): number {
    if (this.backing) return this.count;
    let n = 0;
    for (const t of this.tables.values()) n += t.size;
    return n;
  }

  // ---- timers: keyed state of kind "timer", indexed by a queue per time domain ----

  /**
   * The timers of this operator in `domain`, keyed by the canonical key
   * text. Registering, deleting and polling change the key's timer entry,
   * which is then tracked as changed like any state.
   */
  timers(domain: TimeDomain): TimerQueue {
    let q = this.timerQueues.get(domain);
    if (!q) {
      const slot = this.slot(timerStateName(domain), "timer");
      const source = this.timeIndexSource;
      q = source
        ? new IndexedTimerQueue(this.timerEntries(slot), source.timeIndex!(domain), source === this.backing ? (source.timerCount?.(domain) ?? 0) : 0, this.countOverlay, this.imageKeyOrder)
        : new HeapTimerQueue({
            get: (key) => slot.table.get(key) as number[] | undefined,
            set: (key, timestamps) => this.setTimers(slot, key, timestamps),
            all: () => slot.table.entries() as Iterable<[string, number[]]>,
          });
      this.timerQueues.set(domain, q);
      this.syncEvictableTimers();
    }
    return q;
  }

  /** A timer slot's entries for an {@link IndexedTimerQueue}: read back when evicted, changed like any state. */
  private timerEntries(slot: Slot): TimerEntryStore {
    return {
      get: (key) => this.atKey(key, () => this.read(slot) as readonly number[] | undefined),
      set: (key, timestamps) =>
        this.atKey(key, () => {
          if (timestamps === undefined) this.remove(slot);
          else this.write(slot, timestamps);
        }),
    };
  }

  /** Runs `fn` with `key` (canonical text) as the current key's text, as a timer of another key than the current one needs. */
  private atKey<T>(key: string, fn: () => T): T {
    const saved = this.keyTextNow;
    this.keyTextNow = key;
    try {
      return fn();
    } finally {
      this.keyTextNow = saved;
    }
  }

  /** Releases what the timer queues hold of the image (open scans of its time index): the backend is being dropped. */
  releaseTimers(): void {
    for (const q of this.timerQueues.values()) if (q instanceof IndexedTimerQueue) q.close();
  }

  /** Timers pending per time domain. */
  timerCounts(): Partial<Record<TimeDomain, number>> {
    const out: Partial<Record<TimeDomain, number>> = {};
    for (const [domain, q] of this.timerQueues) out[domain] = q.size();
    return out;
  }

  /** Number of timers pending, over both time domains. */
  timerCount(): number {
    let n = 0;
    for (const q of this.timerQueues.values()) n += q.size();
    return n;
  }

  /** Writes the timers of `key` in a timer slot; their entries are all in memory, so no backing is read. */
  private setTimers(slot: Slot, key: string, timestamps: number[] | undefined): void {
    const had = slot.table.has(key);
    if (timestamps === undefined) {
      if (had) this.removeKey(slot, key);
      return;
    }
    // Not in memory, so in no capture nor the image (all of a heap queue's entries are in memory), unless deleted
    // since the last capture, or on its way out of the image.
    if (!had && !(this.backing && this.undelete(slot, key)) && !slot.changed.has(key)) slot.fresh.add(key);
    if (!had && this.backing) this.count++;
    if (this.missSlot === slot && this.missKey === key) this.missSlot = undefined;
    slot.table.set(key, timestamps);
    // The heap queue's timers (no budget, so never evicted): measured at each change.
    if (had) this.resize(slot, key, estimateEntryBytes(key, timestamps));
    else this.admit(slot, key, timestamps);
    slot.changed.set(key, timestamps);
  }

  /** Forgets the queue of `domain`, and the bytes its overlay counted. */
  private dropQueue(domain: TimeDomain): void {
    const q = this.timerQueues.get(domain);
    if (q instanceof IndexedTimerQueue) this.countOverlay(-q.overlayBytes);
    this.timerQueues.delete(domain);
  }

  /** The queues index the timer entries again (after a restore replaced them). */
  private rebuildTimers(): void {
    this.releaseTimers();
    if (this.timeIndexSource) {
      // Both domains' queues now, from the index and its counts (the metrics count them before any timer is used).
      for (const domain of [...this.timerQueues.keys()]) this.dropQueue(domain);
      this.timers("event");
      this.timers("processing");
      return;
    }
    for (const [domain, q] of [...this.timerQueues]) {
      if (q instanceof HeapTimerQueue) q.rebuild();
      else {
        this.dropQueue(domain);
        this.timers(domain);
      }
    }
    this.syncEvictableTimers();
  }

  /** Kind of a named state, once declared. */
  kindOf(state: string): Kind | undefined {
    return this.kinds.get(state);
  }

  private reset(): void {
    // Cleared in place: accessors handed out before keep pointing at the live maps.
    for (const slot of this.slots.values()) {
      slot.table.clear();
      slot.changed.clear();
      slot.fresh.clear();
      slot.pending.clear();
      slot.sizes.clear();
      slot.cold.clear();
      slot.deleted.clear();
      slot.anyCold = false;
      slot.hand = undefined;
      slot.sweep = undefined;
      slot.forms = slot.declaredTtl === undefined ? NO_FORM : formOf(slot);
      updateForeign(slot);
    }
    this.deletedCount = 0;
    this.missSlot = undefined;
    this.backing = undefined;
    this.count = 0;
    this.bytesNow = this.overlayBytes;
    this.unpersisted = 0;
    this.pendingCaptures.clear();
    this.restores++;
    this.imageUnknown = false;
    this.evictBlocked = false;
    this.scannedSinceEvict = 0;
  }

  /**
   * The current key's value, from memory or, on a miss, from the backing
   * (then cached), in the form the state is declared with: an entry of
   * the other form (a TTL added or removed by a newer job version) is
   * converted, and marked changed so that it is persisted so.
   */
  private read(slot: Slot): unknown {
    const v = slot.table.get(this.keyTextNow);
    if (v === undefined) return this.readMiss(slot);
    // The CLOCK's reference bit, set again: free (a size check) until an eviction has cleared some.
    if (slot.anyCold) this.warm(slot);
    if (!slot.foreign) return v;
    return this.adopt(slot, this.keyTextNow, v);
  }

  /** {@link read} of a key not in memory: from the backing, if any (then kept in memory). */
  private readMiss(slot: Slot): unknown {
    // The same miss again (a get, then the put that follows it): the image still holds nothing, since only a write
    // takes the key into memory (and forgets the miss), and a restore resets.
    if (this.missSlot === slot && this.missKey === this.keyTextNow) return undefined;
    // Remembered for the write that usually follows: it adds a new entry, to be counted.
    this.missSlot = slot;
    this.missKey = this.keyTextNow;
    if (!this.backing || (this.deletedCount > 0 && slot.deleted.has(this.keyTextNow))) return undefined;
    const persisted = this.backing.get(slot.name, this.keyTextNow, keyGroupOfText(this.keyTextNow, this.maxParallelism));
    if (persisted === undefined) return undefined;
    this.missSlot = undefined;
    const v = fromPersisted(persisted.kind, persisted.value);
    this.readbacksTotal++;
    slot.table.set(this.keyTextNow, v);
    this.admit(slot, this.keyTextNow, v, persisted.bytes !== undefined && isMeasuredByJson(v) ? measuredEntryBytes(this.keyTextNow, persisted.bytes) : undefined);
    if (isTtlKind(persisted.kind) === (slot.ttl !== undefined)) return v;
    return this.adopt(slot, this.keyTextNow, v);
  }

  /** Converts `key`'s entry to the form its state is declared with, if it is not in it. */
  private adopt(slot: Slot, key: string, v: unknown): unknown {
    if (slot.kind === "timer" || slot.declaredTtl === undefined) return v;
    const adopted = adoptLive(slot.kind, v, slot.ttl !== undefined, slot.ttl ? this.now() : 0);
    if (adopted !== v) {
      slot.table.set(key, adopted);
      slot.changed.set(key, adopted);
    }
    return adopted;
  }

  private write(slot: Slot, value: unknown): void {
    // A write does not set the CLOCK's reference bit: accessors read first (and a blind write is dirty, so kept, until
    // the next checkpoint), which spares the hot path a second store.
    if (this.backing && this.read(slot) === undefined) {
      this.count++;
      // In neither memory nor the image, nor deleted since the last capture or on its way out of the image: new.
      if (!this.undelete(slot, this.keyTextNow) && !slot.changed.has(this.keyTextNow)) slot.fresh.add(this.keyTextNow);
    }
    const before = slot.table.size;
    slot.table.set(this.keyTextNow, value);
    // Without a backing, memory holds the whole state: a key it did not hold, not deleted since the last capture, is new.
    if (!this.backing && slot.table.size !== before && !slot.changed.has(this.keyTextNow)) slot.fresh.add(this.keyTextNow);
    this.touch(slot, value);
    // A new entry, which the read before it missed, is counted now; one written blind too, under a budget: the table
    // grew (no lookup more). Without that, a job that writes without reading would hold any number of new keys unseen
    // by the budget until the next write-back, and nothing would ask for a flush.
    if (this.missSlot === slot && this.missKey === this.keyTextNow) this.admitMissed(slot, value);
    else if (this.budgetBytes !== undefined && slot.table.size !== before && !slot.sizes.has(this.keyTextNow)) this.admit(slot, this.keyTextNow, value);
  }

  private admitMissed(slot: Slot, value: unknown): void {
    this.missSlot = undefined;
    if (!slot.sizes.has(this.keyTextNow)) this.admit(slot, this.keyTextNow, value);
  }

  private remove(slot: Slot): void {
    if (this.read(slot) === undefined) return;
    this.removeKey(slot, this.keyTextNow);
  }

  /** Removes `key`'s entry of a state, which is in memory. */
  private removeKey(slot: Slot, key: string): void {
    slot.table.delete(key);
    this.forget(slot, key);
    if (this.backing) this.count--;
    if (slot.fresh.delete(key)) {
      // New since the last capture: nothing persisted holds it, so there is nothing to delete.
      slot.changed.delete(key);
      return;
    }
    if (this.backing) this.markDeleted(slot, key);
    slot.changed.set(key, undefined);
  }

  private entry(slot: Slot, key: string, value: unknown): StateEntry {
    return {
      state: slot.name,
      kind: value === undefined ? slot.kind : persistedKind(slot.kind, value),
      key,
      keyGroup: keyGroupOfText(key, this.maxParallelism),
      value: value === undefined ? undefined : toPersisted(slot.kind, value),
    };
  }

  /** The slot of descriptor `d`, declared with its TTL on first use (a later use with another TTL throws). */
  private declared(d: StateDescriptor): Slot {
    // A function asks for its state by the same descriptor at each record: the last one's slot is kept.
    if (d === this.lastDeclared && d.ttl === this.lastDeclaredTtl) return this.lastDeclaredSlot!;
    const slot = this.declareSlot(d);
    this.lastDeclared = d;
    this.lastDeclaredTtl = d.ttl;
    this.lastDeclaredSlot = slot;
    return slot;
  }

  private declareSlot(d: StateDescriptor): Slot {
    const slot = this.slot(d.name, d.kind);
    // Descriptors are mostly module constants: the same TTL object (or none), checked once.
    if (slot.declaredTtl === (d.ttl ?? NO_TTL)) return slot;
    if (slot.declaredTtl !== undefined) {
      if (sameTtl(slot.declaredTtl === NO_TTL ? undefined : slot.declaredTtl, d.ttl)) return slot;
      throw new JobDefinitionError(
        `operator "${this.operatorLabel}": state "${d.name}" is used with two different TTLs (${describeTtl(slot.declaredTtl)} and ${describeTtl(d.ttl ?? NO_TTL)}): one state has one TTL`,
      );
    }
    checkStateTtl(d, this.operatorLabel);
    if (d.ttl !== undefined && this.options.now === undefined) throw new Error(`operator "${this.operatorLabel}": state "${d.name}" has a TTL, but its keyed-state backend has no clock`);
    slot.declaredTtl = d.ttl ?? NO_TTL;
    slot.ttl = d.ttl === undefined ? undefined : ttlPolicy(d.ttl);
    if (slot.ttl) this.ttlSlots.push(slot);
    slot.forms |= formOf(slot);
    updateForeign(slot);
    return slot;
  }

  /** The current key's entry of a state with a TTL, as its accessors see it. */
  private cell(slot: Slot): TtlCell {
    return {
      get: () => this.read(slot),
      set: (v) => this.write(slot, v),
      changed: (v) => this.touch(slot, v),
      clear: () => this.remove(slot),
      now: this.now,
      accessed: () => {
        if (++slot.accesses < TTL_CLEANUP_ACCESSES) return;
        slot.accesses = 0;
        if (this.cleanupPerAccess > 0) this.cleanupStep(slot, this.cleanupPerAccess * TTL_CLEANUP_ACCESSES, true);
      },
    };
  }

  /**
   * One step of the background cleanup of a state with a TTL: looks at up
   * to `budget` entries from where the last step stopped (about once around
   * the table at most), removes the expired ones and the expired parts of
   * maps and lists, and stamps an entry that has no timestamp yet (the
   * TTL was added by a newer job version). An access skips the current
   * key, which the accessor itself reads. Returns how many keys' entries
   * went.
   */
  private cleanupStep(slot: Slot, budget: number, skipCurrent: boolean): number {
    const policy = slot.ttl;
    if (!policy || slot.table.size === 0) return 0;
    const nowMs = this.now();
    let it = slot.sweep ?? slot.table.entries();
    // A step that started mid-table may go on from its start once.
    let wraps = slot.sweep ? 1 : 0;
    slot.sweep = undefined;
    let looked = 0;
    let removed = 0;
    while (looked < budget) {
      const next = it.next();
      if (next.done) {
        if (wraps-- === 0) return removed;
        it = slot.table.entries();
        continue;
      }
      const [key, v] = next.value;
      looked++;
      if (skipCurrent && key === this.keyTextNow) continue;
      if (!isTtlLive(v)) {
        this.adopt(slot, key, v);
        continue;
      }
      looked += liveSize(v) - 1;
      const pruned = pruneLive(v, policy, nowMs);
      if (pruned === "all") {
        this.removeKey(slot, key);
        removed++;
      } else if (pruned === "some") slot.changed.set(key, v);
    }
    slot.sweep = it;
    return removed;
  }

  /** The slot of state `name`, declared as `kind` on first use. */
  private slot(name: string, kind: DeclaredKind): Slot {
    let slot = this.slots.get(name);
    if (slot !== undefined) {
      if (slot.kind !== kind) throw new TypeError(`operator "${this.operatorLabel}": state "${name}" is ${slot.kind} state, not ${kind} state`);
      return slot;
    }
    slot = {
      name,
      kind,
      table: new Map(),
      changed: new Map(),
      fresh: new Set(),
      pending: new Map(),
      sizes: new Map(),
      cold: new Set(),
      deleted: new Set(),
      anyCold: false,
      hand: undefined,
      accessor: undefined,
      declaredTtl: undefined,
      ttl: undefined,
      forms: NO_FORM,
      foreign: false,
      sweep: undefined,
      accesses: 0,
    };
    this.slots.set(name, slot);
    if (kind !== "timer" || this.timeIndexSource) this.evictable.push(slot);
    this.kinds.set(name, kind);
    this.tables.set(name, slot.table);
    this.dirty.set(name, slot.changed);
    return slot;
  }

  // ---- memory budget: sizes, the CLOCK, eviction ----

  /** Counts a new in-memory entry (its table holds it now), and evicts if that goes over budget. */
  private admit(slot: Slot, key: string, value: unknown, bytes = estimateEntryBytes(key, value)): void {
    slot.sizes.set(key, bytes);
    this.bytesNow += bytes;
    if (this.budgetBytes === undefined) return;
    if (this.bytesNow > this.budgetBytes && !this.evictBlocked) this.evict();
  }

  /** An entry's size changed. */
  private resize(slot: Slot, key: string, bytes: number): void {
    const before = slot.sizes.get(key);
    if (before === undefined) return;
    slot.sizes.set(key, bytes);
    this.bytesNow += bytes - before;
  }

  /** Uncounts an entry that left memory. */
  private forget(slot: Slot, key: string): void {
    const bytes = slot.sizes.get(key);
    if (bytes === undefined) return;
    slot.sizes.delete(key);
    if (slot.anyCold && slot.cold.delete(key) && slot.cold.size === 0) slot.anyCold = false;
    this.bytesNow -= bytes;
  }

  /**
   * Measures captured entries whose JSON the capture made (objects), or whose
   * size follows their value (strings): between two checkpoints an entry
   * keeps the size it entered memory with.
   */
  private measure(slot: Slot, t: CapturedTable): void {
    for (let i = 0; i < t.keys.length; i++) {
      const v = t.values[i];
      if (v instanceof Serialized) this.resize(slot, t.keys[i], measuredEntryBytes(t.keys[i], v.json.length));
      else if (typeof v === "string") this.resize(slot, t.keys[i], estimateEntryBytes(t.keys[i], v));
    }
  }

  /**
   * Counts the entries of a capture that are in memory but not counted: new
   * keys written without a read before them (the write counts a new entry
   * only after a read that missed). Run after the write-back, off the barrier.
   */
  private countBlindWrites(tables: readonly CapturedTable[]): void {
    for (const t of tables) {
      const slot = this.slots.get(t.state);
      if (!slot) continue;
      for (let i = 0; i < t.keys.length; i++) {
        const key = t.keys[i];
        if (t.values[i] === undefined || slot.sizes.has(key)) continue;
        const v = slot.table.get(key);
        if (v === undefined) continue;
        const bytes = estimateEntryBytes(key, v);
        slot.sizes.set(key, bytes);
        this.bytesNow += bytes;
      }
    }
  }

  /** Sets the current key's reference bit again (an eviction cleared some). */
  private warm(slot: Slot): void {
    if (slot.cold.delete(this.keyTextNow) && slot.cold.size === 0) slot.anyCold = false;
  }

  /** Marks the keys of a capture's tables as not evictable until the capture is written back. */
  private holdPending(tables: readonly CapturedTable[]): void {
    this.pendingCaptures.add(tables);
    for (const t of tables) {
      const pending = this.slots.get(t.state)?.pending;
      if (pending) for (const k of t.keys) pending.set(k, (pending.get(k) ?? 0) + 1);
    }
  }

  /** A capture's changes reached the image: deletions need no mark any more, and eviction may go on. */
  private persistedChanges(tables: readonly CapturedTable[]): void {
    this.unpersisted--;
    if (this.pendingCaptures.delete(tables)) {
      for (const t of tables) {
        const pending = this.slots.get(t.state)?.pending;
        if (!pending) continue;
        for (const k of t.keys) {
          const n = pending.get(k) ?? 0;
          if (n <= 1) pending.delete(k);
          else pending.set(k, n - 1);
        }
      }
    }
    this.countBlindWrites(tables);
    this.evictBlocked = false;
    this.scannedSinceEvict = 0;
    if (!this.backing) {
      if (this.budgetBytes !== undefined && this.bytesNow > this.budgetBytes) this.evict();
      return;
    }
    // The image no longer holds a key deleted by these changes: a miss reads nothing there. (Deleted again since,
    // it is still absent from the image; written again since, it is in memory and not in `deleted`.)
    for (const t of tables) {
      const slot = this.slots.get(t.state);
      if (slot) for (let i = 0; i < t.keys.length; i++) if (t.values[i] === undefined) this.undelete(slot, t.keys[i]);
    }
    // What went over budget while it was dirty may go now, without waiting for the next new key.
    if (this.budgetBytes !== undefined && this.bytesNow > this.budgetBytes) this.evict();
  }

  /**
   * Evicts clean entries, least recently used first (a CLOCK: the hand
   * clears an entry's reference bit by adding it to its state's `cold` set,
   * or evicts it when already clear; a read sets it again), until the
   * estimate is under {@link EVICT_TO_FRACTION} of the budget, looking at
   * {@link EVICT_SCAN_MAX} entries at most. Never the current key (an
   * accessor is using it), a changed entry, or one a capture still being
   * written back holds (the image lacks its value until then); other clean
   * entries may go while a write-back is under way.
   */
  private evict(): void {
    if (this.imageUnknown || this.budgetBytes === undefined) return;
    if (!this.backing && !this.spill) return;
    const target = this.budgetBytes * EVICT_TO_FRACTION;
    const slots = this.evictable;
    let inMemory = 0;
    for (const s of slots) inMemory += s.table.size;
    let looked = 0;
    while (this.bytesNow > target && looked < EVICT_SCAN_MAX && slots.length > 0) {
      // Two passes over every entry without finding one to evict: everything is dirty (or current). The next write-back unblocks.
      if (this.scannedSinceEvict > 2 * inMemory) {
        this.evictBlocked = true;
        return;
      }
      if (this.handSlot >= slots.length) this.handSlot = 0;
      const slot = slots[this.handSlot];
      const next = (slot.hand ??= slot.table.keys()).next();
      if (next.done) {
        slot.hand = undefined;
        this.handSlot++;
        // An empty pass counts too, so that tables with nothing in them end the search.
        this.scannedSinceEvict++;
        continue;
      }
      const key = next.value;
      looked++;
      this.scannedSinceEvict++;
      if (key === this.keyTextNow || slot.changed.has(key) || slot.pending.has(key)) continue;
      if (!slot.cold.has(key)) {
        slot.cold.add(key);
        slot.anyCold = true;
        continue;
      }
      // A fresh start reads nothing from the image until the first key goes there.
      if (!this.backing) this.attachSpill(this.spill!);
      slot.table.delete(key);
      this.forget(slot, key);
      this.evictedTotal++;
      this.scannedSinceEvict = 0;
    }
  }

  /**
   * Attaches the image a fresh start spills to, at its first eviction. Every
   * key it holds is in memory (nothing was evicted), or deleted since the
   * last write-back, which finished: those are marked deleted, so that a miss
   * does not read them back.
   */
  private attachSpill(spill: StateBacking): void {
    this.count = this.size();
    this.backing = spill;
    for (const slot of this.slots.values()) for (const [key, v] of slot.changed) if (v === undefined) this.markDeleted(slot, key);
    // Deletions captured but not yet written back: the image may still hold an older value.
    for (const tables of this.pendingCaptures) {
      for (const t of tables) {
        const slot = this.slots.get(t.state);
        if (slot) for (let i = 0; i < t.keys.length; i++) if (t.values[i] === undefined) this.markDeleted(slot, t.keys[i]);
      }
    }
  }

  /** Marks `key` of a state deleted since the backing was attached: a miss does not read it from the image. */
  private markDeleted(slot: Slot, key: string): void {
    const before = slot.deleted.size;
    slot.deleted.add(key);
    this.deletedCount += slot.deleted.size - before;
  }

  /** Unmarks `key` of a state deleted; whether it was marked. */
  private undelete(slot: Slot, key: string): boolean {
    if (this.deletedCount === 0 || !slot.deleted.delete(key)) return false;
    this.deletedCount--;
    return true;
  }

  /** Marks the current key of a state changed; `value` is what its table now holds. */
  private touch(slot: Slot, value: unknown): void {
    slot.changed.set(this.keyTextNow, value);
  }
}

/** One declared state: its table, its changes since the last capture, and the accessor handed out for it. */
interface Slot {
  readonly name: string;
  readonly kind: DeclaredKind;
  readonly table: Map<string, unknown>;
  /** Keys changed since the last capture, with their live value (undefined: deleted). */
  readonly changed: Map<string, unknown>;
  /**
   * Keys of `changed` that neither the last capture nor the image held:
   * deleted before the next capture, they leave no change (a window that
   * opens and fires between two checkpoints writes nothing).
   */
  readonly fresh: Set<string>;
  /** Keys of the backing deleted since it was attached (the image may still hold them): a miss reads nothing. */
  readonly deleted: Set<string>;
  /** Under a budget, keys of captures not yet written back, with how many such captures hold each: not evicted. */
  readonly pending: Map<string, number>;
  /** Each in-memory entry's estimated bytes (see `memory-budget.ts`). */
  readonly sizes: Map<string, number>;
  /**
   * The CLOCK's cleared reference bits: keys the hand passed that no read
   * touched since (the next pass evicts them). A key not in it has its bit
   * set, so a new entry starts referenced, and a read costs nothing while
   * no eviction has run.
   */
  readonly cold: Set<string>;
  /** `cold` is not empty: a read has a bit to set again (a field, cheaper than the set's size getter). */
  anyCold: boolean;
  /** Where the CLOCK hand is in this state's table. */
  hand: Iterator<string> | undefined;
  /**
   * The accessor handed out. It reads the current key when called, so one
   * serves every record: a process function that calls `getState` per
   * record allocates nothing.
   */
  accessor: ValueState<unknown> | MapState<unknown> | ListState<unknown> | undefined;
  /** The TTL the state was declared with ({@link NO_TTL}: none); undefined until a descriptor declared it. */
  declaredTtl: StateTtlConfig | undefined;
  /** The declared TTL as applied. */
  ttl: TtlPolicy | undefined;
  /** Which forms of entries the table may hold: {@link PLAIN_FORM}, {@link TTL_FORM}, or both (restored before a TTL was added or removed). */
  forms: number;
  /** The table may hold entries of the form the state is not declared with: reads convert them. */
  foreign: boolean;
  /** Where the background cleanup goes on. */
  sweep: Iterator<[string, unknown]> | undefined;
  /** Accesses since the last cleanup on access. */
  accesses: number;
}

/** The declared TTL of a state declared without one. */
const NO_TTL: StateTtlConfig = Object.freeze({ ttlMs: Number.POSITIVE_INFINITY });

const NO_FORM = 0;
/** Entries without timestamps. */
const PLAIN_FORM = 1;
/** Entries of a state with a TTL, with their timestamps. */
const TTL_FORM = 2;

/** The form of the entries a declared state writes. */
function formOf(slot: Slot): number {
  return slot.ttl ? TTL_FORM : PLAIN_FORM;
}

/** A declared state's table holds entries of the other form than its own only after a restore across a TTL change. */
function updateForeign(slot: Slot): void {
  slot.foreign = slot.declaredTtl !== undefined && slot.kind !== "timer" && (slot.forms & ~formOf(slot)) !== 0;
}

function describeTtl(ttl: StateTtlConfig): string {
  return ttl === NO_TTL ? "none" : JSON.stringify(ttl);
}

/** A clock for a backend that was given none: only a TTL needs one. */
function noClock(operator: string): () => number {
  return () => {
    throw new Error(`operator "${operator}": keyed state has no clock`);
  };
}

/** The persisted kind of a live entry of a state declared as `kind`. */
function persistedKind(kind: DeclaredKind, live: unknown): Kind {
  return kind !== "timer" && isTtlLive(live) ? ttlKindOf(kind) : kind;
}

/** One state's entries in a {@link StateCapture}: values, or their JSON when taken as {@link Serialized}. */
interface CapturedTable {
  readonly state: string;
  /** The entries' persisted kind… */
  readonly kind: Kind;
  /** …or each entry's, when they differ (a restore across a TTL change). */
  kinds?: Kind[];
  readonly keys: string[];
  readonly values: unknown[];
}

/** Whether a value cannot change after it was stored (so a reference to it is a copy). */
function isImmutable(v: unknown): boolean {
  return v === null || typeof v === "number" || typeof v === "string" || typeof v === "boolean";
}

/**
 * A live value as captured: itself when immutable (a value state's
 * {@link Stamped} over an immutable value too: its JSON is its persisted
 * form), else its JSON now (user code may mutate it in place).
 */
function freeze(kind: DeclaredKind, v: unknown): unknown {
  if (kind === "value" && (isImmutable(v) || (v instanceof Stamped && isImmutable(v.value)))) return v;
  return new Serialized(JSON.stringify(toPersisted(kind, v)));
}

/**
 * One state's entries captured at a barrier; an undefined value (a deletion
 * among changes) stays undefined. Each value is checked against the size of
 * an image row where its JSON is first made: now for serialized values, and
 * now too for a string long enough to matter (numbers, booleans and null
 * are small).
 */
function captureTable(operator: string, slot: Slot, entries: ReadonlyMap<string, unknown>, nowMs?: number): CapturedTable {
  const { name: state, kind } = slot;
  const t: CapturedTable = { state, kind: kind !== "timer" && slot.forms === TTL_FORM ? ttlKindOf(kind) : kind, keys: [], values: [] };
  // Entries of both forms only after a restore across a TTL change: then each entry's kind is kept.
  const mixed = kind !== "timer" && slot.forms === (PLAIN_FORM | TTL_FORM);
  // A full capture (`nowMs` given) leaves out what is expired.
  const policy = nowMs === undefined ? undefined : slot.ttl;
  for (const [key, live] of entries) {
    let v = live;
    if (policy && v !== undefined && isTtlLive(v)) {
      v = unexpiredLive(v, policy, nowMs!);
      if (v === undefined) continue;
    }
    if (mixed) {
      const k = v === undefined ? t.kind : persistedKind(kind, v);
      if (k !== t.kind || t.kinds) (t.kinds ??= t.keys.map(() => t.kind)).push(k);
    }
    t.keys.push(key);
    if (v === undefined) {
      t.values.push(undefined);
      continue;
    }
    const frozen = freeze(kind, v);
    t.values.push(frozen);
    // A value with a TTL is kept as its Stamped: its value decides, and its timestamp adds ~16 characters.
    const plain = frozen instanceof Stamped ? frozen.value : frozen;
    if (frozen instanceof Serialized) checkStateEntry(operator, state, key, frozen.json);
    else if (typeof plain === "string") {
      if (stringEntryMayBeTooLarge(state, key, plain)) checkStateEntry(operator, state, key, JSON.stringify(frozen));
    }
    // A number, a boolean or null: at most 24 characters of JSON (40 with a timestamp), within the bytes a row keeps aside; only a huge key matters.
    else checkStateEntry(operator, state, key, "");
  }
  return t;
}

/**
 * The key group of a captured key, checked against the key groups the
 * subtask owns (when given).
 */
function ownedKeyGroup(operator: string, maxParallelism: number, owned: KeyGroupRange | undefined): (state: string, key: string) => number {
  if (!owned) return (_state, key) => keyGroupOfText(key, maxParallelism);
  return (state, key) => {
    const keyGroup = keyGroupOfText(key, maxParallelism);
    if (!inRange(owned, keyGroup)) throw new KeyNotOwnedError(operator, state, key, keyGroup, owned);
    return keyGroup;
  };
}

/**
 * Keyed state under a key this subtask does not own: the record that wrote
 * it was routed by another key than the one computed here (a key selector
 * whose key changes across the JSON round trip of a batch).
 */
export class KeyNotOwnedError extends Error {
  constructor(
    readonly operator: string,
    readonly state: string,
    keyText: string,
    readonly keyGroup: number,
    readonly owned: KeyGroupRange,
  ) {
    super(
      `operator ${JSON.stringify(operator)}: state ${JSON.stringify(state)} has key ${displayKey(keyText)} in key group ${keyGroup}, ` +
        `but this subtask owns key groups ${owned.start}..${owned.end}, so a restore or a rescale would not find it. ` +
        `The key selector gave this subtask another key than the sender routed the record by: a key must come out of the JSON round trip ` +
        `of a batch as it went in (key by a string or number field, not by a Date, a Map, a class instance or an object with toJSON)`,
    );
    this.name = "KeyNotOwnedError";
  }
}

/** The JSON of a captured value. */
function thaw(v: unknown): string {
  return v instanceof Serialized ? v.json : JSON.stringify(v);
}

/** Calls `fn` for the captured entries from `start` up to `end` (exclusive), across tables in order. */
function forRange(tables: readonly CapturedTable[], start: number, end: number, fn: (t: CapturedTable, i: number) => void): void {
  let offset = 0;
  for (const t of tables) {
    const from = Math.max(start - offset, 0);
    const to = Math.min(end - offset, t.keys.length);
    for (let i = from; i < to; i++) fn(t, i);
    offset += t.keys.length;
    if (offset >= end) return;
  }
}

/** A value serialized when it was captured. */
class Serialized {
  constructor(readonly json: string) {}
}

/** Key group of a key given by its canonical text. */
export function keyGroupOfText(text: string, maxParallelism: number): number {
  // keyText(key) is what hashKey hashes, so a string key's text hashes the same.
  return hashKey(text) % maxParallelism;
}

/** The key whose canonical text is `text` (the inverse of `keyText`): a timer is stored under the text and fires with the key. */
export function keyFromText(text: string): Key {
  return text.startsWith("\u0000n") ? Number(text.slice(2)) : text;
}

/** A live entry's persisted form (its own: with timestamps when it has them). */
function toPersisted(kind: DeclaredKind, value: unknown): unknown {
  if (isTtlLive(value)) return ttlToPersisted(value as TtlLive);
  return kind === "map" ? [...(value as Map<string, unknown>)] : value;
}

/** A persisted entry's live form, by its persisted kind. */
function fromPersisted(kind: Kind, value: unknown): unknown {
  if (isTtlKind(kind)) return ttlFromPersisted(kind, value);
  return kind === "map" ? new Map(value as [string, unknown][]) : value;
}

