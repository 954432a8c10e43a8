/**
 * Workload 3: checkpoints of large keyed state, and recovery from them.
 *
 * Fills `keys` keys with `payloadBytes` of state each through HTTP
 * ingestion (records `{"k":"key-<i>","p":payload(1, i)}`, incompressible;
 * the Flink peer's gated source emits the same), takes a first checkpoint
 * (full), changes `changedFraction` of the keys (key-<(j·97) mod keys>,
 * payload(2, j)),
 * takes a second one (incremental when configured), then resets a keyed
 * subtask and measures the time until the restored job processes its first
 * record (from the local SQLite image, or from R2).
 */
import { subtaskName } from "../../src/runtime/names.js";
import { type Engine, startEngine } from "../../test/support/engine.js";
import { payload } from "../generator.js";
import { type BenchResult, isDroppedRequest, progress, sleep, until } from "./common.js";

export interface CheckpointBenchOptions {
  keys: number;
  payloadBytes: number;
  changedFraction: number;
  incremental: boolean;
  localRecovery: boolean;
}

interface Entry {
  id: number;
  status: string;
  end_to_end_duration: number;
  checkpointed_size: number;
  state_size: number;
  sync_duration: number;
  async_duration: number;
}

/**
 * Ingests `records` in requests of `perRequest`. Each request carries an
 * Idempotency-Key, so that one the busy local runtime dropped can be sent
 * again without storing its records twice.
 */
