import { describe, expect, it } from "vitest";
import { type JobDefinition, job } from "../api/job.js";
import type { SourceDefinition } from "../api/types.js";
import { keyGroupOf, keyGroupRange } from "../graph/key-groups.js";
import { buildPlan } from "../graph/plan.js";
import { type ChainServices, OperatorChain } from "../runtime/operator-chain.js";
import type { StateEntry } from "../state/keyed-state.js";
import { TumblingEventTimeWindows } from "./assigners.js";
import { WatermarkStrategy } from "../time/watermark-strategy.js";
import type { AggregateFunction } from "./window-functions.js";

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

const count: AggregateFunction<View, number, number> = { createAccumulator: () => 0, add: (_v, n) => n + 1, merge: (a, b) => a + b, getResult: (n) => n };

/** One-second tumbling counts per url: the window vertex's operator is "per-second". */
function windowJob(): JobDefinition {
  const j = job("open-windows", { maxParallelism: 128 });
  j.source(source, { uid: "in", watermarks: WatermarkStrategy.forBoundedOutOfOrderness<View>(0).withTimestampAssigner((v) => v.ts) })
    .keyBy((v) => v.url)
    .window(TumblingEventTimeWindows.of(1_000))
    .aggregate(count, undefined, { uid: "per-second" })
    .map((n) => n, { uid: "after" });
  return j;
}

/** A subtask's chain of the job's keyed vertex, with a watermark the test moves. */
function subtask(j: JobDefinition, index = 0) {
  const plan = buildPlan(j);
  const vertex = plan.vertices.find((v) => v.inputs.length > 0)!;
  let watermarkMs = Number.NEGATIVE_INFINITY;
  const emitted: unknown[] = [];
  const services: ChainServices = {
    subtaskIndex: index,
    maxParallelism: plan.maxParallelism,
    emit: (value) => emitted.push(value),
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
    state: chain.keyedState.get("per-second")!,
    push: (v: View) => chain.push(v.url, v, v.ts),
    advance(ms: number) {
      watermarkMs = ms;
      chain.fireEventTimers(ms);
    },
    openWindows: () => chain.gauges().openWindows,
  };
}

/** Views of 30 urls: every url in the first second, every third one in the second too. */
const views: View[] = Array.from({ length: 30 }, (_, i) => [{ url: `/p/${i}`, ts: 100 + i }, ...(i % 3 === 0 ? [{ url: `/p/${i}`, ts: 1_500 }] : [])]).flat();

/** The windows held in a snapshot's entries: one per url and second. */
function windowsIn(entries: readonly StateEntry[]): number {
  return entries.filter((e) => e.state === "__window.contents").reduce((n, e) => n + (e.value as unknown[]).length, 0);
}

describe("a window operator's open windows", () => {
  it("are reported by the chain as windows open and close, and not by chains without windows", () => {
    const s = subtask(windowJob());
    expect(s.openWindows()).toBe(0);
    for (const v of views) s.push(v);
    expect(s.openWindows()).toBe(40);
    s.advance(999);
    expect(s.openWindows()).toBe(10);
    s.advance(5_000);
    expect(s.openWindows()).toBe(0);
    expect(s.emitted).toHaveLength(40);

    const plain = job("plain");
    plain.source(source, { uid: "in" }).keyBy((v) => v.url).process({ processElement: () => undefined }, { uid: "p" });
    expect(subtask(plain).chain.gauges()).toEqual({});
  });

  it("are counted from the restored state after a restore, and from each subtask's key groups after a rescale", () => {
    const j = windowJob();
    const before = subtask(j);
    for (const v of views) before.push(v);
    const snapshot = before.state.allEntries();
    expect(windowsIn(snapshot)).toBe(40);

    const restored = subtask(j);
    restored.state.load(snapshot);
    expect(restored.openWindows()).toBe(40);

    // Rescaled to two subtasks: each restores the key groups it owns.
    const halves = [keyGroupRange(128, 2, 0), keyGroupRange(128, 2, 1)].map((range, index) => {
      const own = snapshot.filter((e) => e.keyGroup >= range.start && e.keyGroup <= range.end);
      const s = subtask(j, index);
      s.state.load(own);
      return { s, expected: windowsIn(own) };
    });
    expect(halves.map((h) => h.s.openWindows())).toEqual(halves.map((h) => h.expected));
    expect(halves[0].expected + halves[1].expected).toBe(40);
    expect(halves[0].expected).toBeGreaterThan(0);
    expect(halves[1].expected).toBeGreaterThan(0);

    // Kept up to date from there: a new window opens, the restored ones fire and close.
    const [first] = halves;
    const range = keyGroupRange(128, 2, 0);
    const newUrl = ["/new/a", "/new/b", "/new/c", "/new/d", "/new/e"].find((url) => keyGroupOf(url, 128) <= range.end)!;
    first.s.push({ url: newUrl, ts: 2_500 });
    expect(first.s.openWindows()).toBe(first.expected + 1);
    first.s.advance(1_999);
    expect(first.s.openWindows()).toBe(1);
    expect(first.s.emitted).toHaveLength(first.expected);
  });

  it("are counted from a state image read on demand, without loading its keys", () => {
    const j = windowJob();
    const before = subtask(j);
    for (const v of views) before.push(v);
    const snapshot = before.state.allEntries();
    const after = subtask(j);
    const read: string[] = [];
    after.state.attach({
      get: (state, key) => {
        read.push(key);
        return snapshot.find((e) => e.state === state && e.key === key);
      },
      entries: () => snapshot,
      timers: () => snapshot.filter((e) => e.kind === "timer").map((e) => ({ state: e.state, key: e.key, value: e.value })),
      count: () => snapshot.length,
    });
    expect(after.openWindows()).toBe(40);
    expect(read).toEqual([]);
    after.advance(999);
    expect(after.openWindows()).toBe(10);
  });
});

