/**
 * Declarations for tests that build plans and channels without running
 * anything: a source and a sink that are never read or written, and a
 * keyed counter.
 */
import { valueState } from "../../src/api/state.js";
import type { KeyedProcessFunction, SinkDefinition, SourceDefinition } from "../../src/api/types.js";

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
