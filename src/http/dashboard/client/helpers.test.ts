/**
 * The dashboard's helpers, imported from the very file the Worker serves
 * at /dashboard/helpers.js and type-checked with it (tsconfig.dashboard.json).
 */
import { describe, expect, it } from "vitest";
import { backpressureOf, chartModel, formatBytes, formatCount, formatMs, formatRate, formatWatermark, formatWatermarkLag, linearScale, niceTicks, savepointList, timeTicks, vertexRates, type SavepointEntry, type SavepointSource } from "./helpers.js";

const vertex = (id: string, records_in: number, records_out: number, backpressured_ms = 0, parallelism = 2) => ({
  id,
  parallelism,
  records_in,
  records_out,
  backpressured_ms,
});

describe("vertexRates", () => {
  it("is unknown on the first sample", () => {
    expect(vertexRates(null, { atMs: 1_000, attempt: 1, vertices: [vertex("src", 10, 10)] })).toEqual({
      src: { in_per_s: null, out_per_s: null, backpressured_ratio: null },
    });
  });

  it("divides counter growth by the time between samples", () => {
    const prev = { atMs: 10_000, attempt: 1, vertices: [vertex("src", 100, 100, 0), vertex("count", 50, 0, 0)] };
    const next = { atMs: 12_000, attempt: 1, vertices: [vertex("src", 500, 500, 1_000), vertex("count", 450, 0, 0)] };
    const rates = vertexRates(prev, next);
    expect(rates.src).toEqual({ in_per_s: 200, out_per_s: 200, backpressured_ratio: 0.25 });
    expect(rates.count).toEqual({ in_per_s: 200, out_per_s: 0, backpressured_ratio: 0 });
  });

  it("forgets the previous sample after a restart (new attempt, or counters that went back)", () => {
    const prev = { atMs: 0, attempt: 1, vertices: [vertex("src", 100, 100)] };
    expect(vertexRates(prev, { atMs: 2_000, attempt: 2, vertices: [vertex("src", 300, 300)] }).src.in_per_s).toBeNull();
    expect(vertexRates(prev, { atMs: 2_000, attempt: 1, vertices: [vertex("src", 20, 20)] }).src.in_per_s).toBeNull();
    expect(vertexRates(prev, { atMs: 0, attempt: 1, vertices: [vertex("src", 200, 200)] }).src.in_per_s).toBeNull();
  });

  it("caps the backpressured share at 1", () => {
    const prev = { atMs: 0, attempt: 1, vertices: [vertex("src", 0, 0, 0, 1)] };
    expect(vertexRates(prev, { atMs: 1_000, attempt: 1, vertices: [vertex("src", 0, 0, 5_000, 1)] }).src.backpressured_ratio).toBe(1);
  });
});

describe("backpressureOf", () => {
  it("flags a vertex that waits for credits 10% of the time or more, or whose inputs are full", () => {
    const v = { parallelism: 4, backpressured_subtasks: 0 };
    expect(backpressureOf(v, { backpressured_ratio: 0.05 })).toEqual({ backpressured: false, why: "" });
    expect(backpressureOf(v, { backpressured_ratio: null })).toEqual({ backpressured: false, why: "" });
    expect(backpressureOf(v, { backpressured_ratio: 0.5 })).toEqual({ backpressured: true, why: "waits for downstream 50% of the time" });
    expect(backpressureOf({ parallelism: 4, backpressured_subtasks: 1 }, undefined)).toEqual({
      backpressured: true,
      why: "1 of 4 subtasks have full inputs",
    });
    expect(backpressureOf(undefined, undefined).backpressured).toBe(false);
  });
});

