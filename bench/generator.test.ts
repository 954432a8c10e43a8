import { describe, expect, it } from "vitest";
import { BENCH_PARALLELISM, EVENT_TIME_BASE_MS, OUT_OF_ORDERNESS_MS, eventTime, expectedWindowTotals, timeFingerprint } from "./generator.js";

describe("eventTime", () => {
  it("keeps every record of a partition within the out-of-orderness bound of the newest before it", () => {
    for (let p = 0; p < BENCH_PARALLELISM; p++) {
      let newest = Number.NEGATIVE_INFINITY;
      let lateness = 0;
      for (let seq = p; seq < 200_000; seq += BENCH_PARALLELISM) {
        const ts = eventTime(42, seq, 10_000);
        lateness = Math.max(lateness, newest - ts);
        newest = Math.max(newest, ts);
      }
      expect(lateness).toBeLessThanOrEqual(OUT_OF_ORDERNESS_MS);
      // The input is out of order (or the bound would test nothing).
      expect(lateness).toBeGreaterThan(OUT_OF_ORDERNESS_MS / 2);
    }
  });

  it("advances a second of event time per `rate` events", () => {
    expect(eventTime(42, 10_000 * 60, 10_000) - EVENT_TIME_BASE_MS).toBeGreaterThanOrEqual(60_000 - OUT_OF_ORDERNESS_MS);
    expect(eventTime(42, 10_000 * 60, 10_000) - EVENT_TIME_BASE_MS).toBeLessThanOrEqual(60_000);
  });

  it("has the fingerprint Gen.java gives (checked against the JVM before every peer run)", () => {
    expect(timeFingerprint(42, 10_000, 100_000, 10_000)).toBe("50ef3bce");
  });
});

describe("expectedWindowTotals", () => {
  it("counts each event once in tumbling windows and size/slide times in sliding ones", () => {
    const tumbling = expectedWindowTotals(42, 100, 50_000, 10_000, 10_000, 10_000);
    const sliding = expectedWindowTotals(42, 100, 50_000, 10_000, 60_000, 10_000);
    expect(tumbling.total).toBe(50_000);
    expect(sliding.total).toBe(300_000);
    // 5 s of event time, and the first second's records up to 1 s early: windows from before the base to after.
    expect(tumbling.windows).toBe(2);
    expect(sliding.windows).toBe(7);
    // 100 keys, each in every window with enough events.
    expect(tumbling.results).toBe(200);
  });
});
