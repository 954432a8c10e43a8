/**
 * Timers out of memory: an {@link IndexedTimerQueue} fires a keyed
 * operator's timers in timestamp order from a time index in the local
 * image, keeping in memory only what the index does not hold yet.
 *
 * Timers are keyed state: per key and time domain, the key's sorted
 * timestamps (entries of kind "timer", see timer-queue.ts). Those entries
 * are what checkpoints, savepoints and rescaling carry, and under a memory
 * budget they are evicted and read back like any state. Firing needs the
 * earliest timer of ALL keys, which the per-key entries cannot answer
 * without a scan. So the image keeps a second, derived view of the same
 * timers, sorted by time: the **time index** (one entry per timer, its
 * position the timestamp, see {@link timeIndexPosition}). It is written
 * with the per-key entries at every seal (a checkpoint's write-back or a
 * flush), dropped above N with them by a local restore, rebuilt from them
 * after a restore from R2, and never uploaded.
 *
 * The queue holds an **overlay**: every timer whose state differs from
 * what the sealed index says, because it was registered, deleted or fired
 * since the last seal that included it (live, or hidden). The earliest
 * timer is the earlier of the overlay's earliest live timer and the index's
 * earliest entry that the overlay does not override. An overlay entry goes
 * once the seal holding its last change ends ({@link persisted}); the index
 * then says the same, except for a live timer earlier than where reading
 * the index stands (registered in the past): it stays in memory until it
 * fires, so that reading never goes back over what fired. The index's head
 * is read into a small cache; a seal changes the index, so the cache is
 * read again from where reading stands.
 *
 * Without a local image (local recovery off) a backend uses the
 * in-memory `HeapTimerQueue` instead.
 *
 * Pure: no Cloudflare import; the image implements {@link TimeIndex}.
 */
import { type Timer, type TimerQueue, heapPop, heapPush, heapify, lowerBound } from "./timer-queue.js";
import { OVERLAY_TIMER_BYTES } from "./memory-budget.js";

/** The sealed time index of one operator and time domain, as the image reads it. */
export interface TimeIndex {
  /**
   * The index's timers with a timestamp ≥ `fromMs`, in the order of their
   * entries' keys ({@link timeIndexKey}: timestamp, then the image's order
   * of the timers' keys), from the runs sealed when it is called. Stop
   * iterating (return) when done: the runs are held until then.
   */
  scan(fromMs: number): Iterator<IndexedTimer>;
}

/** A timer as the index holds it: with its entry's key ({@link timeIndexKey}), which orders the index. */
export interface IndexedTimer extends Timer {
  readonly entryKey: string;
}

/** One change for the index: the timer (`key`, `timestampMs`) is live, or not (a tombstone). */
export interface TimeIndexChange {
  readonly key: string;
  readonly timestampMs: number;
  readonly live: boolean;
  /** Where the image keeps `key`'s entries ({@link ImageKeyOrder.positionOf}): keyGroup·2^32 + hash. */
  readonly position: number;
}

/** Where {@link IndexedTimerQueue} keeps each key's timestamps: the backend's timer entries (read back when evicted). */
export interface TimerEntryStore {
  /** The sorted timestamps of `key`, or undefined. The array is not changed in place. */
  get(key: string): readonly number[] | undefined;
  /** Stores the timestamps of `key` (undefined: none left); marks the entry changed. */
  set(key: string, timestamps: readonly number[] | undefined): void;
}

/** 2^47: timestamps are shifted by it so that negative ones sort before positive ones. */
const SHIFT = 2 ** 47;
const MAX_POSITION = 2 ** 48 - 1;
const TWO_32 = 2 ** 32;

/**
 * The 48-bit run position of a timer at `timestampMs`: (keyGroup, hash) of
 * the run format, so that the index's entries sort by time. Monotone; times
 * beyond ±2^47 ms (±4,400 years) share the end positions, and the entry's
 * key ({@link timeIndexKey}) orders them exactly.
 */
export function timeIndexPosition(timestampMs: number): { keyGroup: number; hash: number } {
  const p = Math.min(Math.max(Math.floor(timestampMs) + SHIFT, 0), MAX_POSITION);
  const keyGroup = Math.floor(p / TWO_32);
  return { keyGroup, hash: p - keyGroup * TWO_32 };
}

const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);
/** The time {@link timeIndexKey} made digits for last, and them. */
let lastKeyMs = Number.NaN;
let lastKeyPrefix = "";
/** The digits {@link parseTimeIndexKey} read last, and their time. */
let lastParsedPrefix = "";
let lastParsedMs = 0;

