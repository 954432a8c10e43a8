import { describe, expect, it } from "vitest";
import { MIN_RUN_CHECKPOINTS, longEnough, mayStop, steadyFigures, warmupSeconds } from "./steady.js";

describe("longEnough", () => {
  it("waits for 10 s from the first record", () => {
    expect(longEnough({ sinceFirstRecordMs: 9_999, checkpointsCompleted: 0, checkpointsOn: false })).toBe(false);
    expect(longEnough({ sinceFirstRecordMs: 10_000, checkpointsCompleted: 0, checkpointsOn: false })).toBe(true);
    expect(longEnough({ sinceFirstRecordMs: 14_000, checkpointsCompleted: 0, checkpointsOn: false }, 15)).toBe(false);
  });

  it("with checkpoints on, also for 10 completed checkpoints", () => {
    expect(longEnough({ sinceFirstRecordMs: 30_000, checkpointsCompleted: MIN_RUN_CHECKPOINTS - 1, checkpointsOn: true })).toBe(false);
    expect(longEnough({ sinceFirstRecordMs: 30_000, checkpointsCompleted: MIN_RUN_CHECKPOINTS, checkpointsOn: true })).toBe(true);
    expect(longEnough({ sinceFirstRecordMs: 5_000, checkpointsCompleted: 50, checkpointsOn: true })).toBe(false);
  });
});

describe("warmupSeconds", () => {
  it("drops at least the first second", () => {
    expect(warmupSeconds([100, 100, 100, 100, 100, 100])).toBe(1);
  });

  it("ends when a 3-second mean reaches 90% of the second half's median", () => {
    // A JIT warming up over 4 s, then steady at 1,000.
    expect(warmupSeconds([100, 300, 600, 800, 1000, 1000, 990, 1010, 1000, 1000, 1000, 1000])).toBe(3);
  });

  it("does not take a checkpoint's 1 s dip for warm-up", () => {
    expect(warmupSeconds([500, 1000, 600, 1000, 1000, 600, 1000, 1000, 600, 1000, 1000, 600])).toBe(1);
  });

  it("never drops more than half of the run", () => {
    expect(warmupSeconds([1, 1, 1, 1, 1, 1, 1000, 1000, 1000, 1000])).toBe(5);
  });
});

describe("steadyFigures", () => {
  it("gives no figure for a run shorter than 10 s, and says why", () => {
    expect(steadyFigures([1, 2, 3])).toEqual({
      steady_events_per_s: null,
      steady_mean_events_per_s: null,
      steady_cv: null,
      steady_from_s: null,
      steady_to_s: null,
      steady_trend: null,
      steady_note: "the run lasted 3 whole seconds, fewer than 10",
    });
  });

  it("takes the median and the mean of the seconds after the warm-up, without the last one", () => {
    const f = steadyFigures([100, 300, 600, 800, 1000, 1000, 900, 1100, 1000, 1000, 1000, 7]);
    expect(f).toEqual({ steady_events_per_s: 1000, steady_mean_events_per_s: 975, steady_cv: expect.any(Number), steady_from_s: 3, steady_to_s: 11, steady_trend: 0.053 });
    expect(f.steady_cv).toBeCloseTo(0.085, 3);
  });

  it("says when the rate still rose through the window (a JIT still warming up)", () => {
    // Flink at parallelism 1 on a busy core, seen on 2026-12-06.
    const f = steadyFigures([4096, 93611, 58268, 95193, 107969, 145436, 186340, 231376, 223404, 317971]);
    expect(f.steady_trend).toBeGreaterThan(0.25);
    expect(f.steady_note).toMatch(/^the rate still changed: the window's second half above its first by \d+%$/);
  });

  it("keeps at least 5 s of a 10 s run, however slow its start", () => {
    const f = steadyFigures([1, 1, 1, 1, 1, 1, 1, 1000, 1000, 1000]);
    expect([f.steady_from_s, f.steady_to_s]).toEqual([4, 9]);
  });
});

describe("mayStop", () => {
  const flat = Array.from({ length: 12 }, (_, i) => (i === 0 ? 10 : 1000 + (i % 2) * 50));
  const rising = Array.from({ length: 12 }, (_, i) => 100 * (i + 1));

  it("stops a long enough run whose rate is flat", () => {
    expect(mayStop({ sinceFirstRecordMs: 12_000, checkpointsCompleted: 11, checkpointsOn: true, series: flat })).toBe(true);
  });

  it("goes on while the rate still rises, or the run is not long enough", () => {
    expect(mayStop({ sinceFirstRecordMs: 12_000, checkpointsCompleted: 11, checkpointsOn: true, series: rising })).toBe(false);
    expect(mayStop({ sinceFirstRecordMs: 12_000, checkpointsCompleted: 9, checkpointsOn: true, series: flat })).toBe(false);
    expect(mayStop({ sinceFirstRecordMs: 9_000, checkpointsCompleted: 0, checkpointsOn: false, series: flat.slice(0, 9) })).toBe(false);
  });
});
