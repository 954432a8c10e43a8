/**
 * How long the throughput workloads (map-filter, keyed-count) run, from
 * `--seconds` and `--events`.
 *
 * By default they run by duration: at least `--seconds` (20, or 10 with
 * `--quick`; never fewer than 10) from the first record and, with
 * checkpoints on, until 10 checkpoints completed (report/steady.ts). The
 * input is then bounded only by {@link DURATION_INPUT_BOUND}. `--events N`
 * runs exactly N events instead, as the rounds before 2026-12-06 did; such
 * a run may be too short for a steady figure, and its line then says so.
 */
import { BENCH_PARALLELISM } from "../generator.js";
import { MIN_RUN_SECONDS } from "../report/steady.js";

/** The input's bound in a run by duration: the largest even seq count below 2^31 (the generator's seq is a 31-bit integer). */
export const DURATION_INPUT_BOUND = 2 ** 31 - 2;

/** A throughput run's length. */
export type RunLength = { by: "duration"; minSeconds: number; events: number } | { by: "events"; events: number };

/** Parses `--seconds` and `--events`; throws a message naming the flag. */
export function parseRunLength(o: { seconds?: string; events?: string; quick: boolean }): RunLength {
  if (o.seconds !== undefined && o.events !== undefined) throw new Error("--seconds and --events exclude each other: a run goes by duration or by a fixed number of events");
  if (o.events !== undefined) {
    const events = Number(o.events);
    if (!Number.isInteger(events) || events <= 0 || events > DURATION_INPUT_BOUND || events % BENCH_PARALLELISM !== 0) {
      throw new Error(`--events: expected a positive multiple of ${BENCH_PARALLELISM} up to ${DURATION_INPUT_BOUND}, got ${JSON.stringify(o.events)}`);
    }
    return { by: "events", events };
  }
  const minSeconds = o.seconds === undefined ? (o.quick ? MIN_RUN_SECONDS : 20) : Number(o.seconds);
  if (!Number.isInteger(minSeconds) || minSeconds < MIN_RUN_SECONDS) {
    throw new Error(`--seconds: expected a whole number of seconds, at least ${MIN_RUN_SECONDS} (a shorter run has no steady figure), got ${JSON.stringify(o.seconds)}`);
  }
  return { by: "duration", minSeconds, events: DURATION_INPUT_BOUND };
}