/**
 * The index entry's key: 16 hex digits that sort as the timestamp does
 * (its IEEE 754 bits, sign flipped for positives, all bits for negatives),
 * then 12 of `position`, where the image keeps the timer's key's entries
 * (keyGroup·2^32 + hash, below 2^48), then the timer's key. Among entries
 * of one position of the index, UTF-8 order is then (timestamp, the
 * image's order of the keys, key) order: the timers of one time come out
 * in the order the image keeps their keys' entries, so that a window's
 * end, fired in slices, reads each block of the image once.
 */
export function timeIndexKey(timestampMs: number, position: number, key: string): string {
  // A window's end gives thousands of timers one time: its digits are made once.
  if (!Object.is(timestampMs, lastKeyMs)) {
    lastKeyPrefix = timeIndexPrefix(timestampMs);
    lastKeyMs = timestampMs;
  }
  const keyGroup = Math.floor(position / TWO_32);
  return lastKeyPrefix + keyGroup.toString(16).padStart(4, "0") + (position - keyGroup * TWO_32).toString(16).padStart(8, "0") + key;
}

/** The 16 hex digits of {@link timeIndexKey}. */
function timeIndexPrefix(timestampMs: number): string {
  F64[0] = timestampMs;
  // Little-endian: U32[1] holds the sign and exponent.
  let hi = U32[1];
  let lo = U32[0];
  if (hi >>> 31) {
    hi = ~hi >>> 0;
    lo = ~lo >>> 0;
  } else {
    hi = (hi | 0x80000000) >>> 0;
  }
  return hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0");
}

/** The timestamp and key of an index entry's key ({@link timeIndexKey} inverted), with the entry's key. */
export function parseTimeIndexKey(entryKey: string): IndexedTimer {
  const prefix = entryKey.slice(0, 16);
  if (prefix !== lastParsedPrefix) {
    lastParsedMs = parseTimeIndexPrefix(prefix);
    lastParsedPrefix = prefix;
  }
  return { timestampMs: lastParsedMs, key: entryKey.slice(28), entryKey };
}

/** The time of an index entry key's 16 hex digits. */
function parseTimeIndexPrefix(prefix: string): number {
  let hi = Number.parseInt(prefix.slice(0, 8), 16) >>> 0;
  let lo = Number.parseInt(prefix.slice(8, 16), 16) >>> 0;
  if (hi >>> 31) {
    hi = (hi & 0x7fffffff) >>> 0;
  } else {
    hi = ~hi >>> 0;
    lo = ~lo >>> 0;
  }
  U32[1] = hi;
  U32[0] = lo;
  return F64[0];
}

/** A timer whose state the sealed index does not reflect yet. */
interface Override {
  readonly key: string;
  readonly timestampMs: number;
  live: boolean;
  /** The capture (generation) its last change belongs to: it goes once that capture is sealed. */
  generation: number;
  /**
   * The generation in which it became live with no entry in the index (nor
   * one on its way there): gone again before that generation's capture, it
   * leaves nothing to write (-1: the index may hold it).
   */
  newIn: number;
  /** Out of the overlay: the lists of changes that still hold it skip it. */
  gone: boolean;
}

/** The order in which the image keeps keys' entries, for the timers of one time to be read and fired in. */
export interface ImageKeyOrder {
  /** A key's position, by its text: keyGroup·2^32 + hash, the order of the image's runs. */
  positionOf(key: string): number;
  /** Whether the order pays: some entries are out of memory, to be read back (with all in memory, sorting is all it costs). */
  wanted(): boolean;
}

/** No image order (a queue over a bare index, in tests): every key at position 0, so keys at one time go in key order. */
const IN_KEY_ORDER: ImageKeyOrder = { positionOf: () => 0, wanted: () => false };

/**
 * Sorts timers by time, and those at one time by `positionOf` their key.
 * Keys at one time fire in no particular order (as in Flink's heap queue),
 * so any order among them is theirs to take.
 */
function inImageOrder(timers: Timer[], positionOf: (key: string) => number): void {
  const sorted = timers.map((t) => ({ t, at: positionOf(t.key) }));
  sorted.sort((a, b) => a.t.timestampMs - b.t.timestampMs || a.at - b.at);
  for (let i = 0; i < sorted.length; i++) timers[i] = sorted[i].t;
}

/** Index entries read ahead into memory at most. */
export const INDEX_CACHE_ENTRIES = 256;

