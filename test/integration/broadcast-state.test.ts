/**
 * Broadcast state as a user writes it (issue 19): per-url rules broadcast
 * to every subtask of a keyed operator while clicks flow
 * (test/fixtures/broadcast-jobs.ts; one user's clicks in one partition, in
 * order). Phases whose outcome does not depend
 * on timing (rules; clicks with a SIGKILL of the runtime at a seeded
 * moment; changed rules; clicks; a savepoint restored at parallelism 4;
 * clicks), each caught up before the next. Every click's row must equal
 * the reference: the rule its url had, and its user's click count since
 * the rules last changed (which applyToKeyedState resets), with the
 * clicks after the rescale reaching every subtask, each of which holds
 * the rules of the one copy the savepoint kept.
 */
import { describe, expect, it } from "vitest";
import type { BroadcastClick, BroadcastRule, RuledClick } from "../fixtures/broadcast-jobs.js";
import { type Engine, readTable, waitFor } from "../support/engine.js";
import { caughtUp, engineSet } from "../support/engines.js";
import { Random } from "../support/random.js";

const SEED = Number(process.env.FLOE_SEED ?? 20261207);
const JOB = "broadcast-rules";

const engines = engineSet();

async function ingest(engine: Engine, stream: string, records: readonly object[]): Promise<void> {
  const res = await engine.api(`/v1/ingest/${stream}`, { method: "POST", body: records.map((r) => JSON.stringify(r)).join("\n"), headers: { "content-type": "application/x-ndjson" } });
  expect(res.status, await res.clone().text()).toBe(200);
}

/** The input and the offline reference of every click's row. */
class Reference {
  readonly rows = new Map<string, Omit<RuledClick, "subtask">>();
  private readonly rules = new Map<string, BroadcastRule>();
  private readonly counts = new Map<string, number>();
  private next = 0;

  constructor(private readonly random: Random) {}

  ruleBatch(rules: BroadcastRule[]): BroadcastRule[] {
    for (const r of rules) {
      if (r.limit === null) this.rules.delete(r.url);
      else this.rules.set(r.url, r);
      this.counts.clear();
    }
    return rules;
  }

  clickBatch(n: number): BroadcastClick[] {
    return Array.from({ length: n }, () => {
      const click = { id: `c${this.next++}`, user: `u${this.random.int(40)}`, url: `/${"abcdef"[this.random.int(6)]}` };
      const count = (this.counts.get(click.user) ?? 0) + 1;
      this.counts.set(click.user, count);
      const rule = this.rules.get(click.url);
      this.rows.set(click.id, { limit: rule?.limit ?? null, version: rule?.version ?? 0, sinceRules: count });
      return click;
    });
  }
}

async function expectRows(engine: Engine, ref: Reference): Promise<Map<string, RuledClick>> {
  let wrong = "";
  await waitFor(
    async () => {
      const rows = await readTable<RuledClick>(engine, "bc-out");
      const bad = [...ref.rows].filter(([id, want]) => {
        const got = rows.get(id);
        return !got || got.limit !== want.limit || got.version !== want.version || got.sinceRules !== want.sinceRules;
      });
      wrong = JSON.stringify(bad.slice(0, 5).map(([id, want]) => ({ id, want, got: rows.get(id) })));
      return bad.length === 0 && rows.size === ref.rows.size;
    },
    60_000,
    "every click's row equal to the reference",
  ).catch(async (e: Error) => {
    const status = await (await engine.api(`/v1/jobs/${JOB}`)).text();
    throw new Error(`${e.message}; first wrong rows: ${wrong}; job: ${status.slice(0, 3000)}`);
  });
  return readTable<RuledClick>(engine, "bc-out");
}

describe("broadcast state", () => {
  it("gives every subtask the same rules while keyed data flows, across a SIGKILL and a savepoint restored at another parallelism", async () => {
    const random = new Random(SEED);
    const ref = new Reference(random);
    let engine = await engines.start();
    expect((await engine.api(`/v1/jobs/${JOB}/start`, { method: "POST", json: {} })).status).toBe(200);

    await ingest(engine, "bc-rules", ref.ruleBatch(["/a", "/b", "/c", "/d"].map((url, i) => ({ url, limit: i + 1, version: 1 }))));
    await caughtUp(engine, "bc-rules", JOB);

    const rounds = 6;
    const crashAfter = 1 + random.int(rounds - 2);
    for (let r = 0; r < rounds; r++) {
      await ingest(engine, "bc-clicks", ref.clickBatch(30));
      if (r === crashAfter) {
        await new Promise((res) => setTimeout(res, random.int(300)));
        engine = await engines.crash(engine);
      }
    }
    await caughtUp(engine, "bc-clicks", JOB);

    // Changed rules: /a's limit, /c removed, /e added.
    await ingest(engine, "bc-rules", ref.ruleBatch([{ url: "/a", limit: 10, version: 2 }, { url: "/c", limit: null, version: 2 }, { url: "/e", limit: 7, version: 2 }]));
    await caughtUp(engine, "bc-rules", JOB);
    for (let r = 0; r < 2; r++) await ingest(engine, "bc-clicks", ref.clickBatch(30));
    await caughtUp(engine, "bc-clicks", JOB);
    await expectRows(engine, ref);

    // A savepoint, restored at parallelism 4: every new subtask gets the rules of the savepoint's one copy.
    const stop = await engine.api(`/v1/jobs/${JOB}/stop`, { method: "POST", json: { savepoint: true } });
    expect(stop.status, await stop.clone().text()).toBe(200);
    const { id } = (await stop.json()) as { id: string };
    const restarted = await engine.api(`/v1/jobs/${JOB}/start`, { method: "POST", json: { fromSavepoint: id, parallelism: { "apply-rules": 4 } } });
    expect(restarted.status, await restarted.clone().text()).toBe(200);
    const after = ref.clickBatch(120);
    await ingest(engine, "bc-clicks", after);
    await caughtUp(engine, "bc-clicks", JOB);

    const rows = await expectRows(engine, ref);
    const subtasks = new Set(after.map((c) => rows.get(c.id)!.subtask));
    expect([...subtasks].sort(), "clicks after the rescale reached every subtask, each with the rules").toEqual([0, 1, 2, 3]);
    expect(after.some((c) => rows.get(c.id)!.version === 2), "rules of version 2 were applied after the rescale").toBe(true);
    const status = (await (await engine.api(`/v1/jobs/${JOB}`)).json()) as { status: string };
    expect(status.status).toBe("RUNNING");
  }, 150_000);
});
