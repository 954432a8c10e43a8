/**
 * The jobs the simulator runs, built with the real DSL: two sources unioned
 * into a keyed process that keeps a running count and sum per key (and a
 * count per source in map state), into a log sink (every output record,
 * through the real two-phase-commit writer and a publisher of ours) and,
 * in some runs, the real table sink. Because the operator has several
 * input channels, barrier alignment decides whether its state is exact.
 */
import { job } from "../../src/api/job.js";
import type { CheckpointOptions } from "../../src/api/checkpoint-options.js";
import { mapState, valueState } from "../../src/api/state.js";
import type { DeliveryGuarantee, KeyedProcessFunction, SinkDefinition, SinkWriterContext, SourceDefinition, SourceReaderContext } from "../../src/api/types.js";
import type { RestartStrategyOptions } from "../../src/checkpoint/restart-strategy.js";
import { type SinkPublisher, TransactionalSinkWriter } from "../../src/connectors/sinks/two-phase-commit.js";
import { tableSink } from "../../src/connectors/sinks/table-sink.js";
import { generatorSource } from "../../src/connectors/sources/generator-source.js";
import { httpSource } from "../../src/connectors/sources/http-source.js";
import { hashKey, keyText } from "../../src/graph/key-groups.js";
import type { JobDefinition } from "../../src/api/job.js";
import { tablePartitionName } from "../../src/runtime/names.js";
import type { TableRowWrite } from "../../src/runtime/table-partition.js";
import { WatermarkStrategy } from "../../src/time/watermark-strategy.js";
import type { SubtaskPoint } from "./faults.js";
import { type JRecord, type JoinRow, type JoinShape, joined } from "./join-job.js";
import { ASYNC_DEAD, ASYNC_LOG, ASYNC_SOURCE, type AsyncRow, type AsyncShape, type QRecord, deadLetterId, enriched } from "./async-job.js";
import type { DeadLetter } from "../../src/api/dead-letter.js";
import { timersPerKey } from "./timer-job.js";
import { type WRecord, type WindowRow, type WindowShape, rowKey, windowed } from "./window-job.js";

export const JOB = "sim";

/** An input record. */
export interface InRecord {
  key: string;
  v: number;
  src: string;
  part: number;
  off: number;
}

/** The keyed operator's state, as it reports it. */
export interface Totals {
  count: number;
  sum: number;
  bySrc: Record<string, number>;
}

/** An output record: the state after one input record, and which input it was. */
export interface OutRecord {
  key: string;
  value: Totals;
  src: string;
  part: number;
  off: number;
  v: number;
}

/** What the job looks like in one run. */
export interface JobShape {
  readonly bounded: boolean;
  /** Partitions and parallelism of source A and of source B. */
  readonly partitionsA: number;
  readonly parallelismA: number;
  readonly partitionsB: number;
  /** Records per partition of the bounded (generator) sources. */
  readonly countA: number;
  readonly countB: number;
  readonly keys: number;
  readonly processParallelism: number;
  /** The log sink is keyed (its own vertex, hash edge) rather than chained to the operator. */
  readonly keyedSink: boolean;
  readonly sinkParallelism: number;
  readonly withTotals: boolean;
  readonly tablePartitions: number;
  readonly sinkGuarantee: DeliveryGuarantee;
  readonly batchSize: number;
  readonly maxParallelism: number;
  readonly checkpoint: CheckpointOptions;
  readonly restartStrategy: RestartStrategyOptions;
  /** Event-time watermarks on some sources (none: no watermarks anywhere, as before). */
  readonly watermarks?: WatermarkShape;
  /** The timer branch (timer-job.ts), at this parallelism; none: no timers, as before. */
  readonly timers?: { readonly parallelism: number };
  /** The window branch (window-job.ts), with its own source and input; none: no windows, as before. */
  readonly windows?: WindowShape;
  /** The join branch (join-job.ts), with its two sources and their input; none: no two-input operator, as before. */
  readonly joins?: JoinShape;
  /** The async I/O branch (async-job.ts), with its source, its input and its service; none: no async operator, as before. */
  readonly async?: AsyncShape;
}

