/**
 * The benchmark input, defined bit for bit so that floe (here) and the
 * Flink peer (bench/flink, `Gen.java`) produce the same events.
 *
 * Event `seq` (0 ≤ seq < 2^31) of a run with seed S and K keys:
 *
 *   h     = mix32((S × 0x9E3779B9) xor seq)       all arithmetic on 32-bit ints
 *   key   = "k" + (h mod K)                        h read as unsigned
 *   value = mix32(h xor 0x5BD1E995) mod 1000       unsigned
 *
 * where mix32 is the finalizer of MurmurHash3 (x ^= x>>>16; x *= 0x7FEB352D;
 * x ^= x>>>15; x *= 0x846CA68B; x ^= x>>>16). A stateless function of seq,
 * so that any number of parallel readers, each with its own range or stride
 * of seq, together produce the same multiset of events.
 *
 * No imports: the Worker bundle (bench/jobs.ts) and the Node harness both use it.
 */

/** Seed of every run unless `--seed` says otherwise. */
export const DEFAULT_SEED = 42;

/** Source partitions and keyed parallelism of the generator-driven jobs (and of the Flink peer). */
export const BENCH_PARALLELISM = 2;

/** One event of the benchmark input. */
export interface BenchEvent {
  key: string;
  seq: number;
  value: number;
}

/** MurmurHash3's 32-bit finalizer; returns an unsigned 32-bit integer. */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** The hash an event's key and value derive from. */
export function eventHash(seed: number, seq: number): number {
  return mix32(Math.imul(seed, 0x9e3779b9) ^ seq);
}

/** Event `seq` of the input with `keys` keys. */
export function benchEvent(seed: number, keys: number, seq: number): BenchEvent {
  const h = eventHash(seed, seq);
  return { key: `k${h % keys}`, seq, value: mix32(h ^ 0x5bd1e995) % 1000 };
}

/** The stateless map of workload 1 (the same in Java). */
export function mapEvent(e: BenchEvent): BenchEvent {
  return { key: e.key, seq: e.seq, value: e.value * 2 + 1 };
}

