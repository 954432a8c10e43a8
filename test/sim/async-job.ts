/**
 * The simulator's async I/O branch (in some runs, drawn from its own random
 * stream): a source of its own (`in-q`, 1–3 partitions: an HTTP stream, or
 * a generator in bounded runs) into an async I/O operator built with the
 * real API (`AsyncDataStream.orderedWait` or `unorderedWait`, uid
 * `lookup`), whose function asks the simulated slow service
 * (async-service.ts) about each record, with a drawn capacity, connection
 * limit, timeout (with a timeout handler) and retry strategy, and in some
 * runs a dead-letter output. Behind it a keyed counter (`stamp`, keyed by
 * the record's source partition) numbers the results of each partition in
 * the order they arrive and notes its watermark, into the log sink
 * `async-log` (one row per result: its id); dead letters go to
 * `async-dead`.
 *
 * **What each record must give.** The service answers a record with a
 * value that is a pure function of the record ({@link answerOf}), so the
 * function's results are too ({@link resultRows}: none, one or two rows);
 * a record whose timeout passed gives the timeout handler's one row
 * instead ({@link timeoutRow}), and in runs with dead letters a record
 * whose attempts all failed (a 503 or a lost connection, retried until the
 * strategy gives up, or a permanent 404, never retried) gives a dead letter.
 * Which of these a record gets is the timing's to decide; that it gets
 * exactly one of them, exactly once, is not (async-oracle.ts).
 *
 * **Retries cannot run out without dead letters.** Every error is retried
 * but the permanent 404, which the service answers only in runs with a
 * dead-letter output; and the strategy's attempts are drawn so that the
 * waits between them alone add up to more than the timeout: the timeout
 * always comes before the last attempt could fail. So without a dead-letter
 * output every record ends with results or the timeout handler's row, and
 * the job never fails for a record.
 *
 * **Watermarks** (in some runs): each partition's event times follow a
 * clock that advances 1–12 ms a record, a record at most `boundMs` behind
 * it, so no record is late at the source; the operator never lets a result
 * go out behind a watermark that passed it (unordered: never across a
 * watermark), so no result is late at the counter either, whose watermark
 * the oracle checks against each result's event time.
 */
import { AsyncDataStream } from "../../src/api/async-data-stream.js";
import type { AsyncFunction } from "../../src/api/async-function.js";
import type { DeadLetter } from "../../src/api/dead-letter.js";
import type { DataStream } from "../../src/api/job.js";
import { OutputTag } from "../../src/api/output-tag.js";
import { valueState } from "../../src/api/state.js";
import type { KeyedProcessFunction } from "../../src/api/types.js";
import { AsyncRetryStrategies, type AsyncRetryStrategy } from "../../src/async/retry-strategy.js";
import type { Rng } from "./prng.js";

/** A record of the async branch's source: `ts` is its event time. */
export interface QRecord {
  part: number;
  off: number;
  v: number;
  ts: number;
}

/** The retry strategy of a run. */
export type RetryShape =
  | { readonly kind: "none" }
  | { readonly kind: "fixed"; readonly maxAttempts: number; readonly delayMs: number }
  | { readonly kind: "exponential"; readonly maxAttempts: number; readonly initialDelayMs: number; readonly maxDelayMs: number; readonly multiplier: number };

/** How the simulated service behaves in a run (per request, drawn from the service's own stream). */
export interface ServiceShape {
  /** Latency of an ordinary answer: uniform in [lo, hi] ms. */
  readonly latencyMs: readonly [number, number];
  /** Share of requests answered slowly: between half the timeout and the timeout. */
  readonly slow: number;
  /** Share of requests answered later than the timeout (up to four times it). */
  readonly hang: number;
  /** Share of requests answered with a 503 (retried). */
  readonly fail: number;
  /** Records the service refuses for good (404, not retried): only in runs with a dead-letter output. */
  readonly permanent: boolean;
}