describe("chart scales", () => {
  it("picks round ticks that cover the data", () => {
    expect(niceTicks(0, 87, 4)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(niceTicks(0, 1, 4)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0, 0, 2)).toEqual([0, 0.5, 1]);
    expect(niceTicks(0, 12, 4)).toEqual([0, 5, 10, 15]);
    expect(niceTicks(0, 1234, 4)).toEqual([0, 500, 1000, 1500]);
    expect(niceTicks(0, 0.3, 3)).toEqual([0, 0.1, 0.2, 0.3]);
  });

  it("puts time ticks on round seconds and minutes", () => {
    expect(timeTicks(1_000_500, 1_009_000, 5)).toEqual([1_002_000, 1_004_000, 1_006_000, 1_008_000]);
    const minutes = timeTicks(0, 10 * 60_000, 5);
    expect(minutes).toEqual([0, 120_000, 240_000, 360_000, 480_000, 600_000]);
  });

  it("maps a domain onto a range, and a point domain to the middle", () => {
    expect(linearScale(0, 10, 100, 0)(2.5)).toBe(75);
    expect(linearScale(5, 5, 0, 100)(5)).toBe(50);
  });

  it("lays out a line chart: y from 0, path through every point, inside the plotting area", () => {
    const points = [
      { x: 60_000, y: 40 },
      { x: 61_000, y: 80 },
      { x: 62_000, y: 20 },
    ];
    const m = chartModel(points, {
      width: 300,
      height: 200,
      margin: { left: 50, right: 10, top: 10, bottom: 30 },
      formatX: (t: number) => `t${t}`,
      formatY: (v: number) => `${v} ms`,
    });
    expect(m.area).toEqual({ left: 50, right: 290, top: 10, bottom: 170 });
    expect(m.yTicks.map((t) => t.label)).toEqual(["0 ms", "20 ms", "40 ms", "60 ms", "80 ms"]);
    expect(m.yTicks[0].pos).toBe(170);
    expect(m.yTicks.at(-1)?.pos).toBe(10);
    expect(m.path).toBe("M50 90 L170 10 L290 130");
    expect(m.xTicks.map((t) => t.pos)).toEqual([50, 170, 290]);
    expect(m.xTicks[0].label).toBe("t60000");
  });

  it("draws a single point in the middle rather than dividing by zero", () => {
    const m = chartModel([{ x: 5_000, y: 0 }], {
      width: 100,
      height: 100,
      margin: { left: 0, right: 0, top: 0, bottom: 0 },
      formatX: String,
      formatY: String,
    });
    expect(m.path).toBe("M50 100");
  });
});

describe("formatting", () => {
  it("formats bytes, durations, rates and counts", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(1_536)).toBe("1.5 kB");
    expect(formatBytes(130_000_000)).toBe("130 MB");
    expect(formatMs(850)).toBe("850 ms");
    expect(formatMs(1_500)).toBe("1.5 s");
    expect(formatMs(125_000)).toBe("2m 5s");
    expect(formatMs(7_500_000)).toBe("2h 5m");
    expect(formatMs(null)).toBe("—");
    expect(formatRate(null)).toBe("—");
    expect(formatRate(2.25)).toBe("2.3");
    expect(formatRate(12_345.6)).toBe("12,346");
    expect(formatRate(2_500_000)).toBe("2.5 M");
    expect(formatCount(1_234_567)).toBe("1,234,567");
    expect(formatCount(-1_000)).toBe("-1,000");
  });
});

describe("savepointList", () => {
  const entry = (id: number, extra: Partial<SavepointSource>): SavepointSource => ({
    id,
    status: "COMPLETED",
    is_savepoint: true,
    trigger_timestamp: id * 1_000,
    end_to_end_duration: 30,
    state_size: 100,
    external_path: `r2://savepoints/clicks/savepoint-${id}/`,
    failure_message: null,
    ...extra,
  });

  it("keeps savepoints that left the history, newest first, with failures and their cause", () => {
    const known = new Map<number, SavepointEntry>();
    savepointList({ history: [entry(3, {}), entry(2, { is_savepoint: false })], latest: { savepoint: null } }, known);
    const list = savepointList(
      {
        history: [entry(9, { status: "FAILED", external_path: null, failure_message: "CHECKPOINT_EXPIRED: too slow" }), entry(8, { is_savepoint: false })],
        latest: { savepoint: entry(3, {}) },
      },
      known,
    );
    expect(list.map((x) => [x.id, x.status])).toEqual([
      ["savepoint-9", "FAILED"],
      ["savepoint-3", "COMPLETED"],
    ]);
    expect(list[0]).toMatchObject({ location: null, failure_message: "CHECKPOINT_EXPIRED: too slow" });
    expect(list[1].location).toBe("r2://savepoints/clicks/savepoint-3/");
  });

  it("tolerates an overview not loaded yet", () => {
    expect(savepointList(null, new Map<number, SavepointEntry>())).toEqual([]);
  });
});

describe("formatWatermark", () => {
  it("shows event time as ISO 8601 UTC with milliseconds, the end of time, and none", () => {
    expect(formatWatermark(Date.UTC(2026, 0, 2, 3, 4, 5, 678))).toBe("2026-01-02T03:04:05.678Z");
    expect(formatWatermark(Number.MAX_SAFE_INTEGER)).toBe("end of time");
    expect(formatWatermark(null)).toBe("no watermark");
  });

  it("says how far event time trails the clock, or that it runs ahead of it", () => {
    expect(formatWatermarkLag(12_000)).toBe("12 s behind");
    expect(formatWatermarkLag(0)).toBe("0 ms behind");
    expect(formatWatermarkLag(-3_000)).toBe("3.0 s ahead");
    expect(formatWatermarkLag(29_401_000_000)).toBe("340d 6h behind");
    expect(formatWatermarkLag(null)).toBe("");
  });
});
