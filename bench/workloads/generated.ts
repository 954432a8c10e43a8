/**
 * Workloads 1 and 2 on floe: the generator-driven jobs of bench/jobs.ts
 * ("bench-map": map and filter chained into the source; "bench-count":
 * keyed count), with the input of bench/generator.ts. The source is the
 * engine's generator source (bounded at `events`), as the Flink peer's is
 * DataGeneratorSource. The count of the measured vertex is sampled every
 * 100 ms through the metrics API; throughput is the events processed over
 * the time from the first sample that saw a record to the last sample.
 *
 * A run ends at the end of its input (`events`), or, by duration
 * (`minSeconds`), once it is long enough (report/steady.ts: 10 s from the
 * first record and, with checkpoints on, 10 completed checkpoints); then
 * `events` only bounds the input. With `cores: "1"` every operator runs at
 * parallelism 1 and workerd is pinned to one CPU.
 */
import { BENCH_PARALLELISM } from "../generator.js";
import { mayStop } from "../report/steady.js";
import type { Engine } from "../../test/support/engine.js";
import type { CoresMode } from "../support/pinning.js";
import { type Pin, startBenchEngine } from "../support/pinned-engine.js";
import {
  type BenchResult,
  type CheckpointEntry,
  checkpointHistory,
  jobState,
  metrics,
  perSecond,
  progress,
  quantile,
  round,
  type Sample,
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
  /** Run by duration: at least this many seconds from the first record (and 10 checkpoints when on); absent: to the end of the input. */
  minSeconds?: number;
  /** "all" (default): the bench jobs' parallelism, workerd free to run anywhere; "1": parallelism 1, workerd on `pin.cpu`. */
  cores?: CoresMode;
  pin?: Pin;
}

/** The fields every generated workload shares: input, mode, parallelism. */
export function common(o: GeneratedRunOptions, r: Awaited<ReturnType<typeof runGenerated>>) {
  return {
    input: "generator source",
    cores: o.cores ?? "all",
    parallelism: o.cores === "1" ? 1 : BENCH_PARALLELISM,
    run_by: o.minSeconds === undefined ? "events" : "duration",
    events: o.events,
    keys: o.keys,
    seed: o.seed,
    ...r.rate,
    ...(r.pinning ? { pinning: r.pinning } : {}),
  };
}

export const coresSuffix = (o: GeneratedRunOptions) => (o.cores === "1" ? ",cores=1" : "");

/** Workload 1: stateless map and filter. */
export async function benchMapFilter(o: GeneratedRunOptions): Promise<BenchResult> {
  const r = await runGenerated("bench-map", "gen", o);
  return {
    bench: "map_filter",
    engine: "floe",
    variant: `${o.minSeconds === undefined ? `events=${o.events}` : "run_by=duration"}${coresSuffix(o)}`,
    ...common(o, r),
    passed: r.recordsOut,
    series_events_per_s: r.series,
  };
}

/** Workload 2: keyed count over `keys` keys, with or without checkpoints. */
export async function benchKeyedCount(o: GeneratedRunOptions): Promise<BenchResult> {
  const r = await runGenerated("bench-count", "count", o);
  return {
    bench: "keyed_count",
    engine: "floe",
    variant: `keys=${o.keys},checkpoint_ms=${o.checkpointIntervalMs}${o.localRecovery === false ? ",local_recovery=false" : ""}${coresSuffix(o)}`,
    ...common(o, r),
    ...checkpointFigures(o, r),
    series_events_per_s: r.series,
  };
}

/** The checkpoint fields of a checkpointed run (the same names as the Flink peer's). */
export function checkpointFigures(o: GeneratedRunOptions, r: { checkpoints: CheckpointEntry[]; firstRecordEpochMs: number }) {
  const completed = r.checkpoints.filter((c) => c.status === "COMPLETED");
  const durations = completed.map((c) => c.end_to_end_duration);
  return {
    state_backend: "heap+sqlite",
    checkpoint_interval_ms: o.checkpointIntervalMs,
    local_recovery: o.localRecovery !== false,
    checkpoints_completed: completed.length,
    checkpoints_failed: r.checkpoints.filter((c) => c.status === "FAILED").length,
    checkpoint_ms_p50: quantile(durations, 0.5),
    checkpoint_ms_max: Math.max(0, ...durations),
    checkpoint_bytes_max: Math.max(0, ...completed.map((c) => c.checkpointed_size)),
    // The largest over the subtasks, per checkpoint (Flink's sync and async parts of the snapshot).
    checkpoint_sync_ms_p50: quantile(completed.map((c) => c.sync_duration), 0.5),
    checkpoint_sync_ms_max: Math.max(0, ...completed.map((c) => c.sync_duration)),
    checkpoint_async_ms_p50: quantile(completed.map((c) => c.async_duration), 0.5),
    checkpoint_async_ms_max: Math.max(0, ...completed.map((c) => c.async_duration)),
    series_checkpoints: completed.map((c) => ({
      t_s: round((c.trigger_timestamp - r.firstRecordEpochMs) / 1000, 3),
      duration_ms: c.end_to_end_duration,
      sync_ms: c.sync_duration,
      async_ms: c.async_duration,
      size_bytes: c.checkpointed_size,
    })),
  };
}

