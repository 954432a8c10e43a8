/**
 * Keyed state larger than its memory budget, end to end (docs/state-backend.md).
 * The test Worker's `state-budget` job (test/fixtures/budget-jobs.ts) counts
 * the records of KEYS keys, each entry ≈ 400 bytes, on 2 subtasks with a
 * budget of 64 KiB each: ≈ 9× the budget per subtask. Most keys live in the
 * subtasks' SQLite images and are read back on access. Every round sends
 * each key once, so that after round r every key's row holds count r,
 * exactly: through evictions and read-backs, a SIGKILL of the runtime in
 * the middle of a round and the restore, and a savepoint (which must
 * include the evicted entries) restored at parallelism 3, then the last
 * checkpoint (run files) restored at parallelism 2.
 */
import { describe, expect, it } from "vitest";
import { resetSubtask } from "../support/crash.js";
import { countRounds, type Tally } from "../support/count-rounds.js";
import { type Engine, readTable, waitFor } from "../support/engine.js";
import { engineSet } from "../support/engines.js";

/** As PAD_CHARS and BUDGET_BYTES in test/fixtures/budget-jobs.ts (a Worker module: Node cannot import it). */
const PAD_CHARS = 300;
const BUDGET_BYTES = 64 * 1024;
const KEYS = 3000;

interface SubtaskMetrics {
  vertex: string;
  index: number;
  state_keys: number;
  state_bytes_in_memory: number;
  state_entries_evicted: number;
  state_readbacks: number;
}

const engines = engineSet();
const engineAt = engines.start;

const keys = Array.from({ length: KEYS }, (_, i) => `key-${i}`);

const { round, expectCounts } = countRounds({ stream: "budget-in", table: "budget-out", keys, padChars: PAD_CHARS, timeoutMs: 45_000 });

async function tallyMetrics(engine: Engine): Promise<SubtaskMetrics[]> {
  const m = (await (await engine.api("/v1/jobs/state-budget/metrics")).json()) as { subtasks: SubtaskMetrics[] };
  return m.subtasks.filter((s) => s.vertex === m.subtasks.find((x) => x.state_keys > 0)?.vertex);
}

/** Waits until every keyed subtask is within its budget (a checkpoint cleaned what was dirty, the eviction ran). */
async function withinBudget(engine: Engine, parallelism: number): Promise<SubtaskMetrics[]> {
  return waitFor(
    async () => {
      const subtasks = await tallyMetrics(engine);
      return subtasks.length === parallelism && subtasks.every((s) => s.state_bytes_in_memory <= BUDGET_BYTES) && subtasks;
    },
    30_000,
    "each subtask's keyed state within its budget",
  );
}

