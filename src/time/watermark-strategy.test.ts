import { describe, expect, it } from "vitest";
import { job } from "../api/job.js";
import type { SourceDefinition } from "../api/types.js";
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

describe("a source's watermarks option", () => {
  const source: SourceDefinition<Click> = { kind: "test", replayable: true, createReader: () => ({ positions: () => ({}), seek: () => undefined, poll: async () => null }) };

  it("keeps a good strategy on the source node", () => {
    const j = job("wm");
    const strategy = WatermarkStrategy.forBoundedOutOfOrderness<Click>(5).withTimestampAssigner((c) => c.ts);
    j.source(source, { uid: "clicks-in", watermarks: strategy });
    expect(j.nodes[0].watermarks).toBe(strategy);
    expect(j.nodes[0].options).toEqual({ uid: "clicks-in" });
  });

  it("refuses a bad one when the job is defined, naming the source", () => {
    expect(() => job("wm").source(source, { uid: "clicks-in", watermarks: WatermarkStrategy.forBoundedOutOfOrderness<Click>(-5).withTimestampAssigner((c) => c.ts) })).toThrow(
      /source "clicks-in": watermark strategy needs a finite out-of-orderness bound/,
    );
    expect(() => job("wm").source(source, { watermarks: { boundMs: 5 } as unknown as WatermarkStrategy<Click> })).toThrow(/source "source#0": watermarks must be a WatermarkStrategy/);
  });
});
