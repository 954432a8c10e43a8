/**
 * The seeded simulation, as tests: a few hundred seeds, each a whole run
 * (job start, faults, quiescence, oracle), must hold exactly-once; a seed
 * must replay identically; and over the seeds every kind of fault must land.
 */
import { describe, expect, it } from "vitest";
import { SUBTASK_POINTS, COORDINATOR_POINTS, type FaultKind } from "./faults.js";
import { describeFailure } from "./report.js";
import { runSeed } from "./run.js";

const SEEDS = 240;
const CHUNK = 40;

describe("exactly-once under faults", () => {
  const landed = new Map<FaultKind, number>();
  let checkpoints = 0;
  for (let from = 1; from <= SEEDS; from += CHUNK) {
    it(`seeds ${from}..${from + CHUNK - 1}`, async () => {
      const failed: string[] = [];
      for (let seed = from; seed < from + CHUNK; seed++) {
        const r = await runSeed(seed);
        for (const [k, v] of r.faults) landed.set(k, (landed.get(k) ?? 0) + v);
        checkpoints += r.checkpoints;
        if (!r.ok) failed.push(describeFailure(r));
      }
      expect(failed, failed.join("\n\n")).toEqual([]);
    });
  }

  it("lands every kind of fault, and completes checkpoints, over the seeds", () => {
    const kinds: FaultKind[] = [
      "rpc-drop", "rpc-drop-reply", "rpc-duplicate", "rpc-delay", "rpc-hold", "zombie", "r2-error", "r2-slow",
      "reset-random", "coord-reset-random", "alarm-twice",
      ...SUBTASK_POINTS.map((p) => `reset@${p}` as const),
      ...COORDINATOR_POINTS.map((p) => `coord-reset@${p}` as const),
    ];
    const missing = kinds.filter((k) => (landed.get(k) ?? 0) === 0);
    expect(missing, `fault kinds that never landed: ${missing.join(", ")}`).toEqual([]);
    expect(checkpoints).toBeGreaterThan(SEEDS * 5);
  });
});

describe("quiescence", () => {
  // Seed 961 (a false alarm of the oracle, not an engine bug): unaligned, checkpoint 6 went unaligned at sum/0
  // while its output to totals-out/0 waited for credits; the barrier overtook that copy of the last output, which
  // became in-flight data of 6 and so belonged to checkpoint 7 at the totals sink, while its log copy had gone out
  // before the barrier. The log was complete at 6; the run stopped before checkpoint 7 and judged the totals row.
  it("waits for the totals table to agree with the log, not only for the log (seed 961)", async () => {
    const r = await runSeed(961);
    expect(r.ok, describeFailure(r)).toBe(true);
  });
});

describe("replay", () => {
  it("runs a seed the same way every time", async () => {
    for (const seed of [3, 17]) {
      const a = await runSeed(seed);
      const b = await runSeed(seed);
      expect(b.digest).toBe(a.digest);
      expect(b.events).toBe(a.events);
    }
  });
});
