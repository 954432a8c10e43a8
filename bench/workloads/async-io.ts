/**
 * Issue 19's async I/O on floe (no Flink peer): the generator source into
 * AsyncDataStream.orderedWait or unorderedWait of a lookup on a real HTTP
 * server on 127.0.0.1 (bench/support/slow-server.ts, in the harness's
 * process) that answers after LOOKUP_LATENCY_MS; one job per order and
 * capacity (bench/jobs.ts `benchAsyncJobs`), at the bench's parallelism,
 * with checkpoints.
 *
 * Runs as workload 2 does (generated.ts), counting the async vertex's
 * records out: the results. At each 100 ms sample the harness also notes
 * the server's counters and, from /proc, the time workerd's threads and its
 * own main thread (the server's) spent on a CPU and waiting for one; over the steady window (report/steady.ts; the whole run
 * when there is none) report/async-io.ts says what limited the rate.
 */
import { MAX_CONCURRENT_REQUESTS } from "../../src/api/async-function.js";
import { type AsyncMode, LOOKUP_LATENCY_MS, asyncJobName } from "../async-io.js";
import { BENCH_PARALLELISM } from "../generator.js";
import { type AsyncSample, asyncFigures, windowEnds } from "../report/async-io.js";
import { steadyFigures } from "../report/steady.js";
import type { SchedStat } from "../support/pinning.js";
import { descendantsNamed, threadSchedstats } from "../support/proc.js";
import { startSlowServer } from "../support/slow-server.js";
import { type BenchResult, progress } from "./common.js";
import { type GeneratedRunOptions, checkpointFigures, common, runGenerated } from "./generated.js";

/** Options of one async run: a generated run's (on the whole machine), the order and the capacity. */
export interface AsyncRunOptions extends Omit<GeneratedRunOptions, "cores" | "pin" | "keys" | "localRecovery"> {
  mode: AsyncMode;
  capacity: number;
  /** Subtasks of the async operator; default the bench's parallelism (2). Each opens at most 6 requests at once. */
  parallelism?: number;
}

/** Every thread of the engine's workerd processes, by thread id. */
function workerdThreads(): Map<number, SchedStat> {
  return new Map(descendantsNamed("workerd").flatMap((pid) => [...threadSchedstats(pid)]));
}

/** One async run on floe, with its own lookup server. */
export async function benchAsyncIo(o: AsyncRunOptions): Promise<BenchResult> {
  const server = await startSlowServer(LOOKUP_LATENCY_MS);
  const samples: AsyncSample[] = [];
  const run = { ...o, keys: 10_000, cores: "all" as const };
  const job = asyncJobName(o.mode, o.capacity);
  const parallelism = o.parallelism ?? BENCH_PARALLELISM;
  progress(`${job}: floe only (Flink's AsyncDataStream is not run), ${parallelism} subtasks, a server answering in ${LOOKUP_LATENCY_MS} ms at ${server.url}`);
  try {
    const r = await runGenerated(job, "lookup", run, {
      bindings: { BENCH_LOOKUP_URL: server.url },
      parallelism: { lookup: parallelism },
      count: "records_out",
      onSample: (results) => {
        const c = server.counters();
        samples.push({ atMs: Date.now(), results, ...c, workerdThreads: workerdThreads(), serverThread: threadSchedstats(process.pid).get(process.pid) ?? null });
      },
    });
    // The window the figures are over: the steady one (as run.ts will compute it), else from the first result to the end.
    const steady = steadyFigures(r.series);
    const from = r.firstRecordEpochMs + (steady.steady_from_s ?? 0) * 1000;
    const to = steady.steady_to_s === null ? Number.POSITIVE_INFINITY : r.firstRecordEpochMs + steady.steady_to_s * 1000;
    const ends = windowEnds(samples, from, to);
    const setup = { capacity: o.capacity, parallelism, maxConcurrentRequests: Math.min(o.capacity, MAX_CONCURRENT_REQUESTS), latencyMs: LOOKUP_LATENCY_MS };
    const figures = ends ? asyncFigures(ends[0], ends[1], setup) : null;
    if (figures) progress(`${job}: ${figures.results_per_s} results/s over ${figures.window_s} s; limited by ${figures.limit}`);
    const c = server.counters();
    return {
      bench: "async_io",
      engine: "floe",
      variant: `mode=${o.mode},capacity=${o.capacity}${parallelism === BENCH_PARALLELISM ? "" : `,parallelism=${parallelism}`}`,
      peer: "none: floe only, Flink's AsyncDataStream is not run",
      ...common(run, r),
      parallelism,
      mode: o.mode,
      capacity: o.capacity,
      max_concurrent_requests: setup.maxConcurrentRequests,
      lookup_latency_ms: LOOKUP_LATENCY_MS,
      figures_over: steady.steady_from_s === null ? "whole run" : "steady window",
      ...(figures ?? {}),
      server_requests: c.requests,
      server_max_open: c.maxOpen,
      results: r.recordsOut,
      ...checkpointFigures(run, r),
      series_events_per_s: r.series,
    };
  } finally {
    await server.close();
  }
}