/** The timers of one operator in one time domain, over per-key entries and a time index. */
export class IndexedTimerQueue implements TimerQueue {
  /**
   * Timers changed since the seal that last included them, by timestamp,
   * then key: a timer's key is hashed once already (its state's lookup),
   * where a text of both would be built and hashed at each change.
   */
  private readonly overlay = new Map<number, Map<string, Override>>();
  /** The overlay's live timers by time (a min-heap of timestamps, with their keys per timestamp; stale entries skipped lazily). */
  private readonly liveByTime = new Map<number, Set<string>>();
  private heap: number[] = [];
  /** Where {@link nextLiveKey} goes on: a live iteration of one time's keys (it skips keys deleted since, sees keys added). */
  private liveCursor: { keys: Set<string>; it: SetIterator<string> } | undefined;
  /** The overrides changed in the current generation, each once (captured by the next {@link captureIndex}). */
  private changedNow: Override[] = [];
  private generation = 0;
  /** Captures not yet sealed: their generation and the overrides they changed, in order. */
  private readonly captures: { generation: number; changed: Override[] }[] = [];
  /** Index entries read ahead, in order, from `cacheAt`. */
  private cache: IndexedTimer[] = [];
  private cacheAt = 0;
  /** Where the next read of the index starts (a timestamp; every index entry before it was read or is overridden). */
  private readFrom = Number.NEGATIVE_INFINITY;
  /** The last entry read from the index (reading on skips up to it), or undefined before the first. */
  private lastRead: string | undefined;
  /** The index has no entry after what was read. */
  private exhausted = false;
  /**
   * The scan the cache is read from, kept open until the index changes (a
   * seal), so that each read-ahead goes on where the last stopped instead
   * of seeking again through the entries at one time (a window's end:
   * thousands of timers at one timestamp). An open scan holds its runs'
   * pages: {@link close} it when the queue is dropped.
   */
  private open: Iterator<IndexedTimer> | undefined;
  private count: number;
  private bytes = 0;

  constructor(
    private readonly entries: TimerEntryStore,
    private index: TimeIndex,
    count = 0,
    /** Told of every change of {@link overlayBytes} (the backend counts them in its memory budget's estimate). */
    private readonly onOverlayBytes: (delta: number) => void = () => {},
    /**
     * Where the image keeps the keys' entries: the index orders one time's
     * timers so (their changes carry the position), and timers polled at
     * one time, the overlay's among them, come out in that order while it
     * is wanted. It must be the same function for as long as the index
     * lives: a tombstone hides the entry of the same key only.
     */
    private readonly keyOrder: ImageKeyOrder = IN_KEY_ORDER,
  ) {
    this.count = count;
  }

  /** The overlay's estimated bytes in memory (memory-budget.ts, {@link OVERLAY_TIMER_BYTES} a timer and its key). */
  get overlayBytes(): number {
    return this.bytes;
  }

  private countOverlay(key: string, sign: 1 | -1): void {
    const delta = sign * (OVERLAY_TIMER_BYTES + key.length);
    this.bytes += delta;
    this.onOverlayBytes(delta);
  }

  register(key: string, timestampMs: number): boolean {
    const timestamps = this.entries.get(key);
    const at = timestamps ? lowerBound(timestamps, timestampMs) : 0;
    if (timestamps && timestamps[at] === timestampMs) return false;
    const next = timestamps ? [...timestamps.slice(0, at), timestampMs, ...timestamps.slice(at)] : [timestampMs];
    this.entries.set(key, next);
    this.change(key, timestampMs, true);
    this.count++;
    return true;
  }

  delete(key: string, timestampMs: number): boolean {
    const timestamps = this.entries.get(key);
    if (!timestamps) return false;
    const at = lowerBound(timestamps, timestampMs);
    if (timestamps[at] !== timestampMs) return false;
    this.removeTimestamp(key, timestamps, at);
    this.change(key, timestampMs, false);
    this.count--;
    return true;
  }

  peek(): number | undefined {
    const a = this.liveHead();
    const b = this.indexHead();
    if (a === undefined) return b?.timestampMs;
    if (b === undefined) return a;
    return Math.min(a, b.timestampMs);
  }

  /** Releases what the queue holds of the image (its open scan); it reads the index again if used after. */
  close(): void {
    this.forgetCache(this.cacheAt < this.cache.length ? this.cache[this.cacheAt].timestampMs : this.readFrom);
  }