/** The async branch of one run. */
export interface AsyncShape {
  readonly mode: "ordered" | "unordered";
  /** The operator reads its source keyed by {@link asyncKeyOf} (its dead letters name the key). */
  readonly keyed?: boolean;
  readonly partitions: number;
  readonly sourceParallelism: number;
  /** The async operator's parallelism, and the counter's. */
  readonly parallelism: number;
  readonly stampParallelism: number;
  readonly capacity: number;
  /** Absent: the default (min(capacity, 6)). */
  readonly maxConcurrentRequests?: number;
  readonly timeoutMs: number;
  readonly retry: RetryShape;
  readonly deadLetters: boolean;
  /** The source's bounded out-of-orderness (none: no watermarks, no event times). */
  readonly watermarks?: { readonly boundMs: number };
  readonly service: ServiceShape;
  /** Each partition's records, in offset order. */
  readonly input: readonly (readonly QRecord[])[];
}

/** One committed row of `async-log`: a result (or the timeout handler's), as the counter numbered it. */
export interface AsyncRow {
  /** `<part>|<off>|<i>` for result i of the record, `<part>|<off>|t` for the timeout handler's. */
  id: string;
  part: number;
  off: number;
  kind: "result" | "timeout";
  i: number;
  val: number;
  /** The async subtask that emitted it, and its job attempt. */
  sub: number;
  attempt: number;
  /** Set by the counter: the position among its partition's results, its watermark, the result's event time. */
  seq?: number;
  wm?: number | null;
  ts?: number | null;
}

/** What the function sends the service. */
export interface LookupRequest {
  readonly part: number;
  readonly off: number;
  readonly v: number;
  /** 1 for a record's first attempt in this operator instance, 2 for its first retry, … */
  readonly attempt: number;
  readonly jobAttempt: number;
  readonly sub: number;
}

/** The binding through which the function reaches the service (world.ts gives it in the subtask's env). */
export interface LookupClient {
  lookup(request: LookupRequest, signal: AbortSignal): Promise<{ value: number }>;
}

/** The uids and tables of the branch. */
export const ASYNC_UID = "lookup";
export const ASYNC_SOURCE = "in-q";
export const ASYNC_LOG = "async-log";
export const ASYNC_DEAD = "async-dead";
/** The most records the run appends to one partition at once. */
export const ASYNC_APPEND_MAX = 6;

/** The service's answer for a record: a pure function of it. */
export function answerOf(r: Pick<QRecord, "part" | "off" | "v">): number {
  return (r.v * 7919 + r.part * 131 + r.off * 17) % 10007;
}

/** How many results the function gives a record: none for one in ten, two for about one in five. */
export function resultCount(r: Pick<QRecord, "v">): number {
  return r.v % 10 === 0 ? 0 : r.v % 4 === 0 ? 2 : 1;
}

/** Whether the service refuses a record for good (in runs that draw it). */
export function refusedForGood(r: Pick<QRecord, "v" | "off">): boolean {
  return (r.v + r.off) % 13 === 0;
}

/** The rows the function gives a record the service answered (before the counter numbers them). */
export function resultRows(r: QRecord, value: number, sub: number, attempt: number): AsyncRow[] {
  return Array.from({ length: resultCount(r) }, (_, i) => ({ id: `${r.part}|${r.off}|${i}`, part: r.part, off: r.off, kind: "result" as const, i, val: value + i, sub, attempt }));
}

/** The timeout handler's row for a record. */
export function timeoutRow(r: QRecord, sub: number, attempt: number): AsyncRow {
  return { id: `${r.part}|${r.off}|t`, part: r.part, off: r.off, kind: "timeout", i: 0, val: -1, sub, attempt };
}

/** The row key of a dead letter in `async-dead`. */
export function deadLetterId(d: DeadLetter): string {
  const r = d.value as QRecord;
  return `${r.part}|${r.off}|d`;
}

/** The async function: one request per attempt, through the service binding taken in `open`. */
export function lookup(): AsyncFunction<QRecord, AsyncRow> & { client?: LookupClient; sub?: number; attempt?: number } {
  return {
    open(ctx) {
      this.client = (ctx.env as { ASYNC_SERVICE: LookupClient }).ASYNC_SERVICE;
      this.sub = ctx.subtaskIndex;
      this.attempt = ctx.attempt;
    },
    async asyncInvoke(r, { signal, attempt }) {
      const { value } = await this.client!.lookup({ part: r.part, off: r.off, v: r.v, attempt, jobAttempt: this.attempt!, sub: this.sub! }, signal);
      return resultRows(r, value, this.sub!, this.attempt!);
    },
    timeout(r) {
      return [timeoutRow(r, this.sub!, this.attempt!)];
    },
  };
}