/** A watermark strategy of the run's sources. */
export interface WatermarkShape {
  readonly boundMs: number;
  readonly idlenessMs?: number;
  /** Which sources have it. */
  readonly sources: "a" | "b" | "both";
}

/** A record's event time: its offset in tens of ms, somewhat out of order (by up to 24 ms). */
export function eventTimeOf(r: InRecord): number {
  return r.off * 10 + (r.v % 25);
}

function strategyFor(src: "a" | "b", shape: WatermarkShape | undefined): WatermarkStrategy<InRecord> | undefined {
  if (!shape || (shape.sources !== "both" && shape.sources !== src)) return undefined;
  const s = WatermarkStrategy.forBoundedOutOfOrderness<InRecord>(shape.boundMs).withTimestampAssigner(eventTimeOf);
  return shape.idlenessMs === undefined ? s : s.withIdleness(shape.idlenessMs);
}

/** The simulator's services a subtask's env carries for connectors of ours. */
export interface SimEnvHooks {
  lifecycle(point: SubtaskPoint): void;
  /** A sink's flush without checkpoint (end of input) starts; the returned function marks its end. */
  flushing(writer: string): () => void;
  now(): number;
}

/** Transaction ids from here on are flushes without a checkpoint (Task.flushSinks: attempt * 1e9 + n). */
export const FLUSH_TXN_MIN = 1e9;