describe("keyed state under a memory budget", () => {
  it("counts exactly with state ≈ 9× the budget, through a SIGKILL and the restore, a savepoint restored at parallelism 3, and the last checkpoint's run files at parallelism 2", async () => {
    let engine = await engineAt();
    const started = await engine.api("/v1/jobs/state-budget/start", { method: "POST", json: {} });
    expect(started.status, await started.clone().text()).toBe(200);

    await round(engine);
    await expectCounts(engine, 1);
    const first = await withinBudget(engine, 2);
    for (const s of first) {
      // ≈ 1500 keys of ≈ 400 bytes: most of them are only in the image.
      expect(s.state_keys * (PAD_CHARS + 100), `subtask ${s.index}: state several times the budget`).toBeGreaterThan(5 * BUDGET_BYTES);
      expect(s.state_entries_evicted, `subtask ${s.index}`).toBeGreaterThan(s.state_keys / 2);
    }
    expect(first.reduce((n, s) => n + s.state_keys, 0)).toBe(KEYS);

    // Round 2 read back from the image, and a SIGKILL while it runs: the restore replays what was not committed.
    await round(engine);
    await waitFor(async () => [...(await readTable<Tally>(engine, "budget-out")).values()].some((t) => t.count === 2), 30_000, "round 2 under way");
    engine = await engines.crash(engine);
    await waitFor(async () => ((await (await engine.api("/v1/jobs/state-budget")).json()) as { restarts: number }).restarts >= 1, 30_000, "the restore after the crash");
    await expectCounts(engine, 2);
    await round(engine);
    await expectCounts(engine, 3);
    const afterCrash = await withinBudget(engine, 2);
    for (const s of afterCrash) expect(s.state_readbacks, `subtask ${s.index} read keys back from its image`).toBeGreaterThan(s.state_keys / 2);

    // A savepoint holds every key, evicted or not: restored at parallelism 3, every count goes on.
    const stop = await engine.api("/v1/jobs/state-budget/stop", { method: "POST", json: { savepoint: true } });
    expect(stop.status, await stop.clone().text()).toBe(200);
    const { id } = (await stop.json()) as { id: string };
    const restarted = await engine.api("/v1/jobs/state-budget/start", { method: "POST", json: { fromSavepoint: id, parallelism: { tally: 3 } } });
    expect(restarted.status, await restarted.clone().text()).toBe(200);
    expect(((await restarted.json()) as { parallelism: Record<string, number> }).parallelism.tally).toBe(3);
    await round(engine);
    await expectCounts(engine, 4);
    const rescaled = await withinBudget(engine, 3);
    expect(rescaled.reduce((n, s) => n + s.state_keys, 0)).toBe(KEYS);
    for (const s of rescaled) expect(s.state_entries_evicted, `subtask ${s.index}`).toBeGreaterThan(0);

    // The last checkpoint (the subtasks' run files, retained on cancel) restored at parallelism 2: each subtask
    // imports the key groups it owns from the three subtasks' files.
    expect((await engine.api("/v1/jobs/state-budget/cancel", { method: "POST" })).status).toBe(200);
    const history = ((await (await engine.api("/v1/jobs/state-budget/checkpoints")).json()) as { history: { id: number; status: string }[] }).history;
    const latest = Math.max(...history.filter((h) => h.status === "COMPLETED").map((h) => h.id));
    const bucket = await engine.mf.getR2Bucket("CHECKPOINTS");
    const metadata = JSON.parse(await (await bucket.get(`checkpoints/state-budget/chk-${latest}/_metadata`))!.text()) as {
      operators: Record<string, { parallelism: number; keyed: Record<string, { runs?: { file: string }[] }> }>;
    };
    const tally = Object.values(metadata.operators).find((o) => Object.keys(o.keyed).length > 0)!;
    expect(tally.parallelism).toBe(3);
    for (const h of Object.values(tally.keyed)) expect(h.runs!.length, "a handle of run files").toBeGreaterThan(0);
    const fromCheckpoint = await engine.api("/v1/jobs/state-budget/start", { method: "POST", json: { fromCheckpoint: latest, parallelism: { tally: 2 } } });
    expect(fromCheckpoint.status, await fromCheckpoint.clone().text()).toBe(200);
    await round(engine);
    await expectCounts(engine, 5);
    const scaledIn = await withinBudget(engine, 2);
    expect(scaledIn.reduce((n, s) => n + s.state_keys, 0)).toBe(KEYS);
  }, 300_000);

  it("stays exact when a keyed subtask loses its memory in the middle of each round (restores from its image, evicting on both sides)", async () => {
    const engine = await engineAt();
    const started = await engine.api("/v1/jobs/state-budget/start", { method: "POST", json: {} });
    expect(started.status, await started.clone().text()).toBe(200);
    await round(engine);
    await expectCounts(engine, 1);
    const vertex = (await withinBudget(engine, 2))[0].vertex;
    const status = async () => (await (await engine.api("/v1/jobs/state-budget")).json()) as { restarts: number; status: string };
    for (let r = 2; r <= 4; r++) {
      const restarts = (await status()).restarts;
      await round(engine);
      // Some of the round committed, some not: the reset subtask's uncommitted part is replayed after its restore.
      await waitFor(async () => [...(await readTable<Tally>(engine, "budget-out")).values()].some((t) => t.count === r), 30_000, `round ${r} under way`);
      await resetSubtask(engine, "state-budget", vertex, r % 2);
      await waitFor(async () => (await status()).restarts > restarts, 30_000, `the failover of round ${r}`);
      await expectCounts(engine, r);
    }
    // One more round after the last restore: every key is read back from the image (the counters are the new attempt's).
    await round(engine);
    await expectCounts(engine, 5);
    const subtasks = await withinBudget(engine, 2);
    for (const s of subtasks) expect(s.state_readbacks, `subtask ${s.index}`).toBeGreaterThan(s.state_keys / 2);
    expect((await status()).status).toBe("RUNNING");
  }, 240_000);
});
