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
}

export class JoinInput {
  readonly impressions: JoinEvent[] = [];
  readonly clicks: JoinEvent[] = [];
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
   * Starts `job`, then sends `rounds` rounds of `size` with three faults at
   * seeded rounds and delays: a reset of a subtask of the `join` vertex, a
   * reset of the job's coordinator, and a SIGKILL of the runtime (started
   * again over its state by `crash`); answers the engine that runs at the end.
   */
  async sendWithFaults(engine: Engine, job: string, crash: (engine: Engine) => Promise<Engine>, rounds: number, size: number): Promise<Engine> {
    expect((await engine.api(`/v1/jobs/${job}/start`, { method: "POST", json: {} })).status).toBe(200);
    const [resetAt, coordinatorAt, crashAt] = this.random.shuffle(Array.from({ length: rounds - 2 }, (_, i) => i + 1)).slice(0, 3);
    for (let r = 0; r < rounds; r++) {
      await this.send(engine, size);
      if (r !== resetAt && r !== coordinatorAt && r !== crashAt) continue;
      await new Promise((res) => setTimeout(res, this.random.int(400)));
      if (r === crashAt) engine = await crash(engine);
      else if (r === coordinatorAt) await engine.resetCoordinator(job);
      else {
        const status = (await (await engine.api(`/v1/jobs/${job}`)).json()) as { vertices: { id: string; parallelism: number }[] };
        const join = status.vertices.find((v) => v.id === "join")!;
        await engine.resetSubtask(job, "join", this.random.int(join.parallelism));
      }
    }
    return engine;
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
