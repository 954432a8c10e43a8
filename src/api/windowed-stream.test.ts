import { describe, expect, it } from "vitest";
import { buildPlan } from "../graph/plan.js";
import { type ChainServices, OperatorChain } from "../runtime/operator-chain.js";
import { EventTimeSessionWindows, TumblingEventTimeWindows } from "../window/assigners.js";
import type { TimeWindow } from "../window/time-window.js";
import type { AggregateFunction, ProcessWindowFunction } from "../window/window-functions.js";
import { type JobDefinition, job } from "./job.js";
import type { SourceDefinition } from "./types.js";

interface View {
  url: string;
  ts: number;
}

const source: SourceDefinition<View> = {
  kind: "fake-source",
  replayable: true,
  defaultParallelism: 1,
  createReader: () => {
    throw new Error("not read by the chain");
  },
};

const count: AggregateFunction<View, number, number> = {
  createAccumulator: () => 0,
  add: (_v, acc) => acc + 1,
  merge: (a, b) => a + b,
  getResult: (acc) => acc,
};

/** A window's count with its key and start: the incremental aggregate handed to a process window function. */
const perSecond: ProcessWindowFunction<number, { url: string; start: number; n: number }, string> = {
  process: (url, ctx, [n], out) => out.collect({ url, start: (ctx.window as TimeWindow).startMs, n }),
};

/** The window vertex's chain of `j`, with a watermark the test moves, collecting what it emits. */
function windowChain(j: JobDefinition, subtaskIndex = 0) {
  const plan = buildPlan(j);
  const vertex = plan.vertices.find((v) => v.inputs.length > 0)!;
  let watermarkMs = Number.NEGATIVE_INFINITY;
  const emitted: { value: unknown; ts: number | undefined }[] = [];
  const services: ChainServices = {
    subtaskIndex,
    maxParallelism: plan.maxParallelism,
    emit: (value, ts) => emitted.push({ value, ts }),
    currentWatermarkMs: () => watermarkMs,
    now: () => 0,
    createSinkWriter: () => {
      throw new Error("no sink in this chain");
    },
  };
  const chain = new OperatorChain(j, vertex, services);
  return {
    chain,
    emitted,
    push: (v: View) => chain.push(v.url, v, v.ts),
    advance(ms: number) {
      watermarkMs = ms;
      chain.fireEventTimers(ms);
    },
  };
}

describe("keyBy().window()", () => {
  it("counts per key and tumbling event-time window, each window once when the watermark passes its end, stamped with its last time", () => {
    const j = job("w");
    j.source(source, { uid: "in" })
      .keyBy((v) => v.url)
      .window(TumblingEventTimeWindows.of(1000))
      .aggregate(count, perSecond, { uid: "per-second" })
      .map((v) => v, { uid: "after" });
    const w = windowChain(j);
    for (const v of [
      { url: "/a", ts: 10 },
      { url: "/a", ts: 999 },
      { url: "/b", ts: 500 },
      { url: "/a", ts: 1000 },
    ])
      w.push(v);
    w.advance(998);
    expect(w.emitted).toEqual([]);
    w.advance(999);
    expect(w.emitted).toEqual([
      { value: { url: "/a", start: 0, n: 2 }, ts: 999 },
      { value: { url: "/b", start: 0, n: 1 }, ts: 999 },
    ]);
    w.advance(5000);
    expect(w.emitted.slice(2)).toEqual([{ value: { url: "/a", start: 1000, n: 1 }, ts: 1999 }]);
    // Purged at the end (no allowed lateness): nothing left in state for those windows, nothing fires again.
    w.advance(10_000);
    expect(w.emitted).toHaveLength(3);
    expect(w.chain.timerCount()).toBe(0);
  });

  it("merges session windows when an element bridges two, with one count", () => {
    const j = job("s");
    j.source(source, { uid: "in" })
      .keyBy((v) => v.url)
      .window(EventTimeSessionWindows.withGap(100))
      .aggregate(count, undefined, { uid: "sessions" })
      .map((v) => v, { uid: "after" });
    const w = windowChain(j);
    w.push({ url: "/a", ts: 0 });
    w.push({ url: "/a", ts: 180 });
    w.advance(50);
    w.push({ url: "/a", ts: 90 });
    w.advance(1000);
    expect(w.emitted).toEqual([{ value: 3, ts: 279 }]);
  });

  it("keeps each subtask's windows in its own state when the subtasks share the job's function object (one isolate)", () => {
    const j = job("two");
    j.source(source, { uid: "in" })
      .keyBy((v) => v.url)
      .window(TumblingEventTimeWindows.of(1000))
      .aggregate(count, perSecond, { uid: "per-second" })
      .map((v) => v, { uid: "after" });
    const [a, b] = [windowChain(j, 0), windowChain(j, 1)];
    a.push({ url: "/a", ts: 10 });
    b.push({ url: "/b", ts: 20 });
    a.push({ url: "/a", ts: 30 });
    a.advance(999);
    b.advance(999);
    expect(a.emitted).toEqual([{ value: { url: "/a", start: 0, n: 2 }, ts: 999 }]);
    expect(b.emitted).toEqual([{ value: { url: "/b", start: 0, n: 1 }, ts: 999 }]);
  });
});
