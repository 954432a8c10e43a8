/**
 * The interval-join workload's input and its reference, the same for floe
 * (bench/jobs.ts `benchIntervalJoin`) and the Flink peer
 * (`FlinkBench.intervalJoin`).
 *
 * Two streams of the timed input (bench/generator.ts `eventTime`), each
 * with `perSide` events over the same keys and event-time rate: the left
 * one with the run's seed S, the right one with seed S + 1
 * ({@link rightSeed}), so that the two sides have different keys and
 * out-of-orderness at each seq. `a.keyBy(key).intervalJoin(b.keyBy(key))
 * .between(JOIN_LOWER_MS, JOIN_UPPER_MS)` joins a left event at t with
 * every right event of its key at s, t − 500 ≤ s ≤ t + 500 (both bounds
 * inclusive, as in both engines). At R events per second of event time
 * over K keys a key sees R / K events a second on each side, so a left
 * event has about (1001 / 1000) × R / K partners: with the defaults
 * (10,000 events a second, 10,000 keys) about one, half an output per
 * record into the join. The output stays small so that the join, not
 * what follows it, is measured.
 *
 * No record is late at the join: within a source partition a record is at
 * most OUT_OF_ORDERNESS_MS behind the newest before it, and the watermark
 * is OUT_OF_ORDERNESS_MS + 1 behind that newest, so every record is ahead
 * of the join's watermark (the minimum of both sides'). Both engines must
 * therefore emit exactly {@link expectedJoinMatches} pairs.
 *
 * No imports but the generator: the Worker bundle and the harness both use it.
 */
import { benchEvent, eventTime } from "./generator.js";

/** The join's bounds, relative to the left event's time (ms, inclusive). */
export const JOIN_LOWER_MS = -500;
export const JOIN_UPPER_MS = 500;

/** The right stream's seed: the left one's plus one. */
export function rightSeed(seed: number): number {
  return (seed + 1) | 0;
}

/** Events per side of a run whose join takes `events` records in all: half each, a multiple of the partitions. */
export function eventsPerSide(events: number, partitions: number): number {
  return Math.floor(events / 2 / partitions) * partitions;
}

/** Per key, the event times of events 0..count-1 of one side. */
function timesByKey(seed: number, keys: number, count: number, rate: number): Map<string, number[]> {
  const byKey = new Map<string, number[]>();
  for (let seq = 0; seq < count; seq++) {
    const key = benchEvent(seed, keys, seq).key;
    const ts = eventTime(seed, seq, rate);
    const list = byKey.get(key);
    if (list) list.push(ts);
    else byKey.set(key, [ts]);
  }
  return byKey;
}

/** The first index of sorted `xs` whose value is ≥ `x`. */
function lowerBound(xs: readonly number[], x: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * How many pairs the interval join of the two sides' events 0..perSide-1
 * emits once both inputs ended: the reference both engines' outputs are
 * checked against in runs of a fixed number of events.
 */
export function expectedJoinMatches(seed: number, keys: number, perSide: number, rate: number, lowerMs = JOIN_LOWER_MS, upperMs = JOIN_UPPER_MS): number {
  const right = timesByKey(rightSeed(seed), keys, perSide, rate);
  for (const list of right.values()) list.sort((a, b) => a - b);
  let matches = 0;
  for (let seq = 0; seq < perSide; seq++) {
    const partners = right.get(benchEvent(seed, keys, seq).key);
    if (!partners) continue;
    const t = eventTime(seed, seq, rate);
    matches += lowerBound(partners, t + upperMs + 1) - lowerBound(partners, t + lowerMs);
  }
  return matches;
}