/** A sink whose writers report their flushes without checkpoint, so that the oracle can tell what those published. */
function tappedSink<T>(def: SinkDefinition<T>): SinkDefinition<T> {
  return {
    ...def,
    createWriter: (ctx) => {
      const writer = def.createWriter(ctx);
      const hooks = (ctx.env as { SIM?: SimEnvHooks }).SIM;
      const name = `${ctx.jobName}/${ctx.uid}/${ctx.subtaskIndex}@${ctx.runId}`;
      return new Proxy(writer, {
        get(target, p) {
          if (p === "commit" && hooks) {
            return (txn: number) => {
              if (txn < FLUSH_TXN_MIN) return target.commit(txn);
              const end = hooks.flushing(name);
              const done = target.commit(txn);
              done.then(end, end);
              return done;
            };
          }
          const v = Reflect.get(target, p, target) as unknown;
          return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    },
  };
}

const acc = valueState<{ count: number; sum: number }>("acc");
const bySrc = mapState<number>("by-src");

/** count, sum and count per source, per key. */
export const sumPerKey: KeyedProcessFunction<string, InRecord, OutRecord> = {
  state: [acc, bySrc],
  processElement(r, ctx, out) {
    const s = ctx.getState(acc);
    const cur = s.value() ?? { count: 0, sum: 0 };
    const next = { count: cur.count + 1, sum: cur.sum + r.v };
    s.update(next);
    const m = ctx.getMapState(bySrc);
    m.put(r.src, (m.get(r.src) ?? 0) + 1);
    out.collect({ key: ctx.currentKey, value: { ...next, bySrc: Object.fromEntries(m.entries()) }, src: r.src, part: r.part, off: r.off, v: r.v });
  },
};

/** Record `i` of partition `p` of a bounded source. */
export function generated(src: string, keys: number) {
  return (i: number, p: number, r: number): InRecord => ({ key: `k${Math.floor(r * keys)}`, v: (i * 7 + p * 13 + src.length) % 100, src, part: p, off: i });
}

/** A source whose readers report the moment a snapshot reads their positions (the synchronous part of a checkpoint). */
function tapped<T>(def: SourceDefinition<T>): SourceDefinition<T> {
  return {
    ...def,
    createReader: (ctx: SourceReaderContext) => {
      const reader = def.createReader(ctx);
      const hooks = (ctx.env as { SIM?: SimEnvHooks }).SIM;
      return {
        positions: () => {
          hooks?.lifecycle("sync-snapshot");
          return reader.positions();
        },
        seek: (p) => reader.seek(p),
        poll: (n) => reader.poll(n),
      };
    },
  };
}

/**
 * The log sink: every output record, published per transaction to the table partitions with the writer/transaction
 * fence of TablePartition, as the row of its key (`keyOf`, default the record's `key`: a later record of the key
 * replaces the row, and the audit keeps every one).
 */
export function logSink<T = OutRecord>(table: string, partitions: number, guarantee: DeliveryGuarantee, keyOf: (record: T) => string = (r) => (r as OutRecord).key): SinkDefinition<T> {
  return {
    kind: "sim-log",
    tables: [{ name: table, partitions }],
    createWriter: (ctx) =>
      new TransactionalSinkWriter({ uid: ctx.uid, guarantee, staging: ctx.staging, now: () => ctx.now() }, new LogPublisher(table, partitions, ctx, keyOf as (r: unknown) => string)),
  };
}

type TableNamespace = { idFromName(n: string): string; get(id: string): { upsert(rows: TableRowWrite[], writer: string, txn: number): Promise<unknown> } };

class LogPublisher implements SinkPublisher {
  private readonly writer: string;
  private readonly env: { TABLE_PARTITION: TableNamespace; SIM?: SimEnvHooks };

  constructor(
    private readonly table: string,
    private readonly partitions: number,
    ctx: SinkWriterContext,
    private readonly rowKeyOf: (record: unknown) => string,
  ) {
    this.env = ctx.env as typeof this.env;
    this.writer = `${ctx.jobName}/${ctx.uid}/${ctx.subtaskIndex}@${ctx.runId}`;
  }

  encode(record: unknown): string {
    const key = this.rowKeyOf(record);
    const row: TableRowWrite = [keyText(key), JSON.stringify(key), JSON.stringify(record)];
    return JSON.stringify(row);
  }

  async publish(txn: number, rows: readonly string[]): Promise<void> {
    const byPartition = new Map<number, TableRowWrite[]>();
    for (const text of rows) {
      const row = JSON.parse(text) as TableRowWrite;
      const p = hashKey(row[0]) % this.partitions;
      let list = byPartition.get(p);
      if (!list) byPartition.set(p, (list = []));
      list.push(row);
    }
    await Promise.all([...byPartition].map(([p, list]) => this.env.TABLE_PARTITION.get(this.env.TABLE_PARTITION.idFromName(tablePartitionName(this.table, p))).upsert(list, this.writer, txn)));
  }
}

/** Builds the run's job with the real DSL. */
export function buildJob(shape: JobShape): JobDefinition {
  const j = job(JOB, { maxParallelism: shape.maxParallelism, batchSize: shape.batchSize, checkpoint: shape.checkpoint, restartStrategy: shape.restartStrategy });
  const a = shape.bounded
    ? generatorSource<InRecord>({ partitions: shape.partitionsA, count: shape.countA, seed: 11, make: generated("a", shape.keys) })
    : httpSource<InRecord>("in-a", { partitions: shape.partitionsA });
  const b = shape.bounded
    ? generatorSource<InRecord>({ partitions: shape.partitionsB, count: shape.countB, seed: 23, make: generated("b", shape.keys) })
    : httpSource<InRecord>("in-b", { partitions: shape.partitionsB });
  const sa = j.source(tapped(a), { uid: "in-a", parallelism: shape.parallelismA, watermarks: strategyFor("a", shape.watermarks) });
  const sb = j.source(tapped(b), { uid: "in-b", parallelism: shape.partitionsB, watermarks: strategyFor("b", shape.watermarks) });
  const summed = j
    .union(sa, sb)
    .keyBy((r) => r.key)
    .process(sumPerKey, { uid: "sum", parallelism: shape.processParallelism });
  const log = tappedSink(logSink("log", shape.tablePartitions, shape.sinkGuarantee));
  if (shape.keyedSink) summed.keyBy((r) => r.key).sink(log, { uid: "log-out", parallelism: shape.sinkParallelism });
  else summed.sink(log, { uid: "log-out" });
  if (shape.withTotals) summed.sink(tappedSink(tableSink("totals", { partitions: shape.tablePartitions, guarantee: shape.sinkGuarantee })), { uid: "totals-out" });
  if (shape.timers) {
    j.union(sa, sb)
      .keyBy((r) => r.key)
      .process(timersPerKey, { uid: "timers", parallelism: shape.timers.parallelism })
      .sink(tappedSink(logSink("timer-log", shape.tablePartitions, shape.sinkGuarantee)) as unknown as SinkDefinition<unknown>, { uid: "timer-out" });
  }
  if (shape.windows) {
    // Its own source of one partition, so that the watermark when each record arrives is known (window-job.ts).
    const input = shape.windows.input;
    const w = shape.bounded
      ? generatorSource<WRecord>({ partitions: 1, count: input.length, seed: 31, make: (i) => input[i] })
      : httpSource<WRecord>("in-w", { partitions: 1 });
    const watermarks = WatermarkStrategy.forBoundedOutOfOrderness<WRecord>(shape.windows.boundMs).withTimestampAssigner((r) => r.ts);
    const source = j.source(tapped(w), { uid: "in-w", parallelism: 1, watermarks });
    windowed(source, shape.windows).sink(tappedSink(logSink<WindowRow>("window-log", shape.tablePartitions, shape.sinkGuarantee, rowKey)), { uid: "window-out" });
  }
  if (shape.joins) {
    // Two sources of their own, one partition each, so that no record is late on either side (join-job.ts).
    const sides = (["l", "r"] as const).map((side, i) => {
      const input = side === "l" ? shape.joins!.left : shape.joins!.right;
      const def = shape.bounded
        ? generatorSource<JRecord>({ partitions: 1, count: input.length, seed: 41 + i, make: (k) => input[k] })
        : httpSource<JRecord>(`in-${side}`, { partitions: 1 });
      const watermarks = WatermarkStrategy.forBoundedOutOfOrderness<JRecord>(shape.joins!.boundMs).withTimestampAssigner((r) => r.ts);
      return j.source(tapped(def), { uid: `in-${side}`, parallelism: 1, watermarks });
    });
    joined(sides[0], sides[1], shape.joins).sink(tappedSink(logSink<JoinRow>("join-log", shape.tablePartitions, shape.sinkGuarantee, (r) => r.id)), { uid: "join-out" });
  }
  if (shape.async) {
    const a = shape.async;
    const input = a.input;
    const def = shape.bounded
      ? generatorSource<QRecord>({ partitions: a.partitions, count: input[0].length, seed: 51, make: (i, p) => input[p][i] })
      : httpSource<QRecord>(ASYNC_SOURCE, { partitions: a.partitions });
    const watermarks = a.watermarks ? WatermarkStrategy.forBoundedOutOfOrderness<QRecord>(a.watermarks.boundMs).withTimestampAssigner((r) => r.ts) : undefined;
    const source = j.source(tapped(def), { uid: ASYNC_SOURCE, parallelism: a.sourceParallelism, watermarks });
    const { rows, dead } = enriched(source, a);
    rows.sink(tappedSink(logSink<AsyncRow>(ASYNC_LOG, shape.tablePartitions, shape.sinkGuarantee, (r) => r.id)), { uid: "async-out" });
    dead?.sink(tappedSink(logSink<DeadLetter>(ASYNC_DEAD, shape.tablePartitions, shape.sinkGuarantee, deadLetterId)), { uid: "async-dead-out" });
  }
  return j;
}