const seqOf = valueState<number>("seq");

/** Numbers each partition's results in arrival order, and notes the watermark and event time each came with. */
export const stamp: KeyedProcessFunction<string, AsyncRow, AsyncRow> = {
  state: [seqOf],
  processElement(r, ctx, out) {
    const seq = ctx.getState(seqOf).value() ?? 0;
    ctx.getState(seqOf).update(seq + 1);
    const wm = ctx.timerService().currentWatermark();
    out.collect({ ...r, seq, wm: Number.isFinite(wm) ? wm : null, ts: ctx.timestamp ?? null });
  },
};

/** The run's retry strategy, with floe's real builders. Every error is retried but the service's permanent refusal. */
export function retryOf(shape: RetryShape): AsyncRetryStrategy<AsyncRow> {
  const retryable = (e: unknown) => !/permanent/.test(String(e));
  if (shape.kind === "none") return AsyncRetryStrategies.noRetry<AsyncRow>();
  if (shape.kind === "fixed") return AsyncRetryStrategies.fixedDelay<AsyncRow>({ maxAttempts: shape.maxAttempts, delayMs: shape.delayMs }).ifException(retryable);
  const { maxAttempts, initialDelayMs, maxDelayMs, multiplier } = shape;
  return AsyncRetryStrategies.exponentialBackoff<AsyncRow>({ maxAttempts, initialDelayMs, maxDelayMs, multiplier }).ifException(retryable);
}

/** The dead-letter tag of the branch. */
export const ASYNC_DEAD_LETTERS = new OutputTag<DeadLetter>("async-dead-letters");

/** The key of a record when the branch's operator reads a keyed stream. */
export function asyncKeyOf(r: QRecord): number {
  return r.v % 7;
}

/** The branch over its source's stream: the async operator (ordered or not) and the counter behind it; dead letters when drawn. */
export function enriched(source: DataStream<QRecord>, shape: AsyncShape): { rows: DataStream<AsyncRow>; dead?: DataStream<DeadLetter> } {
  const options = {
    uid: ASYNC_UID,
    parallelism: shape.parallelism,
    timeoutMs: shape.timeoutMs,
    capacity: shape.capacity,
    ...(shape.maxConcurrentRequests === undefined ? {} : { maxConcurrentRequests: shape.maxConcurrentRequests }),
    retry: retryOf(shape.retry),
    ...(shape.deadLetters ? { deadLetters: ASYNC_DEAD_LETTERS } : {}),
  };
  const input = shape.keyed ? source.keyBy(asyncKeyOf) : source;
  const looked = shape.mode === "ordered" ? AsyncDataStream.orderedWait(input, lookup(), options) : AsyncDataStream.unorderedWait(input, lookup(), options);
  const rows = looked.keyBy((r) => `q${r.part}`).process(stamp, { uid: "stamp", parallelism: shape.stampParallelism });
  return shape.deadLetters ? { rows, dead: looked.getSideOutput(ASYNC_DEAD_LETTERS) } : { rows };
}

/** The sum of the waits before attempt `n` (the retries' delays): the strategy's time before its last attempt. */
export function waitsBeforeAttempt(shape: RetryShape, n: number): number {
  let total = 0;
  for (let retry = 1; retry < n; retry++) {
    if (shape.kind === "fixed") total += shape.delayMs;
    else if (shape.kind === "exponential") total += Math.min(shape.maxDelayMs, shape.initialDelayMs * shape.multiplier ** (retry - 1));
  }
  return total;
}

