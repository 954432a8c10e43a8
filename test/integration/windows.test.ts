/**
 * Windows exactly once, end to end, as a user sees them in tables
 * (docs/windows.md). The test Worker's `windows` job
 * (test/fixtures/window-jobs.ts) keys one HTTP stream three times, into
 * tumbling, sliding and session event-time windows with allowed lateness,
 * and writes every firing as the row `<key>|<start>|<end>` → `{ count, sum }`.
 *
 * A reference model here computes the same tables from the records sent:
 * the window operator's rules (a window past `end − 1 + lateness` is
 * dropped, a late record within it updates its window, which fires again;
 * sessions merge, and a session that fired before a merge keeps its row)
 * with the watermark the operator is guaranteed to have. The test makes
 * that watermark exact where it matters: a round's late records go first,
 * and each round starts only once the previous round's watermark is in a
 * completed checkpoint (so every restore starts at or past it). Each record
 * is, per window, either counted or dropped late, never both; the model
 * refuses a record whose fate would depend on timing.
 *
 * The tables must equal the model exactly: across SIGKILLs of the runtime,
 * user exceptions, subtask and coordinator resets; across savepoints taken
 * with windows open and restored at parallelism 1 → 3 and 3 → 1; after
 * `stop` without drain (open windows stay open, and fire after the restore)
 * and with drain (every open window fires).
 */
import { afterEach, describe, expect, it } from "vitest";
import { END_OF_TIME_MS } from "../../src/time/watermark-strategy.js";
import { crashEngine, resetCoordinator, resetSubtask } from "../support/crash.js";
import { type Engine, readTable, startEngine, waitFor } from "../support/engine.js";
import { Random } from "../support/random.js";

/** As in test/fixtures/window-jobs.ts (a Worker module: Node cannot import it). */
const BOUND_MS = 1000;
const LATENESS_MS = 2000;
const TUMBLING_SIZE_MS = 1000;
const SLIDING_SIZE_MS = 1500;
const SLIDING_SLIDE_MS = 500;
const SESSION_GAP_MS = 400;
const JOB = "windows";
const KEYS = 4;
/** The seed of the random parts (data, faults and their moments); FLOE_SEED replays another. */
const SEED = Number(process.env.FLOE_SEED ?? 20261206);

type Kind = "tumbling" | "sliding" | "session";
const KINDS: readonly Kind[] = ["tumbling", "sliding", "session"];
const UID: Record<Kind, string> = { tumbling: "win-tumbling", sliding: "win-sliding", session: "win-session" };
const TABLE: Record<Kind, string> = { tumbling: "windows-tumbling", sliding: "windows-sliding", session: "windows-session" };

interface WindowEvent {
  key: string;
  ts: number;
  v: number;
  fail?: string;
}

interface WindowResult {
  count: number;
  sum: number;
}

interface Live {
  start: number;
  end: number;
  count: number;
  sum: number;
}

const maxTs = (w: { end: number }) => w.end - 1;
const cleanup = (w: { end: number }) => Math.min(w.end - 1 + LATENESS_MS, END_OF_TIME_MS);
/** Session windows merge when they overlap or touch (src/window/time-window.ts). */
const intersects = (a: { start: number; end: number }, b: { start: number; end: number }) => a.start <= b.end && a.end >= b.start;

/**
 * One assigner's windows, computed offline: the live windows per key, the
 * rows the table holds, and per record where it went. Fed in log order with
 * the watermark the operator has at least; {@link ambiguous} says whether a
 * record's fate could differ at any watermark up to the one it could have.
 */
class WindowModel {
  private readonly live = new Map<string, Live[]>();
  readonly rows = new Map<string, WindowResult>();
  private wm = Number.NEGATIVE_INFINITY;
  /** Record-window pairs counted, and dropped as too late. */
  counted = 0;
  dropped = 0;
  /** Firings of a row that already held a result (a late record within the lateness). */
  refired = 0;
  /** Session windows that merged away after they had fired. */
  mergedAfterFiring = 0;

  constructor(readonly kind: Kind) {}

