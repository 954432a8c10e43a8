/**
 * Checkpoints and recovery under injected faults: a two-input keyed job
 * (alignment matters) gets user-code exceptions, subtask resets, coordinator
 * resets and kills of the whole runtime at random moments; its keyed state,
 * read through the table, must equal the exact fold of the input.
 */
import { describe, expect, it } from "vitest";
import { runChaos, waitForExactTable } from "../support/chaos-job.js";
import { waitFor } from "../support/engine.js";
import { Random } from "../support/random.js";

const SEEDS = (process.env.FLOE_FAULT_SEEDS ?? "11,23,37").split(",").map(Number);
/** Seeds that run aligned checkpoints with an alignment timeout (unaligned after 30 ms). */
const TIMEOUT_SEEDS = (process.env.FLOE_FAULT_TIMEOUT_SEEDS ?? "53").split(",").filter(Boolean).map(Number);

describe("keyed state is exactly-once under faults", () => {
  for (const [seed, withTimeout] of [...SEEDS.map((s) => [s, false] as const), ...TIMEOUT_SEEDS.map((s) => [s, true] as const)]) {
    it(`seed ${seed}${withTimeout ? " (alignment timeout)" : ""}`, async () => {
      const random = new Random(seed);
      const incremental = random.chance(0.5);
      const localRecovery = random.chance(0.5);
      const drawn = process.env.FLOE_FAULT_UNALIGNED ? process.env.FLOE_FAULT_UNALIGNED === "1" : random.chance(0.5);
      const unaligned = withTimeout || drawn;
      const timeout = withTimeout ? { aligned_checkpoint_timeout_ms: 30 } : {};
      const { engine, faults, expected } = await runChaos({
        random,
        events: 3000,
        keys: 40,
        perRequest: 100,
        faultRate: 0.25,
        faults: ["user-exception", "subtask-reset", "coordinator-reset", "process-kill"],
        config: { checkpoint: { interval_ms: 100, incremental, full_every: 3, local_recovery: localRecovery, unaligned, ...timeout }, restart_strategy: { type: "fixed-delay", delay_ms: 20 } },
      });
      try {
        const diff = await waitForExactTable(engine, expected, 60_000);
        type Status = { status: string; restarts: number; last_error: string | null };
        // A fault detected late (a lost heartbeat) may still be restarting the job: it must get back to RUNNING.
        let status = (await (await engine.api("/v1/jobs/chaos")).json()) as Status;
        await waitFor(async () => {
          status = (await (await engine.api("/v1/jobs/chaos")).json()) as Status;
          return status.status === "RUNNING";
        }, 30_000, "the job RUNNING again").catch(() => undefined);
        const injected = Object.values(faults).reduce((a, b) => a + b, 0);
        console.log(`seed ${seed} (incremental ${incremental}, local recovery ${localRecovery}, unaligned ${unaligned}${withTimeout ? " after 30 ms" : ""}): faults ${JSON.stringify(faults)}, restarts ${status.restarts}`);
        if (diff.length > 0) {
          const overview = (await (await engine.api("/v1/jobs/chaos/checkpoints")).json()) as { counts: unknown; history: unknown[] };
          const metrics = await (await engine.api("/v1/jobs/chaos/metrics")).json();
          console.log(JSON.stringify({ status, diff: diff.slice(0, 8), counts: overview.counts, history: overview.history.slice(0, 5), metrics }, null, 1));
        }
        expect(diff.slice(0, 5), `replay: FLOE_FAULT_SEEDS=${seed} npx vitest run test/integration/fault-injection.test.ts`).toEqual([]);
        expect(status.status, `last error: ${status.last_error}`).toBe("RUNNING");
        expect(injected).toBeGreaterThan(0);
        expect(status.restarts).toBeGreaterThan(0);
      } finally {
        await engine.dispose();
      }
    }, 180_000);
  }
});