/** The filter of workload 1: keeps two events in three. */
export function keepEvent(e: BenchEvent): boolean {
  return e.value % 3 !== 0;
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * The state payload of workload 3: `bytes` characters that do not compress
 * away (6 random bits per character), a function of (variant, index):
 * group g of 4 characters comes from
 * h = mix32((variant × 0x9E3779B9) xor (index × 0x85EBCA6B) xor (g × 0xC2B2AE35)),
 * character c of the group is ALPHABET[(h >>> 6c) & 63].
 */
export function payload(variant: number, index: number, bytes: number): string {
  // Built as character codes and made a string once: `out += char` would
  // give a rope of `bytes` cons cells (about 32 bytes each), which a job
  // keeping the payload as its state would hold at 30 times its length.
  const codes = new Array<number>(bytes);
  for (let g = 0, i = 0; i < bytes; g++) {
    const h = mix32(Math.imul(variant, 0x9e3779b9) ^ Math.imul(index, 0x85ebca6b) ^ Math.imul(g, 0xc2b2ae35));
    for (let c = 0; c < 4 && i < bytes; c++) codes[i++] = ALPHABET.charCodeAt((h >>> (6 * c)) & 63);
  }
  let out = "";
  for (let i = 0; i < bytes; i += 4096) out += String.fromCharCode(...codes.slice(i, i + 4096));
  return out;
}

/**
 * FNV-1a (32 bits) over "key,value,payload\n" of events 0..count-1 (the
 * payload only for the first 1000), as 8 hex digits: the harness compares
 * it with the Java generator's before a peer run.
 */
export function fingerprint(seed: number, keys: number, count: number): string {
  let h = 0x811c9dc5;
  for (let seq = 0; seq < count; seq++) {
    const e = benchEvent(seed, keys, seq);
    const line = `${e.key},${e.value},${seq < 1000 ? payload(seq & 3, seq, 100) : ""}\n`;
    for (let i = 0; i < line.length; i++) h = Math.imul(h ^ line.charCodeAt(i), 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}

/** How many of events 0..count-1 pass map then filter (a check that both engines did the same work). */
export function expectedPassed(seed: number, keys: number, count: number): number {
  let n = 0;
  for (let seq = 0; seq < count; seq++) if (keepEvent(mapEvent(benchEvent(seed, keys, seq)))) n++;
  return n;
}

/**
 * Event time of the timed input (the windowed and timer workloads), the same in Gen.java:
 *
 *   ts = EVENT_TIME_BASE_MS + floor(seq × 1000 / rate) − (mix32(h xor 0x27D4EB2F) mod (OUT_OF_ORDERNESS_MS + 1))
 *
 * with h = eventHash(seed, seq) and `rate` events per second of event time. Within a
 * partition (seq ≡ p mod P, read in order) the first term never decreases, so a record is
 * at most OUT_OF_ORDERNESS_MS behind the newest before it: with a bounded-out-of-orderness
 * watermark of that bound no record is late, and both engines count every event.
 */
export const EVENT_TIME_BASE_MS = 1_767_225_600_000; // 2026-01-01T00:00:00Z, a multiple of every window size used
/** The largest lateness of a record behind its partition's newest, and both engines' watermark bound. */
export const OUT_OF_ORDERNESS_MS = 1000;
/** Window size of the timer and tumbling workloads, and the slide of the sliding one (event time). */
export const BENCH_WINDOW_MS = 10_000;
/** Size of the sliding workload's windows: each event is in 6. */
export const BENCH_SLIDING_SIZE_MS = 60_000;
/** The table every timed job writes its one row per window to (floe). */
export const WINDOWS_TABLE = "bench-windows";
/** Events per second of event time unless `--event-rate` says otherwise. */
export const DEFAULT_EVENT_RATE = 10_000;

/** The event time of event `seq` at `rate` events per second of event time. */
export function eventTime(seed: number, seq: number, rate: number): number {
  const h = eventHash(seed, seq);
  return EVENT_TIME_BASE_MS + Math.floor((seq * 1000) / rate) - (mix32(h ^ 0x27d4eb2f) % (OUT_OF_ORDERNESS_MS + 1));
}

/** FNV-1a (32 bits) over "key,ts\n" of events 0..count-1, as 8 hex digits: the timed input's check against Gen.java. */
export function timeFingerprint(seed: number, keys: number, count: number, rate: number): string {
  let h = 0x811c9dc5;
  for (let seq = 0; seq < count; seq++) {
    const line = `${benchEvent(seed, keys, seq).key},${eventTime(seed, seq, rate)}\n`;
    for (let i = 0; i < line.length; i++) h = Math.imul(h ^ line.charCodeAt(i), 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}

/** Per-window totals of a count: how many (key, window) results, and the sum of their counts. */
export interface WindowTotals {
  windows: number;
  results: number;
  total: number;
}

/**
 * What a per-key count over windows of `sizeMs` every `slideMs` (tumbling: equal) must emit
 * for events 0..count-1 once the input ends: the reference both engines' outputs are checked
 * against in runs of a fixed number of events.
 */
export function expectedWindowTotals(seed: number, keys: number, count: number, rate: number, sizeMs: number, slideMs: number): WindowTotals {
  const windows = new Set<number>();
  const results = new Set<string>();
  let total = 0;
  for (let seq = 0; seq < count; seq++) {
    const ts = eventTime(seed, seq, rate);
    const key = benchEvent(seed, keys, seq).key;
    const lastStart = ts - (((ts % slideMs) + slideMs) % slideMs);
    for (let start = lastStart; start > ts - sizeMs; start -= slideMs) {
      windows.add(start);
      results.add(`${key}@${start}`);
      total++;
    }
  }
  return { windows: windows.size, results: results.size, total };
}