  /** The windows a record at `ts` belongs to (session: its own window, before merging). */
  assign(ts: number): { start: number; end: number }[] {
    if (this.kind === "tumbling") {
      const start = ts - (ts % TUMBLING_SIZE_MS);
      return [{ start, end: start + TUMBLING_SIZE_MS }];
    }
    if (this.kind === "session") return [{ start: ts, end: ts + SESSION_GAP_MS }];
    const out: { start: number; end: number }[] = [];
    for (let start = ts - (ts % SLIDING_SLIDE_MS); start > ts - SLIDING_SIZE_MS; start -= SLIDING_SLIDE_MS) out.push({ start, end: start + SLIDING_SIZE_MS });
    return out;
  }

  /** The watermark reaches `wm`: windows whose end it passes fire, those past their lateness are gone. */
  advance(wm: number): void {
    if (wm <= this.wm) return;
    const before = this.wm;
    this.wm = wm;
    for (const [key, windows] of this.live) {
      for (const w of windows) if (maxTs(w) > before && maxTs(w) <= wm) this.fire(key, w);
      this.live.set(
        key,
        windows.filter((w) => cleanup(w) > wm),
      );
    }
  }

  /** The times at which this record's fate, or a window it touches, changes. */
  private criticalTimes(e: WindowEvent): number[] {
    const own = this.assign(e.ts);
    if (this.kind !== "session") return own.map(cleanup);
    const group = (this.live.get(e.key) ?? []).filter((w) => intersects(w, own[0]));
    const merged = [own[0], ...group].reduce((a, b) => ({ start: Math.min(a.start, b.start), end: Math.max(a.end, b.end) }));
    return [cleanup(own[0]), maxTs(merged), cleanup(merged), ...group.flatMap((w) => [maxTs(w), cleanup(w)])];
  }

  /** Whether the record would go elsewhere at some watermark in (current, hi]. */
  ambiguous(e: WindowEvent, hi: number): boolean {
    return this.criticalTimes(e).some((t) => t > this.wm && t <= hi);
  }

  /** A record, processed at the current watermark. Answers the windows it went into and those it was too late for. */
  add(e: WindowEvent): { counted: number; dropped: number } {
    const windows = this.live.get(e.key) ?? [];
    this.live.set(e.key, windows);
    if (this.kind === "session") {
      const own = { start: e.ts, end: e.ts + SESSION_GAP_MS };
      const group = windows.filter((w) => intersects(w, own));
      if (group.length === 0 && cleanup(own) <= this.wm) {
        this.dropped++;
        return { counted: 0, dropped: 1 };
      }
      const merged: Live = { start: own.start, end: own.end, count: 1, sum: e.v };
      for (const w of group) {
        merged.start = Math.min(merged.start, w.start);
        merged.end = Math.max(merged.end, w.end);
        merged.count += w.count;
        merged.sum += w.sum;
        if (this.rows.has(rowKey(e.key, w)) && (w.start !== merged.start || w.end !== merged.end)) this.mergedAfterFiring++;
      }
      this.live.set(e.key, [...windows.filter((w) => !group.includes(w)), merged]);
      if (maxTs(merged) <= this.wm) this.fire(e.key, merged);
      this.counted++;
      return { counted: 1, dropped: 0 };
    }
    let counted = 0;
    let dropped = 0;
    for (const a of this.assign(e.ts)) {
      if (cleanup(a) <= this.wm) {
        dropped++;
        continue;
      }
      let w = windows.find((x) => x.start === a.start);
      if (!w) windows.push((w = { ...a, count: 0, sum: 0 }));
      w.count++;
      w.sum += e.v;
      counted++;
      if (maxTs(w) <= this.wm) this.fire(e.key, w);
    }
    this.counted += counted;
    this.dropped += dropped;
    return { counted, dropped };
  }

  /** The rows of the windows that hold records and have not fired yet. */
  openWindows(): string[] {
    const out: string[] = [];
    for (const [key, windows] of this.live) for (const w of windows) if (maxTs(w) > this.wm) out.push(rowKey(key, w));
    return out;
  }

  private fire(key: string, w: Live): void {
    const k = rowKey(key, w);
    if (this.rows.has(k)) this.refired++;
    this.rows.set(k, { count: w.count, sum: w.sum });
  }
}

