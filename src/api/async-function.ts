/**
 * Async I/O (Flink's AsyncDataStream): an operator that calls an async
 * function per record — a `fetch`, a KV or D1 read, a service binding
 * given to the function in `open` — with a bounded number of requests in
 * flight, a timeout with a timeout handler, retries, and results in input
 * order (`orderedWait`) or as they come (`unorderedWait`, never across a
 * watermark). The records whose requests are in flight at a checkpoint are
 * part of it and are requested again on restore: results are exactly-once,
 * requests at-least-once (docs/joins.md, "Async I/O").
 */
import type { OperatorOptions, RichFunction } from "./types.js";
import type { AsyncRetryStrategy } from "../async/retry-strategy.js";
import { JobDefinitionError } from "../errors.js";

/** What an attempt of `asyncInvoke` gets besides its input. */
export interface AsyncInvokeContext {
  /** Aborted when the record's timeout passed (or the task ended): hand it to `fetch` so the connection closes. */
  readonly signal: AbortSignal;
  /** 1 for the first attempt, 2 for the first retry, … */
  readonly attempt: number;
}

/**
 * Flink's (Rich)AsyncFunction. `asyncInvoke` resolves to the record's
 * results (none, one or several: each goes downstream with the record's
 * event time) or rejects. `timeout` is called when the record's timeout
 * passed before a result: its results stand in for the request's, and a
 * throw (the default, without one) fails the record. `open` and `close`
 * are a rich function's: take bindings from `ctx.env` in `open`.
 *
 * A record that fails (its last attempt rejected, or its timeout handler
 * threw) goes to the operator's dead-letter output when it has one, else
 * fails the job naming the operator, the record, its event time and its
 * attempts (no key, since the input is not keyed, and no source offset,
 * since records reach the operator over a network edge without them).
 *
 * @example
 * const enrich: AsyncFunction<Click, Enriched> = {
 *   open(ctx) { this.users = (ctx.env as Env).USERS; },
 *   async asyncInvoke(click, { signal }) {
 *     const res = await fetch(`https://profiles.example/${click.user}`, { signal });
 *     if (!res.ok) throw new Error(`profile service answered ${res.status}`);
 *     return [{ ...click, profile: await res.json() }];
 *   },
 *   timeout: (click) => [{ ...click, profile: null }],
 * };
 */
export interface AsyncFunction<I, O> extends RichFunction {
  asyncInvoke(input: I, ctx: AsyncInvokeContext): Promise<Iterable<O>>;
  timeout?(input: I): Iterable<O> | Promise<Iterable<O>>;
}

/** The most requests one subtask has open at once: the Workers platform allows 6 simultaneous outgoing connections per invocation. */
export const MAX_CONCURRENT_REQUESTS = 6;

/** Options of an async I/O operator: those of every operator, and its own. */
export interface AsyncOperatorOptions<O = unknown> extends OperatorOptions {
  /**
   * How long a record's request may take, in ms (> 0), from the start of
   * its first attempt, every retry and the waits between them included
   * (Flink's timeout; the time a record waits for a connection permit does
   * not count). Then the attempt in flight is aborted and `timeout` is called.
   */
  timeoutMs: number;
  /**
   * Records per subtask in the operator at once (> 0; Flink's capacity):
   * waiting for a connection, in flight, or done and waiting for their
   * turn to be emitted. When it is full the subtask stops reading input
   * (backpressure). Default 100. It is also what a checkpoint may hold per
   * subtask (kept in the checkpoint's metadata), so keep records small.
   */
  capacity?: number;
  /**
   * Requests one subtask has open at once: 1..6 (the platform's limit of
   * simultaneous connections per invocation); default min(capacity, 6).
   * Records beyond it wait inside the operator, and count against the capacity.
   */
  maxConcurrentRequests?: number;
  /** When to try a request again; default: never ({@link AsyncRetryStrategies.noRetry}). */
  retry?: AsyncRetryStrategy<O>;
}

/** An async operator as the plan and the runtime see it. */
export interface AsyncOperatorSpec {
  readonly fn: AsyncFunction<unknown, unknown>;
  readonly mode: "ordered" | "unordered";
  readonly timeoutMs: number;
  readonly capacity: number;
  readonly maxConcurrentRequests: number;
  readonly retry: AsyncRetryStrategy<unknown> | undefined;
}

/** Checks an async function and its options, naming the operator: a bad one is refused when the job is defined. */
export function asyncOperatorSpec(fn: AsyncFunction<any, any> | ((input: any, ctx: AsyncInvokeContext) => Promise<Iterable<any>>), mode: "ordered" | "unordered", options: AsyncOperatorOptions<any>, label: string): AsyncOperatorSpec {
  const what = `async operator "${label}"`;
  const f: AsyncFunction<unknown, unknown> = typeof fn === "function" ? { asyncInvoke: fn } : fn;
  if (f === null || typeof f !== "object" || typeof f.asyncInvoke !== "function") throw new JobDefinitionError(`${what} needs a function or an object with an asyncInvoke(input, ctx) method`);
  if (f.timeout !== undefined && typeof f.timeout !== "function") throw new JobDefinitionError(`${what}: timeout must be a method`);
  options ??= {} as AsyncOperatorOptions;
  const { timeoutMs, capacity = 100 } = options;
  if (!(typeof timeoutMs === "number" && Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new JobDefinitionError(`${what}: timeoutMs must be a number > 0, got ${timeoutMs}`);
  if (!Number.isInteger(capacity) || capacity <= 0) throw new JobDefinitionError(`${what}: capacity must be an integer > 0, got ${capacity}`);
  const maxConcurrentRequests = options.maxConcurrentRequests ?? Math.min(capacity, MAX_CONCURRENT_REQUESTS);
  if (!Number.isInteger(maxConcurrentRequests) || maxConcurrentRequests < 1 || maxConcurrentRequests > MAX_CONCURRENT_REQUESTS) {
    throw new JobDefinitionError(`${what}: maxConcurrentRequests must be an integer in 1..${MAX_CONCURRENT_REQUESTS} (the platform's simultaneous connections per invocation), got ${maxConcurrentRequests}`);
  }
  if (options.retry !== undefined && typeof (options.retry as { nextDelayMs?: unknown }).nextDelayMs !== "function") {
    throw new JobDefinitionError(`${what}: retry must be built with AsyncRetryStrategies`);
  }
  return { fn: f, mode, timeoutMs, capacity, maxConcurrentRequests, retry: options.retry };
}
