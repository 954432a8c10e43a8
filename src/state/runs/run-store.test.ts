import { describe, expect, it } from "vitest";
import { hashKey } from "../../graph/key-groups.js";
import { type DoSql, doSql } from "../../../test/support/do-sql.js";
import { Random } from "../../../test/support/random.js";
import { BlockCache } from "./block-cache.js";
import { DEFAULT_COMPACTION_POLICY } from "./compaction-policy.js";
import { GARBAGE_PAGES_PER_STEP, type RunInfo, RunStore, SEQUENTIAL_READ_PAGES, TURN_BYTES } from "./run-store.js";
import { decodeValue } from "./value-codec.js";

const noPause = async () => {};
const MAX_PARALLELISM = 16;

/** A model of the visible state: `${stateId}/${key}` → value. */
type Model = Map<string, unknown>;

/** Entries to write: [stateId, key, value or undefined for a deletion]. */
type Change = [number, string, unknown];

async function write(store: RunStore, changes: readonly Change[], epoch: number): Promise<RunInfo | undefined> {
  const batch = store.batch();
  for (const [s, k, v] of changes) {
    const h = hashKey(k);
    if (v === undefined) batch.delete(s, h % MAX_PARALLELISM, h, k);
    else batch.put(s, h % MAX_PARALLELISM, h, k, v);
  }
  return store.writeRun(batch, epoch, noPause);
}

function apply(model: Model, changes: readonly Change[]): void {
  for (const [s, k, v] of changes) {
    if (v === undefined) model.delete(`${s}/${k}`);
    else model.set(`${s}/${k}`, v);
  }
}

function lookup(store: RunStore, s: number, k: string): unknown {
  const h = hashKey(k);
  const v = store.get(s, h % MAX_PARALLELISM, h, k);
  return v == null ? undefined : decodeValue(v);
}

/** Everything a scan gives, as the model holds it, in scan order. */
function scanned(store: RunStore, start = 0, end = 0xffff): [string, unknown][] {
  return [...store.scan(start, end)].map((e) => [`${e.stateId}/${e.key}`, decodeValue(e.value)]);
}

/** The model in scan order, for key groups start..end. */
function expected(model: Model, start = 0, end = 0xffff): [string, unknown][] {
  const rows = [...model].map(([id, v]) => {
    const [s, k] = [Number(id.slice(0, id.indexOf("/"))), id.slice(id.indexOf("/") + 1)];
    const h = hashKey(k);
    return { id, v, g: h % MAX_PARALLELISM, h, s, k: Buffer.from(k) };
  });
  return rows
    .filter((r) => r.g >= start && r.g <= end)
    .sort((a, b) => a.g - b.g || a.h - b.h || a.s - b.s || Buffer.compare(a.k, b.k))
    .map((r) => [r.id, r.v]);
}

function randomChanges(rng: Random, keys: readonly string[], n: number): Change[] {
  return Array.from({ length: n }, () => [1 + rng.int(2), rng.pick(keys), rng.chance(0.25) ? undefined : rng.pick([rng.int(100), `v${rng.int(9)}`, { n: rng.int(5) }, null])]);
}

function check(store: RunStore, model: Model, keys: readonly string[]): void {
  expect(scanned(store)).toEqual(expected(model));
  for (const k of keys) for (const s of [1, 2]) expect(lookup(store, s, k)).toEqual(model.get(`${s}/${k}`));
}

