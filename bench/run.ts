/**
 * `npm run bench`: floe's benchmarks, side by side with Apache Flink when asked.
 * One JSON line per result on stdout; progress and a short table on stderr.
 *
 *   npm run bench                                   workloads 1–5, the HTTP ingest path, the event-time workloads, the interval join and async I/O, floe only
 *   npm run bench -- --peer flink                   the same, alternating floe and Flink per workload, with ratios
 *   npm run bench -- --quick [--peer flink]         a smoke pass with small sizes (≈ 2.5 min for floe, ≈ 4.5 minutes with Flink)
 *   npm run bench -- --only keyed-count,recovery    some workloads
 *   npm run bench -- --keys 10000 --seconds 60      longer throughput runs (by duration; the default)
 *   npm run bench -- --events 8000000 --keys 10000  a fixed number of events instead of a duration
 *   npm run bench -- --cores 1 --peer flink         floe and Flink at parallelism 1, pinned to one CPU
 *   npm run bench -- --cores both --peer flink      the whole machine, then one core, with both ratios
 *   npm run bench -- --plots docs/img               also copy the SVG plots there
 *
 * Workloads (docs/benchmarks.md has the method):
 *   map-filter       1. stateless map/filter throughput (generator source)
 *   keyed-count      2. keyed count over 10,000 and 1,000,000 keys, checkpoints every 1 s and off
 *                       (floe's checkpointed runs once more with local recovery off)
 *   checkpoint-size  3. checkpoint duration and bytes for 10 MB / 100 MB of keyed state, full and incremental
 *   recovery         4. failure at a fixed event: time to the first record after restore, and time lost
 *   latency          5. ingestion → committed sink output latency, p50/p99, checkpoints every 1 s and 100 ms (floe only)
 *   latency-load     (not by default) the latency job saturated, without checkpoints and with them every 100 ms, then
 *                    its latency at 90% of the first with checkpoints every 100 ms: issue 20's target in full (floe only)
 *   ingest           the example job end to end over HTTP ingestion (floe only)
 *   unaligned-sim    aligned against unaligned checkpoints under backpressure, in the simulator's virtual time (floe only)
 *   keyed-timers     issue 17: keyed process function, one event-time timer per key and 10 s, 10,000 keys, checkpoints 1 s
 *   window-tumbling  issue 18: tumbling 10 s event-time window count, 10,000 and 1,000,000 keys, checkpoints 1 s
 *   window-sliding   issue 18: sliding window count (60 s every 10 s), 10,000 keys, checkpoints 1 s
 *                    (the three on event time: `--event-rate` events per second of it, watermark 1 s behind;
 *                    throughput, checkpoint duration and window-fire latency, report/windows.ts)
 *   interval-join    issue 19: interval join of two generated event-time streams (between −500 and +500 ms,
 *                    about one pair per left record), 10,000 keys, checkpoints 1 s; records into the join per second
 *   async-io         issue 19: AsyncDataStream ordered and unordered against a local HTTP server answering in 10 ms,
 *                    capacity 1, 10 and 100, checkpoints 1 s; results per second and what limited them (floe only;
 *                    `--async-parallelism P` runs the async operator at P subtasks instead of 2)
 *   checkpoint-overhead, unaligned, checkpoint-incremental, checkpoint-full: the earlier workloads, on demand
 *
 * Throughput runs (map-filter, keyed-count, the three event-time workloads, interval-join and async-io) last at least 10 s from their first record and,
 * with checkpoints on, until 10 checkpoints completed; the steady figure leaves out the
 * warm-up (report/steady.ts). `--cores` applies to them but async-io; the other workloads run on the
 * whole machine (with `--cores 1` alone they are skipped). With --quick, async-io runs a few thousand records per variant.
 *
 * Exit codes: 0 done, 1 a workload failed, 2 bad usage or the peer cannot run (no Java or Maven).
 */
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { BENCH_PARALLELISM, DEFAULT_EVENT_RATE, DEFAULT_SEED, expectedPassed, expectedWindowTotals, fingerprint, timeFingerprint } from "./generator.js";
import { type FlinkProgress, PeerUnavailableError, buildFlinkPeer, checkJavaAndMaven, runFlink } from "./peer/flink.js";
import { ratios, ratiosByCores } from "./report/ratios.js";
import { MIN_RUN_CHECKPOINTS, MIN_RUN_SECONDS, mayStop, steadyFigures } from "./report/steady.js";
import { keyedCountPlot } from "./report/svg.js";
import { table } from "./report/table.js";
import { WINDOWED_BENCHES, type WindowRow, checkWindowTotals, windowFigures } from "./report/windows.js";
import { ASYNC_CAPACITIES, ASYNC_MODES } from "./async-io.js";
import { expectedJoinMatches, rightSeed } from "./interval-join.js";
import { checkJoinMatches } from "./report/joins.js";
import { buildTestBundle } from "./support/build.js";
import type { Pin } from "./support/pinned-engine.js";
import { type CoresMode, chooseCpu, parseCores } from "./support/pinning.js";
import { allowedCpus, findTaskset } from "./support/proc.js";
import { type RunLength, parseRunLength } from "./support/run-length.js";
import { benchCheckpoints } from "./workloads/checkpoints.js";
import { type BenchResult, type Sample, perSecond, progress } from "./workloads/common.js";
import { benchKeyedCount, benchMapFilter } from "./workloads/generated.js";
import { benchIngestKeyedCount } from "./workloads/ingest-keyed-count.js";
import { benchLatency, benchLatencyMax } from "./workloads/latency.js";
import { benchRecovery } from "./workloads/recovery.js";
import { benchUnaligned } from "./workloads/unaligned.js";
import { benchUnalignedSim } from "./workloads/unaligned-sim.js";
import { TIMED_WORKLOADS, type TimedRunOptions, type TimedWorkload, benchTimed } from "./workloads/windowed.js";
import { benchIntervalJoin } from "./workloads/interval-join.js";
import { benchAsyncIo } from "./workloads/async-io.js";

