/**
 * Jobs the benchmarks run (compiled into the test Worker, not the
 * production one).
 *
 * The generator-driven jobs read their input's parameters from Worker
 * variables, so that one bundle serves every size: BENCH_EVENTS (events in
 * all, split evenly over the source partitions), BENCH_KEYS, BENCH_SEED and
 * BENCH_FAIL_AT (the seq of the event that fails the job once; none when
 * absent). Events are those of bench/generator.ts, the same as the Flink
 * peer's.
 */
import {
  type KeyedProcessFunction,
  type SourceDefinition,
  type TableRecord,
  generatorSource,
  httpSource,
  job,
  tableSink,
  valueState,
  webhookSink,
} from "../src/index.js";
import { BENCH_PARALLELISM, type BenchEvent, DEFAULT_SEED, benchEvent, keepEvent, mapEvent } from "./generator.js";

/** A record of the "bench-state" stream: a key and a payload kept as its state. */
export interface StateRecord {
  k: string;
  p: string;
}

const payload = valueState<string>("payload");

/** Keeps the latest payload per key: state size is keys × payload. */
export const keepLatest: KeyedProcessFunction<string, StateRecord, never> = {
  state: [payload],
  processElement(r, ctx) {
    ctx.getState(payload).update(r.p);
  },
};

/** Large keyed state, for checkpoint duration and recovery benchmarks. */
export const benchState = job("bench-state", { maxParallelism: 128, batchSize: 5000 });
benchState
  .source(httpSource<StateRecord>("bench-state", { partitions: 2 }), { uid: "in" })
  .keyBy((r) => r.k)
  .process(keepLatest, { uid: "latest", parallelism: 2 });

/** An event of the generator-driven jobs, with the marks of the recovery workload. */
export interface GenRecord extends BenchEvent {
  /** The event at BENCH_FAIL_AT: the keyed operator throws on it, once per runtime process. */
  fail?: true;
  /** Read by a source reader created after the injected failure: the restored attempt's input. */
  restored?: true;
}

/** The Worker variables the generator-driven jobs read. */
interface BenchVars {
  BENCH_EVENTS?: string;
  BENCH_KEYS?: string;
  BENCH_SEED?: string;
  BENCH_FAIL_AT?: string;
}

/**
 * What the recovery workload observes inside the runtime. Module state: every
 * object of the local runtime shares one isolate, so the source and keyed
 * subtasks see the same values (a benchmark device, not a pattern for jobs).
 */
const probe = { failedAtMs: 0, firstAfterMs: 0 };

/**
 * The engine's generator source, sized by Worker variables: partition p
 * emits the events whose seq ≡ p (mod partitions), seq < BENCH_EVENTS.
 */
export function benchSource(partitions: number): SourceDefinition<GenRecord> {
  return {
    kind: "generator",
    defaultParallelism: partitions,
    replayable: true,
    createReader: (ctx) => {
      const vars = ctx.env as BenchVars;
      const events = Number(vars.BENCH_EVENTS ?? 1_000_000);
      const keys = Number(vars.BENCH_KEYS ?? 10_000);
      const seed = Number(vars.BENCH_SEED ?? DEFAULT_SEED);
      const failAt = vars.BENCH_FAIL_AT === undefined ? -1 : Number(vars.BENCH_FAIL_AT);
      if (events % partitions !== 0) throw new Error(`BENCH_EVENTS (${events}) must be a multiple of ${partitions}`);
      // A reader created after the failure belongs to the restored attempt.
      const restored = probe.failedAtMs > 0;
      const reader = generatorSource<GenRecord>({
        partitions,
        seed,
        count: events / partitions,
        make: (i, p) => {
          const e: GenRecord = benchEvent(seed, keys, i * partitions + p);
          if (e.seq === failAt) e.fail = true;
          if (restored) e.restored = true;
          return e;
        },
      }).createReader(ctx);
      return {
        positions: () => reader.positions(),
        seek: (positions) => reader.seek(positions),
        // The generator answers without I/O, so the source loop would never let the runtime's
        // event loop poll its sockets and timers: checkpoint triggers, heartbeats and API calls
        // would wait for the end of the source's 5 s slice. A zero-delay timer per batch lets them in.
        poll: async (maxRecords) => {
          await new Promise((r) => setTimeout(r, 0));
          return reader.poll(maxRecords);
        },
      };
    },
  };
}