function rowKey(key: string, w: { start: number; end: number }): string {
  return `${key}|${w.start}|${w.end}`;
}

/**
 * The records of a run, drawn from a seeded source, and the three models
 * they are fed to. The models' watermark is the one the engine is known to
 * have in a completed checkpoint: {@link advance} moves it once the test
 * saw the engine there.
 */
class Reference {
  readonly models = KINDS.map((k) => new WindowModel(k));
  private maxTs = Number.NEGATIVE_INFINITY;
  private clockMs = 100_000;
  /** Records that make each window function throw once. */
  failures = 0;

  constructor(
    private readonly random: Random,
    private readonly failRate = 0,
  ) {}

  /** The watermark once every record sent so far is read (one partition, no idleness). */
  watermark(): number {
    return this.maxTs - BOUND_MS - 1;
  }

  /** The highest watermark the source can have sent before the next record. */
  private upper(): number {
    return this.maxTs === Number.NEGATIVE_INFINITY ? Number.NEGATIVE_INFINITY : this.watermark();
  }

  /**
   * One round of records: first `late` records behind the current
   * watermark (some within the lateness, some beyond), then `onTime` ones
   * at most the bound behind the newest. Each is fed to the models.
   */
  round(late: number, onTime: number): WindowEvent[] {
    const out: WindowEvent[] = [];
    const wm = this.upper();
    for (let i = 0; i < late && wm > Number.NEGATIVE_INFINITY; i++) {
      // Up to 4.5 s behind: within the lateness for some windows; further, beyond it for all.
      const behind = this.random.chance(0.7) ? this.random.int(4500) : 4500 + this.random.int(3000);
      this.push(out, { key: `k${this.random.int(KEYS)}`, ts: wm - behind, v: 1 + this.random.int(100) });
    }
    for (let i = 0; i < onTime; i++) {
      // Now and then a quiet stretch, so that sessions close.
      this.clockMs += this.random.chance(0.1) ? 400 + this.random.int(600) : this.random.int(150);
      this.push(out, { key: `k${this.random.int(KEYS)}`, ts: this.clockMs - this.random.int(BOUND_MS + 1), v: 1 + this.random.int(100) });
    }
    return out;
  }

  private push(out: WindowEvent[], e: WindowEvent): void {
    // A record whose windows could fare differently at the watermarks it may meet is not sent (none at a round's start).
    if (this.models.some((m) => m.ambiguous(e, this.upper()))) return;
    if (this.failRate > 0 && this.random.chance(this.failRate)) e.fail = `f${this.failures++}`;
    for (const m of this.models) {
      const { counted, dropped } = m.add(e);
      // Each record is, per window, counted or dropped late: never both, never neither.
      expect(counted + dropped, `${m.kind}: ${JSON.stringify(e)}`).toBe(m.kind === "session" ? 1 : m.assign(e.ts).length);
    }
    if (e.ts > this.maxTs) this.maxTs = e.ts;
    out.push(e);
  }

  /** The engine's watermark reached `wm`: the models fire what it passes. */
  advance(wm = this.watermark()): void {
    for (const m of this.models) m.advance(wm);
  }

  model(kind: Kind): WindowModel {
    return this.models[KINDS.indexOf(kind)];
  }
}

/** Differences between the three tables and the models (empty when equal). */
async function diff(engine: Engine, ref: Reference): Promise<string[]> {
  const out: string[] = [];
  for (const m of ref.models) {
    const rows = await readTable<WindowResult>(engine, TABLE[m.kind]);
    for (const [k, v] of m.rows) {
      const row = rows.get(k);
      if (!row) out.push(`${m.kind} ${k}: missing, expected ${JSON.stringify(v)}`);
      else if (row.count !== v.count || row.sum !== v.sum) out.push(`${m.kind} ${k}: ${JSON.stringify(row)}, expected ${JSON.stringify(v)}`);
    }
    for (const k of rows.keys()) if (!m.rows.has(k)) out.push(`${m.kind} ${k}: not expected (${JSON.stringify(rows.get(k))})`);
  }
  return out;
}

