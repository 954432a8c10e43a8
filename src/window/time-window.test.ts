import { describe, expect, it } from "vitest";
import { END_OF_TIME_MS } from "../time/watermark-strategy.js";
import { GLOBAL_WINDOW, cover, intersects, maxTimestamp, mergeWindows, sameWindow, timeWindow, windowId, windowOfId, windowStart } from "./time-window.js";

describe("time windows", () => {
  it("are [start, end): the last element time is end − 1; the global window's is the end of time", () => {
    expect(maxTimestamp(timeWindow(0, 60_000))).toBe(59_999);
    expect(maxTimestamp(GLOBAL_WINDOW)).toBe(END_OF_TIME_MS);
  });

  it("start at the multiple of the size plus the offset at or before the timestamp, before the epoch too", () => {
    expect(windowStart(125_000, 0, 60_000)).toBe(120_000);
    expect(windowStart(120_000, 0, 60_000)).toBe(120_000);
    expect(windowStart(119_999, 0, 60_000)).toBe(60_000);
    expect(windowStart(-1, 0, 60_000)).toBe(-60_000);
    expect(windowStart(-60_000, 0, 60_000)).toBe(-60_000);
    // Days in UTC−8: windows start at 08:00 UTC.
    const day = 86_400_000;
    expect(windowStart(Date.UTC(2026, 11, 6, 7), 8 * 3_600_000, day)).toBe(Date.UTC(2026, 11, 5, 8));
    expect(windowStart(Date.UTC(2026, 11, 6, 9), 8 * 3_600_000, day)).toBe(Date.UTC(2026, 11, 6, 8));
    // Every timestamp lies in its window, for random timestamps, sizes and offsets.
    for (let i = 0; i < 2000; i++) {
      const size = 1 + Math.floor(Math.random() * 100_000);
      const offset = Math.floor((Math.random() * 2 - 1) * (size - 1));
      const t = Math.floor((Math.random() * 2 - 1) * 1e12);
      const start = windowStart(t, offset, size);
      expect(start <= t && t < start + size, `${t} in [${start}, ${start + size})`).toBe(true);
      expect((((start - offset) % size) + size) % size).toBe(0);
    }
  });

  it("intersect when they overlap or touch, and cover both", () => {
    expect(intersects(timeWindow(0, 10), timeWindow(10, 20))).toBe(true);
    expect(intersects(timeWindow(0, 10), timeWindow(11, 20))).toBe(false);
    expect(cover(timeWindow(5, 10), timeWindow(0, 7))).toEqual(timeWindow(0, 10));
  });

  it("have an id that names them and reads back", () => {
    for (const w of [timeWindow(-60_000, 0), timeWindow(120_000, 180_000), GLOBAL_WINDOW]) {
      expect(sameWindow(windowOfId(windowId(w)), w)).toBe(true);
    }
    expect(() => windowOfId("nonsense")).toThrow(/not a window id/);
  });

  it("merge runs of overlapping windows into their cover, whatever their order", () => {
    const merges = mergeWindows([timeWindow(30, 40), timeWindow(0, 10), timeWindow(5, 15), timeWindow(50, 60), timeWindow(14, 20), timeWindow(39, 45)]);
    expect(merges).toEqual([
      { result: timeWindow(0, 20), merged: [timeWindow(0, 10), timeWindow(5, 15), timeWindow(14, 20)] },
      { result: timeWindow(30, 45), merged: [timeWindow(30, 40), timeWindow(39, 45)] },
    ]);
    expect(mergeWindows([timeWindow(0, 10), timeWindow(20, 30)])).toEqual([]);
  });
});
