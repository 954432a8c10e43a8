/**
 * Timers in keyed process functions end to end, as a user sees them in a
 * table (docs/time.md#timers). The test Worker's `timers` job
 * (test/fixtures/jobs.ts) counts records per key and 1 s event-time window
 * and emits each window from an event-time timer at its end, numbering a
 * key's windows in `seq`: a timer lost or fired twice shifts every later
 * `seq` of its key. Its output is compared with a reference computed from
 * the ingested records: every window whose end the watermark passed, once,
 * with its exact count, and no other. The `timers-pt` job sets one
 * processing-time timer per key and must fire it with no further input.
 */
import { cpSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { hashKey } from "../../src/graph/key-groups.js";
import { END_OF_TIME_MS } from "../../src/time/watermark-strategy.js";
import { crashEngine } from "../support/crash.js";
import { type Engine, readTable, startEngine, tempDir, waitFor } from "../support/engine.js";
import { Random } from "../support/random.js";

/** As TIMER_WINDOW_MS, WATERMARK_BOUND_MS and PROCESSING_DELAY_MS in test/fixtures/jobs.ts (a Worker module: Node cannot import it). */
const WINDOW_MS = 1000;
const BOUND_MS = 1000;
const PROCESSING_DELAY_MS = 3000;
const KEYS = 6;
/** The seed of the random parts (data, the moment of the crash); FLOE_SEED replays another. */
const SEED = Number(process.env.FLOE_SEED ?? 20261206);

interface WindowRow {
  count: number;
  seq: number;
  wm: number;
}

interface ProcessingRow {
  count: number;
  registeredMs: number;
  firedMs: number;
  domain: string;
}

interface Stamped {
  key: string;
  ts: number;
}

/** Records sent so far, by the partition of "timers-in" they went to. */
class Ingested {
  readonly partitions: Stamped[][] = [[], []];
  private requests = 0;

  constructor(private readonly label: string) {}

  /** Sends `records` to `partition`, choosing an Idempotency-Key that lands there (ingest.ts: hashKey(key) mod partitions). */
  async send(engine: Engine, partition: number, records: Stamped[]): Promise<void> {
    let key: string;
    for (let i = 0; ; i++) {
      key = `${this.label}-${this.requests}-${i}`;
      if (hashKey(key) % 2 === partition) break;
    }
    this.requests++;
    const res = await engine.api("/v1/ingest/timers-in", { method: "POST", body: records.map((r) => JSON.stringify(r)).join("\n"), headers: { "content-type": "application/x-ndjson", "idempotency-key": key } });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(((await res.json()) as { offsets: { partition: number }[] }).offsets[0].partition).toBe(partition);
    this.partitions[partition].push(...records);
  }

  /** The watermark once everything sent was read: the slower partition's max ts − bound − 1 (no idleness in the job). */
  watermark(): number {
    return Math.min(...this.partitions.map((p) => Math.max(...p.map((r) => r.ts)))) - BOUND_MS - 1;
  }

  /** What the table must hold: every window of every key that ends at or below `watermark`, numbered per key in end order. */
  expected(watermark = this.watermark()): Map<string, { count: number; seq: number }> {
    const counts = new Map<string, Map<number, number>>();
    for (const r of this.partitions.flat()) {
      const end = Math.floor(r.ts / WINDOW_MS) * WINDOW_MS + WINDOW_MS - 1;
      if (end > watermark) continue;
      const perKey = counts.get(r.key) ?? new Map<number, number>();
      perKey.set(end, (perKey.get(end) ?? 0) + 1);
      counts.set(r.key, perKey);
    }
    const out = new Map<string, { count: number; seq: number }>();
    for (const [key, perKey] of counts) {
      [...perKey.keys()].sort((a, b) => a - b).forEach((end, seq) => out.set(`${key}@${end}`, { count: perKey.get(end)!, seq }));
    }
    return out;
  }

  /** Windows that hold records but do not end at or below the watermark: their timers are pending. */
  pendingWindows(): number {
    const watermark = this.watermark();
    return new Set(this.partitions.flat().filter((r) => Math.floor(r.ts / WINDOW_MS) * WINDOW_MS + WINDOW_MS - 1 > watermark).map((r) => `${r.key}@${Math.floor(r.ts / WINDOW_MS)}`)).size;
  }
}

/**
 * Records in nearly increasing event time: each at most 900 ms behind the
 * newest before it, so that none is late in any partition (a partition's
 * watermark is its newest − 1001) and every window's count is final when
 * its timer fires.
 */
class Generator {
  private clockMs = 100_000;

  constructor(private readonly random: Random) {}

  /** Moves event time on by `ms`: no later record falls into a window before. */
  skip(ms: number): void {
    this.clockMs += ms;
  }

  next(n: number): Stamped[] {
    return Array.from({ length: n }, () => {
      this.clockMs += this.random.int(120);
      return { key: `k${this.random.int(KEYS)}`, ts: this.clockMs - this.random.int(900) };
    });
  }
}

/** Sends `rounds` requests of `size` records, alternating partitions. */
async function sendRounds(engine: Engine, ingested: Ingested, gen: Generator, rounds: number, size: number): Promise<void> {
  for (let i = 0; i < rounds; i++) await ingested.send(engine, i % 2, gen.next(size));
}

/**
 * Differences between the table and `expected` (empty when equal); `wm`
 * must be at or past the window's end and not past `watermark` (for the
 * windows in `drained`: not past the end of time).
 */
async function diff(engine: Engine, expected: Map<string, { count: number; seq: number }>, watermark: number, drained: ReadonlySet<string> = new Set()): Promise<string[]> {
  const rows = await readTable<WindowRow>(engine, "timers-out");
  const out: string[] = [];
  for (const [k, v] of expected) {
    const row = rows.get(k);
    if (!row) out.push(`${k}: missing`);
    else if (row.count !== v.count || row.seq !== v.seq) out.push(`${k}: ${JSON.stringify(row)}, expected ${JSON.stringify(v)}`);
    else if (row.wm < Number(k.split("@")[1]) || row.wm > (drained.has(k) ? END_OF_TIME_MS : watermark)) out.push(`${k}: fired at watermark ${row.wm}, outside [end, ${watermark}]`);
  }
  for (const k of rows.keys()) if (!expected.has(k)) out.push(`${k}: not expected (${JSON.stringify(rows.get(k))})`);
  return out;
}

/** Waits until the table is exactly `ingested`'s reference, then through two more checkpoints, and checks it again: nothing fires late. */
async function expectExactOutput(engine: Engine, ingested: Ingested, what: string, drained: ReadonlySet<string> = new Set()): Promise<void> {
  const expected = ingested.expected();
  const watermark = ingested.watermark();
  expect(expected.size, "the reference has windows").toBeGreaterThan(0);
  let last: string[] = [];
  await waitFor(async () => (last = await diff(engine, expected, watermark, drained)).length === 0, 60_000, what).catch((e: Error) => {
    throw new Error(`${e.message}; differences: ${last.slice(0, 10).join("; ")}`);
  });
  const completed = await completedCheckpoints(engine);
  await waitFor(async () => (await completedCheckpoints(engine)) >= completed + 2, 20_000, "two more checkpoints");
  expect(await diff(engine, expected, watermark, drained), `${what}, after two more checkpoints`).toEqual([]);
}

async function completedCheckpoints(engine: Engine, job = "timers"): Promise<number> {
  return ((await (await engine.api(`/v1/jobs/${job}/checkpoints`)).json()) as { counts: { completed: number } }).counts.completed;
}

async function start(engine: Engine, body: object, job = "timers"): Promise<void> {
  const res = await engine.api(`/v1/jobs/${job}/start`, { method: "POST", json: body });
  expect(res.status, await res.clone().text()).toBe(200);
}

let engines: Engine[] = [];
afterEach(async () => {
  for (const e of engines) await e.dispose().catch(() => undefined);
  engines = [];
});

async function engineAt(persistDir?: string): Promise<Engine> {
  const e = await startEngine({ testJobs: true, persistDir });
  engines.push(e);
  return e;
}

describe("event-time timers", () => {
  it("fire when the watermark passes them: every window once, exact, seq gapless per key", async () => {
    const engine = await engineAt();
    await start(engine, {});
    const ingested = new Ingested("plain");
    const gen = new Generator(new Random(SEED));
    await sendRounds(engine, ingested, gen, 6, 40);
    await expectExactOutput(engine, ingested, "the first windows");
    expect(ingested.pendingWindows(), "windows past the watermark wait").toBeGreaterThan(0);
    // More records move the watermark: the windows that waited fire now.
    await sendRounds(engine, ingested, gen, 6, 40);
    await expectExactOutput(engine, ingested, "the later windows");
  });

  it("give the same exact output across a SIGKILL of the runtime at a seeded moment", async () => {
    let engine = await engineAt();
    const dir = engine.persistDir;
    await start(engine, {});
    const random = new Random(SEED + 1);
    const ingested = new Ingested("crash");
    const gen = new Generator(random);
    const rounds = 12;
    const crashAfter = 2 + random.int(rounds - 4);
    const delayMs = random.int(600);
    for (let i = 0; i < rounds; i++) {
      await ingested.send(engine, i % 2, gen.next(30));
      if (i === crashAfter) {
        await new Promise((r) => setTimeout(r, delayMs));
        await crashEngine(engine);
        engines = engines.filter((e) => e !== engine);
        engine = await engineAt(dir);
      }
    }
    await expectExactOutput(engine, ingested, `exact output after a crash after round ${crashAfter} + ${delayMs} ms (seed ${SEED + 1})`);
    const status = (await (await engine.api("/v1/jobs/timers")).json()) as { status: string; restarts: number };
    expect(status.status).toBe("RUNNING");
    expect(status.restarts).toBeGreaterThanOrEqual(1);
  });

  it("move with their key groups: a savepoint with pending timers restores at parallelism 1 and 3 with exact output", async () => {
    const engine = await engineAt();
    await start(engine, {});
    const ingested = new Ingested("savepoint");
    const gen = new Generator(new Random(SEED + 2));
    await sendRounds(engine, ingested, gen, 6, 40);
    await expectExactOutput(engine, ingested, "the output before the savepoint");
    const pending = ingested.pendingWindows();
    expect(pending).toBeGreaterThan(0);
    const sp = await engine.api("/v1/jobs/timers/savepoints", { method: "POST" });
    expect(sp.status, await sp.clone().text()).toBe(200);
    const { id } = (await sp.json()) as { id: string };
    expect((await engine.api("/v1/jobs/timers/cancel", { method: "POST" })).status).toBe(200);
    // The rest goes into the log once; each restore reads it after the savepoint's offsets. It starts
    // 10 s of event time later, so no record of it registers a pending window's timer again: only timers
    // restored from the savepoint can fire those windows.
    gen.skip(10_000);
    await sendRounds(engine, ingested, gen, 6, 40);
    await engine.dispose();
    engines = [];

    // Each restore runs on its own copy of the stopped engine, so that its table holds only the rows committed before the savepoint.
    for (const p of [1, 3]) {
      const copy = tempDir();
      cpSync(engine.persistDir, copy, { recursive: true });
      const restored = await engineAt(copy);
      const res = await restored.api("/v1/jobs/timers/start", { method: "POST", json: { fromSavepoint: id, parallelism: { "tm-count": p } } });
      expect(res.status, await res.clone().text()).toBe(200);
      expect(((await res.json()) as { parallelism: Record<string, number> }).parallelism["tm-count"]).toBe(p);
      await expectExactOutput(restored, ingested, `exact output restored at parallelism ${p}`);
      await restored.dispose();
      engines = [];
    }
  });

  it("stop without drain leaves pending timers in the savepoint; they fire after a restore once the watermark passes them", async () => {
    const engine = await engineAt();
    await start(engine, {});
    const ingested = new Ingested("stop");
    const gen = new Generator(new Random(SEED + 3));
    await sendRounds(engine, ingested, gen, 6, 40);
    await expectExactOutput(engine, ingested, "the output before the stop");
    const before = ingested.expected();
    expect(ingested.pendingWindows()).toBeGreaterThan(0);
    const stop = await engine.api("/v1/jobs/timers/stop", { method: "POST", json: { savepoint: true, drain: false } });
    expect(stop.status, await stop.clone().text()).toBe(200);
    const stopped = (await stop.json()) as { id: string; drain: boolean; status: { status: string } };
    expect(stopped.status.status).toBe("FINISHED");
    expect(stopped.drain).toBe(false);
    // The job is finished: what the table holds is final for this run, and no pending window is in it.
    expect(await diff(engine, before, ingested.watermark())).toEqual([]);

    // Later in event time: only the timers in the savepoint can fire the pending windows.
    gen.skip(10_000);
    await sendRounds(engine, ingested, gen, 6, 40);
    await start(engine, { fromSavepoint: stopped.id });
    await expectExactOutput(engine, ingested, "the pending windows after the restore");
    const windows = ingested.expected();
    expect([...before.keys()].every((k) => windows.has(k))).toBe(true);
    expect(windows.size, "windows pending at the stop fired after the restore").toBeGreaterThan(before.size);
  });

  it("stop with drain fires every pending event-time timer into the final savepoint", async () => {
    const engine = await engineAt();
    await start(engine, {});
    const ingested = new Ingested("drain");
    const gen = new Generator(new Random(SEED + 4));
    await sendRounds(engine, ingested, gen, 6, 40);
    await expectExactOutput(engine, ingested, "the output before the drain");
    const before = ingested.expected().size;
    expect(ingested.pendingWindows()).toBeGreaterThan(0);
    const stop = await engine.api("/v1/jobs/timers/stop", { method: "POST", json: { savepoint: true, drain: true } });
    expect(stop.status, await stop.clone().text()).toBe(200);
    const stopped = (await stop.json()) as { id: string; drain: boolean; status: { status: string } };
    expect(stopped.status.status).toBe("FINISHED");
    expect(stopped.drain).toBe(true);
    // Finished: the savepoint completed and the sinks committed, with every window in, fired at the end of time.
    const drained = ingested.expected(END_OF_TIME_MS);
    expect(drained.size).toBe(before + ingested.pendingWindows());
    expect(await diff(engine, drained, END_OF_TIME_MS)).toEqual([]);
    const rows = await readTable<WindowRow>(engine, "timers-out");
    expect([...rows.values()].filter((r) => r.wm === END_OF_TIME_MS).length).toBe(ingested.pendingWindows());

    // A run from the drained savepoint has no timers left from before: the drained windows do not fire again, seq goes on.
    gen.skip(10_000);
    await sendRounds(engine, ingested, gen, 6, 40);
    await start(engine, { fromSavepoint: stopped.id });
    await expectExactOutput(engine, ingested, "the output after a restore from the drained savepoint", new Set(drained.keys()));
    expect([...drained.keys()].every((k) => ingested.expected().has(k))).toBe(true);
  });
});

describe("processing-time timers", () => {
  async function processingRows(engine: Engine): Promise<Map<string, ProcessingRow>> {
    return readTable<ProcessingRow>(engine, "timers-pt-out");
  }

  async function send(engine: Engine, records: Stamped[]): Promise<void> {
    const res = await engine.api("/v1/ingest/timers-pt-in", { method: "POST", body: records.map((r) => JSON.stringify(r)).join("\n"), headers: { "content-type": "application/x-ndjson" } });
    expect(res.status, await res.clone().text()).toBe(200);
  }

  /** Each of `keys` once per record: `counts` of them. */
  function records(counts: Record<string, number>): Stamped[] {
    return Object.entries(counts).flatMap(([key, n]) => Array.from({ length: n }, (_, i) => ({ key, ts: i })));
  }

  function expectFired(rows: Map<string, ProcessingRow>, counts: Record<string, number>): void {
    for (const [key, count] of Object.entries(counts)) {
      const row = rows.get(key);
      expect(row, key).toBeDefined();
      expect(row!.count, key).toBe(count);
      expect(row!.domain, key).toBe("processing");
      expect(row!.firedMs - row!.registeredMs, key).toBeGreaterThanOrEqual(PROCESSING_DELAY_MS);
    }
  }

  it("fire on the subtask's clock with no further input, and fire after a SIGKILL from the restored checkpoint", async () => {
    let engine = await engineAt();
    const dir = engine.persistDir;
    await start(engine, {}, "timers-pt");
    const first = { a: 3, b: 1, c: 5 };
    const sentMs = Date.now();
    await send(engine, records(first));
    // Nothing else arrives: only the timers (through the clock and the object's alarm) wake the keyed subtasks.
    const rows = await waitFor(async () => {
      const r = await processingRows(engine);
      return r.size === 3 && r;
    }, 30_000, "the processing-time timers of a, b and c");
    expectFired(rows, first);
    expect(Date.now() - sentMs).toBeGreaterThanOrEqual(PROCESSING_DELAY_MS);

    // Timers pending in a checkpoint when the runtime dies fire after the restore, still with no new input.
    const second = { d: 2, e: 4 };
    await send(engine, records(second));
    const metrics = async () => ((await (await engine.api("/v1/jobs/timers-pt/metrics")).json()) as { vertices: { id: string; records_in: number }[] }).vertices.find((v) => v.id === "tp-count")!.records_in;
    await waitFor(async () => (await metrics()) === 15, 20_000, "d's and e's records through");
    const completed = await completedCheckpoints(engine, "timers-pt");
    await waitFor(async () => (await completedCheckpoints(engine, "timers-pt")) >= completed + 1, 20_000, "a checkpoint holding d's and e's timers");
    const beforeCrash = await processingRows(engine);
    await crashEngine(engine);
    engines = [];
    // The delay is long enough for the records and a checkpoint: the timers were still pending when the runtime died.
    expect(beforeCrash.has("d") || beforeCrash.has("e"), "d's or e's timer fired before the crash: the case proves nothing, raise PROCESSING_DELAY_MS").toBe(false);
    engine = await engineAt(dir);
    const after = await waitFor(async () => {
      const r = await processingRows(engine);
      return r.size === 5 && r;
    }, 40_000, "d's and e's timers after the restore");
    expectFired(after, { ...first, ...second });
  });
});
