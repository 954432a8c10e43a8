/**
 * What a restore costs on the run image (src/storage/run-image.ts), for the
 * decision in docs/state-backend.md ("Restoring a checkpoint SQLite has
 * moved past"): the real RunImage on a file database (node:sqlite, WAL, no
 * fsync: a Durable Object commits at its output gate) under Durable Object
 * limits, without the Workers runtime.
 *
 *   npx tsx scripts/measure-local-restore.ts [keys] [valueBytes]
 *
 * 1. Restore checkpoint 1 "from R2": a full state file (NDJSON, as
 *    uploaded) parsed and written as runs; the download is not counted.
 * 2. Checkpoints 2..6 change 1% of the keys each, written back as runs;
 *    checkpoint 4 completes, and compaction merges runs 1..4.
 * 3. The object restarts; restore 5 (6 was written but never completed):
 *    SQLite has moved past 5, and the run of 6 is dropped.
 * 4. Restore 5 again, with nothing above it (the usual failover).
 * 5. Restore 3: since 5 completed, compaction merged the runs up to it, so
 *    the image cannot reach 3: R2.
 *
 * Each restore is timed to its first read of a key (the first record), in
 * CPU and wall time; the machine is shared, so CPU time is the steadier.
 */
import { mkdirSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { keyText } from "../src/graph/key-groups.js";
import { keyGroupOfText, type StateEntry } from "../src/state/keyed-state.js";
import { encodeEntries, SnapshotReader, SnapshotWriter } from "../src/state/snapshot-format.js";
import { RunImage } from "../src/storage/run-image.js";
import { doSql } from "../test/support/do-sql.js";

const N = Number(process.argv[2] ?? 1_000_000);
const VALUE_BYTES = Number(process.argv[3] ?? 100);
const MAX_PARALLELISM = 128;
const RANGE = { start: 0, end: MAX_PARALLELISM - 1 };
const noTurn = async () => undefined;

const dir = join(tmpdir(), `floe-restore-${process.pid}`);
mkdirSync(dir, { recursive: true });
const db = new DatabaseSync(join(dir, "object.sqlite"));
db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF");
const sql = doSql(db);

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
async function timed<T>(fn: () => Promise<T> | T): Promise<{ value: T; cpuMs: number; wallMs: number }> {
  const c = cpuMs();
  const w = performance.now();
  const value = await fn();
  return { value, cpuMs: Math.round(cpuMs() - c), wallMs: Math.round(performance.now() - w) };
}

const texts = Array.from({ length: N }, (_, i) => keyText(`user-${i}`));
const groups = texts.map((t) => keyGroupOfText(t, MAX_PARALLELISM));
const pad = "x".repeat(Math.max(0, VALUE_BYTES - 20));
const entry = (i: number, version: number): StateEntry => ({ state: "profile", kind: "value", key: texts[i], keyGroup: groups[i], value: { v: version, p: pad } });

/** The full state file of checkpoint 1, as uploaded. */
function stateFile(): string[] {
  const w = new SnapshotWriter();
  for (let i = 0; i < N; i++) w.add("profile", "value", groups[i], texts[i], JSON.stringify(entry(i, 1).value));
  return w.finish({ uid: "op", kind: "full", checkpointId: 1 });
}

/** A restore from R2 as SubtaskCore does it, from text already downloaded. */
async function restoreFromFile(image: RunImage, checkpointId: number, file: readonly string[]): Promise<void> {
  image.clearOperator("op");
  const restoring = image.restoring("op", checkpointId);
  const reader = new SnapshotReader((e) => restoring.add(e), RANGE);
  for (const chunk of file) {
    reader.push(`${chunk}\n`);
    if (restoring.full) await restoring.flush(noTurn);
  }
  reader.end();
  await restoring.flush(noTurn);
}

/** The first record after a restore: one key read through the image. */
function firstRead(image: RunImage, keys: number): unknown {
  const i = 12345 % N;
  return image.backing("op", keys).get("profile", texts[i], groups[i])?.value;
}

const out: Record<string, unknown> = { node: process.version, keys: N, valueBytes: VALUE_BYTES, loadAverage1m: Math.round(loadavg()[0] * 100) / 100 };
const file = stateFile();
out.fileBytes = file.reduce((n, c) => n + c.length, 0);

let image = new RunImage(sql, { pause: noTurn });
await image.halt();
const fromR2 = await timed(async () => {
  await restoreFromFile(image, 1, file);
  return firstRead(image, N);
});
image.mark(1, RANGE, { op: N });
image.resume(1);
await image.idle();
out.restoreFromFile = { cpuMs: fromR2.cpuMs, wallMs: fromR2.wallMs, runs: image.runs("op").states.length };

// Checkpoints 2..6, 1% of the keys each; 4 completes and compaction merges 1..4.
const changed = Math.max(1, Math.floor(N / 100));
const writeBacks: number[] = [];
for (let c = 2; c <= 6; c++) {
  const t = await timed(async () => {
    const w = image.begin(c);
    for (let j = 0; j < changed; j += 2000) {
      const slice: StateEntry[] = [];
      for (let k = j; k < Math.min(j + 2000, changed); k++) slice.push(entry((k * 7919 + c * 104729) % N, c));
      w.add("op", encodeEntries(slice));
    }
    await w.seal(noTurn);
    image.mark(c, RANGE, { op: N });
  });
  writeBacks.push(t.cpuMs);
  if (c === 4) {
    const compaction = await timed(async () => {
      image.kick(4);
      await image.idle();
    });
    out.compactionOf1to4 = { cpuMs: compaction.cpuMs, wallMs: compaction.wallMs };
  }
}
out.writeBackOf1PercentCpuMs = writeBacks;
out.runsBeforeFailover = image.runs("op").states.map((r) => `${r.firstEpoch}..${r.epoch}`);

// The object restarts: a new image over the same database, each restore timed to its first read.
async function restore(checkpointId: number): Promise<Record<string, unknown>> {
  image = new RunImage(sql, { pause: noTurn });
  let from = "image";
  const t = await timed(async () => {
    await image.halt();
    let keys = image.localRestore("op", checkpointId, RANGE);
    if (keys === undefined) {
      from = "file";
      await restoreFromFile(image, checkpointId, file);
      keys = N;
    }
    return firstRead(image, keys);
  });
  image.mark(checkpointId, RANGE, { op: N });
  const background = await timed(async () => {
    image.resume(checkpointId);
    await image.idle();
  });
  return { from, cpuMs: t.cpuMs, wallMs: t.wallMs, backgroundCpuMs: background.cpuMs, runs: image.runs("op").states.map((r) => `${r.firstEpoch}..${r.epoch}`) };
}
out.restore5PastIt = await restore(5);
out.restore5Again = await restore(5);
// The file of 3 is the file of 1 here: the restore's cost, not its content, is measured.
out.restore3Compacted = await restore(3);
out.sqliteBytes = sql.exec<{ n: number }>(`SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()`).one().n;

rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify(out, null, 2));
