import { describe, expect, it } from "vitest";
import { JobDefinitionError } from "../errors.js";
import { END_OF_TIME_MS, WatermarkStrategy } from "./watermark-strategy.js";

interface Click {
  ts: number;
}

describe("WatermarkStrategy", () => {
  it("builds immutably", () => {
    const base = WatermarkStrategy.forBoundedOutOfOrderness<Click>(5000);
    const s = base.withTimestampAssigner((c) => c.ts).withIdleness(1000);
    expect([s.boundMs, s.idlenessMs, s.timestampAssigner!({ ts: 7 })]).toEqual([5000, 1000, 7]);
    expect(base.timestampAssigner).toBeUndefined();
    expect(WatermarkStrategy.forMonotonousTimestamps<Click>().boundMs).toBe(0);
    s.validate("clicks-in");
  });

  it.each([
    ["a negative bound", WatermarkStrategy.forBoundedOutOfOrderness<Click>(-1).withTimestampAssigner((c) => c.ts), /bound ≥ 0 ms, got -1/],
    ["a non-finite bound", WatermarkStrategy.forBoundedOutOfOrderness<Click>(Number.NaN).withTimestampAssigner((c) => c.ts), /got NaN/],
    ["a negative idleness", WatermarkStrategy.forMonotonousTimestamps<Click>().withTimestampAssigner((c) => c.ts).withIdleness(-5), /idleness timeout > 0 ms, got -5/],
    ["an infinite idleness", WatermarkStrategy.forMonotonousTimestamps<Click>().withTimestampAssigner((c) => c.ts).withIdleness(Infinity), /got Infinity/],
    ["no assigner", WatermarkStrategy.forBoundedOutOfOrderness<Click>(10), /needs a timestamp assigner/],
  ])("refuses %s, naming the source", (_, strategy, message) => {
    expect(() => strategy.validate("clicks-in")).toThrow(JobDefinitionError);
    expect(() => strategy.validate("clicks-in")).toThrow(/source "clicks-in"/);
    expect(() => strategy.validate("clicks-in")).toThrow(message);
  });

  it("puts the end of time where JSON keeps it", () => {
    expect(JSON.parse(JSON.stringify(END_OF_TIME_MS))).toBe(END_OF_TIME_MS);
  });
});
