import { describe, expect, it } from "vitest";
import { BENCH_PARALLELISM, benchEvent, eventTime } from "./generator.js";
import { JOIN_LOWER_MS, JOIN_UPPER_MS, eventsPerSide, expectedJoinMatches, rightSeed } from "./interval-join.js";

/** Every (left, right) pair, compared one by one. */
function bruteForce(seed: number, keys: number, perSide: number, rate: number, lower: number, upper: number): number {
  const right = Array.from({ length: perSide }, (_, seq) => ({ key: benchEvent(rightSeed(seed), keys, seq).key, ts: eventTime(rightSeed(seed), seq, rate) }));
  let n = 0;
  for (let seq = 0; seq < perSide; seq++) {
    const key = benchEvent(seed, keys, seq).key;
    const t = eventTime(seed, seq, rate);
    for (const r of right) if (r.key === key && r.ts >= t + lower && r.ts <= t + upper) n++;
  }
  return n;
}

describe("expectedJoinMatches", () => {
  it("counts what a pair-by-pair join counts, both bounds inclusive", () => {
    for (const [lower, upper] of [
      [JOIN_LOWER_MS, JOIN_UPPER_MS],
      [0, 0],
      [-2000, -300],
      [100, 1500],
    ]) {
      expect(expectedJoinMatches(7, 20, 3000, 1000, lower, upper)).toBe(bruteForce(7, 20, 3000, 1000, lower, upper));
    }
  });

  it("gives about one partner per left event with the bench's defaults (10,000 keys, 10,000 events a second)", () => {
    const perSide = 200_000;
    const matches = expectedJoinMatches(42, 10_000, perSide, 10_000);
    // 20 s of event time; the first and last half second have fewer partners.
    expect(matches / perSide).toBeGreaterThan(0.9);
    expect(matches / perSide).toBeLessThan(1.1);
  });

  it("joins two different streams: the right side has its own seed", () => {
    expect(rightSeed(42)).toBe(43);
    expect(benchEvent(rightSeed(42), 10_000, 0).key).not.toBe(benchEvent(42, 10_000, 0).key);
  });
});

describe("eventsPerSide", () => {
  it("splits the join's input in two halves of whole partitions", () => {
    expect(eventsPerSide(400_000, BENCH_PARALLELISM)).toBe(200_000);
    expect(eventsPerSide(2 ** 31 - 2, 2)).toBe(2 ** 30 - 2);
    expect(eventsPerSide(10, 2) % 2).toBe(0);
  });
});