/** Draws a run's async branch and its input. */
export function drawAsyncShape(rng: Rng, options: { bounded: boolean }): AsyncShape {
  const mode = rng.pick(["ordered", "unordered"] as const);
  const partitions = rng.range(1, 3);
  const capacity = rng.pick([1, 2, 3, 5, 10, 20]);
  const maxConcurrentRequests = rng.chance(0.5) ? rng.range(1, Math.min(capacity, 6)) : undefined;
  const timeoutMs = rng.pick([15, 40, 100]);
  const deadLetters = rng.chance(0.3);
  let retry: RetryShape;
  if (deadLetters && rng.chance(0.3)) retry = { kind: "none" };
  else if (rng.chance(0.5)) {
    const delayMs = rng.pick([2, 5, 10]);
    // Without dead letters: enough attempts that the waits alone outlast the timeout (no record can run out of them).
    const maxAttempts = deadLetters ? rng.range(2, 3) : Math.ceil(timeoutMs / delayMs) + 2;
    retry = { kind: "fixed", maxAttempts, delayMs };
  } else {
    const base = { kind: "exponential" as const, maxAttempts: 0, initialDelayMs: rng.pick([1, 3]), maxDelayMs: rng.pick([10, 30]), multiplier: rng.pick([1.5, 2]) };
    let maxAttempts = deadLetters ? rng.range(2, 3) : 2;
    if (!deadLetters) while (waitsBeforeAttempt(base, maxAttempts) <= timeoutMs) maxAttempts++;
    retry = { ...base, maxAttempts };
  }
  const service: ServiceShape = {
    latencyMs: rng.pick([[1, 3], [1, 8], [2, 15]] as const),
    slow: rng.pick([0, 0.05, 0.2]),
    hang: rng.pick([0.01, 0.04, 0.1]),
    fail: rng.pick([0, 0.05, 0.2]),
    permanent: deadLetters && rng.chance(0.5),
  };
  const watermarks = rng.chance(0.6) ? { boundMs: rng.pick([0, 5, 20]) } : undefined;
  const boundMs = watermarks?.boundMs ?? 0;
  const input: QRecord[][] = [];
  // A bounded run's generator has one count for every partition.
  const boundedCount = rng.range(10, 60);
  for (let part = 0; part < partitions; part++) {
    const records: QRecord[] = [];
    let clock = 1000 + rng.int(50);
    const count = options.bounded ? boundedCount : rng.range(15, 80);
    for (let off = 0; off < count; off++) {
      clock += rng.range(1, 12);
      records.push({ part, off, v: rng.int(100), ts: clock - rng.int(boundMs + 1) });
    }
    input.push(records);
  }
  // From a stream of its own, so that the draws before it stay as they were.
  const keyed = rng.fork("async-keyed").chance(0.5);
  return {
    mode,
    ...(keyed ? { keyed } : {}),
    partitions,
    sourceParallelism: rng.range(1, partitions),
    parallelism: rng.range(1, 3),
    stampParallelism: rng.range(1, 3),
    capacity,
    ...(maxConcurrentRequests === undefined ? {} : { maxConcurrentRequests }),
    timeoutMs,
    retry,
    deadLetters,
    ...(watermarks ? { watermarks } : {}),
    service,
    input,
  };
}

/** One line about the branch, for reports. */
export function describeAsync(s: AsyncShape): string {
  const r = s.retry;
  const retry = r.kind === "none" ? "no retry" : r.kind === "fixed" ? `retry fixed ${r.delayMs}ms x${r.maxAttempts}` : `retry exp ${r.initialDelayMs}..${r.maxDelayMs}ms*${r.multiplier} x${r.maxAttempts}`;
  const svc = s.service;
  const service = `service ${svc.latencyMs[0]}-${svc.latencyMs[1]}ms slow=${svc.slow} hang=${svc.hang} fail=${svc.fail}${svc.permanent ? " +404" : ""}`;
  const n = s.input.map((p) => p.length).join("+");
  return `async(${s.mode}${s.keyed ? " keyed" : ""} p=${s.parallelism} cap=${s.capacity}${s.maxConcurrentRequests === undefined ? "" : ` conns=${s.maxConcurrentRequests}`} timeout=${s.timeoutMs} ${retry}${s.deadLetters ? " dlq" : ""} ${service} in-q=${n}x${s.sourceParallelism}${s.watermarks ? ` bound=${s.watermarks.boundMs}` : ""} stamp p=${s.stampParallelism})`;
}
