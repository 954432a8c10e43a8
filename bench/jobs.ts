/**
 * Jobs the benchmarks run (compiled into the test Worker, not the
 * production one).
 */
import { type KeyedProcessFunction, httpSource, job, valueState } from "../src/index.js";

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