async function ingestAll(engine: Engine, phase: string, records: string[], perRequest = 10_000, concurrency = 1): Promise<void> {
  let next = 0;
  const send = async () => {
    while (next < records.length) {
      const first = next;
      next += perRequest;
      const body = records.slice(first, first + perRequest).join("\n");
      for (let tries = 1; ; tries++) {
        try {
          const res = await engine.api("/v1/ingest/bench-state", {
            method: "POST",
            body,
            headers: { "content-type": "application/x-ndjson", "idempotency-key": `bench-${phase}-${first}` },
          });
          if (res.status !== 200) throw new Error(`ingest failed: ${res.status} ${await res.text()}`);
          await res.arrayBuffer();
          break;
        } catch (e) {
          if (!isDroppedRequest(e) || tries >= 20) throw e;
          await sleep(500);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, send));
}

async function keyedRecordsIn(engine: Engine, attempt?: number): Promise<number> {
  const m = (await (await engine.api("/v1/jobs/bench-state/metrics")).json()) as { subtasks: { vertex: string; records_in: number; attempt: number }[] };
  return m.subtasks.filter((s) => s.vertex === "latest" && (attempt === undefined || s.attempt === attempt)).reduce((a, s) => a + s.records_in, 0);
}

async function checkpoint(engine: Engine): Promise<Entry> {
  const res = await engine.api("/v1/jobs/bench-state/checkpoints", { method: "POST" });
  if (res.status !== 202) throw new Error(`trigger failed: ${res.status} ${await res.text()}`);
  const { id } = (await res.json()) as { id: number };
  let entry: Entry | undefined;
  await until(`checkpoint ${id}`, async () => {
    entry = (await (await engine.api(`/v1/jobs/bench-state/checkpoints/${id}`)).json()) as Entry;
    if (entry.status === "FAILED") throw new Error(`checkpoint ${id} failed`);
    return entry.status === "COMPLETED";
  });
  return entry!;
}

export async function benchCheckpoints(o: CheckpointBenchOptions): Promise<BenchResult> {
  const engine = await startEngine({ testJobs: true });
  try {
    const start = await engine.api("/v1/jobs/bench-state/start", {
      method: "POST",
      json: {
        config: {
          checkpoint: { interval_ms: 3_600_000, incremental: o.incremental, full_every: 100, local_recovery: o.localRecovery },
          restart_strategy: { type: "fixed-delay", delay_ms: 0 },
        },
      },
    });
    if (start.status !== 200) throw new Error(`start failed: ${await start.text()}`);
    const all = Array.from({ length: o.keys }, (_, i) => `{"k":"key-${i}","p":"${payload(1, i, o.payloadBytes)}"}`);
    await ingestAll(engine, "fill", all);
    await until("every record processed", async () => (await keyedRecordsIn(engine)) >= o.keys);

    progress(`filled ${o.keys} keys; first checkpoint`);
    const first = await checkpoint(engine);
    progress(`first checkpoint: ${first.end_to_end_duration} ms`);
    const changed = Math.round(o.keys * o.changedFraction);
    await ingestAll(engine, "change", Array.from({ length: changed }, (_, i) => `{"k":"key-${(i * 97) % o.keys}","p":"${payload(2, i, o.payloadBytes)}"}`));
    await until("the changes processed", async () => (await keyedRecordsIn(engine)) >= o.keys + changed);
    const second = await checkpoint(engine);
    progress(`second checkpoint: ${second.end_to_end_duration} ms; failing a subtask`);

    // Failure: one keyed subtask loses its memory; the next record sent to it finds out at once.
    const status = (await (await engine.api("/v1/jobs/bench-state")).json()) as { attempt: number };
    const ns = await engine.mf.getDurableObjectNamespace("SUBTASK");
    const failedAt = performance.now();
    await (ns.get(ns.idFromName(subtaskName("bench-state", "latest", 0))) as unknown as { reset(): Promise<void> }).reset().catch(() => undefined);
    await ingestAll(engine, "after-failure", Array.from({ length: 64 }, (_, i) => `{"k":"key-${i}","p":"z"}`), 64, 1);
    let restartedAttempt = status.attempt;
    await until("the first record after the restore", async () => {
      const s = (await (await engine.api("/v1/jobs/bench-state")).json()) as { attempt: number; status: string };
      if (s.status !== "RUNNING" || s.attempt === status.attempt) return false;
      restartedAttempt = s.attempt;
      return (await keyedRecordsIn(engine, s.attempt)) > 0;
    }, 300_000, 5);
    const recoveryMs = performance.now() - failedAt;
    // With the image, the same checkpoint restored at parallelism 1 reads R2 (a scale-in: each file lies within the
    // subtask's key groups, so the restore opens them and reads their blocks by key, docs/state-backend.md).
    const fromR2 = o.incremental && o.localRecovery ? await restoreFromR2(engine, second.id, 1, "r2_restore") : {};
    // And at parallelism 4 (a rescale out: each file holds two subtasks' key groups, and each opens it clipped to its own).
    const rescaledOut = o.incremental && o.localRecovery ? await restoreFromR2(engine, second.id, 4, "r2_rescale_out") : {};
    return {
      bench: "checkpoint_size",
      engine: "floe",
      variant: `keys=${o.keys},incremental=${o.incremental},local_recovery=${o.localRecovery}`,
      input: "HTTP ingestion",
      state_backend: "heap+sqlite",
      parallelism: 2,
      keys: o.keys,
      payload_bytes: o.payloadBytes,
      state_mb: Math.round((second.state_size / 1e6) * 10) / 10,
      state_size_bytes: second.state_size,
      incremental: o.incremental,
      local_recovery: o.localRecovery,
      full_checkpoint_ms: first.end_to_end_duration,
      full_checkpoint_sync_ms: first.sync_duration,
      full_checkpoint_bytes: first.checkpointed_size,
      changed_fraction: o.changedFraction,
      second_checkpoint_ms: second.end_to_end_duration,
      second_checkpoint_sync_ms: second.sync_duration,
      second_checkpoint_bytes: second.checkpointed_size,
      recovery_to_first_record_ms: Math.round(recoveryMs),
      restarted_attempt: restartedAttempt,
      ...fromR2,
      ...rescaledOut,
    };
  } finally {
    await engine.dispose();
  }
}

interface LatestMetrics {
  vertex: string;
  attempt: number;
  records_in: number;
  state_restore_blocks: number;
  state_restore_blocks_missing: number;
  state_restore_demand_reads: number;
  state_restore_wait_ms: number;
}

/**
 * Cancels the job and starts it from checkpoint `id` with its keyed
 * operator at `parallelism`: the time from the start request to the first
 * record processed (by any subtask), and to the last block of every
 * subtask's lazy restore stored. Fields are named `<name>_…`.
 */
async function restoreFromR2(engine: Engine, id: number, parallelism: number, name: string): Promise<Record<string, number>> {
  const cancel = await engine.api("/v1/jobs/bench-state/cancel", { method: "POST" });
  if (cancel.status !== 200) throw new Error(`cancel failed: ${cancel.status} ${await cancel.text()}`);
  progress(`restoring checkpoint ${id} at parallelism ${parallelism} from R2`);
  const startedAt = performance.now();
  const res = await engine.api("/v1/jobs/bench-state/start", {
    method: "POST",
    json: { fromCheckpoint: id, parallelism: { latest: parallelism }, config: { checkpoint: { interval_ms: 3_600_000, incremental: true, full_every: 100, local_recovery: true } } },
  });
  if (res.status !== 200) throw new Error(`start from checkpoint ${id} failed: ${res.status} ${await res.text()}`);
  const { attempt } = (await (await engine.api("/v1/jobs/bench-state")).json()) as { attempt: number };
  const latest = async () => {
    const m = (await (await engine.api("/v1/jobs/bench-state/metrics")).json()) as { subtasks: LatestMetrics[] };
    return m.subtasks.filter((x) => x.vertex === "latest" && x.attempt === attempt);
  };
  // The source replays what followed the checkpoint (the records sent after the failure).
  await until("the first record after the restore from R2", async () => (await latest()).some((m) => m.records_in > 0), 300_000, 5);
  const first = performance.now();
  let m: LatestMetrics[] = [];
  await until("the lazy restore's last block", async () => (m = await latest()).length === parallelism && m.every((x) => x.state_restore_blocks_missing === 0), 300_000, 5);
  const whole = performance.now();
  const sum = (f: (x: LatestMetrics) => number) => m.reduce((n, x) => n + f(x), 0);
  return {
    [`${name}_to_first_record_ms`]: Math.round(first - startedAt),
    [`${name}_whole_ms`]: Math.round(whole - startedAt),
    [`${name}_blocks`]: sum((x) => x.state_restore_blocks),
    [`${name}_demand_reads`]: sum((x) => x.state_restore_demand_reads),
    [`${name}_wait_ms`]: Math.max(...m.map((x) => x.state_restore_wait_ms)),
  };
}
