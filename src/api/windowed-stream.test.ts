import { describe, expect, it } from "vitest";
import { buildPlan } from "../graph/plan.js";
import { type ChainServices, OperatorChain } from "../runtime/operator-chain.js";
import { EventTimeSessionWindows, TumblingEventTimeWindows, TumblingProcessingTimeWindows } from "../window/assigners.js";
import { WatermarkStrategy } from "../time/watermark-strategy.js";
import { JobDefinitionError } from "../errors.js";
import type { TimeWindow } from "../window/time-window.js";
import type { AggregateFunction, ProcessWindowFunction } from "../window/window-functions.js";
import { type JobDefinition, job } from "./job.js";
import type { SinkDefinition, SourceDefinition } from "./types.js";
import { OutputTag } from "./output-tag.js";

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

const watermarks = WatermarkStrategy.forBoundedOutOfOrderness<View>(0).withTimestampAssigner((v) => v.ts);

const fakeSink = (): SinkDefinition => ({
  kind: "fake-sink",
  createWriter: () => {
    throw new Error("not written by the chain");
  },
});

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
function windowChain(j: JobDefinition) {
  const plan = buildPlan(j);
  const vertex = plan.vertices.find((v) => v.inputs.length > 0)!;
  let watermarkMs = Number.NEGATIVE_INFINITY;
  const emitted: { value: unknown; ts: number | undefined }[] = [];
  const services: ChainServices = {
    subtaskIndex: 0,
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
    j.source(source, { uid: "in", watermarks })
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
    j.source(source, { uid: "in", watermarks })
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

  it("keeps each subtask's windows in its own state: one job's function serves several chains (subtasks of an isolate, later attempts)", () => {
    const j = job("two");
    j.source(source, { uid: "in", watermarks })
      .keyBy((v) => v.url)
      .window(TumblingEventTimeWindows.of(1000))
      .aggregate(count, perSecond, { uid: "per-second" })
      .map((v) => v, { uid: "after" });
    const first = windowChain(j);
    const second = windowChain(j);
    first.push({ url: "/a", ts: 10 });
    second.push({ url: "/b", ts: 20 });
    second.push({ url: "/b", ts: 30 });
    first.advance(1000);
    second.advance(1000);
    expect(first.emitted.map((e) => e.value)).toEqual([{ url: "/a", start: 0, n: 1 }]);
    expect(second.emitted.map((e) => e.value)).toEqual([{ url: "/b", start: 0, n: 2 }]);
    // A chain built later (a restart) starts from its own, empty state.
    const third = windowChain(j);
    third.push({ url: "/a", ts: 40 });
    third.advance(1000);
    expect(third.emitted.map((e) => e.value)).toEqual([{ url: "/a", start: 0, n: 1 }]);
  });
});

describe("sideOutputLateData()", () => {
  it("sends an element too late for all its windows to the side output with its event time, and counts it nowhere else", () => {
    const late = new OutputTag<View>("late-views");
    const j = job("late");
    const counted = j
      .source(source, { uid: "in", watermarks })
      .keyBy((v) => v.url)
      .window(TumblingEventTimeWindows.of(1000))
      .allowedLateness(500)
      .sideOutputLateData(late)
      .aggregate(count, perSecond, { uid: "per-second" });
    counted.getSideOutput(late).sink(fakeSink(), { uid: "late-out" });
    counted.sink(fakeSink(), { uid: "counts-out" });
    const plan = buildPlan(j);
    const vertex = plan.vertices.find((v) => v.uids.includes("per-second"))!;
    let watermarkMs = Number.NEGATIVE_INFINITY;
    const main: unknown[] = [];
    const side: { tag: string; value: unknown; ts: number | undefined }[] = [];
    const chain = new OperatorChain(j, vertex, {
      subtaskIndex: 0,
      maxParallelism: plan.maxParallelism,
      emit: (value) => main.push(value),
      emitSide: (tag, value, ts) => side.push({ tag, value, ts }),
      currentWatermarkMs: () => watermarkMs,
      now: () => 0,
      createSinkWriter: () => {
        throw new Error("no sink in this chain");
      },
    });
    const advance = (ms: number) => {
      watermarkMs = ms;
      chain.fireEventTimers(ms);
    };
    chain.push("/a", { url: "/a", ts: 100 }, 100);
    advance(1200);
    expect(main).toEqual([{ url: "/a", start: 0, n: 1 }]);
    // Within the allowed lateness (end 999 + 500 > 1200): the window fires again with the update.
    chain.push("/a", { url: "/a", ts: 200 }, 200);
    expect(main).toEqual([{ url: "/a", start: 0, n: 1 }, { url: "/a", start: 0, n: 2 }]);
    // Past it: the element goes to the side output, and no window result changes.
    advance(1499);
    chain.push("/a", { url: "/a", ts: 300 }, 300);
    expect(side).toEqual([{ tag: "late-views", value: { url: "/a", ts: 300 }, ts: 300 }]);
    expect(main).toHaveLength(2);
  });
});

describe("a window's subtasks", () => {
  it("keep their windows apart when they share the job's function objects (as subtasks in one isolate do)", () => {
    const j = job("shared");
    j.source(source, { uid: "in", watermarks })
      .keyBy((v) => v.url)
      .window(TumblingEventTimeWindows.of(1000))
      .aggregate(count, perSecond, { uid: "per-second" })
      .map((v) => v, { uid: "after" });
    const a = windowChain(j);
    const b = windowChain(j);
    a.push({ url: "/a", ts: 10 });
    b.push({ url: "/b", ts: 20 });
    b.push({ url: "/b", ts: 30 });
    a.advance(999);
    b.advance(999);
    expect(a.emitted.map((e) => e.value)).toEqual([{ url: "/a", start: 0, n: 1 }]);
    expect(b.emitted.map((e) => e.value)).toEqual([{ url: "/b", start: 0, n: 2 }]);
    // After the windows fired and were purged, each subtask's state is empty: nothing leaked into the other's.
    expect([...a.chain.keyedState.values()][0].size()).toBe(0);
    expect([...b.chain.keyedState.values()][0].size()).toBe(0);
  });
});

describe("event-time windows and watermarks", () => {
  it("refuse a source upstream without a watermark strategy when the job is started, naming the window and the source", () => {
    const j = job("no-wm");
    const a = j.source(source, { uid: "with", watermarks });
    const b = j.source(source, { uid: "without" });
    j.union(a, b)
      .keyBy((v) => v.url)
      .window(TumblingEventTimeWindows.of(1000))
      .aggregate(count, undefined, { uid: "per-second" })
      .sink(fakeSink(), { uid: "out" });
    expect(() => buildPlan(j)).toThrow(JobDefinitionError);
    expect(() => buildPlan(j)).toThrow(/operator "per-second" \(tumbling event-time windows.*\) needs event time, but source "without" has no watermark strategy/);
  });

  it("let processing-time windows run on a source without one", () => {
    const j = job("pt");
    j.source(source, { uid: "without" })
      .keyBy((v) => v.url)
      .window(TumblingProcessingTimeWindows.of(1000))
      .aggregate(count, undefined, { uid: "per-second" })
      .sink(fakeSink(), { uid: "out" });
    expect(buildPlan(j).vertices).toHaveLength(2);
  });
});