  poll(upToMs: number, max = Number.POSITIVE_INFINITY): Timer[] {
    const out: Timer[] = [];
    let fromOverlay = 0;
    while (out.length < max) {
      const a = this.liveHead();
      const b = this.indexHead();
      let next: Timer;
      if (a !== undefined && (b === undefined || a <= b.timestampMs)) {
        if (a > upToMs) break;
        // Keys at one time fire in no particular order, as in the heap queue.
        next = { key: this.nextLiveKey(a), timestampMs: a };
        fromOverlay++;
      } else if (b !== undefined) {
        if (b.timestampMs > upToMs) break;
        next = { key: b.key, timestampMs: b.timestampMs };
        this.cacheAt++;
      } else break;
      this.change(next.key, next.timestampMs, false);
      out.push(next);
    }
    // Each timer's key entry is read (from the image, when evicted) in the image's order of the keys, and the timers
    // fire in it: a window's end fires thousands of keys at one time, and keys in one block are then read together.
    // The index gives one time's timers in that order already: only the overlay's need placing among them.
    if (fromOverlay > 0 && out.length > 1 && this.keyOrder.wanted()) inImageOrder(out, this.keyOrder.positionOf);
    for (const t of out) {
      const timestamps = this.entries.get(t.key);
      const at = timestamps ? lowerBound(timestamps, t.timestampMs) : -1;
      if (!timestamps || timestamps[at] !== t.timestampMs) {
        throw new Error(`timer (${JSON.stringify(t.key)}, ${t.timestampMs}) is in the time index but not in its key's timers: the image is inconsistent`);
      }
      this.removeTimestamp(t.key, timestamps, at);
      this.count--;
    }
    return out;
  }

  size(): number {
    return this.count;
  }

  /**
   * A timer that is in its key's entry but in neither the index nor the
   * overlay (a queue taking over from an in-memory one): live in the
   * overlay, and in the index from the next seal on.
   */
  adopt(key: string, timestampMs: number): void {
    this.change(key, timestampMs, true);
    this.count++;
  }

  /**
   * The changes since the last capture, for the index, taken at the same
   * moment as the per-key entries' changes (a checkpoint's barrier or a
   * flush). Call {@link persisted} with its generation once sealed.
   */
  captureIndex(): { generation: number; changes: TimeIndexChange[] } {
    const generation = this.generation++;
    const changed = this.changedNow.filter((o) => !o.gone);
    this.changedNow = [];
    const positionOf = this.keyOrder.positionOf;
    const changes: TimeIndexChange[] = changed.map((o) => ({ key: o.key, timestampMs: o.timestampMs, live: o.live, position: positionOf(o.key) }));
    this.captures.push({ generation, changed });
    return { generation, changes };
  }

  /**
   * The capture of `generation` (and every one before it) is sealed into
   * the index: what it changed is read from the index from now on, unless
   * changed again since.
   */
  persisted(generation: number): void {
    // Where reading the index stands, as a whole millisecond (the index's positions are milliseconds: reading again from
    // one seeks past every entry before it, however many fired at one time): every index entry before it was read.
    let boundary: number;
    if (this.cacheAt < this.cache.length) boundary = Math.floor(this.cache[this.cacheAt].timestampMs);
    else if (this.lastRead === undefined) boundary = this.readFrom;
    // Read to the index's end: the last millisecond read holds nothing unread.
    else if (this.exhausted) boundary = Math.floor(this.readFrom) + 1;
    else boundary = Math.floor(this.readFrom);
    while (this.captures.length > 0 && this.captures[0].generation <= generation) {
      const c = this.captures.shift()!;
      for (const o of c.changed) {
        if (o.gone || o.generation > c.generation) continue;
        // A live timer before where reading stands (registered in the past, due at the next firing) stays in memory:
        // reading the index again from there would go through every entry fired since.
        if (o.live && o.timestampMs < boundary) continue;
        this.forget(o);
        if (o.live) this.unlistLive(o);
      }
    }
    // The index changed: read it again from where reading stands.
    this.forgetCache(boundary);
  }

  // ---- the overlay ----

  private change(key: string, timestampMs: number, live: boolean): void {
    let atTime = this.overlay.get(timestampMs);
    let o = atTime?.get(key);
    if (!o) {
      // No override: the index holds what the key's entry says, so a timer that becomes live is not in it.
      o = { key, timestampMs, live, generation: this.generation, newIn: live ? this.generation : -1, gone: false };
      if (!atTime) this.overlay.set(timestampMs, (atTime = new Map()));
      atTime.set(key, o);
      this.countOverlay(key, 1);
      this.changedNow.push(o);
    } else if (!live && o.newIn === this.generation) {
      // Registered and gone since the last capture (a window that fired between two checkpoints): the index never
      // held it and need not hear of it; no tombstone to write, seal and compact away.
      this.unlistLive(o);
      this.forget(o);
      return;
    } else {
      if (o.live && !live) this.unlistLive(o);
      o.live = live;
      if (o.generation !== this.generation) this.changedNow.push(o);
      o.generation = this.generation;
    }
    if (live) this.listLive(o);
  }

