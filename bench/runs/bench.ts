/**
 * Figures of the run store (src/state/runs) on Node 22's SQLite under
 * Durable Object limits. Prints one JSON object and writes it to
 * bench/out/runs.json. (Until the run store became the local image, this
 * also wrote the same entries row by row into the image it replaced: see
 * docs/state-backend.md for the last figures of both.)
 *
 *   npx tsx bench/runs/bench.ts [--entries 1000000] [--file true]
 *
 * Each figure is the best of `--reps` repetitions, as wall time and as
 * this process's CPU time: on a shared machine the CPU time is the steadier
 * of the two. The load average at the start is printed beside them.
 * Databases are files in WAL mode without fsync (a Durable Object commits
 * at its output gate, not per statement), or memory with `--file false`.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import { hashKey } from "../../src/graph/key-groups.js";
import { BlockCache } from "../../src/state/runs/block-cache.js";
import { RunStore } from "../../src/state/runs/run-store.js";
import { decodeValue } from "../../src/state/runs/value-codec.js";
import { doSql } from "../../test/support/do-sql.js";

const { values: args } = parseArgs({
  options: { entries: { type: "string", default: "1000000" }, reps: { type: "string", default: "3" }, file: { type: "string", default: "true" } },
});
const N = Number(args.entries);
const REPS = Number(args.reps);
const MAX_PARALLELISM = 128;
const noPause = async () => {};

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Best wall and CPU milliseconds of `reps` runs of `fn` (each given a fresh setup). */
async function best<S>(reps: number, setup: () => S, fn: (s: S) => unknown): Promise<{ wallMs: number; cpuMs: number }> {
  let wall = Infinity;
  let cpu = Infinity;
  for (let r = 0; r < reps; r++) {
    const s = setup();
    const w0 = performance.now();
    const c0 = cpuMs();
    await fn(s);
    wall = Math.min(wall, performance.now() - w0);
    cpu = Math.min(cpu, cpuMs() - c0);
  }
  return { wallMs: round(wall), cpuMs: round(cpu) };
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

let dbCount = 0;
const dir = join(tmpdir(), `floe-runs-bench-${process.pid}`);
mkdirSync(dir, { recursive: true });
/** A database as a Durable Object has one: a file (or memory with --file false). */
function database(): DatabaseSync {
  if (args.file !== "true") return new DatabaseSync(":memory:");
  const db = new DatabaseSync(join(dir, `db-${dbCount++}.sqlite`));
  // A Durable Object commits at its output gate and replicates; it does not fsync each statement.
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF");
  return db;
}

// A keyed count: string keys of about 10 characters, small integer values.
const keys = Array.from({ length: N }, (_, i) => `user-${(i * 2654435761 % 2 ** 32).toString(36).padStart(7, "0")}`.slice(0, 12));
const hashes = keys.map(hashKey);

function fill(store: RunStore, stateId: number, from = 0, to = N, valueOf = (i: number) => i % 1000) {
  const b = store.batch();
  for (let i = from; i < to; i++) b.put(stateId, hashes[i] % MAX_PARALLELISM, hashes[i], keys[i], valueOf(i));
  return b;
}

async function main(): Promise<void> {
  const out: Record<string, unknown> = { node: process.version, entries: N, loadAverage1m: round(loadavg()[0], 2), storage: args.file === "true" ? "file" : "memory" };

  // 1. Encode and write N entries as one run.
  out.writeRun = await best(
    REPS,
    () => new RunStore(doSql(database()), "op"),
    async (store) => {
      const id = store.stateId("count", "value");
      await store.writeRun(fill(store, id), 1, noPause);
    },
  );
  const encodeOnly = await best(REPS, () => new RunStore(doSql(database()), "op"), (store) => fill(store, store.stateId("count", "value")));
  out.encodeOnly = encodeOnly;

  // One store kept for the reads.
  const sql = doSql(database());
  const store = new RunStore(sql, "op", { cache: new BlockCache(256 << 20) });
  const id = store.stateId("count", "value");
  const run = (await store.writeRun(fill(store, id), 1, noPause))!;
  out.run = { blocks: run.blocks, bytes: run.bytes, bytesPerEntry: round(run.bytes / run.entries, 2), rowsWritten: run.blocks + Math.ceil(run.blocks / 32) + 2 };
  out.sqliteBytesPerEntry = round((sql.exec<{ n: number }>(`SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()`).one().n) / N, 2);

  // 2. Point gets from cached blocks: a sample of keys, their blocks warmed first.
  const sample = Array.from({ length: 10000 }, (_, i) => (i * 7919) % N);
  for (const i of sample) store.get(id, hashes[i] % MAX_PARALLELISM, hashes[i], keys[i]);
  const GETS = 1_000_000;
  out.getCached = await best(REPS, () => 0, () => {
    let found = 0;
    for (let j = 0; j < GETS; j++) {
      const i = sample[j % sample.length];
      if (store.get(id, hashes[i] % MAX_PARALLELISM, hashes[i], keys[i]) !== undefined) found++;
    }
    if (found !== GETS) throw new Error(`found ${found} of ${GETS}`);
  });
  (out.getCached as Record<string, number>).usPerGet = round(((out.getCached as { cpuMs: number }).cpuMs * 1000) / GETS, 3);
  out.getCachedDecoded = await best(REPS, () => 0, () => {
    let sum = 0;
    for (let j = 0; j < GETS; j++) {
      const i = sample[j % sample.length];
      sum += decodeValue(store.get(id, hashes[i] % MAX_PARALLELISM, hashes[i], keys[i])!) as number;
    }
    return sum;
  });
  (out.getCachedDecoded as Record<string, number>).usPerGet = round(((out.getCachedDecoded as { cpuMs: number }).cpuMs * 1000) / GETS, 3);
  // A key no run has: the bloom filter answers.
  out.getMissing = await best(REPS, () => 0, () => {
    for (let j = 0; j < GETS; j++) {
      const k = `absent-${j % 5000}`;
      const h = hashKey(k);
      store.get(id, h % MAX_PARALLELISM, h, k);
    }
  });
  (out.getMissing as Record<string, number>).usPerGet = round(((out.getMissing as { cpuMs: number }).cpuMs * 1000) / GETS, 3);

  // 3. Gets that read their block from SQL (a cache too small to hold any block; filters stay).
  const cold = new RunStore(sql, "op", { cache: new BlockCache(2 << 20) });
  const COLD = 20000;
  out.getFromSql = await best(REPS, () => 0, () => {
    for (let j = 0; j < COLD; j++) {
      const i = (j * 104729) % N;
      if (cold.get(id, hashes[i] % MAX_PARALLELISM, hashes[i], keys[i]) === undefined) throw new Error("missing");
    }
  });
  (out.getFromSql as Record<string, number>).usPerGet = round(((out.getFromSql as { cpuMs: number }).cpuMs * 1000) / COLD, 2);

  // 4. Compaction: the N-entry base and a delta of 1% of the keys, merged into one.
  out.compaction = await best(
    REPS,
    () => {
      const s = new RunStore(doSql(database()), "op");
      return s;
    },
    async (s) => {
      const sid = s.stateId("count", "value");
      await s.writeRun(fill(s, sid), 1, noPause);
      await s.writeRun(fill(s, sid, 0, N / 100, () => 5), 2, noPause);
      const c0 = cpuMs();
      const w0 = performance.now();
      const merged = await s.compact(s.planCompaction(2, true)!, noPause);
      const cpu = cpuMs() - c0;
      const wall = performance.now() - w0;
      compactions.push({ entries: N + N / 100, cpuMs: cpu, wallMs: wall, outEntries: merged!.entries });
    },
  );
  const bestCompaction = compactions.sort((a, b) => a.cpuMs - b.cpuMs)[0];
  out.compaction = { inputEntries: bestCompaction.entries, outputEntries: bestCompaction.outEntries, cpuMs: round(bestCompaction.cpuMs), wallMs: round(bestCompaction.wallMs), entriesPerSecondCpu: Math.round((bestCompaction.entries / bestCompaction.cpuMs) * 1000) };

  // 5. The policy over many checkpoints: 1% of the keys changed per checkpoint, compacting after each.
  out.policy = await policy(Math.min(N, 200_000), 120);

  rmSync(dir, { recursive: true, force: true });
  mkdirSync("bench/out", { recursive: true });
  writeFileSync("bench/out/runs.json", `${JSON.stringify(out, null, 2)}\n`);
  console.log(JSON.stringify(out, null, 2));
}

const compactions: { entries: number; cpuMs: number; wallMs: number; outEntries: number }[] = [];

/** Runs and write amplification of the default policy: bytes written (runs and compactions) per byte of runs written by checkpoints. */
async function policy(keyCount: number, checkpoints: number) {
  const s = new RunStore(doSql(database()), "op");
  const sid = s.stateId("count", "value");
  let written = (await s.writeRun(fill(s, sid, 0, keyCount), 0, noPause))!.bytes;
  let deltas = 0;
  let compacted = 0;
  let most = 0;
  let state = 1;
  for (let c = 1; c <= checkpoints; c++) {
    const b = s.batch();
    for (let j = 0; j < keyCount / 100; j++) {
      state = (Math.imul(state, 48271) >>> 0) % 2147483647;
      const i = state % keyCount;
      b.put(sid, hashes[i] % MAX_PARALLELISM, hashes[i], keys[i], c);
    }
    const d = (await s.writeRun(b, c, noPause))!.bytes;
    deltas += d;
    written += d;
    for (let r = await s.maybeCompact(c, noPause); r; r = await s.maybeCompact(c, noPause)) compacted += r.bytes;
    most = Math.max(most, s.runs().length);
  }
  return { keys: keyCount, checkpoints, changedPerCheckpoint: keyCount / 100, maxRuns: most, runsAtEnd: s.runs().length, writeAmplification: round((deltas + compacted) / deltas, 2), bytesWritten: written + compacted };
}

await main();
