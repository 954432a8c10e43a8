/**
 * Jobs the benchmarks run (compiled into the test Worker, not the
 * production one).
 *
 * The generator-driven jobs read their input's parameters from Worker
 * variables, so that one bundle serves every size: BENCH_EVENTS (events in
 * all, split evenly over the source partitions), BENCH_KEYS, BENCH_SEED and
 * BENCH_FAIL_AT (the seq of the event that fails the job once; none when
 * absent); the timed jobs also BENCH_EVENT_RATE (events per second of
 * event time). Events are those of bench/generator.ts, the same as the Flink
 * peer's.
 */
import {
  type AggregateFunction,
  AsyncDataStream,
  type AsyncFunction,
  type DataStream,
  END_OF_TIME_MS,
  type KeyedProcessFunction,
  type KeyedStream,
  type ProcessJoinFunction,
  type ProcessWindowFunction,
  SlidingEventTimeWindows,
  type SourceDefinition,
  type TableRecord,
  TumblingEventTimeWindows,
  WatermarkStrategy,
  generatorSource,
  httpSource,
  job,
  tableSink,
  mapState,
  valueState,
  webhookSink,
} from "../src/index.js";
import {
  BENCH_PARALLELISM,
  BENCH_SLIDING_SIZE_MS,
  BENCH_WINDOW_MS,
  type BenchEvent,
  DEFAULT_EVENT_RATE,
  DEFAULT_SEED,
  OUT_OF_ORDERNESS_MS,
  benchEvent,
  eventTime,
  keepEvent,
  mapEvent,
  payload as payloadOf,
  WINDOWS_TABLE,
} from "./generator.js";
import { JOIN_LOWER_MS, JOIN_UPPER_MS, rightSeed } from "./interval-join.js";
import { ASYNC_CAPACITIES, ASYNC_MODES, ASYNC_TIMEOUT_MS, asyncJobName } from "./async-io.js";
import { RSS_BUDGETS_MIB, rssJobName } from "./rss.js";

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
  /** Event time (bench/generator.ts `eventTime`), in the timed jobs' input only. */
  ts?: number;
}

