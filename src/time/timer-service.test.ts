import { describe, expect, it } from "vitest";
import { job } from "../api/job.js";
import { valueState } from "../api/state.js";
import type { KeyedProcessFunction, ProcessFunction, SourceDefinition, TimeDomain } from "../api/types.js";
import { JobDefinitionError } from "../errors.js";
import type { Key } from "../graph/key-groups.js";
import { buildPlan } from "../graph/plan.js";
import { OperatorChain, UserCodeError } from "../runtime/operator-chain.js";
import { NO_WATERMARK } from "./watermark-generator.js";

interface Ev {
  user: Key;
  n: number;
}

const source: SourceDefinition<Ev> = {
  kind: "fake",
  replayable: true,
  createReader: () => {
    throw new Error("not read here");
  },
};

/** The chain of the vertex holding operator `uid`, with clocks the test moves and what leaves its tail. */
function chainWith<O>(fn: KeyedProcessFunction<Key, Ev, O>, map?: (o: O) => unknown) {
  const j = job("timers");
  const processed = j.source(source, { uid: "in" }).keyBy((e) => e.user).process(fn, { uid: "proc" });
  if (map) processed.map(map, { uid: "after" });
  const plan = buildPlan(j);
  const vertex = plan.vertices.find((v) => v.nodes.some((n) => j.nodes[n].options.uid === "proc"))!;
  const clock = { watermarkMs: NO_WATERMARK, nowMs: 1000 };
  const out: { value: unknown; timestampMs: number | undefined }[] = [];
  const registered: number[] = [];
  const chain = new OperatorChain(j, vertex, {
    subtaskIndex: 0,
    maxParallelism: plan.maxParallelism,
    emit: (value, timestampMs) => out.push({ value, timestampMs }),
    createSinkWriter: () => {
      throw new Error("no sink");
    },
    currentWatermarkMs: () => clock.watermarkMs,
    now: () => clock.nowMs,
    processingTimerRegistered: (ts) => registered.push(ts),
  });
  return { chain, clock, out, registered };
}

const count = valueState<number>("count");

/** Counts per key; an event-time timer at the end of each 100 ms window emits the count and clears it. */
const windowCount: KeyedProcessFunction<Key, Ev, { key: Key; end: number; count: number; domain: TimeDomain; wm: number }> = {
  processElement(e, ctx, out) {
    const s = ctx.getState(count);
    s.update((s.value() ?? 0) + 1);
    const ts = ctx.timestamp!;
    ctx.timerService().registerEventTimeTimer(Math.floor(ts / 100) * 100 + 99);
  },
  onTimer(ts, ctx, out) {
    out.collect({ key: ctx.currentKey, end: ts, count: ctx.getState(count).value() ?? 0, domain: ctx.timeDomain(), wm: ctx.timerService().currentWatermark() });
    ctx.getState(count).clear();
  },
};

