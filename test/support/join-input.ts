/**
 * Input of the join tests (test/fixtures/join-jobs.ts reads it): rounds of
 * impressions and clicks over a few ads, event time moving on together on
 * both streams, each record at most 250 ms behind its stream's newest, so
 * that with one partition per stream and a 300 ms watermark bound no
 * record is ever late.
 */
import { expect } from "vitest";
import { type Engine, readTable, waitFor } from "./engine.js";
import type { Random } from "./random.js";

export interface JoinEvent {
  id: string;
  ad: string;
  ts: number;
  /** The click this impression fails with: the join function throws once at that pair. */
  fail?: string;
}

/** The chaos test's faults (test/support/chaos-job.ts), as the join tests inject them. */
export type JoinFault = "user-exception" | "subtask-reset" | "coordinator-reset" | "process-kill";
const JOIN_FAULTS: readonly JoinFault[] = ["user-exception", "subtask-reset", "coordinator-reset", "process-kill"];

export class JoinInput {
  readonly impressions: JoinEvent[] = [];
  readonly clicks: JoinEvent[] = [];
  /** The marked pairs (`impression+click`), in the order they were sent. */
  private readonly failing: string[] = [];
  private clock = 10_000;
  private n = 0;

  constructor(private readonly random: Random) {}

  /** The next round, `size` records on each side. */
  round(size: number): { impressions: JoinEvent[]; clicks: JoinEvent[] } {
    const make = (prefix: string): JoinEvent[] =>
      Array.from({ length: size }, () => {
        this.clock += this.random.int(40);
        return { id: `${prefix}${this.n++}`, ad: `ad${this.random.int(4)}`, ts: this.clock - this.random.int(250) };
      });
    const start = this.clock;
    const impressions = make("i");
    this.clock = start;
    const clicks = make("c");
    this.impressions.push(...impressions);
    this.clicks.push(...clicks);
    return { impressions, clicks };
  }

  /** Moves event time on by `ms` with no records. */
  skip(ms: number): void {
    this.clock += ms;
  }

  /** Every `impression+click` pair of one ad for which `joins(impressionTs, clickTs)` holds. */
  pairs(joins: (impressionTs: number, clickTs: number) => boolean): Set<string> {
    const out = new Set<string>();
    for (const i of this.impressions) for (const c of this.clicks) if (i.ad === c.ad && joins(i.ts, c.ts)) out.add(`${i.id}+${c.id}`);
    return out;
  }

  /**
   * Starts `job` with `config` and sends `rounds` rounds of `size` under a
   * seeded schedule of the chaos test's faults, `each` of every kind, each
   * in a round of its own (never the first): a user exception (two pairs of
   * the round, marked so that the join function throws at each once, see
   * {@link thrownPairs}), a reset of a subtask of the `join` or
   * `count-pairs` vertex, a reset of the job's coordinator, a SIGKILL of the
   * runtime (started again over its state by `crash`). A reset or a SIGKILL
   * comes after the round's impressions or after its clicks, at a seeded
   * delay. `joins(impressionTs, clickTs)` is the join's condition, to pick
   * the marked pairs. Answers the engine that runs at the end and the
   * faults injected.
   */
  async sendWithFaults(
    engine: Engine,
    job: string,
    crash: (engine: Engine) => Promise<Engine>,
    options: { rounds: number; size: number; each: number; joins: (impressionTs: number, clickTs: number) => boolean; config?: Record<string, unknown>; parallelism?: Record<string, number> },
  ): Promise<{ engine: Engine; faults: Record<JoinFault, number> }> {
    const { rounds, size, each, joins } = options;
    const start = await engine.api(`/v1/jobs/${job}/start`, { method: "POST", json: { config: options.config ?? {}, parallelism: options.parallelism ?? {} } });
    expect(start.status, await start.clone().text()).toBe(200);
    const kinds = JOIN_FAULTS.flatMap((f) => Array<JoinFault>(each).fill(f));
    expect(kinds.length, "a round for every fault").toBeLessThan(rounds);
    const schedule: (JoinFault | undefined)[] = [undefined, ...this.random.shuffle([...kinds, ...Array<undefined>(rounds - 1 - kinds.length).fill(undefined)])];
    const faults: Record<JoinFault, number> = { "user-exception": 0, "subtask-reset": 0, "coordinator-reset": 0, "process-kill": 0 };
    for (const fault of schedule) {
      const r = this.round(size);
      if (fault === "user-exception") faults[fault] += this.markFailures(r, joins);
      const afterClicks = this.random.chance(0.5);
      const delayMs = this.random.int(400);
      await ingest(engine, "ij-impressions", r.impressions);
      if (fault !== undefined && fault !== "user-exception" && !afterClicks) engine = await this.inject(engine, job, fault, crash, delayMs);
      await ingest(engine, "ij-clicks", r.clicks);
      if (fault !== undefined && fault !== "user-exception" && afterClicks) engine = await this.inject(engine, job, fault, crash, delayMs);
      if (fault !== undefined && fault !== "user-exception") faults[fault]++;
    }
    return { engine, faults };
  }

