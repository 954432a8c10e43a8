/**
 * Workload 4 on floe: recovery from a failure at a fixed point. The job
 * "bench-recovery" (generator source → keyed count, checkpoints every
 * `checkpointIntervalMs`) throws once on the event with seq `failAt`; the
 * restart strategy restarts at once (fixed-delay, 0 ms) from the last
 * completed checkpoint. Inside the runtime the job notes when it failed,
 * when the restored attempt processed its first event, and when it
 * processed the failed event again; it writes the three times to the table
 * "bench-recovery" (visible once the next checkpoint completes).
 *
 * - recovery_to_first_record_ms: failure → first event processed by the restored attempt;
 * - time_lost_ms: failure → the failed event processed again, i.e. the job is back where it failed.
 */
import { startEngine } from "../../test/support/engine.js";
import { BENCH_PARALLELISM } from "../generator.js";
import { type BenchResult, jobState, progress, startJob, until } from "./common.js";

export interface RecoveryBenchOptions {
  events: number;
  keys: number;
  seed: number;
  checkpointIntervalMs: number;
  failAt: number;
}

interface RecoveryRow {
  failed_at_ms: number;
  first_after_ms: number;
  replayed_at_ms: number;
}

export async function benchRecovery(o: RecoveryBenchOptions): Promise<BenchResult> {
  const engine = await startEngine({
    testJobs: true,
    bindings: { BENCH_EVENTS: String(o.events), BENCH_KEYS: String(o.keys), BENCH_SEED: String(o.seed), BENCH_FAIL_AT: String(o.failAt) },
  });
  try {
    await startJob(engine, "bench-recovery", {
      checkpoint: { interval_ms: o.checkpointIntervalMs },
      restart_strategy: { type: "fixed-delay", delay_ms: 0 },
    });
    let row: RecoveryRow | undefined;
    await until(
      "the failed event processed again",
      async () => {
        const res = await engine.api("/v1/tables/bench-recovery/recovery");
        if (res.status !== 200) {
          await res.arrayBuffer();
          return false;
        }
        row = ((await res.json()) as { value: RecoveryRow }).value;
        return true;
      },
      300_000,
      200,
    );
    const state = await jobState(engine, "bench-recovery");
    const checkpoints = (await (await engine.api("/v1/jobs/bench-recovery/checkpoints")).json()) as { latest: { restored: { id: number } | null } };
    progress(`recovery: first record ${row!.first_after_ms - row!.failed_at_ms} ms after the failure, back at the failed event after ${row!.replayed_at_ms - row!.failed_at_ms} ms`);
    return {
      bench: "recovery",
      engine: "floe",
      variant: `keys=${o.keys},checkpoint_ms=${o.checkpointIntervalMs}`,
      input: "generator source",
      state_backend: "heap+sqlite",
      parallelism: BENCH_PARALLELISM,
      events: o.events,
      keys: o.keys,
      seed: o.seed,
      checkpoint_interval_ms: o.checkpointIntervalMs,
      fail_at: o.failAt,
      restored_checkpoint: checkpoints.latest.restored?.id ?? null,
      restarts: state.restarts,
      recovery_to_first_record_ms: row!.first_after_ms - row!.failed_at_ms,
      time_lost_ms: row!.replayed_at_ms - row!.failed_at_ms,
    };
  } finally {
    await engine.dispose();
  }
}