  /** Takes `o` out of the overlay. */
  private forget(o: Override): void {
    const atTime = this.overlay.get(o.timestampMs)!;
    atTime.delete(o.key);
    if (atTime.size === 0) this.overlay.delete(o.timestampMs);
    o.gone = true;
    this.countOverlay(o.key, -1);
  }

  private listLive(o: Override): void {
    let keys = this.liveByTime.get(o.timestampMs);
    if (!keys) {
      this.liveByTime.set(o.timestampMs, (keys = new Set()));
      heapPush(this.heap, o.timestampMs);
    }
    keys.add(o.key);
  }

  private unlistLive(o: Override): void {
    const keys = this.liveByTime.get(o.timestampMs);
    if (!keys?.delete(o.key)) return;
    if (keys.size === 0) this.liveByTime.delete(o.timestampMs);
    // Stale heap entries are dropped as they surface; a heap mostly stale is rebuilt, so it stays O(overlay).
    if (this.heap.length > 64 && this.heap.length > 4 * this.liveByTime.size) this.heap = heapify([...this.liveByTime.keys()]);
  }

  /**
   * A live key of the overlay at `timestampMs` (there is one), the next of
   * the iteration over that time's set that {@link poll} goes on with. Its
   * first key again at each poll would cost quadratic time: a set's
   * iteration starts by skipping the slots of the keys deleted before
   * (95,000 windows ending at once took about a second).
   */
  private nextLiveKey(timestampMs: number): string {
    const keys = this.liveByTime.get(timestampMs)!;
    if (this.liveCursor?.keys !== keys) this.liveCursor = { keys, it: keys.values() };
    const r = this.liveCursor.it.next();
    if (!r.done) return r.value;
    // Ended before keys were added to the set again (an ended iteration stays ended): from its start.
    this.liveCursor = { keys, it: keys.values() };
    return this.liveCursor.it.next().value as string;
  }

  /** The earliest live timer of the overlay. */
  private liveHead(): number | undefined {
    while (this.heap.length > 0) {
      const top = this.heap[0];
      if (this.liveByTime.has(top)) return top;
      heapPop(this.heap);
    }
    return undefined;
  }

  private removeTimestamp(key: string, timestamps: readonly number[], at: number): void {
    const next = timestamps.length === 1 ? undefined : [...timestamps.slice(0, at), ...timestamps.slice(at + 1)];
    this.entries.set(key, next);
  }

  // ---- the index's head ----

  /** The earliest index entry the overlay does not override. */
  private indexHead(): IndexedTimer | undefined {
    for (;;) {
      while (this.cacheAt < this.cache.length) {
        const t = this.cache[this.cacheAt];
        if (this.overlay.get(t.timestampMs)?.has(t.key) !== true) return t;
        this.cacheAt++;
      }
      if (this.exhausted || !this.readAhead()) return undefined;
    }
  }

  /** Reads the next entries of the index into the cache; false when there are none. */
  private readAhead(): boolean {
    const cache: IndexedTimer[] = [];
    try {
      if (this.open) {
        for (let r = this.open.next(); !r.done; r = this.open.next()) {
          cache.push(r.value);
          if (cache.length >= INDEX_CACHE_ENTRIES) break;
        }
      } else {
        const it = (this.open = this.index.scan(this.readFrom));
        const lastRead = this.lastRead;
        for (let r = it.next(); !r.done; r = it.next()) {
          const t = r.value;
          // Entries at the time reading resumes from, up to the last one read, were read already.
          if (lastRead !== undefined && t.timestampMs === this.readFrom && t.entryKey <= lastRead) continue;
          cache.push(t);
          if (cache.length >= INDEX_CACHE_ENTRIES) break;
        }
      }
    } finally {
      if (cache.length < INDEX_CACHE_ENTRIES) this.closeScan();
    }
    this.cache = cache;
    this.cacheAt = 0;
    if (cache.length < INDEX_CACHE_ENTRIES) this.exhausted = true;
    if (cache.length === 0) return false;
    const last = cache[cache.length - 1];
    this.readFrom = last.timestampMs;
    this.lastRead = last.entryKey;
    return true;
  }

  private closeScan(): void {
    const it = this.open;
    this.open = undefined;
    it?.return?.();
  }

  /** Drops what was read ahead: the next read starts at `fromMs`. */
  private forgetCache(fromMs: number): void {
    this.closeScan();
    this.cache = [];
    this.cacheAt = 0;
    this.readFrom = fromMs;
    this.lastRead = undefined;
    this.exhausted = false;
  }
}