  /**
   * Marks up to two pairs of round `r` (distinct impressions, the clicks of
   * the same round) that `joins` pairs: the impression names its click in
   * `fail`, and the join function throws the first time it meets that pair
   * in an isolate. Answers how many it marked.
   */
  private markFailures(r: { impressions: JoinEvent[]; clicks: JoinEvent[] }, joins: (impressionTs: number, clickTs: number) => boolean): number {
    let marked = 0;
    for (const i of this.random.shuffle(r.impressions)) {
      const partners = r.clicks.filter((c) => c.ad === i.ad && joins(i.ts, c.ts));
      if (partners.length === 0) continue;
      const c = this.random.pick(partners);
      i.fail = c.id;
      this.failing.push(`${i.id}+${c.id}`);
      if (++marked === 2) break;
    }
    return marked;
  }

  private async inject(engine: Engine, job: string, fault: Exclude<JoinFault, "user-exception">, crash: (engine: Engine) => Promise<Engine>, delayMs: number): Promise<Engine> {
    await new Promise((res) => setTimeout(res, delayMs));
    if (fault === "process-kill") return crash(engine);
    if (fault === "coordinator-reset") await engine.resetCoordinator(job);
    else {
      const status = (await (await engine.api(`/v1/jobs/${job}`)).json()) as { vertices: { id: string; parallelism: number }[] };
      const id = this.random.pick(["join", "count-pairs"]);
      const vertex = status.vertices.find((v) => v.id === id);
      if (!vertex) throw new Error(`${job} has no vertex ${id}: ${JSON.stringify(status.vertices)}`);
      await engine.resetSubtask(job, id, this.random.int(vertex.parallelism));
    }
    return engine;
  }

  /**
   * The rows the join jobs write for the marked pairs: a pair whose join
   * function threw once and then went through is counted under
   * `thrown:<pair>` too (test/fixtures/join-jobs.ts), so the table shows
   * that every injected exception happened and was recovered from, once.
   */
  thrownPairs(): string[] {
    return this.failing.map((p) => `thrown:${p}`);
  }

  /** Sends the next round to both streams. */
  async send(engine: Engine, size: number): Promise<void> {
    const r = this.round(size);
    await ingest(engine, "ij-impressions", r.impressions);
    await ingest(engine, "ij-clicks", r.clicks);
  }
}

async function ingest(engine: Engine, stream: string, records: readonly JoinEvent[]): Promise<void> {
  const res = await engine.api(`/v1/ingest/${stream}`, { method: "POST", body: records.map((r) => JSON.stringify(r)).join("\n"), headers: { "content-type": "application/x-ndjson" } });
  expect(res.status, await res.clone().text()).toBe(200);
}

/**
 * The join tests' run configuration under faults: checkpoints every 100 ms,
 * aligned or unaligned, and restarts 20 ms after a failure (the default
 * backoff would grow to seconds over a dozen faults).
 */
export function chaosConfig(unaligned: boolean): Record<string, unknown> {
  return { checkpoint: { interval_ms: 100, unaligned }, restart_strategy: { type: "fixed-delay", delay_ms: 20 } };
}

/**
 * After a run under faults: the job is RUNNING again (a fault found late, by
 * a lost heartbeat, may still be restarting it), restarted at least
 * `restarts` times, and, when `unaligned`, completed a checkpoint with a
 * barrier taken unaligned.
 */
export async function expectRecovered(engine: Engine, job: string, options: { restarts: number; unaligned: boolean }): Promise<void> {
  type Status = { status: string; restarts: number; last_error: string | null };
  let status: Status | undefined;
  await waitFor(async () => (status = (await (await engine.api(`/v1/jobs/${job}`)).json()) as Status).status === "RUNNING", 30_000, `${job} RUNNING again`).catch(() => undefined);
  expect(status?.status, `last error: ${status?.last_error}`).toBe("RUNNING");
  expect(status!.restarts, "restarts").toBeGreaterThanOrEqual(options.restarts);
  const { history } = (await (await engine.api(`/v1/jobs/${job}/checkpoints`)).json()) as { history: { status: string; checkpoint_type: string }[] };
  const types = new Set(history.filter((h) => h.status === "COMPLETED").map((h) => h.checkpoint_type));
  expect(types.has("UNALIGNED_CHECKPOINT"), `checkpoint types ${[...types].join(", ")}`).toBe(options.unaligned);
}

/** Waits until `table` holds exactly the pairs in `expected`, each counted once (the join jobs count each pair they emit). */
export async function expectPairs(engine: Engine, table: string, expected: ReadonlySet<string>, what: string): Promise<void> {
  let last = "";
  await waitFor(
    async () => {
      const rows = await readTable<number>(engine, table);
      const wrong = [...rows].filter(([k, n]) => !expected.has(k) || n !== 1);
      last = `${rows.size}/${expected.size} rows; wrong ${JSON.stringify(wrong.slice(0, 5))}`;
      return rows.size === expected.size && wrong.length === 0;
    },
    60_000,
    what,
  ).catch((e: Error) => {
    throw new Error(`${e.message}: ${last}`);
  });
}