describe("the timer service of a keyed process function", () => {
  it("fires event-time timers once the watermark reaches them, per key, deduplicated, with their timestamp on the output", () => {
    const { chain, clock, out } = chainWith(windowCount);
    chain.push("a", { user: "a", n: 1 }, 10);
    chain.push("a", { user: "a", n: 2 }, 50);
    chain.push(7, { user: 7, n: 3 }, 120);
    chain.push("a", { user: "a", n: 4 }, 130);
    expect(chain.timerCount()).toBe(3);
    clock.watermarkMs = 98;
    expect(chain.fireEventTimers(98)).toBe(0);
    clock.watermarkMs = 150;
    expect(chain.fireEventTimers(150)).toBe(1);
    expect(out).toEqual([{ value: { key: "a", end: 99, count: 3, domain: "event", wm: 150 }, timestampMs: 99 }]);
    clock.watermarkMs = 199;
    chain.fireEventTimers(199);
    expect(out.slice(1).map((o) => o.value)).toEqual(
      expect.arrayContaining([
        { key: 7, end: 199, count: 1, domain: "event", wm: 199 },
        { key: "a", end: 199, count: 0, domain: "event", wm: 199 },
      ]),
    );
    expect(chain.timerCount()).toBe(0);
  });

  it("gives records their input's event time through process and map, and undefined when they have none", () => {
    const echo: KeyedProcessFunction<Key, Ev, number | undefined> = {
      processElement(_e, ctx, out) {
        out.collect(ctx.timestamp);
      },
    };
    const { chain, out } = chainWith(echo, (ts) => ({ ts }));
    chain.push("a", { user: "a", n: 1 }, 42);
    chain.push("a", { user: "a", n: 2 });
    expect(out).toEqual([
      { value: { ts: 42 }, timestampMs: 42 },
      { value: { ts: undefined }, timestampMs: undefined },
    ]);
  });

  it("fires processing-time timers from the clock, and tells the task when one is registered", () => {
    const fn: KeyedProcessFunction<Key, Ev, string> = {
      processElement(e, ctx) {
        ctx.timerService().registerProcessingTimeTimer(ctx.timerService().currentProcessingTime() + e.n);
      },
      onTimer(ts, ctx, out) {
        out.collect(`${String(ctx.currentKey)}@${ts}/${ctx.timeDomain()}/${ctx.timestamp}`);
      },
    };
    const { chain, clock, out, registered } = chainWith(fn);
    chain.push("a", { user: "a", n: 50 });
    chain.push("b", { user: "b", n: 20 });
    chain.push("b", { user: "b", n: 20 });
    expect(registered).toEqual([1050, 1020]);
    expect(chain.nextProcessingTimerMs()).toBe(1020);
    clock.nowMs = 1030;
    chain.fireProcessingTimers(clock.nowMs);
    expect(out.map((o) => o.value)).toEqual(["b@1020/processing/1020"]);
    expect(chain.nextProcessingTimerMs()).toBe(1050);
    // The event-time queue is another one.
    expect(chain.fireEventTimers(Number.MAX_SAFE_INTEGER)).toBe(0);
  });

  it("deletes timers, and fires in the same pass a timer that onTimer registers at or below the watermark", () => {
    const fn: KeyedProcessFunction<Key, Ev, string> = {
      processElement(e, ctx) {
        if (e.n < 0) ctx.timerService().deleteEventTimeTimer(-e.n);
        else ctx.timerService().registerEventTimeTimer(e.n);
      },
      onTimer(ts, ctx, out) {
        out.collect(`${String(ctx.currentKey)}@${ts}`);
        if (ts === 10) {
          ctx.timerService().registerEventTimeTimer(15);
          ctx.timerService().deleteEventTimeTimer(30);
        }
      },
    };
    const { chain, out } = chainWith(fn);
    for (const n of [10, 20, 30, 40]) chain.push("a", { user: "a", n });
    chain.push("a", { user: "a", n: -20 });
    chain.fireEventTimers(35);
    expect(out.map((o) => o.value)).toEqual(["a@10", "a@15"]);
    expect(chain.timerCount()).toBe(1);
  });

  it("refuses a timestamp that is not a finite number, naming the operator", () => {
    const fn: KeyedProcessFunction<Key, Ev, never> = {
      processElement(e, ctx) {
        ctx.timerService().registerEventTimeTimer(e.n === 0 ? Number.NaN : Number.POSITIVE_INFINITY);
      },
    };
    const { chain } = chainWith(fn);
    for (const n of [0, 1]) {
      let caught: unknown;
      try {
        chain.push("a", { user: "a", n }, 5);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(UserCodeError);
      expect((caught as Error).message).toMatch(/operator "proc" \(key "a"\) threw TypeError: operator "proc": a timer in event time needs a finite timestamp/);
    }
    expect(chain.timerCount()).toBe(0);
  });

  it("blames onTimer's own errors on the operator and the timer's key", () => {
    const fn: KeyedProcessFunction<Key, Ev, never> = {
      processElement(_e, ctx) {
        ctx.timerService().registerEventTimeTimer(1);
      },
      onTimer() {
        throw new Error("boom");
      },
    };
    const { chain } = chainWith(fn);
    chain.push(3, { user: 3, n: 0 });
    expect(() => chain.fireEventTimers(1)).toThrow(/operator "proc" \(key 3\) threw Error: boom/);
  });
});

describe("timers outside a keyed context", () => {
  const notKeyed: ProcessFunction<Ev, never> = {
    processElement(_e, ctx) {
      ctx.timerService().registerEventTimeTimer(1);
    },
  };

  it("refuses onTimer on a stream that is not keyed when the job is defined, naming the operator", () => {
    const withTimer = { ...notKeyed, onTimer() {} };
    const define = () => job("t").source(source, { uid: "in" }).process(withTimer, { uid: "no-key" });
    expect(define).toThrow(JobDefinitionError);
    expect(define).toThrow(/process function "no-key" defines onTimer, but timers are keyed state and its input is not keyed: call keyBy\(\) first/);
  });

  it("refuses the timer service on first use, naming the operator", () => {
    const j = job("t");
    j.source(source, { uid: "in" }).process(notKeyed, { uid: "no-key" });
    const plan = buildPlan(j);
    const chain = new OperatorChain(j, plan.vertices[0], {
      subtaskIndex: 0,
      maxParallelism: plan.maxParallelism,
      emit: () => undefined,
      createSinkWriter: () => {
        throw new Error("no sink");
      },
      currentWatermarkMs: () => NO_WATERMARK,
      now: () => 0,
    });
    expect(() => chain.push(null, { user: "a", n: 1 })).toThrow(/operator "no-key" uses timers \(keyed state\) but its input is not keyed: call keyBy\(\) first/);
  });
});
