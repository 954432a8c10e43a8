/**
 * Flink's AsyncDataStream: `orderedWait` and `unorderedWait` put an async
 * I/O operator ({@link AsyncFunction}) after a stream. The operator runs in
 * a vertex of its own (nothing is chained to it), keeps the records whose
 * requests are in flight in its checkpoints, and needs a uid for them. On
 * a keyed stream its records are partitioned by key (ordered mode then
 * keeps each key's order through its subtask) and a failure names the
 * key; it has no keyed state either way. Its records in flight are
 * redistributed round-robin on a rescale, as Flink's are.
 */
import type { Key } from "../graph/key-groups.js";
import { DataStream, KeyedStream } from "./job.js";
import { JobDefinitionError } from "../errors.js";
import { type AsyncFunction, type AsyncInvokeContext, type AsyncOperatorOptions, asyncOperatorSpec } from "./async-function.js";

/** An async function given as a plain function: the input and the attempt's context, to its results. */
export type AsyncInvoke<I, O> = (input: I, ctx: AsyncInvokeContext) => Promise<Iterable<O>>;

/** The stream an async operator reads: any stream, or a keyed one (its records partitioned by key; its failures name the key). */
export type AsyncInput<I> = DataStream<I> | KeyedStream<Key, I>;

function add<I, O>(stream: AsyncInput<I>, fn: AsyncFunction<I, O> | AsyncInvoke<I, O>, options: AsyncOperatorOptions<O>, mode: "ordered" | "unordered"): DataStream<O> {
  if (!(stream instanceof DataStream) && !(stream instanceof KeyedStream)) {
    throw new JobDefinitionError(`AsyncDataStream.${mode}Wait needs a DataStream or a KeyedStream${options?.uid ? ` (operator "${options.uid}")` : ""}`);
  }
  const job = stream.job;
  const label = options?.name ?? options?.uid ?? `async#${job.nodes.length}`;
  const spec = asyncOperatorSpec(fn, mode, options, label);
  const { timeoutMs: _t, capacity: _c, maxConcurrentRequests: _m, retry: _r, ...operatorOptions } = options;
  const id = job.add({ kind: "async", options: operatorOptions, inputs: stream instanceof KeyedStream ? stream.keyed() : stream.edges(), async: spec });
  return new DataStream<O>(job, id);
}

/** Async I/O on a stream (Flink's AsyncDataStream). */
export const AsyncDataStream = {
  /**
   * Results leave in the order of their records: a slow request holds
   * back the results behind it.
   *
   * @example
   * const enriched = AsyncDataStream.orderedWait(clicks, lookupProfile, { uid: "profiles", timeoutMs: 2000, capacity: 50 });
   */
  orderedWait<I, O>(stream: AsyncInput<I>, fn: AsyncFunction<I, O> | AsyncInvoke<I, O>, options: AsyncOperatorOptions<O>): DataStream<O> {
    return add(stream, fn, options, "ordered");
  },

  /**
   * Results leave as their requests complete, but never across a
   * watermark: records between two watermarks may be reordered, and a
   * watermark leaves after every result of the records before it.
   */
  unorderedWait<I, O>(stream: AsyncInput<I>, fn: AsyncFunction<I, O> | AsyncInvoke<I, O>, options: AsyncOperatorOptions<O>): DataStream<O> {
    return add(stream, fn, options, "unordered");
  },
};
