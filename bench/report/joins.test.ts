import { describe, expect, it } from "vitest";
import type { BenchResult } from "../workloads/common.js";
import { checkJoinMatches } from "./joins.js";

const line = (engine: string, matches: number, o: Partial<BenchResult> = {}): BenchResult => ({
  bench: "interval_join",
  engine,
  variant: "keys=10000,checkpoint_ms=1000",
  run_by: "events",
  complete: true,
  keys: 10_000,
  events: 400_000,
  event_rate: 10_000,
  lower_ms: -500,
  upper_ms: 500,
  matches,
  ...o,
});

describe("checkJoinMatches", () => {
  it("accepts complete runs that match the reference and each other", () => {
    expect(checkJoinMatches([line("floe", 190_000), line("flink", 190_000)], () => 190_000)).toEqual([]);
  });

  it("names each engine that differs from the reference, and the two engines that differ from each other", () => {
    const problems = checkJoinMatches([line("floe", 189_999), line("flink", 190_000)], () => 190_000);
    expect(problems).toEqual([
      "floe interval_join keys=10000,checkpoint_ms=1000: 189999 pairs, expected 190000",
      "interval_join keys=10000,checkpoint_ms=1000: floe 189999 pairs ≠ Flink 190000",
    ]);
  });

  it("leaves out runs stopped by duration or before their end, and sizes without a reference", () => {
    const rs = [line("floe", 1, { run_by: "duration" }), line("floe", 2, { complete: false }), line("flink", 3, { events: 8_000_000 })];
    expect(checkJoinMatches(rs, (r) => (Number(r.events) > 4_000_000 ? null : 190_000))).toEqual([]);
  });

  it("compares floe with Flink only on the same input", () => {
    expect(checkJoinMatches([line("floe", 10), line("flink", 20, { events: 200_000 })], () => null)).toEqual([]);
  });
});
