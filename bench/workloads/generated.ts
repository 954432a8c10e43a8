/**
 * Workloads 1 and 2 on floe: the generator-driven jobs of bench/jobs.ts
 * ("bench-map": map and filter chained into the source; "bench-count":
 * keyed count), with the input of bench/generator.ts. The source is the
 * engine's generator source (bounded at `events`), as the Flink peer's is
 * DataGeneratorSource. The count of the measured vertex is sampled every
 * 100 ms through the metrics API; throughput is `events` over the time from
 * the first sample that saw a record to the first that saw them all.
 */
import { startEngine } from "../../test/support/engine.js";
import { BENCH_PARALLELISM } from "../generator.js";
import {
  type BenchResult,
  checkpointHistory,
  jobState,
  metrics,
  perSecond,
  progress,
  quantile,
  round,
  sampleUntil,
  startJob,
  throughput,
} from "./common.js";

/** Options of one generator-driven run. */
export interface GeneratedRunOptions {
  events: number;
  keys: number;
  seed: number;
  /** 0: checkpoints off. */
  checkpointIntervalMs: number;
  /**
   * Stop sampling after this long even if not every event was processed:
   * throughput is then what was processed over the time taken, and the
   * result says `complete: false` (a run whose checkpoints stall processing
   * would otherwise not end in time).
   */
  maxMs?: number;
  /** Set to false to run with local recovery off (Flink's default): no SQLite image is written at checkpoints. */
  localRecovery?: boolean;
}

/** Workload 1: stateless map and filter. */
export async function benchMapFilter(o: GeneratedRunOptions): Promise<BenchResult> {
  const r = await runGenerated("bench-map", "gen", o);
  return {
    bench: "map_filter",
    engine: "floe",
    variant: `events=${o.events}`,
    input: "generator source",
    parallelism: BENCH_PARALLELISM,
    events: o.events,
    keys: o.keys,
    seed: o.seed,
    ...r.rate,
    passed: r.recordsOut,
    series_events_per_s: r.series,
  };
}

/** Workload 2: keyed count over `keys` keys, with or without checkpoints. */
export async function benchKeyedCount(o: GeneratedRunOptions): Promise<BenchResult> {
  const r = await runGenerated("bench-count", "count", o);
  const completed = r.checkpoints.filter((c) => c.status === "COMPLETED");
  const durations = completed.map((c) => c.end_to_end_duration);
  return {
    bench: "keyed_count",
    engine: "floe",
    variant: `keys=${o.keys},checkpoint_ms=${o.checkpointIntervalMs}${o.localRecovery === false ? ",local_recovery=false" : ""}`,
    input: "generator source",
    state_backend: "heap+sqlite",
    parallelism: BENCH_PARALLELISM,
    events: o.events,
    keys: o.keys,
    seed: o.seed,
    checkpoint_interval_ms: o.checkpointIntervalMs,
    local_recovery: o.localRecovery !== false,
    ...r.rate,
    checkpoints_completed: completed.length,
    checkpoints_failed: r.checkpoints.filter((c) => c.status === "FAILED").length,
    checkpoint_ms_p50: quantile(durations, 0.5),
    checkpoint_ms_max: Math.max(0, ...durations),
    checkpoint_bytes_max: Math.max(0, ...completed.map((c) => c.checkpointed_size)),
    series_events_per_s: r.series,
    series_checkpoints: completed.map((c) => ({
      t_s: round((c.trigger_timestamp - r.firstRecordEpochMs) / 1000, 3),
      duration_ms: c.end_to_end_duration,
      size_bytes: c.checkpointed_size,
    })),
  };
}

async function runGenerated(job: string, vertex: string, o: GeneratedRunOptions) {
  const engine = await startEngine({
    testJobs: true,
    bindings: { BENCH_EVENTS: String(o.events), BENCH_KEYS: String(o.keys), BENCH_SEED: String(o.seed) },
  });
  try {
    await startJob(engine, job, { checkpoint: { interval_ms: o.checkpointIntervalMs, ...(o.localRecovery === false ? { local_recovery: false } : {}) } });
    let recordsOut = 0;
    const t0 = performance.now();
    const maxMs = o.maxMs ?? 600_000;
    const { samples, startEpochMs } = await sampleUntil(
      async () => {
        const v = (await metrics(engine, job)).vertices.find((x) => x.id === vertex);
        recordsOut = v?.records_out ?? 0;
        return v?.records_in ?? 0;
      },
      (n) => n >= o.events || performance.now() - t0 > maxMs,
      { everyMs: 100, timeoutMs: maxMs + 60_000, what: `${job}: ${o.events} events` },
    );
    const processed = samples[samples.length - 1].count;
    const complete = processed >= o.events;
    const state = await jobState(engine, job);
    if (state.restarts > 0) throw new Error(`${job} restarted during the run: ${state.last_error}`);
    const rate = throughput(samples, Math.min(processed, o.events));
    const firstRecordEpochMs = startEpochMs + rate.first_record_ms;
    const checkpoints = o.checkpointIntervalMs > 0 ? await checkpointHistory(engine, job) : [];
    progress(
      `${job} ${o.events} events, ${o.keys} keys, checkpoints ${o.checkpointIntervalMs || "off"}: ${rate.events_per_s} events/s` +
        (complete ? "" : ` (stopped after ${Math.round(maxMs / 1000)} s with ${processed} events processed)`),
    );
    return { rate: { ...rate, complete, events_processed: Math.min(processed, o.events) }, recordsOut, series: perSecond(samples), checkpoints, firstRecordEpochMs };
  } finally {
    await engine.dispose();
  }
}