async function api<T>(engine: Engine, path: string, init?: RequestInit & { json?: unknown }): Promise<T> {
  const res = await engine.api(path, init);
  const text = await res.text();
  expect(res.status, `${path}: ${text}`).toBe(200);
  return JSON.parse(text) as T;
}

async function completedCheckpoints(engine: Engine): Promise<number> {
  return (await api<{ counts: { completed: number } }>(engine, `/v1/jobs/${JOB}/checkpoints`)).counts.completed;
}

/** The lowest watermark of the three window operators (null: none yet). */
async function windowWatermark(engine: Engine): Promise<number | null> {
  const { vertices } = await api<{ vertices: { id: string; watermark_ms: number | null }[] }>(engine, `/v1/jobs/${JOB}/metrics`);
  const marks = KINDS.map((k) => vertices.find((v) => v.id === UID[k])?.watermark_ms ?? null);
  return marks.some((m) => m === null) ? null : Math.min(...(marks as number[]));
}

/**
 * Waits until the tables equal the reference at the watermark of
 * everything sent, with that watermark at every window operator, then
 * until two more checkpoints complete (the watermark is in one: every
 * restore starts at or past it), and checks the tables again.
 */
async function settle(engine: Engine, ref: Reference, what: string): Promise<void> {
  ref.advance();
  const wm = ref.watermark();
  let last: string[] = [];
  await waitFor(async () => (last = await diff(engine, ref)).length === 0 && ((await windowWatermark(engine)) ?? Number.NEGATIVE_INFINITY) >= wm, 40_000, what).catch(async (e: Error) => {
    const lag = last.length > 0 ? "" : ` (the window operators are at ${await windowWatermark(engine).catch(() => "?")}, expected ${wm})`;
    throw new Error(`${e.message}; differences: ${last.slice(0, 8).join("; ") || "none, the watermark lags"}${lag}`);
  });
  const completed = await completedCheckpoints(engine);
  await waitFor(async () => (await completedCheckpoints(engine)) >= completed + 2, 20_000, `two more checkpoints (${what})`);
  expect(await diff(engine, ref), `${what}, after two more checkpoints`).toEqual([]);
}

