import { describe, expect, it } from "vitest";
import { GLOBAL_WINDOW, type Window, timeWindow, windowId } from "./time-window.js";
import { ContinuousEventTimeTrigger, CountTrigger, EventTimeTrigger, type OnMergeContext, ProcessingTimeTrigger, PurgingTrigger, type TriggerContext } from "./triggers.js";

/** A trigger context over plain sets and maps, per window. */
function context(window: Window, world: World = newWorld()): TriggerContext & { world: World } {
  const state = (w: Window) => <T>(name: string) => {
    const k = `${windowId(w)}/${name}`;
    return {
      value: () => world.state.get(k) as T | undefined,
      update: (v: T) => void world.state.set(k, v),
      clear: () => void world.state.delete(k),
    };
  };
  return {
    world,
    get currentWatermarkMs() {
      return world.watermarkMs;
    },
    currentProcessingTimeMs: () => world.nowMs,
    registerEventTimeTimer: (t) => void world.eventTimers.add(t),
    registerProcessingTimeTimer: (t) => void world.processingTimers.add(t),
    deleteEventTimeTimer: (t) => void world.eventTimers.delete(t),
    deleteProcessingTimeTimer: (t) => void world.processingTimers.delete(t),
    state: state(window),
  };
}

interface World {
  watermarkMs: number;
  nowMs: number;
  eventTimers: Set<number>;
  processingTimers: Set<number>;
  state: Map<string, unknown>;
}

function newWorld(): World {
  return { watermarkMs: -Infinity, nowMs: 0, eventTimers: new Set(), processingTimers: new Set(), state: new Map() };
}

function mergeContext(window: Window, merged: Window[], world: World): OnMergeContext {
  const ctx = context(window, world);
  return Object.assign(ctx, {
    mergedWindows: merged,
    stateOf: <T>(name: string, w: Window) => context(w, world).state<T>(name),
  });
}

const w = timeWindow(0, 60_000);

describe("EventTimeTrigger", () => {
  it("waits for the watermark to pass the window's end, then fires once", () => {
    const t = new EventTimeTrigger();
    const ctx = context(w);
    expect(t.onElement("a", 5, w, ctx)).toBe("continue");
    expect([...ctx.world.eventTimers]).toEqual([59_999]);
    expect(t.onEventTime(59_998, w, ctx)).toBe("continue");
    expect(t.onEventTime(59_999, w, ctx)).toBe("fire");
    t.clear(w, ctx);
    expect(ctx.world.eventTimers.size).toBe(0);
  });

  it("fires at once for an element of a window the watermark has passed (allowed lateness)", () => {
    const ctx = context(w);
    ctx.world.watermarkMs = 59_999;
    expect(new EventTimeTrigger().onElement("late", 10, w, ctx)).toBe("fire");
    expect(ctx.world.eventTimers.size).toBe(0);
  });

  it("on a merge, sets a timer only for a window the watermark has not passed", () => {
    const world = newWorld();
    world.watermarkMs = 100;
    new EventTimeTrigger().onMerge(timeWindow(0, 50), mergeContext(timeWindow(0, 50), [], world));
    expect(world.eventTimers.size).toBe(0);
    new EventTimeTrigger().onMerge(timeWindow(0, 500), mergeContext(timeWindow(0, 500), [], world));
    expect([...world.eventTimers]).toEqual([499]);
  });
});

describe("ProcessingTimeTrigger", () => {
  it("fires when the clock passes the window's end", () => {
    const t = new ProcessingTimeTrigger();
    const ctx = context(w);
    expect(t.onElement("a", undefined, w, ctx)).toBe("continue");
    expect([...ctx.world.processingTimers]).toEqual([59_999]);
    expect(t.onEventTime(59_999, w, ctx)).toBe("continue");
    expect(t.onProcessingTime(59_999, w, ctx)).toBe("fire");
    t.clear(w, ctx);
    expect(ctx.world.processingTimers.size).toBe(0);
  });
});

