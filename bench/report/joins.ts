/**
 * The interval join's result check: in runs of a fixed number of events
 * that ran to their end, every pair has been emitted (bench/interval-join.ts:
 * no record is late), so each engine's `matches` must equal the reference,
 * and floe's must equal Flink's for the same input.
 */
import type { BenchResult } from "../workloads/common.js";

/** Whether a result line is an interval join run that reached the end of its input. */
const completeJoin = (r: BenchResult) => r.bench === "interval_join" && r.run_by === "events" && r.complete !== false;

/**
 * One message per mismatch: a line's `matches` against `expected(line)`
 * (null: no reference for that size), and floe's against Flink's of the
 * same keys, events, event rate and bounds.
 */
export function checkJoinMatches(results: readonly BenchResult[], expected: (r: BenchResult) => number | null): string[] {
  const lines = results.filter(completeJoin);
  const problems: string[] = [];
  for (const r of lines) {
    const want = expected(r);
    if (want !== null && r.matches !== want) problems.push(`${r.engine} interval_join ${r.variant}: ${String(r.matches)} pairs, expected ${want}`);
  }
  const same = (a: BenchResult, b: BenchResult) => (["keys", "events", "event_rate", "lower_ms", "upper_ms"] as const).every((f) => a[f] === b[f]);
  for (const f of lines.filter((r) => r.engine === "floe")) {
    for (const k of lines.filter((r) => r.engine === "flink" && same(f, r))) {
      if (f.matches !== k.matches) problems.push(`interval_join ${f.variant}: floe ${String(f.matches)} pairs ≠ Flink ${String(k.matches)}`);
    }
  }
  return problems;
}