describe("RunStore", () => {
  it("reads the newest run's value, a tombstone as null, an unknown key as undefined", async () => {
    const store = new RunStore(doSql(), "op");
    const count = store.stateId("count", "value");
    expect(store.stateId("count", "value")).toBe(count);
    expect(() => store.stateId("count", "list")).toThrow(/operator "op": state "count" is value state, not list state/);
    await write(store, [[count, "a", 1], [count, "b", 2]], 1);
    await write(store, [[count, "a", 10], [count, "b", undefined]], 2);
    const h = hashKey("b");
    expect(store.get(count, h % MAX_PARALLELISM, h, "b")).toBeNull();
    expect(lookup(store, count, "a")).toBe(10);
    expect(lookup(store, count, "zz")).toBeUndefined();
    expect(lookup(store, count + 1, "a")).toBeUndefined();
    expect(scanned(store)).toEqual([[`${count}/a`, 10]]);
    expect(store.runs().map((r) => [r.seq, r.epoch, r.entries, r.tombstones])).toEqual([
      [1, 1, 2, 0],
      [2, 2, 2, 1],
    ]);
    // Reopened on the same database: the same runs, names and values.
    const again = new RunStore(store["sql"], "op");
    expect(again.names.all()).toEqual([{ id: count, name: "count", kind: "value" }]);
    expect(lookup(again, count, "a")).toBe(10);
    expect(again.runs()).toEqual(store.runs());
  });

  it("scans like a reference map, over many random runs, whole and by key-group range, with a small cache and small blocks", async () => {
    const rng = new Random(99);
    const keys = Array.from({ length: 400 }, (_, i) => `key-${i}-${"é".repeat(i % 3)}`);
    const store = new RunStore(doSql(), "op", { cache: new BlockCache(4096), targetBlockBytes: 512 });
    const model: Model = new Map();
    for (let epoch = 1; epoch <= 12; epoch++) {
      const changes = randomChanges(rng, keys, 1 + rng.int(300));
      await write(store, changes, epoch);
      apply(model, changes);
    }
    check(store, model, keys);
    for (const [a, b] of [[0, 0], [3, 7], [15, 15], [5, 4]]) expect(scanned(store, a, b)).toEqual(expected(model, a, b));
  });

  it("drops the runs above a checkpoint, and refuses when a compaction merged across it", async () => {
    const sql = doSql();
    const store = new RunStore(sql, "op");
    const model: Model = new Map();
    const snapshots: Model[] = [];
    const rng = new Random(5);
    const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
    for (let epoch = 1; epoch <= 6; epoch++) {
      const changes = randomChanges(rng, keys, 40);
      await write(store, changes, epoch);
      apply(model, changes);
      snapshots[epoch] = new Map(model);
    }
    expect(store.dropAbove(4)).toBe(2);
    check(store, snapshots[4], keys);
    expect(store.dropAbove(4)).toBe(0);
    // The dropped runs' rows are gone once the garbage is collected.
    await store.collectGarbage(noPause);
    expect(sql.db.prepare(`SELECT COUNT(*) AS n FROM state_runs`).get()).toEqual({ n: 4 });
    const merged = await store.compact(store.planCompaction(3, true)!, noPause);
    expect(merged).toMatchObject({ epoch: 3, firstEpoch: 1 });
    expect(store.canRestoreTo(3)).toBe(true);
    expect(store.canRestoreTo(2)).toBe(false);
    expect(() => store.dropAbove(2)).toThrow(/cannot restore to checkpoint 2 from SQLite: run \d+ merges checkpoints 1..3/);
    check(store, snapshots[4], keys);
    expect(store.dropAbove(3)).toBe(1);
    check(new RunStore(sql, "op"), snapshots[3], keys);
  });

  it("compacts only runs of completed checkpoints, keeps the newest-wins order, and drops tombstones only from the oldest run", async () => {
    const sql = doSql();
    const store = new RunStore(sql, "op");
    const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
    const model: Model = new Map();
    const rng = new Random(11);
    for (let epoch = 1; epoch <= 5; epoch++) {
      const changes = randomChanges(rng, keys, 60);
      await write(store, changes, epoch);
      apply(model, changes);
    }
    expect(store.planCompaction(0)).toBeUndefined();
    const plan = store.planCompaction(3, true)!;
    expect(plan).toMatchObject({ dropTombstones: true, seqFrom: 1, seqTo: 3, reason: "all" });
    await store.compact(plan, noPause);
    const runs = store.runs();
    expect(runs.map((r) => r.epoch)).toEqual([3, 4, 5]);
    expect(runs[0].tombstones).toBe(0);
    check(store, model, keys);
    // A window that does not start at the oldest run keeps its tombstones: they hide older values.
    const inner = store.planCompaction(5)!;
    if (inner && !inner.dropTombstones) {
      await store.compact(inner, noPause);
      check(store, model, keys);
    }
    await store.compact(store.planCompaction(5, true)!, noPause);
    expect(store.runs()).toHaveLength(1);
    check(store, model, keys);
    await store.collectGarbage(noPause);
    // Only the one run's pages are left.
    const pages = sql.db.prepare(`SELECT COUNT(DISTINCT run) AS n FROM state_run_pages`).get();
    expect(pages).toEqual({ n: 1 });
  });

  it("keeps the number of runs bounded under the size-ratio policy", async () => {
    const store = new RunStore(doSql(), "op");
    const rng = new Random(3);
    const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`);
    const model: Model = new Map();
    let most = 0;
    for (let epoch = 1; epoch <= 60; epoch++) {
      const changes = randomChanges(rng, keys, 50);
      await write(store, changes, epoch);
      apply(model, changes);
      while (await store.maybeCompact(epoch, noPause));
      most = Math.max(most, store.runs().length);
    }
    // About log2(60) + a few: runs of a few hundred entries carry fixed overhead (filters, index) that blurs the ratio.
    expect(most).toBeLessThanOrEqual(DEFAULT_COMPACTION_POLICY.maxRuns);
    expect(store.runs().length).toBeLessThanOrEqual(9);
    check(store, model, keys);
  });

  it("keeps a scan's runs readable while a compaction replaces them", async () => {
    const store = new RunStore(doSql(), "op", { targetBlockBytes: 256 });
    const keys = Array.from({ length: 300 }, (_, i) => `k${i}`);
    const model: Model = new Map();
    const rng = new Random(8);
    for (let epoch = 1; epoch <= 3; epoch++) {
      const changes = randomChanges(rng, keys, 200);
      await write(store, changes, epoch);
      apply(model, changes);
    }
    const want = expected(model);
    const it = store.scan();
    const first = it.next().value!;
    await store.compact(store.planCompaction(3, true)!, noPause);
    await store.collectGarbage(noPause);
    const rest = [...it].map((e) => [`${e.stateId}/${e.key}`, decodeValue(e.value)]);
    expect([[`${first.stateId}/${first.key}`, decodeValue(first.value)], ...rest]).toEqual(want);
    await store.collectGarbage(noPause);
    expect(store["dead"]).toHaveLength(0);
  });

  it("clears every run in one statement and deletes their pages in bounded steps, also those a crash left at open", async () => {
    const sql = doSql();
    const store = new RunStore(sql, "op", { targetBlockBytes: 256 });
    const keys = Array.from({ length: 3000 }, (_, i) => `k${i}`);
    for (let epoch = 1; epoch <= 3; epoch++) await write(store, keys.map((k): Change => [1, k, epoch]), epoch);
    const pages = () => (sql.db.prepare(`SELECT COUNT(*) AS n FROM state_run_pages`).get() as { n: number }).n;
    const before = pages();
    expect(before).toBeGreaterThan(3 * GARBAGE_PAGES_PER_STEP);
    const statements = sql.statements;
    store.clear();
    expect(sql.statements - statements).toBe(1);
    expect(store.runs()).toEqual([]);
    expect(lookup(store, 1, "k1")).toBeUndefined();
    expect(pages()).toBe(before);
    // A new incarnation finds the dead rows and deletes them in steps too.
    const again = new RunStore(sql, "op");
    expect(pages()).toBe(before);
    let left = before;
    while (again.collectStep()) {
      expect(left - pages()).toBeLessThanOrEqual(GARBAGE_PAGES_PER_STEP);
      left = pages();
    }
    expect(pages()).toBe(0);
    expect(sql.db.prepare(`SELECT COUNT(*) AS n FROM state_runs`).get()).toEqual({ n: 0 });
  });

  it("pauses a run write after every TURN_BYTES of pages, not after every page", async () => {
    const store = new RunStore(doSql(), "op", { targetBlockBytes: 1024 });
    let pauses = 0;
    const batch = store.batch();
    for (let i = 0; i < 50_000; i++) {
      const k = `key-${i}`;
      const h = hashKey(k);
      batch.put(1, h % MAX_PARALLELISM, h, k, i);
    }
    const run = (await store.writeRun(batch, 1, async () => void pauses++))!;
    expect(pauses).toBeGreaterThan(0);
    expect(pauses).toBeLessThanOrEqual(Math.floor(run.bytes / TURN_BYTES));
    const small = store.batch();
    small.put(1, 0, hashKey("x"), "x", 1);
    pauses = 0;
    await store.writeRun(small, 2, async () => void pauses++);
    expect(pauses).toBe(0);
  });

  it("leaves the visible state as before or after a run write, and as before a compaction, when cut short at any statement", async () => {
    const rng = new Random(2026);
    const keys = Array.from({ length: 120 }, (_, i) => `k${i}`);
    const crashes = { write: 0, compaction: 0 };
    for (let trial = 0; trial < 30; trial++) {
      const sql: DoSql = doSql();
      let store = new RunStore(sql, "op", { targetBlockBytes: 256 });
      const model: Model = new Map();
      let epoch = 0;
      for (let step = 0; step < 12; step++) {
        const compacting = rng.chance(0.4) && store.runs().length >= 2;
        const changes = randomChanges(rng, keys, 1 + rng.int(150));
        // The object dies at a random statement of this operation; a new one opens the same database.
        const crashAt = rng.chance(0.5) ? sql.statements + 1 + rng.int(30) : Infinity;
        sql.beforeExec = () => {
          if (sql.statements + 1 >= crashAt) throw new Error("crash");
        };
        let done = false;
        try {
          if (compacting) await store.compact(store.planCompaction(epoch, rng.chance(0.5)) ?? store.planCompaction(epoch, true)!, noPause);
          else await write(store, changes, epoch + 1);
          done = true;
        } catch (e) {
          expect((e as Error).message).toBe("crash");
          crashes[compacting ? "compaction" : "write"]++;
        }
        sql.beforeExec = undefined;
        if (!compacting && done) {
          apply(model, changes);
          epoch++;
        }
        if (!done) store = new RunStore(sql, "op", { targetBlockBytes: 256 });
        check(store, model, keys);
        // Nothing is left of what the crash cut short once the store has opened and collected its garbage.
        await store.collectGarbage(noPause);
        const live = new Set(store.runs().map((r) => r.id));
        const rows = sql.db.prepare(`SELECT DISTINCT run FROM state_run_pages`).all() as { run: number }[];
        if (!done) expect(rows.every((r) => live.has(r.run))).toBe(true);
      }
    }
    expect(crashes.write).toBeGreaterThan(20);
    expect(crashes.compaction).toBeGreaterThan(20);
  }, 60_000);
});

describe("RunStore.prefetch", () => {
  it("reads the blocks lookups of a batch's keys would read, in one query per run; the lookups then read none", async () => {
    const sql = doSql();
    const store = new RunStore(sql, "op", { targetBlockBytes: 256, cache: new BlockCache(1 << 20) });
    const keys = Array.from({ length: 2000 }, (_, i) => `key-${i}`);
    const model: Model = new Map();
    // An older run with every key, a newer one with a tenth of them changed.
    const older: Change[] = keys.map((k, i) => [1, k, i]);
    const newer: Change[] = keys.filter((_, i) => i % 10 === 0).map((k) => [1, k, "new"]);
    await write(store, older, 1);
    await write(store, newer, 2);
    apply(model, older);
    apply(model, newer);
    const batch = keys.filter((_, i) => i % 7 === 0).slice(0, 100);
    const prefetchKeys = batch.map((k) => ({ stateId: 1, keyGroup: hashKey(k) % MAX_PARALLELISM, hash: hashKey(k) }));
    const before = sql.statements;
    const read = store.prefetch(prefetchKeys, 1000);
    expect(read).toBeGreaterThan(10);
    // Two runs: two queries for the blocks (the bloom filters read on the way are one statement each).
    const bloomReads = store.runs().reduce((n, r) => n + Math.ceil(r.blocks / 32), 0);
    expect(sql.statements - before).toBeLessThanOrEqual(2 + bloomReads);
    const afterPrefetch = sql.statements;
    for (const k of batch) expect(lookup(store, 1, k)).toEqual(model.get(`1/${k}`));
    // Bloom false positives aside (a lookup then reads an older run's block), nothing more is read.
    expect(sql.statements - afterPrefetch).toBeLessThanOrEqual(2);
    // Cached already: nothing to read. Capped: no more than asked.
    expect(store.prefetch(prefetchKeys, 1000)).toBe(0);
    store.cache.resize(0);
    store.cache.resize(1 << 20);
    expect(store.prefetch(prefetchKeys, 5)).toBe(5);
    // A key no run holds reads nothing (the bloom filters say so), a key of a state no run has neither.
    expect(store.prefetch([{ stateId: 1, keyGroup: 3, hash: 12345 }, { ...prefetchKeys[0], stateId: 9 }], 1000)).toBeLessThanOrEqual(1);
  });
});

describe("RunStore.sequentialPages", () => {
  it("reads a run in order with a few queries, pages ahead doubling up to the cap, and starts small again after a seek", async () => {
    const sql = doSql();
    const store = new RunStore(sql, "op", { targetBlockBytes: 256 });
    const changes: Change[] = Array.from({ length: 3000 }, (_, i) => [1, `key-${i}`, i]);
    const run = (await write(store, changes, 1))!;
    expect(run.blocks).toBeGreaterThan(4 * SEQUENTIAL_READ_PAGES);
    const one = (p: number) => sql.db.prepare(`SELECT bytes FROM state_run_pages WHERE run = ? AND kind = 0 AND page = ?`).get(run.id, p) as { bytes: Uint8Array };
    const page = store.sequentialPages(run.id, 0, run.blocks);
    const before = sql.statements;
    for (let p = 0; p < run.blocks; p++) expect(Buffer.from(page(p)).equals(Buffer.from(one(p).bytes))).toBe(true);
    // 1, 2, 4, …, 32, then 32 at a time.
    const ramp = Math.log2(SEQUENTIAL_READ_PAGES) + 1;
    const expected = ramp + Math.ceil((run.blocks - (2 * SEQUENTIAL_READ_PAGES - 1)) / SEQUENTIAL_READ_PAGES);
    expect(sql.statements - before).toBe(expected);
    // A page read already is held; a seek reads one page, and a read on from it two.
    const atSeek = sql.statements;
    expect(Buffer.from(page(run.blocks - 1)).equals(Buffer.from(one(run.blocks - 1).bytes))).toBe(true);
    expect(sql.statements - atSeek).toBe(0);
    page(10);
    page(11);
    page(12);
    expect(sql.statements - atSeek).toBe(2);
    expect(() => page(run.blocks)).toThrow(/has no page/);
    // A scan and a compaction read the same entries as before.
    const scanned = [...store.scan()].map((e) => [e.key, decodeValue(e.value)]);
    expect(scanned).toHaveLength(3000);
    expect(new Map(scanned as [string, unknown][]).get("key-2999")).toBe(2999);
  });
});
