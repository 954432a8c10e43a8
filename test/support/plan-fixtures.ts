/**
 * Declarations for tests that build plans and channels without running
 * anything: a source and a sink that are never read or written, and a
 * keyed counter.
 */
import type { JobDefinition } from "../../src/api/job.js";
import { valueState } from "../../src/api/state.js";
import type { KeyedProcessFunction, SinkDefinition, SinkWriter, SourceDefinition } from "../../src/api/types.js";
import { buildPlan } from "../../src/graph/plan.js";
import { OperatorChain } from "../../src/runtime/operator-chain.js";

export interface Click {
  user: string;
  n: number;
}

/** A source that is never read: a plan only looks at its declaration. */
export function fakeSource<T = Click>(defaultParallelism?: number): SourceDefinition<T> {
  return {
    kind: "fake-source",
    replayable: true,
    defaultParallelism,
    createReader: () => {
      throw new Error("a fake source is not read");
    },
  };
}

/** A sink that is never written. */
export function fakeSink<T = unknown>(): SinkDefinition<T> {
  return {
    kind: "fake-sink",
    createWriter: () => {
      throw new Error("a fake sink is not written");
    },
  };
}

export const count = valueState<number>("count");

/** Emits the count of its key (never updated: plans do not run it). */
export const counter: KeyedProcessFunction<string, Click, number> = {
  state: [count],
  processElement: (_v, ctx, out) => out.collect(ctx.getState(count).value() ?? 0),
};

/**
 * Subtask 0's operator chain of the vertex holding `uid`, run alone: what it
 * emits and what its sinks write go to `out`; the watermark is what
 * `watermark()` answers (default: none yet).
 */
export function chainOf(j: JobDefinition, uid: string, out: unknown[], watermark: () => number = () => Number.NEGATIVE_INFINITY): OperatorChain {
  const plan = buildPlan(j);
  const v = plan.vertices.find((x) => x.uids.includes(uid))!;
  return new OperatorChain(j, v, {
    subtaskIndex: 0,
    maxParallelism: plan.maxParallelism,
    emit: (x) => out.push(x),
    currentWatermarkMs: watermark,
    now: () => 0,
    createSinkWriter: () => ({ write: (x: unknown) => void out.push(x) }) as unknown as SinkWriter,
  });
}
