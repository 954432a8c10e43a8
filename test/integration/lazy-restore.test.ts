/**
 * A restore from R2 that reads keyed state lazily, by key group
 * (docs/state-backend.md, "Lazy restores"), end to end in workerd. The test
 * Worker's `lazy-restore` job (test/fixtures/budget-jobs.ts) counts the
 * records of KEYS keys, each entry ≈ 400 bytes, on 2 subtasks. Its last
 * checkpoint, restored at parallelism 1, gives the one subtask both
 * subtasks' run files: each lies within its range, so it is opened, not
 * read, and its blocks come by key group as records need them and in the
 * background. Every round sends each key once, so that after round r every
 * key's row holds count r, exactly: through the lazy restore, a second one
 * of the same checkpoint (the source replays the stream from its offsets)
 * with a SIGKILL of the runtime in its first round, and the restore after
 * it. Then rescaled out (1 -> 3): each subtask opens the one handle's files
 * clipped to its key groups, reads only their blocks, counts its keys once
 * they are in, and its first checkpoint references the shared files with its
 * clip; and from there rescaled again (3 -> 2), the clips cut once more,
 * with a SIGKILL in the first round.
 */
import { describe, expect, it } from "vitest";
import { readRunFooter, readRunMeta } from "../../src/state/runs/run-file.js";
import { countRounds } from "../support/count-rounds.js";
import { type Engine, waitFor } from "../support/engine.js";
import { engineSet } from "../support/engines.js";

/** As PAD_CHARS in test/fixtures/budget-jobs.ts (a Worker module: Node cannot import it). */
const PAD_CHARS = 300;
const KEYS = 8000;

interface SubtaskMetrics {
  vertex: string;
  index: number;
  state_keys: number;
  state_restore_blocks: number;
  state_restore_blocks_missing: number;
  state_restore_demand_reads: number;
  state_restore_wait_ms: number;
}

const engines = engineSet();
const keys = Array.from({ length: KEYS }, (_, i) => `key-${i}`);

const { round, expectCounts } = countRounds({ stream: "lazy-in", table: "lazy-out", keys, padChars: PAD_CHARS, timeoutMs: 60_000 });

/** The keyed (tally) subtasks' metrics. */
async function tally(engine: Engine): Promise<SubtaskMetrics[]> {
  const m = (await (await engine.api("/v1/jobs/lazy-restore/metrics")).json()) as { subtasks: SubtaskMetrics[] };
  return m.subtasks.filter((s) => s.vertex === m.subtasks.find((x) => x.state_keys > 0)?.vertex);
}

/** Starts the job from checkpoint `id` with its tally at `parallelism`. */
async function startFrom(engine: Engine, id: number, parallelism: number): Promise<void> {
  const res = await engine.api("/v1/jobs/lazy-restore/start", { method: "POST", json: { fromCheckpoint: id, parallelism: { tally: parallelism } } });
  expect(res.status, await res.clone().text()).toBe(200);
}

/** The tally's `parallelism` subtasks, once each one's lazy restore has stored its last block. */
function filled(engine: Engine, parallelism: number, what: string): Promise<SubtaskMetrics[]> {
  return waitFor(
    async () => {
      const subtasks = await tally(engine);
      return subtasks.length === parallelism && subtasks.every((s) => s.state_restore_blocks_missing === 0) && subtasks;
    },
    30_000,
    what,
  );
}

/**
 * Starts the job from checkpoint `id` at `parallelism`, SIGKILLs the runtime
 * while the first round runs, and sends a second: every key is counted
 * `counted + 1`, then `counted + 2` times. Returns the restarted engine.
 */
async function restoreThroughCrash(engine: Engine, id: number, parallelism: number, counted: number): Promise<Engine> {
  await startFrom(engine, id, parallelism);
  await round(engine);
  const restarted = await engines.crash(engine);
  await expectCounts(restarted, counted + 1);
  await round(restarted);
  await expectCounts(restarted, counted + 2);
  return restarted;
}

