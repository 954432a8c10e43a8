/**
 * What a window computes, as Flink's window functions: `reduce` (elements
 * combined pairwise as they arrive), `aggregate` (an accumulator with
 * create/add/merge/result), and `process` (every element at once, with the
 * window), and `reduce`/`aggregate` followed by a process function that
 * sees the one result with the window (Flink's incremental aggregation with
 * a ProcessWindowFunction).
 *
 * Each becomes a {@link WindowContents}: how the operator keeps a window's
 * state (always JSON-serializable: it is keyed state) and reads it out.
 */
import type { Key } from "../graph/key-groups.js";
import type { Window } from "./time-window.js";

/** Flink's AggregateFunction: an accumulator per window. */
export interface AggregateFunction<IN, ACC, OUT> {
  createAccumulator(): ACC;
  add(value: IN, accumulator: ACC): ACC;
  /** Combines two accumulators (session windows that merge). */
  merge(a: ACC, b: ACC): ACC;
  getResult(accumulator: ACC): OUT;
}

/** What a process window function sees besides the elements. */
export interface ProcessWindowContext<K extends Key = Key> {
  readonly key: K;
  /** The window being emitted: `startMs`/`endMs` for time windows. */
  readonly window: Window;
  readonly currentWatermarkMs: number;
  currentProcessingTimeMs(): number;
}

/** Flink's ProcessWindowFunction: called when a window fires, with its elements (or its one aggregate). */
export interface ProcessWindowFunction<IN, OUT, K extends Key = Key> {
  process(key: K, context: ProcessWindowContext<K>, elements: readonly IN[], out: { collect(value: OUT): void }): void;
}

/** How one window function keeps its window's state. */
export interface WindowContents<IN = unknown, ACC = unknown, R = unknown> {
  /** The state of a window that receives its first element. */
  add(accumulator: ACC | undefined, value: IN): ACC;
  /** The state of windows merged into one (session windows). */
  merge(a: ACC, b: ACC): ACC;
  /** What the window emits (before any process function): its elements, or its one result. */
  results(accumulator: ACC): readonly R[];
}

/** Elements combined pairwise: the state is one element. */
export function reduceContents<T>(reduce: (a: T, b: T) => T): WindowContents<T, T, T> {
  return {
    add: (acc, v) => (acc === undefined ? v : reduce(acc, v)),
    merge: (a, b) => reduce(a, b),
    results: (acc) => [acc],
  };
}

/** An accumulator per window. */
export function aggregateContents<IN, ACC, OUT>(f: AggregateFunction<IN, ACC, OUT>): WindowContents<IN, ACC, OUT> {
  return {
    add: (acc, v) => f.add(v, acc === undefined ? f.createAccumulator() : acc),
    merge: (a, b) => f.merge(a, b),
    results: (acc) => [f.getResult(acc)],
  };
}

/** Every element kept until the window fires. */
export function listContents<T>(): WindowContents<T, T[], T> {
  return {
    add: (acc, v) => {
      const list = acc ?? [];
      list.push(v);
      return list;
    },
    merge: (a, b) => a.concat(b),
    results: (acc) => acc,
  };
}
