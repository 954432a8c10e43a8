/**
 * Timers of keyed process functions, as a state backend keeps them (Flink's
 * InternalTimerService over a KeyGroupedInternalPriorityQueue): one
 * {@link TimerQueue} per operator and time domain, holding (key, timestamp)
 * pairs, at most one per pair.
 *
 * Timers are keyed state. A backend persists them as entries of kind
 * `"timer"`: per key and time domain, the key's sorted timestamps, under the
 * state name {@link timerStateName} (a name user state cannot take). So they
 * are tracked as changed, written into full and incremental snapshots, the
 * local image and savepoints, and split by key group on rescale, like any
 * other state. The queue is the in-memory index over those entries that
 * answers "what is due" in timestamp order; a restore rebuilds it from them.
 *
 * Every backend implements {@link TimerQueue}; {@link HeapTimerQueue} is the
 * heap backend's, over a narrow {@link TimerEntries} port into its tables.
 */

import type { TimeDomain } from "../api/types.js";

export type { TimeDomain };

/** One due timer: a key (its canonical text, as keyed state stores it) and a timestamp. */
export interface Timer {
  readonly key: string;
  readonly timestampMs: number;
}

/** The timers of one operator in one time domain. */
export interface TimerQueue {
  /** Adds a timer; false when the key already had one at that timestamp (deduplicated). */
  register(key: string, timestampMs: number): boolean;
  /** Removes a timer; false when there was none. */
  delete(key: string, timestampMs: number): boolean;
  /** The earliest timestamp of any timer, or undefined when there is none. */
  peek(): number | undefined;
  /** Removes and returns every timer at or below `upToMs` (the first `max` of them, when given), in timestamp order. */
  poll(upToMs: number, max?: number): Timer[];
  /** Number of timers. */
  size(): number;
}

/** The state name under which a backend persists the timers of a domain (a ':' keeps it apart from user state names). */
export function timerStateName(domain: TimeDomain): string {
  return `timer:${domain}`;
}

/** The time domain whose timers a state name holds, if it is a timer state. */
export function timerDomainOf(state: string): TimeDomain | undefined {
  return state === "timer:event" ? "event" : state === "timer:processing" ? "processing" : undefined;
}

/** Throws unless `timestampMs` can be a timer's time (a finite number of ms). */
export function checkTimerTimestamp(timestampMs: unknown, operator: string, domain: TimeDomain): number {
  if (typeof timestampMs !== "number" || !Number.isFinite(timestampMs)) {
    throw new TypeError(`operator "${operator}": a timer in ${domain} time needs a finite timestamp in ms, got ${String(timestampMs)}`);
  }
  return timestampMs;
}

/** Where {@link HeapTimerQueue} keeps each key's timestamps: the backend's timer entries. */
export interface TimerEntries {
  /** The sorted timestamps of `key` (the live array: the queue changes it in place and passes it to {@link set}). */
  get(key: string): number[] | undefined;
  /** Stores the timestamps of `key` (undefined: it has none left); marks the entry changed. */
  set(key: string, timestamps: number[] | undefined): void;
  /** Every key with timers and its timestamps, to rebuild the index. */
  all(): Iterable<[string, number[]]>;
}

/**
 * A {@link TimerQueue} over per-key entries, with an in-memory index: the
 * keys per timestamp and a binary min-heap of the timestamps. A timestamp
 * whose keys all went is left in the heap and skipped when it surfaces
 * (lazy deletion), so deleting costs O(1) plus the key's entry.
 */
export class HeapTimerQueue implements TimerQueue {
  private readonly byTime = new Map<number, Set<string>>();
  private heap: number[] = [];
  private count = 0;

  constructor(private readonly entries: TimerEntries) {
    this.rebuild();
  }

  /** Builds the index again from the entries (after a restore replaced them). */
  rebuild(): void {
    this.byTime.clear();
    this.heap = [];
    this.count = 0;
    for (const [key, timestamps] of this.entries.all()) for (const ts of timestamps) this.index(key, ts);
  }