/** Sends records in order, in `requests` requests, calling `between(i)` after the i-th. */
async function send(engine: () => Engine, records: WindowEvent[], requests: number, between?: (i: number) => Promise<void>): Promise<void> {
  const size = Math.ceil(records.length / requests);
  for (let i = 0; i * size < records.length; i++) {
    const body = records
      .slice(i * size, (i + 1) * size)
      .map((r) => JSON.stringify(r))
      .join("\n");
    await api(engine(), "/v1/ingest/windows-in", { method: "POST", body, headers: { "content-type": "application/x-ndjson" } });
    await between?.(i);
  }
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

async function stop(engine: Engine, drain: boolean): Promise<string> {
  const stopped = await api<{ id: string; drain: boolean; status: { status: string } }>(engine, `/v1/jobs/${JOB}/stop`, { method: "POST", json: { savepoint: true, drain } });
  expect(stopped.status.status).toBe("FINISHED");
  expect(stopped.drain).toBe(drain);
  return stopped.id;
}

/** Whether the window of row `k` fired: its own row, or (a session that merged on) a row of its key that covers it. */
function firedCovering(model: WindowModel, k: string): boolean {
  const [key, start, end] = k.split("|");
  return [...model.rows.keys()].some((r) => {
    const [rk, rs, re] = r.split("|");
    return rk === key && Number(rs) <= Number(start) && Number(re) >= Number(end);
  });
}

/** What each model did, so that a run shows it exercised lateness and merging. */
function expectCoverage(ref: Reference): void {
  for (const m of ref.models) {
    expect(m.dropped, `${m.kind}: records dropped beyond the lateness`).toBeGreaterThan(0);
    expect(m.refired, `${m.kind}: windows fired again by late records`).toBeGreaterThan(0);
  }
  expect(ref.model("session").mergedAfterFiring, "sessions merged after firing").toBeGreaterThan(0);
}

describe("event-time windows exactly once", () => {
  it("equal the reference across SIGKILLs, user exceptions and subtask and coordinator resets", async () => {
    let engine = await engineAt();
    const dir = engine.persistDir;
    await api(engine, `/v1/jobs/${JOB}/start`, { method: "POST", json: {} });
    const random = new Random(SEED);
    const ref = new Reference(random, 0.012);
    const rounds = 5;
    // Each fault in its own round (not the first, which has no late records), at a seeded request and delay.
    const faultRound = new Map<number, "crash" | "subtask" | "coordinator">([
      [1, "crash"],
      [2, "subtask"],
      [3, "coordinator"],
      [4, "crash"],
    ]);
    for (let r = 0; r < rounds; r++) {
      const records = ref.round(r === 0 ? 0 : 12, 50);
      const fault = faultRound.get(r);
      const at = random.int(3);
      const delayMs = random.int(400);
      await send(() => engine, records, 3, async (i) => {
        if (!fault || i !== at) return;
        await new Promise((done) => setTimeout(done, delayMs));
        if (fault === "crash") {
          await crashEngine(engine);
          engines = engines.filter((e) => e !== engine);
          engine = await engineAt(dir);
        } else if (fault === "subtask") {
          await resetSubtask(engine, JOB, UID[random.pick(KINDS)], random.int(2));
        } else {
          await resetCoordinator(engine, JOB);
        }
      });
      await settle(engine, ref, `round ${r}${fault ? ` (${fault} after request ${at} + ${delayMs} ms)` : ""}, seed ${SEED}`);
    }
    expectCoverage(ref);
    expect(ref.failures, "records that throw in the window functions").toBeGreaterThan(0);
    const status = await api<{ status: string; restarts: number }>(engine, `/v1/jobs/${JOB}`);
    expect(status.status).toBe("RUNNING");
    // The injected exceptions and the crashes each restarted the job.
    expect(status.restarts).toBeGreaterThanOrEqual(2);
  });

  it("keep open windows in savepoints restored at parallelism 1 → 3 → 1; stop leaves them open, stop --drain fires them", async () => {
    const engine = await engineAt();
    const ref = new Reference(new Random(SEED + 1));
    const parallelism = (p: number) => Object.fromEntries(KINDS.map((k) => [UID[k], p]));
    await api(engine, `/v1/jobs/${JOB}/start`, { method: "POST", json: { parallelism: parallelism(1) } });
    await send(() => engine, ref.round(0, 50), 2);
    await settle(engine, ref, "the first round at parallelism 1");
    await send(() => engine, ref.round(12, 50), 2);
    await settle(engine, ref, "the second round at parallelism 1");

    let savepoint = await stop(engine, false);
    // Stopped without drain: the open windows did not fire (the tables are the reference at the watermark).
    const openAtStop = KINDS.map((k) => ref.model(k).openWindows());
    for (const [i, kind] of KINDS.entries()) expect(openAtStop[i].length, `${kind}: open windows at the stop`).toBeGreaterThan(0);
    expect(await diff(engine, ref)).toEqual([]);

    for (const p of [3, 1]) {
      // Records that arrive while the job is stopped, late ones first: the restored job judges them by the watermark in the savepoint.
      await send(() => engine, ref.round(12, 50), 2);
      const started = await api<{ parallelism: Record<string, number> }>(engine, `/v1/jobs/${JOB}/start`, { method: "POST", json: { fromSavepoint: savepoint, parallelism: parallelism(p) } });
      for (const kind of KINDS) expect(started.parallelism[UID[kind]]).toBe(p);
      // The windows open at the stop fire only from the restored state, now that the watermark passes them.
      await settle(engine, ref, `restored at parallelism ${p}`);
      if (p === 3) {
        for (const [i, kind] of KINDS.entries()) {
          for (const k of openAtStop[i]) expect(firedCovering(ref.model(kind), k), `${kind} ${k}, open at the stop, fired after the restore`).toBe(true);
        }
      }
      savepoint = await stop(engine, p === 1);
    }
    // The last stop drained: every open window fired into the final savepoint's output.
    const open = KINDS.map((k) => ref.model(k).openWindows());
    expect(Math.min(...open.map((o) => o.length)), "windows open at the drain").toBeGreaterThan(0);
    ref.advance(END_OF_TIME_MS);
    expect(await diff(engine, ref)).toEqual([]);
    expectCoverage(ref);
  });
});
