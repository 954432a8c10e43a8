import { describe, expect, it } from "vitest";
import type { BenchResult } from "../workloads/common.js";
import { type WindowRow, checkWindowTotals, windowFigures } from "./windows.js";

const T0 = 1_000_000;
/** A window fired `atS` seconds after the first record, its results all received `latencyMs` later. */
const row = (end: number, atS: number, latencyMs: number, o: Partial<WindowRow> = {}): WindowRow => ({
  end,
  results: 10,
  total: 100,
  first_fired_ms: T0 + atS * 1000,
  received_ms: T0 + atS * 1000 + latencyMs,
  final: false,
  ...o,
});

describe("windowFigures", () => {
  const rows = [row(10, 0.5, 900), row(20, 3.2, 10), row(30, 5.9, 20), row(40, 7, 30), row(50, 9, 500, { final: true, results: 4, total: 7 })];

  it("counts every window, results and total, the final ones included", () => {
    expect(windowFigures(rows, T0)).toMatchObject({ windows_fired: 5, window_results: 44, window_total_count: 407, final_windows: 1 });
  });

  it("takes the latency over the steady window, its last second included, leaving out windows fired by the end of input", () => {
    expect(windowFigures(rows, T0, { fromS: 3, toS: 5 })).toMatchObject({
      fire_ms_over: "steady window",
      fire_ms_windows: 2,
      fire_ms_p50: 10,
      fire_ms_p90: 20,
      fire_ms_max: 20,
    });
  });

  it("falls back to every window fired by the watermark when none fired in the steady window, or there is none", () => {
    const all = { fire_ms_over: "all windows", fire_ms_windows: 4, fire_ms_p50: 20, fire_ms_p90: 900, fire_ms_max: 900 };
    expect(windowFigures(rows, T0)).toMatchObject(all);
    expect(windowFigures(rows, T0, { fromS: 20, toS: 30 })).toMatchObject(all);
  });

  it("has no latency without a window fired by the watermark", () => {
    expect(windowFigures([row(10, 1, 5, { final: true })], T0)).toMatchObject({ fire_ms_windows: 0, fire_ms_p50: null, fire_ms_max: null });
    expect(windowFigures([], T0)).toMatchObject({ windows_fired: 0, window_results: 0, fire_ms_p50: null });
  });
});

describe("checkWindowTotals", () => {
  const line = (engine: string, windows: number, results: number, total: number, o: Partial<BenchResult> = {}): BenchResult => ({
    bench: "window_tumbling",
    engine,
    variant: "keys=10000,checkpoint_ms=1000",
    run_by: "events",
    complete: true,
    events: 200_000,
    keys: 10_000,
    event_rate: 10_000,
    windows_fired: windows,
    window_results: results,
    window_total_count: total,
    ...o,
  });
  const want = () => ({ windows: 3, results: 23_930, total: 200_000 });

  it("passes when both engines emit the reference", () => {
    expect(checkWindowTotals([line("floe", 3, 23_930, 200_000), line("flink", 3, 23_930, 200_000)], want)).toEqual([]);
  });

  it("names each engine that differs from the reference, and a floe/Flink difference", () => {
    const problems = checkWindowTotals([line("floe", 3, 11_905, 197_463), line("flink", 3, 23_930, 200_000)], want);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^floe window_tumbling .*"results":11905.*expected/);
    expect(problems[1]).toMatch(/floe .* ≠ Flink/);
  });

  it("compares the engines without a reference, and ignores runs stopped by duration or before their end", () => {
    expect(checkWindowTotals([line("floe", 3, 1, 2), line("flink", 3, 1, 3)], () => null)).toHaveLength(1);
    const stopped = [line("floe", 3, 1, 2, { run_by: "duration" }), line("flink", 3, 1, 3, { complete: false })];
    expect(checkWindowTotals(stopped, want)).toEqual([]);
  });
});