/** The state run files (not the timers') that checkpoint `id` references. */
async function stateFiles(engine: Engine, id: number): Promise<string[]> {
  const bucket = await engine.mf.getR2Bucket("CHECKPOINTS");
  const metadata = JSON.parse(await (await bucket.get(`checkpoints/lazy-restore/chk-${id}/_metadata`))!.text()) as {
    operators: Record<string, { keyed: Record<string, { runs?: { file: string; store: "states" | "timers" }[] }> }>;
  };
  const files = new Set<string>();
  for (const op of Object.values(metadata.operators)) for (const h of Object.values(op.keyed)) for (const r of h.runs ?? []) if (r.store === "states") files.add(r.file);
  return [...files];
}

/** The blocks of `files` (run files), from their metas in R2. */
async function blocksOf(engine: Engine, files: readonly string[]): Promise<number> {
  const bucket = await engine.mf.getR2Bucket("CHECKPOINTS");
  let blocks = 0;
  for (const file of files) {
    const bytes = new Uint8Array(await (await bucket.get(file))!.arrayBuffer());
    const { metaOffset, metaLength } = readRunFooter(bytes);
    blocks += readRunMeta(bytes.subarray(metaOffset, metaOffset + metaLength)).blocks;
  }
  return blocks;
}

/** The ids of the completed checkpoints in the job's history. */
async function completedCheckpoints(engine: Engine): Promise<number[]> {
  const history = ((await (await engine.api("/v1/jobs/lazy-restore/checkpoints")).json()) as { history: { id: number; status: string }[] }).history;
  return history.filter((h) => h.status === "COMPLETED").map((h) => h.id);
}

async function latestCheckpoint(engine: Engine): Promise<number> {
  return Math.max(...(await completedCheckpoints(engine)));
}

