/**
 * End-to-end exactly-once under faults, through every two-phase-commit sink.
 * `npm run chaos` runs the same for longer.
 */
import { describe, expect, it } from "vitest";
import { Random } from "../support/random.js";
import { runSinksChaos } from "../support/sinks-chaos.js";

const SEEDS = (process.env.FLOE_CHAOS_SEEDS ?? "101,202").split(",").map(Number);

describe("exactly-once sinks under faults", () => {
  for (const seed of SEEDS) {
    it(`seed ${seed}: table, R2 files and webhook hold exactly the expected output`, async () => {
      const r = await runSinksChaos({ random: new Random(seed), events: 100_000, users: 300, perRequest: 1000, faultRate: 0.12, userFaultRate: 0.05 });
      console.log(`seed ${seed}: ${JSON.stringify(r)}`);
      expect(r.problems, `replay: FLOE_CHAOS_SEEDS=${seed} npx vitest run test/integration/exactly-once.test.ts`).toEqual([]);
      expect(r.events).toBe(100_000);
      expect(Object.values(r.faults).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      expect(r.restarts).toBeGreaterThan(0);
      expect(r.betweenPreCommitAndCommit, "faults that landed between pre-commit and commit").toBeGreaterThan(0);
    }, 300_000);
  }
});