/** Workload 1: stateless map and filter, chained into the source (as Flink chains them). */
export const benchMap = job("bench-map", { maxParallelism: 128 });
benchMap
  .source(benchSource(BENCH_PARALLELISM), { uid: "gen" })
  .map(mapEvent, { name: "map" })
  .filter(keepEvent, { name: "filter" });

const count = valueState<number>("count");

/** Keyed count, without output (as the Flink peer's, which feeds a discarding sink). */
export const countPerKey: KeyedProcessFunction<string, GenRecord, never> = {
  state: [count],
  processElement(_e, ctx) {
    const s = ctx.getState(count);
    s.update((s.value() ?? 0) + 1);
  },
};

/** Workload 2: keyed count over BENCH_KEYS keys. */
export const benchCount = job("bench-count", { maxParallelism: 128 });
benchCount
  .source(benchSource(BENCH_PARALLELISM), { uid: "gen" })
  .keyBy((e) => e.key)
  .process(countPerKey, { uid: "count", parallelism: BENCH_PARALLELISM });

/** The recovery workload's measurements, in epoch ms of the runtime's clock. */
export interface RecoveryRow {
  failed_at_ms: number;
  first_after_ms: number;
  replayed_at_ms: number;
}

/**
 * Keyed count that fails once on the event marked `fail`, notes when the
 * restored attempt processes its first event, and, when the failed event is
 * processed again, emits one row with the three times.
 */
export const countWithFailure: KeyedProcessFunction<string, GenRecord, TableRecord<RecoveryRow>> = {
  state: [count],
  processElement(e, ctx, out) {
    if (e.restored && probe.firstAfterMs === 0) probe.firstAfterMs = Date.now();
    if (e.fail) {
      if (probe.failedAtMs === 0) {
        probe.failedAtMs = Date.now();
        throw new Error(`injected failure at seq ${e.seq}`);
      }
      out.collect({ key: "recovery", value: { failed_at_ms: probe.failedAtMs, first_after_ms: probe.firstAfterMs, replayed_at_ms: Date.now() } });
    }
    const s = ctx.getState(count);
    s.update((s.value() ?? 0) + 1);
  },
};

/** Workload 4: keyed count with a failure at BENCH_FAIL_AT; the times land in the table "bench-recovery". */
export const benchRecovery = job("bench-recovery", { maxParallelism: 128 });
benchRecovery
  .source(benchSource(BENCH_PARALLELISM), { uid: "gen" })
  .keyBy((e) => e.key)
  .process(countWithFailure, { uid: "count", parallelism: BENCH_PARALLELISM })
  .sink(tableSink<RecoveryRow>("bench-recovery", { partitions: 1 }), { uid: "times" });

/** A record of the latency workload: `sent` is the client's clock when it was sent. */
export interface LatencyRecord {
  key: string;
  sent: number;
}

const seen = valueState<number>("seen");

/** Counts per key and passes each record on with its count. */
export const countAndForward: KeyedProcessFunction<string, LatencyRecord, LatencyRecord & { n: number }> = {
  state: [seen],
  processElement(r, ctx, out) {
    const s = ctx.getState(seen);
    const n = (s.value() ?? 0) + 1;
    s.update(n);
    out.collect({ key: r.key, sent: r.sent, n });
  },
};

/** Workload 5: HTTP ingestion → keyed count → exactly-once webhook (BENCH_WEBHOOK_URL). */
export const benchLatency = job("bench-latency", { maxParallelism: 128 });
benchLatency
  .source(httpSource<LatencyRecord>("bench-lat", { partitions: BENCH_PARALLELISM }), { uid: "in" })
  .keyBy((r) => r.key)
  .process(countAndForward, { uid: "count", parallelism: BENCH_PARALLELISM })
  .sink(webhookSink({ urlVar: "BENCH_WEBHOOK_URL" }), { uid: "hook" });