  register(key: string, timestampMs: number): boolean {
    const timestamps = this.entries.get(key);
    if (!timestamps) {
      this.entries.set(key, [timestampMs]);
    } else {
      const at = lowerBound(timestamps, timestampMs);
      if (timestamps[at] === timestampMs) return false;
      timestamps.splice(at, 0, timestampMs);
      this.entries.set(key, timestamps);
    }
    this.index(key, timestampMs);
    return true;
  }

  delete(key: string, timestampMs: number): boolean {
    const timestamps = this.entries.get(key);
    if (!timestamps) return false;
    const at = lowerBound(timestamps, timestampMs);
    if (timestamps[at] !== timestampMs) return false;
    timestamps.splice(at, 1);
    this.entries.set(key, timestamps.length === 0 ? undefined : timestamps);
    this.unindex(key, timestampMs);
    return true;
  }

  peek(): number | undefined {
    while (this.heap.length > 0) {
      const top = this.heap[0];
      if (this.byTime.has(top)) return top;
      this.pop();
    }
    return undefined;
  }

  poll(upToMs: number, max = Number.POSITIVE_INFINITY): Timer[] {
    const out: Timer[] = [];
    for (let ts = this.peek(); ts !== undefined && ts <= upToMs && out.length < max; ts = this.peek()) {
      const keys = this.byTime.get(ts)!;
      for (const key of keys) {
        if (out.length >= max) break;
        // Deleting the key being visited leaves the iteration going on with the next.
        keys.delete(key);
        out.push({ key, timestampMs: ts });
        const timestamps = this.entries.get(key)!;
        // A key's timestamps are sorted and these are due in order: the one polled is its first.
        const at = timestamps[0] === ts ? 0 : lowerBound(timestamps, ts);
        timestamps.splice(at, 1);
        this.entries.set(key, timestamps.length === 0 ? undefined : timestamps);
        this.count--;
      }
      if (keys.size === 0) {
        this.byTime.delete(ts);
        this.pop();
      }
    }
    return out;
  }

  size(): number {
    return this.count;
  }

  private index(key: string, ts: number): void {
    let keys = this.byTime.get(ts);
    if (!keys) {
      this.byTime.set(ts, (keys = new Set()));
      this.push(ts);
    }
    keys.add(key);
    this.count++;
  }

  private unindex(key: string, ts: number): void {
    const keys = this.byTime.get(ts);
    if (!keys?.delete(key)) return;
    this.count--;
    if (keys.size === 0) this.byTime.delete(ts);
    // Stale heap entries are dropped as they surface; a heap mostly stale is rebuilt, so it stays O(timers).
    if (this.heap.length > 64 && this.heap.length > 4 * this.byTime.size) this.heap = heapify([...this.byTime.keys()]);
  }

  private push(ts: number): void {
    heapPush(this.heap, ts);
  }

  private pop(): void {
    heapPop(this.heap);
  }
}

/** Adds `x` to the binary min-heap `h`. */
export function heapPush(h: number[], x: number): void {
  h.push(x);
  let i = h.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (h[parent] <= x) break;
    h[i] = h[parent];
    i = parent;
  }
  h[i] = x;
}

/** Removes the least element of the binary min-heap `h`. */
export function heapPop(h: number[]): void {
  const last = h.pop()!;
  if (h.length === 0) return;
  siftDown(h, 0, last);
}

/** Index of the first element of sorted `a` that is ≥ `x`. */
export function lowerBound(a: readonly number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Places `x` at `i` and moves it down to where the heap order holds. */
function siftDown(h: number[], i: number, x: number): void {
  const n = h.length;
  for (;;) {
    let child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && h[child + 1] < h[child]) child++;
    if (h[child] >= x) break;
    h[i] = h[child];
    i = child;
  }
  h[i] = x;
}

export function heapify(values: number[]): number[] {
  for (let i = (values.length >> 1) - 1; i >= 0; i--) siftDown(values, i, values[i]);
  return values;
}
