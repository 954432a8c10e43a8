/**
 * Issue 19's interval join on floe: the job "bench-interval-join"
 * (bench/jobs.ts) joins two timed generated streams (bench/interval-join.ts)
 * by key, between JOIN_LOWER_MS and JOIN_UPPER_MS, with checkpoints; the
 * Flink peer runs the same (`FlinkBench.intervalJoin`).
 *
 * Runs as workload 2 does (generated.ts): by duration or to the end of a
 * fixed input. `events` counts the records into the join, both sides
 * together (each side has half); the join vertex's records in are
 * sampled every 100 ms, and its records out are the pairs it emitted. A
 * run that reached the end of its input has emitted every pair
 * (a subtask's records out are read with its records in, and a pair is
 * emitted as its second element arrives), so `matches` is then checked
 * against the reference (run.ts).
 */
import { BENCH_PARALLELISM, OUT_OF_ORDERNESS_MS } from "../generator.js";
import { JOIN_LOWER_MS, JOIN_UPPER_MS, eventsPerSide } from "../interval-join.js";
import type { BenchResult } from "./common.js";
import { checkpointFigures, common, coresSuffix, runGenerated } from "./generated.js";
import type { TimedRunOptions } from "./windowed.js";

/** The interval join on floe; `o.events` is rounded down to two whole sides. */
export async function benchIntervalJoin(o: TimedRunOptions): Promise<BenchResult> {
  const perSide = eventsPerSide(o.events, BENCH_PARALLELISM);
  const run = { ...o, events: 2 * perSide };
  const r = await runGenerated("bench-interval-join", "join", run, {
    bindings: { BENCH_EVENTS: String(perSide), BENCH_EVENT_RATE: String(o.eventRate) },
  });
  return {
    bench: "interval_join",
    engine: "floe",
    variant: `keys=${o.keys},checkpoint_ms=${o.checkpointIntervalMs}${o.localRecovery === false ? ",local_recovery=false" : ""}${coresSuffix(o)}`,
    ...common(run, r),
    events_per_side: perSide,
    event_rate: o.eventRate,
    lower_ms: JOIN_LOWER_MS,
    upper_ms: JOIN_UPPER_MS,
    out_of_orderness_ms: OUT_OF_ORDERNESS_MS,
    matches: r.recordsOut,
    matches_per_record: r.rate.events_processed > 0 ? Math.round((r.recordsOut / r.rate.events_processed) * 1000) / 1000 : null,
    ...checkpointFigures(run, r),
    series_events_per_s: r.series,
  };
}