const usage = () => {
  process.stderr.write(
    "usage: npm run bench -- [--quick] [--peer flink] [--only w1,w2] [--cores all|1|both] [--cpu N] [--seconds S | --events N] [--keys K1,K2] [--event-rate R] [--async-parallelism P] [--seed S] [--plots DIR]\n",
  );
  process.exit(2);
};

let parsed;
try {
  parsed = parseArgs({
    options: {
      only: { type: "string" },
      quick: { type: "boolean", default: false },
      peer: { type: "string" },
      events: { type: "string" },
      seconds: { type: "string" },
      cores: { type: "string" },
      cpu: { type: "string" },
      keys: { type: "string" },
      seed: { type: "string" },
      "event-rate": { type: "string" },
      "state-mb": { type: "string" },
      "flink-backends": { type: "string" },
      plots: { type: "string" },
      out: { type: "string" },
      batch: { type: "string" },
      concurrency: { type: "string" },
      "state-keys": { type: "string" },
      "async-parallelism": { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  usage();
}
const values = parsed!.values;
if (values.help) usage();
if (values.peer !== undefined && values.peer !== "flink") {
  process.stderr.write(`--peer: only "flink" is known, got ${JSON.stringify(values.peer)}\n`);
  process.exit(2);
}
const peer = values.peer === "flink";
const quick = values.quick!;
const seed = Number(values.seed ?? DEFAULT_SEED);
const outDir = resolve(values.out ?? join(import.meta.dirname, "out"));

/** Bad usage: the message, then exit code 2. */
function refuse(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

let modes: CoresMode[];
let runLength: RunLength;
let pin: Pin | undefined;
try {
  modes = parseCores(values.cores);
  runLength = parseRunLength({ seconds: values.seconds, events: values.events, quick });
  if (modes.includes("1")) pin = { cpu: chooseCpu(allowedCpus(), values.cpu), taskset: findTaskset() };
  else if (values.cpu !== undefined) throw new Error("--cpu needs --cores 1 or --cores both");
} catch (e) {
  refuse((e as Error).message);
}

/** Sizes: the full run fits in ≈ 20 minutes on 2 cores with the peer (twice that with --cores both); --quick in a few. */
const size = {
  countKeys: (values.keys ?? (quick ? "10000,1000000" : "10000,1000000")).split(",").map(Number),
  checkpointIntervals: quick ? [1000] : [1000, 0],
  /**
   * Throughput runs stop here even if not long enough (a run whose checkpoints stall
   * processing, 1M keys with full snapshots every second, may not reach 10 checkpoints soon).
   */
  throughputMaxMs: runLength!.by === "duration" ? Math.max(180_000, runLength!.minSeconds * 4000) : quick ? 30_000 : 120_000,
  stateMb: (values["state-mb"] ?? (quick ? "2" : "10,100")).split(",").map(Number),
  payloadBytes: 100,
  recoveryEvents: quick ? 600_000 : 2_000_000,
  failAt: quick ? 200_001 : 1_000_001,
  latencySeconds: quick ? 4 : 20,
  latencyIntervals: quick ? [1000] : [1000, 100],
  ingestEvents: quick ? 100_000 : 1_000_000,
  /** The tumbling window runs over these keys; the timer and sliding workloads over 10,000 unless --keys says otherwise. */
  windowKeys: values.keys ? values.keys.split(",").map(Number) : [10_000],
  /** Events per second of event time: with 10,000 keys, one per key and second. */
  eventRate: Number(values["event-rate"] ?? DEFAULT_EVENT_RATE),
};
const asyncParallelism = Number(values["async-parallelism"] ?? BENCH_PARALLELISM);
if (!(Number.isInteger(asyncParallelism) && asyncParallelism >= 1 && asyncParallelism <= 128)) refuse(`--async-parallelism must be a whole number of subtasks in 1..128, got ${values["async-parallelism"]}`);
if (!(size.eventRate >= 1 && Number.isInteger(size.eventRate))) refuse(`--event-rate must be a whole number of events per second of event time, got ${values["event-rate"]}`);
const flinkBackends = (values["flink-backends"] ?? "hashmap").split(",");
/** Workloads with a one-core mode: the throughput runs. */
const CORES_AWARE = new Set(["map-filter", "keyed-count", ...Object.keys(TIMED_WORKLOADS), "interval-join"]);
/** Workloads on event time: the harness checks the Java generator's event times before they run. */
const EVENT_TIME = new Set([...Object.keys(TIMED_WORKLOADS), "interval-join"]);

/**
 * An event-time workload over `keys`, checkpoints every second: floe, then the Flink peer; then
 * (not with --quick) floe once more with local recovery off, Flink's default, as workload 2 does.
 */
function timedSteps(workload: TimedWorkload | "interval-join", keyList: number[]) {
  const runFloe = (o: TimedRunOptions) => (workload === "interval-join" ? benchIntervalJoin(o) : benchTimed(workload, o));
  return (modes: CoresMode[]): Step[] =>
    keyList.flatMap((keys) =>
      modes.flatMap((mode) => {
        const o = { ...floeRun(mode), keys, seed, checkpointIntervalMs: 1000, eventRate: size.eventRate };
        return [
          {
            floe: () => runFloe(o),
            flink: () => {
              const f = flinkRun(mode);
              return flinkBackends.map((backend) => () => flink(workload, { ...f.params, keys, seed, checkpoint_ms: 1000, event_rate: size.eventRate, backend }, f.pin));
            },
          },
          ...(quick ? [] : [{ floe: () => runFloe({ ...o, localRecovery: false }) }]),
        ];
      }),
    );
}

/** A throughput run's length and core mode, as floe's workloads take them. */
function floeRun(mode: CoresMode) {
  return {
    events: runLength.events,
    ...(runLength.by === "duration" ? { minSeconds: runLength.minSeconds } : {}),
    maxMs: size.throughputMaxMs,
    cores: mode,
    pin,
  };
}

/** The same for the Flink peer: its parameters, and the pin when on one core. */
function flinkRun(mode: CoresMode): { params: Record<string, number>; pin?: Pin } {
  const params: Record<string, number> = { events: runLength.events };
  if (runLength.by === "duration") Object.assign(params, { min_seconds: runLength.minSeconds, max_seconds: size.throughputMaxMs / 1000 });
  if (mode === "1") params.parallelism = 1;
  return { params, pin: mode === "1" ? pin : undefined };
}

/**
 * A workload: its floe runs and, when the peer runs, the Flink runs after
 * each, one after the other (started together, two JVMs would share the
 * machine, and on one core the pinned core).
 */
type FlinkRun = () => Promise<BenchResult>;
type Step = { floe: () => Promise<BenchResult | object>; flink?: () => FlinkRun[] | FlinkRun };

/**
 * Each workload's steps. The throughput workloads take the core modes to run
 * (innermost, so that a variant's whole-machine and one-core runs are close in
 * time); the others run on the whole machine.
 */
const workloads: Record<string, (modes: CoresMode[]) => Step[]> = {
  "map-filter": (modes) =>
    modes.map((mode) => ({
      floe: () => benchMapFilter({ ...floeRun(mode), keys: 10_000, seed, checkpointIntervalMs: 0 }),
      flink: () => {
        const f = flinkRun(mode);
        return () => flink("map-filter", { ...f.params, keys: 10_000, seed }, f.pin);
      },
    })),
  "keyed-count": (modes) =>
    size.countKeys.flatMap((keys) =>
      size.checkpointIntervals.flatMap((interval) =>
        modes.flatMap((mode) => [
          {
            floe: () => benchKeyedCount({ ...floeRun(mode), keys, seed, checkpointIntervalMs: interval }),
            flink: () => {
              const f = flinkRun(mode);
              return flinkBackends.map((backend) => () => flink("keyed-count", { ...f.params, keys, seed, checkpoint_ms: interval, backend }, f.pin));
            },
          },
          // Flink keeps no local copy of state by default; floe's local image costs SQLite rows per changed key.
          ...(interval > 0 && !quick ? [{ floe: () => benchKeyedCount({ ...floeRun(mode), keys, seed, checkpointIntervalMs: interval, localRecovery: false }) }] : []),
        ]),
      ),
    ),
  "checkpoint-size": () =>
    size.stateMb.flatMap((mb) => {
      const keys = Math.round((mb * 1e6) / size.payloadBytes);
      const o = { keys, payloadBytes: size.payloadBytes, changedFraction: 0.01 };
      const f = (backend: string, incremental: boolean) =>
        flink("checkpoint-size", { keys, payload_bytes: size.payloadBytes, changed_fraction: 0.01, backend, incremental, recovery_wait_ms: quick ? 30_000 : 60_000 });
      return [
        { floe: () => benchCheckpoints({ ...o, incremental: false, localRecovery: false }), flink: () => [() => f("hashmap", false), () => f("rocksdb", false)] },
        { floe: () => benchCheckpoints({ ...o, incremental: true, localRecovery: true }), flink: () => () => f("rocksdb", true) },
      ];
    }),
  recovery: () => [
    {
      floe: () => benchRecovery({ events: size.recoveryEvents, keys: 10_000, seed, checkpointIntervalMs: 1000, failAt: size.failAt }),
      flink: () => flinkBackends.map((backend) => () => flink("recovery", { events: size.recoveryEvents, keys: 10_000, seed, checkpoint_ms: 1000, fail_at: size.failAt, backend })),
    },
  ],
  // Issue 20's target is the p99 with checkpoints every 100 ms: both intervals, each its own run.
  latency: () => size.latencyIntervals.map((ms) => ({ floe: () => benchLatency({ ratePerS: 2000, seconds: size.latencySeconds, checkpointIntervalMs: ms, keys: 1000 }) })),
  // Issue 20's target in full: the job's throughput without checkpoints and with them every 100 ms, then the latency at
  // 90% of the first with checkpoints every 100 ms.
  "latency-load": () => {
    let withoutCheckpoints = 0;
    return [
      { floe: async () => { const r = await benchLatencyMax({ seconds: size.latencySeconds, checkpointIntervalMs: 0, keys: 1000 }); withoutCheckpoints = Number(r.events_per_s); return r; } },
      { floe: () => benchLatencyMax({ seconds: size.latencySeconds, checkpointIntervalMs: 100, keys: 1000 }) },
      { floe: () => benchLatency({ ratePerS: Math.max(20, Math.round((0.9 * withoutCheckpoints) / 20) * 20), seconds: size.latencySeconds, checkpointIntervalMs: 100, keys: 1000 }) },
    ];
  },
  ingest: () => [
    {
      floe: async () => ({
        engine: "floe",
        variant: "clicks, checkpoint_ms=1000",
        ...(await benchIngestKeyedCount({
          events: size.ingestEvents,
          keys: Number(values.keys ?? 10_000),
          batch: Number(values.batch ?? 10_000),
          concurrency: Number(values.concurrency ?? 4),
        })),
      }),
    },
  ],
  "unaligned-sim": () => [{ floe: () => benchUnalignedSim({ outDir, plotsDir: values.plots }) }],
  "keyed-timers": timedSteps("keyed-timers", size.windowKeys),
  "window-tumbling": timedSteps("window-tumbling", size.countKeys),
  "window-sliding": timedSteps("window-sliding", size.windowKeys),
  "interval-join": timedSteps("interval-join", size.windowKeys),
  // Whole machine only: the limits it measures are the operator's and the server's, not the cores'.
  "async-io": () =>
    ASYNC_MODES.flatMap((mode) =>
      ASYNC_CAPACITIES.map((capacity) => ({
        floe: () => {
          const length = quick ? { events: capacity === 1 ? 1000 : 4000 } : { events: runLength.events, ...(runLength.by === "duration" ? { minSeconds: runLength.minSeconds } : {}) };
          return benchAsyncIo({ ...length, maxMs: size.throughputMaxMs, seed, checkpointIntervalMs: 1000, mode, capacity, parallelism: asyncParallelism });
        },
      })),
    ),
  // The earlier workloads, kept for --only.
  "checkpoint-overhead": () => [
    {
      floe: async () => {
        const o = { events: Number(values.events ?? 1_000_000), keys: 10_000, batch: 10_000, concurrency: 4 };
        const off = await benchIngestKeyedCount({ ...o, checkpointIntervalMs: 0 });
        const on = await benchIngestKeyedCount({ ...o, checkpointIntervalMs: 1000 });
        return {
          bench: "checkpoint_overhead",
          engine: "floe",
          variant: "clicks",
          events: o.events,
          unchecked_events_per_s: off.processed_events_per_s,
          checkpointed_1s_events_per_s: on.processed_events_per_s,
          ratio: Math.round((on.processed_events_per_s / off.processed_events_per_s) * 1000) / 1000,
        };
      },
    },
  ],
  unaligned: () => [{ floe: async () => ({ engine: "floe", variant: "backpressure", ...(await benchUnaligned({ events: 48_000, work: 100_000, intervalMs: 200, webhookDelayMs: 150 })) }) }],
  "checkpoint-incremental": () => [
    { floe: () => benchCheckpoints({ keys: Number(values["state-keys"] ?? 1_000_000), payloadBytes: 90, changedFraction: 0.01, incremental: true, localRecovery: true }) },
  ],
  "checkpoint-full": () => [
    { floe: () => benchCheckpoints({ keys: Number(values["state-keys"] ?? 1_000_000), payloadBytes: 90, changedFraction: 0.01, incremental: false, localRecovery: false }) },
  ],
};
const DEFAULT = [
  "map-filter",
  "keyed-count",
  "checkpoint-size",
  "recovery",
  "latency",
  "ingest",
  "unaligned-sim",
  "keyed-timers",
  "window-tumbling",
  "window-sliding",
  "interval-join",
  "async-io",
];
/** Workloads that run in the simulator, without the Worker bundle. */
const SIMULATED = new Set(["unaligned-sim"]);
const selected = values.only ? values.only.split(",") : DEFAULT;
for (const w of selected) {
  if (!workloads[w]) {
    process.stderr.write(`unknown workload ${JSON.stringify(w)}; known: ${Object.keys(workloads).join(", ")}\n`);
    process.exit(2);
  }
}

function flink(workload: string, params: Record<string, string | number | boolean>, pinTo?: Pin): Promise<BenchResult> {
  progress(`flink ${workload} ${Object.entries(params).map(([k, v]) => `${k}=${v}`).join(" ")}${pinTo ? ` (pinned to CPU ${pinTo.cpu})` : ""}`);
  // A run by duration stops by the rule floe's runs stop by (report/steady.ts), judged here from the JVM's progress lines.
  const samples: Sample[] = [];
  const minSeconds = Number(params.min_seconds ?? 0);
  const mayStopFlink = (p: FlinkProgress) => {
    samples.push({ t_ms: p.sinceFirstRecordMs, count: p.count });
    const checkpointsOn = Number(params.checkpoint_ms ?? 0) > 0;
    return mayStop({ sinceFirstRecordMs: p.sinceFirstRecordMs, checkpointsCompleted: p.checkpoints, checkpointsOn, series: perSecond(samples) }, minSeconds);
  };
  return runFlink(workload, params, (m) => progress(`flink: ${m}`), { pin: pinTo, ...(minSeconds > 0 ? { mayStop: mayStopFlink } : {}) }).then((r) => ({
    ...r,
    cores: pinTo ? "1" : "all",
    run_by: minSeconds > 0 ? "duration" : "events",
  }));
}

const results: BenchResult[] = [];
function emit(line: BenchResult | object): void {
  const r = withSteadyRate(line as BenchResult);
  results.push(r);
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

const startedMs = performance.now();
let failed = false;

/** Runs one step; a failure is reported as a result line and the run goes on (exit code 1 at the end). */
async function attempt(workload: string, engine: string, run: () => Promise<BenchResult | object>): Promise<void> {
  try {
    emit(await run());
  } catch (e) {
    failed = true;
    process.stderr.write(`[bench] ${workload} on ${engine} failed: ${(e as Error)?.stack ?? e}\n`);
    emit({ bench: "error", engine, variant: workload, error: String((e as Error)?.message ?? e).slice(0, 500) });
  }
}
try {
  if (peer) {
    try {
      const versions = checkJavaAndMaven();
      progress(`peer: ${versions.java}; ${versions.maven}`);
    } catch (e) {
      if (e instanceof PeerUnavailableError) {
        process.stderr.write(`${e.message}\n`);
        process.exit(2);
      }
      throw e;
    }
    buildFlinkPeer(progress);
    // The same input on both sides, or the comparison means nothing.
    const java = (await runFlink("fingerprint", { seed, keys: 10_000, count: 100_000 }, progress)) as unknown as { fingerprint: string };
    const ts = fingerprint(seed, 10_000, 100_000);
    if (java.fingerprint !== ts) throw new Error(`the Java generator differs from bench/generator.ts: ${java.fingerprint} ≠ ${ts}`);
    progress(`generators agree (fingerprint ${ts} of the first 100,000 events)`);
    if (selected.some((w) => EVENT_TIME.has(w))) {
      // The interval join's right stream has the next seed: its events are checked too.
      const seeds = selected.includes("interval-join") ? [seed, rightSeed(seed)] : [seed];
      for (const s of seeds) {
        const javaTime = (await runFlink("time-fingerprint", { seed: s, keys: 10_000, count: 100_000, event_rate: size.eventRate }, progress)) as unknown as { fingerprint: string };
        const tsTime = timeFingerprint(s, 10_000, 100_000, size.eventRate);
        if (javaTime.fingerprint !== tsTime) throw new Error(`the Java event times (seed ${s}) differ from bench/generator.ts: ${javaTime.fingerprint} ≠ ${tsTime}`);
        progress(`event times agree (seed ${s}, fingerprint ${tsTime})`);
      }
    }
  }
  if (selected.some((w) => !SIMULATED.has(w))) {
    progress("bundling the test Worker");
    await buildTestBundle();
  }
  for (const w of selected) {
    progress(`— ${w}`);
    const wModes = CORES_AWARE.has(w) ? modes : modes.filter((m) => m === "all");
    if (wModes.length === 0) {
      progress(`${w} has no one-core mode; skipped (run it with --cores all or both)`);
      continue;
    }
    for (const step of workloads[w](wModes)) {
      await attempt(w, "floe", step.floe);
      if (peer && step.flink) {
        const runs = step.flink();
        for (const r of Array.isArray(runs) ? runs : [runs]) await attempt(w, "flink", r);
      }
    }
  }
  checkPassed(results);
  checkWindows(results);
  checkJoins(results);
} catch (e) {
  failed = true;
  process.stderr.write(`${(e as Error)?.stack ?? e}\n`);
} finally {
  const ratioLines = ratios(results);
  for (const r of ratioLines) emit(r);
  for (const r of ratiosByCores(ratioLines)) emit(r);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "results.jsonl"), results.map((r) => JSON.stringify(r)).join("\n") + "\n");
  writePlots();
  process.stderr.write(`\n${table(results)}\n\n[bench] ${Math.round((performance.now() - startedMs) / 1000)} s; results in ${join(outDir, "results.jsonl")}\n`);
}
process.exit(failed ? 1 : 0);

/**
 * Adds the steady figures (report/steady.ts: the per-second series without
 * its warm-up and last second), computed here the same way for both
 * engines, and `long_enough`: the run lasted 10 s from its first record
 * and, with checkpoints on, had 10 completed checkpoints.
 */
function withSteadyRate(r: BenchResult): BenchResult {
  const series = r.series_events_per_s as number[] | undefined;
  if (!Array.isArray(series)) return r;
  if (WINDOWED_BENCHES.has(r.bench)) return withWindowFigures(withSteadyFigures(r, series));
  return withSteadyFigures(r, series);
}

/**
 * The window figures (report/windows.ts) from the line's window rows, the
 * latency over its steady window; the rows go last, compact:
 * [end, results, total, first_fired_ms, received_ms, final].
 */
function withWindowFigures(r: BenchResult): BenchResult {
  const rows = (r.window_rows as WindowRow[] | undefined) ?? [];
  const steady = typeof r.steady_from_s === "number" && typeof r.steady_to_s === "number" ? { fromS: r.steady_from_s, toS: r.steady_to_s } : undefined;
  const { window_rows, series_events_per_s, series_checkpoints, pinning, ...rest } = r;
  return {
    ...rest,
    ...windowFigures(rows, Number(r.first_record_epoch_ms), steady),
    ...(pinning ? { pinning } : {}),
    series_events_per_s,
    ...(series_checkpoints ? { series_checkpoints } : {}),
    series_windows: rows.map((w) => [w.end, w.results, w.total, w.first_fired_ms, w.received_ms, w.final ? 1 : 0]),
  };
}

function withSteadyFigures(r: BenchResult, series: number[]): BenchResult {
  const checkpointsOn = Number(r.checkpoint_interval_ms ?? 0) > 0;
  const longEnough = series.length >= MIN_RUN_SECONDS && (!checkpointsOn || Number(r.checkpoints_completed) >= MIN_RUN_CHECKPOINTS);
  // Keep the series last: the line stays readable.
  const { series_events_per_s, series_checkpoints, pinning, ...rest } = r;
  return {
    ...rest,
    ...steadyFigures(series),
    long_enough: longEnough,
    ...(pinning ? { pinning } : {}),
    series_events_per_s,
    ...(series_checkpoints ? { series_checkpoints } : {}),
  };
}

/** Workload 1 on both engines must pass exactly the events the generator says. */
function checkPassed(rs: readonly BenchResult[]): void {
  // A run stopped by duration ends mid-input, where no prefix of seq was processed: only complete runs can be checked.
  for (const r of rs.filter((x) => x.bench === "map_filter" && x.complete !== false)) {
    const want = expectedPassed(seed, Number(r.keys), Number(r.events));
    if (r.passed !== want) throw new Error(`${r.engine} map_filter passed ${String(r.passed)} events, expected ${want}`);
  }
}

/**
 * The event-time workloads, in runs of a fixed number of events that ran to their end: each
 * engine's windows, results and total against the generator's reference (computed for inputs
 * of up to 4,000,000 events), and floe's against Flink's.
 */
function checkWindows(rs: readonly BenchResult[]): void {
  const problems = checkWindowTotals(rs, (r) =>
    Number(r.events) <= 4_000_000 ? expectedWindowTotals(seed, Number(r.keys), Number(r.events), Number(r.event_rate), Number(r.window_ms), Number(r.slide_ms)) : null,
  );
  if (problems.length > 0) throw new Error(`window results differ:\n${problems.join("\n")}`);
  const checked = rs.filter((r) => WINDOWED_BENCHES.has(r.bench) && r.run_by === "events" && r.complete !== false).length;
  if (checked > 0) progress(`window results: ${checked} complete runs agree with the reference${peer ? " and with each other" : ""}`);
}

/**
 * The interval join, in runs of a fixed number of events that ran to their end: each engine's pairs
 * against the reference (computed for up to 2,000,000 events a side), and floe's against Flink's.
 */
function checkJoins(rs: readonly BenchResult[]): void {
  const problems = checkJoinMatches(rs, (r) =>
    Number(r.events_per_side) <= 2_000_000 ? expectedJoinMatches(seed, Number(r.keys), Number(r.events_per_side), Number(r.event_rate), Number(r.lower_ms), Number(r.upper_ms)) : null,
  );
  if (problems.length > 0) throw new Error(`interval join results differ:\n${problems.join("\n")}`);
  const checked = rs.filter((r) => r.bench === "interval_join" && r.run_by === "events" && r.complete !== false).length;
  if (checked > 0) progress(`interval join pairs: ${checked} complete runs agree with the reference${peer ? " and with each other" : ""}`);
}

/** One SVG per checkpointed keyed-count variant that ran. */
function writePlots(): void {
  const checkpointed = results.filter((r) => r.bench === "keyed_count" && Number(r.checkpoint_interval_ms) > 0);
  const groups = new Set(checkpointed.map((r) => `${Number(r.keys)}|${String(r.cores ?? "all")}`));
  for (const group of groups) {
    const [keys, cores] = [Number(group.split("|")[0]), group.split("|")[1]];
    const runs = checkpointed.filter((r) => r.keys === keys && String(r.cores ?? "all") === cores);
    const name = `keyed-count-${keys}-keys${cores === "1" ? "-1-core" : ""}.svg`;
    const file = join(outDir, name);
    const where = cores === "1" ? ", parallelism 1 on one core" : "";
    writeFileSync(file, keyedCountPlot(runs, `Keyed count, ${keys.toLocaleString("en-US")} keys, checkpoints every 1 s${where}: throughput and checkpoint duration`));
    if (values.plots) {
      mkdirSync(resolve(values.plots), { recursive: true });
      copyFileSync(file, join(resolve(values.plots), name));
    }
    progress(`plot: ${file}`);
  }
}