describe("CountTrigger", () => {
  it("fires every n elements, counting per window, and sums counts when windows merge", () => {
    const t = CountTrigger.of(3);
    const world = newWorld();
    const a = timeWindow(0, 10);
    const b = timeWindow(5, 20);
    expect(t.onElement(1, undefined, a, context(a, world))).toBe("continue");
    expect(t.onElement(2, undefined, b, context(b, world))).toBe("continue");
    expect(t.onElement(3, undefined, a, context(a, world))).toBe("continue");
    // Merged into a's state: a had 2, b had 1.
    const merged = timeWindow(0, 20);
    t.onMerge(merged, mergeContext(merged, [a, b], world));
    expect(context(merged, world).state<number>("count").value()).toBe(3);
    const c = CountTrigger.of(2);
    const ctx = context(GLOBAL_WINDOW);
    expect([c.onElement(1, undefined, GLOBAL_WINDOW, ctx), c.onElement(2, undefined, GLOBAL_WINDOW, ctx), c.onElement(3, undefined, GLOBAL_WINDOW, ctx)]).toEqual([
      "continue",
      "fire",
      "continue",
    ]);
    c.clear(GLOBAL_WINDOW, ctx);
    expect(ctx.world.state.size).toBe(0);
  });
});

describe("ContinuousEventTimeTrigger", () => {
  it("fires early at each interval of event time, then at the window's end", () => {
    const t = ContinuousEventTimeTrigger.of(10_000);
    const ctx = context(w);
    expect(t.onElement("a", 12_345, w, ctx)).toBe("continue");
    expect([...ctx.world.eventTimers].sort((x, y) => x - y)).toEqual([20_000, 59_999]);
    // A timer is gone once it fired, as in the operator's timer service.
    const fire = (timeMs: number) => {
      expect(ctx.world.eventTimers.delete(timeMs), `a timer at ${timeMs}`).toBe(true);
      return t.onEventTime(timeMs, w, ctx);
    };
    expect(fire(20_000)).toBe("fire");
    expect(fire(30_000)).toBe("fire");
    expect(fire(40_000)).toBe("fire");
    expect(fire(50_000)).toBe("fire");
    // The next early firing would be after the end: it is capped at the end, which fires anyway.
    expect([...ctx.world.eventTimers]).toEqual([59_999]);
    expect(fire(59_999)).toBe("fire");
    t.clear(w, ctx);
    expect(ctx.world.eventTimers.size).toBe(0);
    expect(ctx.world.state.size).toBe(0);
  });

  it("handles element times before the epoch", () => {
    const t = ContinuousEventTimeTrigger.of(1_000);
    const win = timeWindow(-10_000, 0);
    const ctx = context(win);
    t.onElement("a", -2_500, win, ctx);
    expect(ctx.world.eventTimers.has(-2_000)).toBe(true);
  });

  it("keeps the earliest early firing of merged windows", () => {
    const t = ContinuousEventTimeTrigger.of(1_000);
    const world = newWorld();
    const a = timeWindow(0, 5_000);
    const b = timeWindow(4_000, 9_000);
    t.onElement("x", 4_500, b, context(b, world));
    t.onElement("y", 200, a, context(a, world));
    const m = timeWindow(0, 9_000);
    t.onMerge(m, mergeContext(m, [a, b], world));
    expect(context(m, world).state<number>("next-fire").value()).toBe(1_000);
    expect(world.eventTimers.has(8_999)).toBe(true);
  });

  it("refuses an interval below 1 ms", () => {
    expect(() => ContinuousEventTimeTrigger.of(0)).toThrow(/interval must be/);
  });
});

describe("PurgingTrigger", () => {
  it("turns each firing into fire-and-purge", () => {
    const t = PurgingTrigger.of(CountTrigger.of(1));
    expect(t.onElement(1, undefined, GLOBAL_WINDOW, context(GLOBAL_WINDOW))).toBe("fire_and_purge");
    expect(t.description).toBe("every 1 elements, purging");
  });
});
