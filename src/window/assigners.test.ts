import { describe, expect, it } from "vitest";
import {
  EventTimeSessionWindows,
  GlobalWindows,
  ProcessingTimeSessionWindows,
  SlidingEventTimeWindows,
  SlidingProcessingTimeWindows,
  TumblingEventTimeWindows,
  TumblingProcessingTimeWindows,
} from "./assigners.js";
import { GLOBAL_WINDOW, timeWindow } from "./time-window.js";
import { CountTrigger, EventTimeTrigger, NeverTrigger, ProcessingTimeTrigger } from "./triggers.js";

describe("window assigners", () => {
  it("tumbling: one window per element, by event time or by the clock, with an offset", () => {
    expect(TumblingEventTimeWindows.of(60_000).assign(61_000, 999)).toEqual([timeWindow(60_000, 120_000)]);
    expect(TumblingProcessingTimeWindows.of(60_000).assign(undefined, 61_000)).toEqual([timeWindow(60_000, 120_000)]);
    expect(TumblingEventTimeWindows.of(60_000, 15_000).assign(61_000, 0)).toEqual([timeWindow(15_000, 75_000)]);
    expect(TumblingEventTimeWindows.of(60_000).defaultTrigger()).toBeInstanceOf(EventTimeTrigger);
    expect(TumblingProcessingTimeWindows.of(60_000).defaultTrigger()).toBeInstanceOf(ProcessingTimeTrigger);
  });

  it("sliding: size / slide windows per element, newest first, each holding the element", () => {
    const windows = SlidingEventTimeWindows.of(10_000, 2_000).assign(11_500, 0);
    expect(windows).toEqual([10_000, 8_000, 6_000, 4_000, 2_000].map((s) => timeWindow(s, s + 10_000)));
    // A size that is not a multiple of the slide.
    for (const t of [0, 1, 6_999, 7_000, -3_001]) {
      const ws = SlidingProcessingTimeWindows.of(7_000, 3_000).assign(undefined, t);
      expect(ws.length).toBeGreaterThanOrEqual(2);
      for (const w of ws) expect(w.kind === "time" && w.startMs <= t && t < w.endMs).toBe(true);
    }
  });

  it("tumbling and sliding: elements in the windows of the one before share its frozen windows; every element gets exactly the windows holding it", () => {
    const tumbling = TumblingEventTimeWindows.of(10_000);
    const a = tumbling.assign(12_000, 0);
    expect(tumbling.assign(19_999, 0)).toBe(a);
    expect(Object.isFrozen(a) && Object.isFrozen(a[0])).toBe(true);
    expect(tumbling.assign(20_000, 0)).toEqual([timeWindow(20_000, 30_000)]);
    expect(tumbling.assign(12_000, 0)).toEqual(a);
    // Brute force over a size that is not a multiple of the slide, where the number of windows varies with the time.
    const sliding = SlidingProcessingTimeWindows.of(7_000, 3_000, 1_000);
    let previous: readonly unknown[] | undefined;
    for (let t = -10_000; t <= 10_000; t += 250) {
      const ws = sliding.assign(undefined, t);
      const expected = [];
      for (let start = 49_000; start > -50_000; start -= 3_000) if (start <= t && t < start + 7_000) expected.push(timeWindow(start, start + 7_000));
      expect(ws).toEqual(expected);
      if (previous !== undefined && JSON.stringify(previous) === JSON.stringify(ws)) expect(ws).toBe(previous);
      previous = ws;
    }
  });

  it("session: a window of the gap from the element, merging those that overlap", () => {
    const a = EventTimeSessionWindows.withGap(30_000);
    expect(a.merging).toBe(true);
    expect(a.assign(5_000, 0)).toEqual([timeWindow(5_000, 35_000)]);
    expect(a.mergeWindows([timeWindow(0, 30_000), timeWindow(40_000, 70_000), timeWindow(25_000, 55_000)])).toEqual([
      { result: timeWindow(0, 70_000), merged: [timeWindow(0, 30_000), timeWindow(25_000, 55_000), timeWindow(40_000, 70_000)] },
    ]);
    expect(ProcessingTimeSessionWindows.withGap(10).assign(undefined, 100)).toEqual([timeWindow(100, 110)]);
  });

  it("global: one window that only its own trigger fires", () => {
    const g = GlobalWindows.create();
    expect(g.assign(undefined, 5)).toEqual([GLOBAL_WINDOW]);
    expect(g.defaultTrigger()).toBeInstanceOf(NeverTrigger);
    expect(CountTrigger.of(3).description).toBe("every 3 elements");
  });

  it("refuse an element without event time, naming the way out", () => {
    expect(() => TumblingEventTimeWindows.of(1_000).assign(undefined, 5)).toThrow(/has no event time; give its source a watermark strategy/);
    expect(() => TumblingEventTimeWindows.of(1_000).assign(Number.NaN, 5)).toThrow(/no event time/);
  });

  it("refuse sizes, slides, gaps and offsets that cannot work, when the job is defined", () => {
    expect(() => TumblingEventTimeWindows.of(0)).toThrow(/size must be a whole number of milliseconds > 0, got 0/);
    expect(() => TumblingEventTimeWindows.of(1.5)).toThrow(/size must be/);
    expect(() => TumblingEventTimeWindows.of(1_000, 1_000)).toThrow(/\|offset\| < 1000, got 1000/);
    expect(() => SlidingEventTimeWindows.of(1_000, -1)).toThrow(/slide must be/);
    expect(() => SlidingEventTimeWindows.of(1_000, 1_500)).toThrow(/the slide \(1500 ms\) is larger than the size \(1000 ms\)/);
    expect(() => SlidingEventTimeWindows.of(10_000_000, 1)).toThrow(/puts each element in 10000000 windows/);
    expect(() => EventTimeSessionWindows.withGap(-5)).toThrow(/gap must be/);
    expect(() => CountTrigger.of(0)).toThrow(/count must be a whole number ≥ 1/);
  });
});