/** The Worker variables the generator-driven jobs read. */
interface BenchVars {
  BENCH_EVENTS?: string;
  BENCH_KEYS?: string;
  BENCH_SEED?: string;
  BENCH_FAIL_AT?: string;
  BENCH_EVENT_RATE?: string;
  /** The async I/O workload's lookup service (bench/support/slow-server.ts). */
  BENCH_LOOKUP_URL?: string;
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
 * With `timed`, each event carries its event time `ts` at BENCH_EVENT_RATE.
 * `seedOf` turns BENCH_SEED into this source's seed (a second stream of a join).
 */
export function benchSource(partitions: number, timed = false, seedOf: (seed: number) => number = (s) => s): SourceDefinition<GenRecord> {
  return {
    kind: "generator",
    defaultParallelism: partitions,
    replayable: true,
    createReader: (ctx) => {
      const vars = ctx.env as BenchVars;
      const events = Number(vars.BENCH_EVENTS ?? 1_000_000);
      const keys = Number(vars.BENCH_KEYS ?? 10_000);
      const seed = seedOf(Number(vars.BENCH_SEED ?? DEFAULT_SEED));
      const failAt = vars.BENCH_FAIL_AT === undefined ? -1 : Number(vars.BENCH_FAIL_AT);
      const rate = Number(vars.BENCH_EVENT_RATE ?? DEFAULT_EVENT_RATE);
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
          if (timed) e.ts = eventTime(seed, e.seq, rate);
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


/** A count of one key in one window, stamped with the wall time its window fired it. */
export interface WindowCount {
  /** The window's end (exclusive), event time. */
  end: number;
  n: number;
  /** Date.now() when the window (or the key's timer) fired it. */
  fired_ms: number;
}

/**
 * One row per window, written by the tally when the watermark passes the
 * window's last ms there, that is once every window subtask fired it and
 * its results arrived (bench/workloads/windowed.ts reads the table).
 */
export interface WindowTally {
  end: number;
  /** (key, window) results. */
  results: number;
  /** Sum of their counts. */
  total: number;
  /** The earliest `fired_ms` of its results: the first window subtask whose watermark passed the window's end. */
  first_fired_ms: number;
  /** Date.now() when the tally's timer fired. */
  received_ms: number;
  /** Fired by the end of input (the end of time), not by the input's own watermark. */
  final: boolean;
}

/** The timed input: timestamps from `ts`, the watermark OUT_OF_ORDERNESS_MS behind (the same strategy as the Flink peer's). */
const timedWatermarks = WatermarkStrategy.forBoundedOutOfOrderness<GenRecord>(OUT_OF_ORDERNESS_MS).withTimestampAssigner((e) => e.ts!);

const tally = valueState<{ results: number; total: number; first_fired_ms: number }>("tally");

/** Sums a window's results, keyed by its end; emits one row when the watermark passes its last ms. */
export const tallyWindows: KeyedProcessFunction<string, WindowCount, TableRecord<WindowTally>> = {
  state: [tally],
  processElement(r, ctx) {
    const s = ctx.getState(tally);
    const t = s.value() ?? { results: 0, total: 0, first_fired_ms: r.fired_ms };
    s.update({ results: t.results + 1, total: t.total + r.n, first_fired_ms: Math.min(t.first_fired_ms, r.fired_ms) });
    // The results carry the window's last ms as event time: the tally's watermark passes it only once every window subtask fired it.
    ctx.timerService().registerEventTimeTimer(r.end - 1);
  },
  onTimer(ts, ctx, out) {
    const s = ctx.getState(tally);
    const t = s.value();
    if (!t) return;
    out.collect({ key: String(ts + 1), value: { end: ts + 1, ...t, received_ms: Date.now(), final: ctx.timerService().currentWatermark() >= END_OF_TIME_MS } });
    s.clear();
  },
};

const perInterval = mapState<number>("per-interval");

/**
 * Issue 17's workload: a count per key and BENCH_WINDOW_MS of event time, by hand, with one
 * event-time timer per key at the interval's last ms; the timer emits the count.
 */
export const countPerInterval: KeyedProcessFunction<string, GenRecord, WindowCount> = {
  state: [perInterval],
  processElement(e, ctx) {
    const end = Math.floor(e.ts! / BENCH_WINDOW_MS) * BENCH_WINDOW_MS + BENCH_WINDOW_MS;
    const m = ctx.getMapState(perInterval);
    const field = String(end);
    m.put(field, (m.get(field) ?? 0) + 1);
    ctx.timerService().registerEventTimeTimer(end - 1);
  },
  onTimer(ts, ctx, out) {
    const m = ctx.getMapState(perInterval);
    const field = String(ts + 1);
    out.collect({ end: ts + 1, n: m.get(field) ?? 0, fired_ms: Date.now() });
    m.remove(field);
  },
};

/** The windows' count. */
export const countEvents: AggregateFunction<GenRecord, number, number> = {
  createAccumulator: () => 0,
  add: (_e, n) => n + 1,
  merge: (a, b) => a + b,
  getResult: (n) => n,
};

/** Stamps a window's count with its end and the wall time it fired. */
export const stampCount: ProcessWindowFunction<number, WindowCount, string> = {
  process(_key, ctx, counts, out) {
    const w = ctx.window;
    if (w.kind !== "time") throw new Error("the bench windows are time windows");
    out.collect({ end: w.endMs, n: counts[0], fired_ms: Date.now() });
  },
};


/** A timed job: the generator with event time and watermarks, keyed; `count` turns it into WindowCounts, the tally sums them per window. */
function timedJob(name: string, count: (keyed: KeyedStream<string, GenRecord>) => DataStream<WindowCount>) {
  const j = job(name, { maxParallelism: 128 });
  count(j.source(benchSource(BENCH_PARALLELISM, true), { uid: "gen", watermarks: timedWatermarks }).keyBy((e) => e.key))
    .keyBy((r) => String(r.end))
    .process(tallyWindows, { uid: "tally", parallelism: BENCH_PARALLELISM })
    .sink(tableSink<WindowTally>(WINDOWS_TABLE, { partitions: 1 }), { uid: "out" });
  return j;
}

/** Issue 17: a keyed process function with an event-time timer per key and 10 s interval ("count" is measured). */
export const benchTimers = timedJob("bench-timers", (keyed) => keyed.process(countPerInterval, { uid: "count", parallelism: BENCH_PARALLELISM }));

/** Issue 18: a tumbling 10 s event-time window count ("window" is measured). */
export const benchTumbling = timedJob("bench-tumbling", (keyed) =>
  keyed.window(TumblingEventTimeWindows.of(BENCH_WINDOW_MS)).aggregate(countEvents, stampCount, { uid: "window", parallelism: BENCH_PARALLELISM }),
);

/** Issue 18: a sliding window count, 60 s every 10 s ("window" is measured). */
export const benchSliding = timedJob("bench-sliding", (keyed) =>
  keyed.window(SlidingEventTimeWindows.of(BENCH_SLIDING_SIZE_MS, BENCH_WINDOW_MS)).aggregate(countEvents, stampCount, { uid: "window", parallelism: BENCH_PARALLELISM }),
);

/** A joined pair, as small as the Flink peer's (its Tuple2 of the two seqs). */
export type JoinedPair = [number, number];

/** Emits each pair's two seqs. */
export const pairSeqs: ProcessJoinFunction<GenRecord, GenRecord, JoinedPair> = {
  processElement(l, r, _ctx, out) {
    out.collect([l.seq, r.seq]);
  },
};

/**
 * Issue 19: the interval join of two timed generated streams (bench/interval-join.ts: the right one
 * with the next seed), keyed by key, between JOIN_LOWER_MS and JOIN_UPPER_MS ("join" is measured, its
 * records out are the pairs). BENCH_EVENTS is the events per side. No sink: the pairs are counted and
 * dropped, as the Flink peer's go to a discarding sink.
 */
export const benchIntervalJoin = job("bench-interval-join", { maxParallelism: 128 });
benchIntervalJoin
  .source(benchSource(BENCH_PARALLELISM, true), { uid: "left", watermarks: timedWatermarks })
  .keyBy((e) => e.key)
  .intervalJoin(benchIntervalJoin.source(benchSource(BENCH_PARALLELISM, true, rightSeed), { uid: "right", watermarks: timedWatermarks }).keyBy((e) => e.key))
  .between(JOIN_LOWER_MS, JOIN_UPPER_MS)
  .process(pairSeqs, { uid: "join", parallelism: BENCH_PARALLELISM });

/** Looks each event up on BENCH_LOOKUP_URL (read in `open`, as a binding would be): one GET per record. */
function lookupEvent(): AsyncFunction<GenRecord, number> & { url?: string } {
  return {
    open(ctx) {
      const url = (ctx.env as BenchVars).BENCH_LOOKUP_URL;
      if (!url) throw new Error("BENCH_LOOKUP_URL is not set: the async I/O workload starts its lookup server and passes its URL");
      this.url = url;
    },
    async asyncInvoke(e, { signal }) {
      const res = await fetch(`${this.url}?seq=${e.seq}`, { signal });
      if (!res.ok) throw new Error(`lookup answered ${res.status}`);
      return [((await res.json()) as { value: number }).value];
    },
  };
}

/**
 * Issue 19: async I/O, one job per mode and capacity (capacity is part of the job's definition):
 * the generator source (no event time) → AsyncDataStream.orderedWait / unorderedWait of a lookup on a
 * local HTTP server ("lookup" is measured, by its records out: the results). Small batches, so that a
 * barrier waits behind at most a few records still to enter the operator. No sink.
 */
export const benchAsyncJobs = ASYNC_MODES.flatMap((mode) =>
  ASYNC_CAPACITIES.map((capacity) => {
    const j = job(asyncJobName(mode, capacity), { maxParallelism: 128, batchSize: 10 });
    const events = j.source(benchSource(BENCH_PARALLELISM), { uid: "gen" });
    const options = { uid: "lookup", timeoutMs: ASYNC_TIMEOUT_MS, capacity, parallelism: BENCH_PARALLELISM };
    if (mode === "ordered") AsyncDataStream.orderedWait(events, lookupEvent(), options);
    else AsyncDataStream.unorderedWait(events, lookupEvent(), options);
    return j;
  }),
);

/** A record of the "bench-rss-*" jobs: the index of its key and the pass over the keys it belongs to. */
export interface RssRecord {
  k: string;
  i: number;
  pass: number;
}

/** The Worker variables of the "bench-rss-*" jobs (scripts/measure-rss.ts sets them). */
interface RssVars {
  /** Distinct keys. */
  RSS_KEYS?: string;
  /** Characters of each key's state. */
  RSS_PAYLOAD_BYTES?: string;
  /** Passes over the keys the source emits in all: the first writes every key, each later one reads every key back. */
  RSS_PASSES?: string;
  /** "1": the first pass writes blind (no read before the write). */
  RSS_BLIND?: string;
}

/**
 * The source of the "bench-rss-*" jobs: one partition, event n is key
 * `k<n mod RSS_KEYS>` of pass ⌊n / RSS_KEYS⌋, for n < RSS_KEYS × RSS_PASSES.
 * Then it idles (no "end"), so that the job keeps running and checkpointing:
 * the harness starts the runtime again with more passes after a restore.
 */
function rssSource(): SourceDefinition<RssRecord> {
  return {
    kind: "generator",
    defaultParallelism: 1,
    replayable: true,
    createReader: (ctx) => {
      const vars = ctx.env as RssVars;
      const keys = Number(vars.RSS_KEYS ?? 100_000);
      const total = keys * Number(vars.RSS_PASSES ?? 1);
      let offset = 0;
      return {
        positions: () => ({ "rss/0": offset }),
        seek: (positions) => {
          offset = positions["rss/0"] ?? offset;
        },
        poll: async (maxRecords) => {
          const n = Math.min(maxRecords, total - offset);
          if (n <= 0) return null;
          // As benchSource: let the runtime's event loop in between batches.
          await new Promise((r) => setTimeout(r, 0));
          const records = new Array<RssRecord>(n);
          for (let j = 0; j < n; j++) {
            const seq = offset + j;
            const i = seq % keys;
            records[j] = { k: `k${i}`, i, pass: Math.floor(seq / keys) };
          }
          const batch = { partition: "rss/0", firstOffset: offset, records };
          offset += n;
          return batch;
        },
      };
    },
  };
}

const blob = valueState<string>("blob");

/**
 * The first pass stores `payload(1, i, RSS_PAYLOAD_BYTES)` (bench/generator.ts) as key i's state,
 * after reading the key as a read-modify-write does (unless RSS_BLIND); a later pass reads it back
 * and fails the job when it is not that value.
 */
export const storeThenVerify: KeyedProcessFunction<string, RssRecord, never> & { bytes?: number; blind?: boolean } = {
  state: [blob],
  open(ctx) {
    const vars = ctx.env as RssVars;
    this.bytes = Number(vars.RSS_PAYLOAD_BYTES ?? 300);
    this.blind = vars.RSS_BLIND === "1";
  },
  processElement(r, ctx) {
    const s = ctx.getState(blob);
    const expected = payloadOf(1, r.i, this.bytes!);
    if (r.pass === 0) {
      // A replayed record finds its own value.
      const before = this.blind ? undefined : s.value();
      if (before !== undefined && before !== expected) throw new Error(`bench-rss: key ${r.k} held a wrong value before its first write`);
      s.update(expected);
      return;
    }
    const got = s.value();
    if (got !== expected) throw new Error(`bench-rss: key ${r.k} read back ${got === undefined ? "nothing" : `a wrong value (${got.length} characters)`} in pass ${r.pass}`);
  },
};

/**
 * Keyed state far larger than the memory budget, on ONE keyed subtask, with
 * checkpoints every second: scripts/measure-rss.ts measures workerd's
 * resident memory while it grows, checkpoints, restores and is read back.
 */
export const benchRssJobs = RSS_BUDGETS_MIB.map((mib) => {
  const j = job(rssJobName(mib), { maxParallelism: 128, checkpoint: { intervalMs: 1000 }, state: { memoryBudgetBytes: mib * 1024 * 1024 } });
  j.source(rssSource(), { uid: "gen", parallelism: 1 })
    .keyBy((r) => r.k)
    .process(storeThenVerify, { uid: "store", parallelism: 1 });
  return j;
});