describe("lazy restore from R2", () => {
  it("restores two subtasks' run files into one lazily, by key group, then rescales out by clipping shared files, and counts exactly through SIGKILLs", async () => {
    let engine = await engines.start();
    const started = await engine.api("/v1/jobs/lazy-restore/start", { method: "POST", json: {} });
    expect(started.status, await started.clone().text()).toBe(200);
    await round(engine);
    await expectCounts(engine, 1);

    // The last checkpoint holds each subtask's state as run files (incremental, the default).
    expect((await engine.api("/v1/jobs/lazy-restore/cancel", { method: "POST" })).status).toBe(200);
    const latest = await latestCheckpoint(engine);
    const bucket = await engine.mf.getR2Bucket("CHECKPOINTS");
    const metadata = JSON.parse(await (await bucket.get(`checkpoints/lazy-restore/chk-${latest}/_metadata`))!.text()) as {
      operators: Record<string, { parallelism: number; keyed: Record<string, { keyGroups: { start: number; end: number }; runs?: unknown[] }> }>;
    };
    const handles = Object.values(Object.values(metadata.operators).find((o) => Object.keys(o.keyed).length > 0)!.keyed);
    expect(handles.length).toBe(2);
    for (const h of handles) expect(h.runs?.length, "a handle of run files").toBeGreaterThan(0);

    // At parallelism 1 the subtask owns key groups 0..15: both handles lie within, and are opened lazily.
    await startFrom(engine, latest, 1);
    await round(engine);
    await expectCounts(engine, 2);
    const [whole] = await filled(engine, 1, "the lazy restore's last block stored");
    expect(whole.state_keys).toBe(KEYS);
    expect(whole.state_restore_blocks, "blocks read lazily (0: the restore read the files whole)").toBeGreaterThan(0);
    console.log(
      `lazy restore of ${KEYS} keys: ${whole.state_restore_blocks} blocks, ${whole.state_restore_demand_reads} reads on demand, records waited ${whole.state_restore_wait_ms} ms`,
    );

    // The same checkpoint again, and a SIGKILL while the first round runs. The source replays the stream from the
    // checkpoint's offsets (round 2, then round 3): whether the fill had ended or not at the crash (a restarted
    // object forgets runs not whole, and reads R2 again), every key is counted once per round.
    expect((await engine.api("/v1/jobs/lazy-restore/cancel", { method: "POST" })).status).toBe(200);
    engine = await restoreThroughCrash(engine, latest, 1, 2);
    const after = await tally(engine);
    expect(after.length).toBe(1);
    expect(after[0].state_keys).toBe(KEYS);

    // Rescaled out, 1 -> 3: each subtask owns part of the one handle's files. It opens them clipped to its key
    // groups, reads only their blocks, and counts its keys once they are in. Rounds 2 and 3 added runs: from a
    // checkpoint taken once the compactions due among them are done (three checkpoints in a row reference the same
    // files), the subtasks restored at parallelism 3 find none due either (a clipped run counts its file's size), and
    // their next checkpoint shares those files instead of a merged run of their own.
    let files = "";
    let seen = 0;
    let same = 0;
    await waitFor(
      async () => {
        const id = await latestCheckpoint(engine);
        if (id === seen) return false;
        seen = id;
        const now = (await stateFiles(engine, id)).join();
        same = now === files ? same + 1 : 0;
        files = now;
        return same >= 3;
      },
      30_000,
      "three checkpoints in a row of the same state files",
    );
    expect((await engine.api("/v1/jobs/lazy-restore/cancel", { method: "POST" })).status).toBe(200);
    const single = await latestCheckpoint(engine);
    const singleFiles = await stateFiles(engine, single);
    await startFrom(engine, single, 3);
    await round(engine);
    await expectCounts(engine, 5);
    const split = await filled(engine, 3, "the three clipped restores' last blocks stored");
    // Each counts its own keys once its blocks are in: together, every key once.
    await waitFor(async () => (await tally(engine)).reduce((n, s) => n + s.state_keys, 0) === KEYS, 10_000, `the three subtasks' keys adding up to ${KEYS}`);
    for (const s of split) expect(s.state_restore_blocks, `subtask ${s.index} read its part lazily`).toBeGreaterThan(0);
    // Clipped, not divided: the three read about the blocks of the checkpoint's state files between them, not three
    // times them (boundary blocks twice).
    const fileBlocks = await blocksOf(engine, singleFiles);
    console.log(`rescaled 1 -> 3 lazily: blocks ${split.map((s) => s.state_restore_blocks).join(", ")} (the checkpoint's state files hold ${fileBlocks})`);
    expect(split.reduce((n, s) => n + s.state_restore_blocks, 0)).toBeLessThan(1.5 * fileBlocks);

    // Its first checkpoint references the shared files with each subtask's clip, instead of uploading its part again.
    // (A later one may not: rounds 5 and 6 rewrite every key, and the runs they add may grow large enough for a
    // compaction to merge a clipped run, which then goes up as the subtask's own.)
    const firstAfter = await waitFor(
      async () => {
        const ids = (await completedCheckpoints(engine)).filter((id) => id > single);
        return ids.length > 0 && Math.min(...ids);
      },
      30_000,
      "a checkpoint after the rescale",
    );
    await round(engine);
    await expectCounts(engine, 6);
    expect((await engine.api("/v1/jobs/lazy-restore/cancel", { method: "POST" })).status).toBe(200);
    const clipped = JSON.parse(await (await (await engine.mf.getR2Bucket("CHECKPOINTS")).get(`checkpoints/lazy-restore/chk-${firstAfter}/_metadata`))!.text()) as {
      operators: Record<string, { keyed: Record<string, { keyGroups: { start: number; end: number }; entries: number; runs?: { file: string; keyGroups?: { start: number; end: number } }[] }> }>;
    };
    const splitHandles = Object.values(Object.values(clipped.operators).find((o) => Object.keys(o.keyed).length > 0)!.keyed);
    expect(splitHandles.length).toBe(3);
    // Its handles count every key (a checkpoint taken while a subtask still counted its keys waited for that count).
    expect(splitHandles.reduce((n, h) => n + h.entries, 0)).toBe(KEYS);
    for (const h of splitHandles) {
      const shared = h.runs!.filter((r) => r.keyGroups);
      expect(shared.length, "a file shared with its clip").toBeGreaterThan(0);
      for (const r of shared) expect(r.keyGroups).toEqual(h.keyGroups);
    }

    // Rescaled again, 3 -> 2, from that checkpoint: the clipped references are clipped once more (a new subtask's
    // range cuts across an old one's), with a SIGKILL in the first round. The restored job reads again what came
    // after that checkpoint (round 6 at least), so every key is counted once per round of the stream.
    engine = await restoreThroughCrash(engine, firstAfter, 2, 6);
    await filled(engine, 2, "the restore at parallelism 2 whole");
    await waitFor(async () => (await tally(engine)).reduce((n, s) => n + s.state_keys, 0) === KEYS, 10_000, `the two subtasks' keys adding up to ${KEYS}`);
  }, 360_000);
});
