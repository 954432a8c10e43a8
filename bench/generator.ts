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
  let out = "";
  for (let g = 0; out.length < bytes; g++) {
    const h = mix32(Math.imul(variant, 0x9e3779b9) ^ Math.imul(index, 0x85ebca6b) ^ Math.imul(g, 0xc2b2ae35));
    for (let c = 0; c < 4 && out.length < bytes; c++) out += ALPHABET[(h >>> (6 * c)) & 63];
  }
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