/** What a workload adds to a generated run: Worker variables, and what to read from the engine before it is disposed. */
export interface RunExtras<T> {
  bindings?: Record<string, string>;
  /** What is counted at the measured vertex: its records in (default) or out (an async operator's results). */
  count?: "records_in" | "records_out";
  /** Called after each sample of the vertex's count, with it (e.g. to note other counters at the same moment). */
  onSample?: (count: number) => void;
  /** Parallelism per operator uid, on the whole machine (with `cores: "1"` every operator runs at 1). */
  parallelism?: Record<string, number>;
  /** Called once sampling ended, the job still running (or finished, when `complete`). */
  collect?: (engine: Engine, complete: boolean) => Promise<T>;
}

/** Runs a generator-driven job and samples `vertex`'s records in (see the header). */
export async function runGenerated<T = undefined>(job: string, vertex: string, o: GeneratedRunOptions, extras: RunExtras<T> = {}) {
  const pin = o.cores === "1" ? o.pin : undefined;
  if (o.cores === "1" && !pin) throw new Error(`${job}: --cores 1 needs a CPU to pin to`);
  const { engine, monitor } = await startBenchEngine(
    { testJobs: true, bindings: { BENCH_EVENTS: String(o.events), BENCH_KEYS: String(o.keys), BENCH_SEED: String(o.seed), ...extras.bindings } },
    pin,
  );
  try {
    const checkpointsOn = o.checkpointIntervalMs > 0;
    await startJob(engine, job, { checkpoint: { interval_ms: o.checkpointIntervalMs, ...(o.localRecovery === false ? { local_recovery: false } : {}) } }, o.cores === "1" ? 1 : extras.parallelism);
    let recordsOut = 0;
    const t0 = performance.now();
    const maxMs = o.maxMs ?? 600_000;
    // By duration: once a second after the minimum, whether the run may stop (report/steady.ts), from the
    // samples so far and the checkpoints completed since the first sample that saw a record.
    let firstEpochMs = 0;
    let nextLookMs = 0;
    let stop = false;
    const live: Sample[] = [];
    const { samples, startEpochMs } = await sampleUntil(
      async () => {
        const v = (await metrics(engine, job)).vertices.find((x) => x.id === vertex);
        recordsOut = v?.records_out ?? 0;
        const count = (extras.count === "records_out" ? v?.records_out : v?.records_in) ?? 0;
        extras.onSample?.(count);
        live.push({ t_ms: performance.now() - t0, count });
        if (count > 0 && firstEpochMs === 0) firstEpochMs = Date.now();
        const sinceFirstRecordMs = Date.now() - firstEpochMs;
        if (o.minSeconds !== undefined && firstEpochMs > 0 && sinceFirstRecordMs >= o.minSeconds * 1000 && Date.now() >= nextLookMs) {
          nextLookMs = Date.now() + 1000;
          const checkpointsCompleted = checkpointsOn
            ? (await checkpointHistory(engine, job)).filter((c) => c.status === "COMPLETED" && c.trigger_timestamp >= firstEpochMs).length
            : 0;
          stop = mayStop({ sinceFirstRecordMs, checkpointsCompleted, checkpointsOn, series: perSecond(live) }, o.minSeconds);
        }
        return count;
      },
      (n) => n >= o.events || performance.now() - t0 > maxMs || stop,
      { everyMs: 100, timeoutMs: maxMs + 60_000, what: `${job}: ${o.events} events` },
    );
    const endEpochMs = Date.now();
    const pinning = monitor?.stop(`floe ${job}`);
    const processed = samples[samples.length - 1].count;
    const complete = processed >= o.events;
    const state = await jobState(engine, job);
    if (state.restarts > 0) throw new Error(`${job} restarted during the run: ${state.last_error}`);
    const rate = throughput(samples, Math.min(processed, o.events));
    const firstRecordEpochMs = startEpochMs + rate.first_record_ms;
    // The checkpoints of the run: triggered between its first record and its end (as the Flink peer counts them).
    // The API lists the latest 100: a run with more (over 100 s at 1 s) reports the last 100.
    const checkpoints = checkpointsOn
      ? (await checkpointHistory(engine, job)).filter((c) => c.trigger_timestamp >= firstRecordEpochMs - 100 && c.trigger_timestamp <= endEpochMs)
      : [];
    const stoppedBy = complete ? "end of input" : stop ? "duration" : `the ${Math.round(maxMs / 1000)} s cap`;
    progress(
      `${job} ${o.keys} keys, checkpoints ${o.checkpointIntervalMs || "off"}, cores ${o.cores ?? "all"}: ${rate.events_per_s} events/s over ${Math.round(rate.duration_ms / 1000)} s, ${processed} events (stopped by ${stoppedBy})`,
    );
    const collected = extras.collect ? await extras.collect(engine, complete) : undefined;
    return { rate: { ...rate, complete, events_processed: Math.min(processed, o.events) }, recordsOut, series: perSecond(samples), checkpoints, firstRecordEpochMs, pinning, collected };
  } finally {
    monitor?.cancel();
    await engine.dispose();
  }
}
