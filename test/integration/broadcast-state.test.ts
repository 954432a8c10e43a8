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
 *
 * And rules broadcast while clicks flow (`broadcast-flow`), with a SIGKILL
 * right after a batch of rules was ingested: each row says how many rule
 * records its subtask had applied, and must equal the reference computed
 * from that order (the rules so far; the user's clicks since the last rule
 * in that order).
 *
 * And the same without keys (`broadcast-unkeyed`, a BroadcastProcessFunction
 * over a non-keyed stream): rules broadcast while clicks flow, a SIGKILL
 * right after a batch of rules, a savepoint restored at parallelism 3 (the
 * clicks rebalanced over a subtask that only the savepoint gives rules);
 * every row carries its subtask's whole rule set, which must be the
 * reference after the rule records it says it had applied, each row once.
 */
import { describe, expect, it } from "vitest";
import type { BroadcastClick, BroadcastRule, RuledClick, SequencedClick, SequencedRule, UnkeyedRuledClick } from "../fixtures/broadcast-jobs.js";
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

/**
 * Rules and clicks of `broadcast-flow`, and the check of every click's row
 * against the order its subtask applied the rules in.
 */
class FlowReference {
  readonly rules: SequencedRule[] = [];
  readonly clicks: BroadcastClick[] = [];

  constructor(private readonly random: Random) {}

  ruleBatch(n: number): SequencedRule[] {
    return Array.from({ length: n }, () => {
      const seq = this.rules.length + 1;
      const rule = { seq, url: `/${"abcdef"[this.random.int(6)]}`, limit: this.random.chance(0.2) ? null : 1 + this.random.int(9), version: seq };
      this.rules.push(rule);
      return rule;
    });
  }

  clickBatch(n: number): BroadcastClick[] {
    return Array.from({ length: n }, () => {
      const click = { id: `c${this.clicks.length}`, user: `u${this.random.int(40)}`, url: `/${"abcdef"[this.random.int(6)]}` };
      this.clicks.push(click);
      return click;
    });
  }

  /** The rule of `url` once the first `seq` rule records were applied. */
  private ruleAfter(seq: number, url: string): SequencedRule | undefined {
    return this.rulesAfter(seq).get(url);
  }

  /** Every url's rule once the first `seq` rule records were applied. */
  rulesAfter(seq: number): Map<string, SequencedRule> {
    const rules = new Map<string, SequencedRule>();
    for (const r of this.rules.slice(0, seq)) {
      if (r.limit === null) rules.delete(r.url);
      else rules.set(r.url, r);
    }
    return rules;
  }

  /** The rule set after `seq` rule records as `broadcast-unkeyed` writes it (test/fixtures/broadcast-jobs.ts). */
  digestAfter(seq: number): string {
    return [...this.rulesAfter(seq).values()]
      .sort((a, b) => a.url.localeCompare(b.url))
      .map((r) => `${r.url}=${r.limit}@${r.version}`)
      .join(",");
  }

  /**
   * What is wrong in the rows of `broadcast-unkeyed`: a click without its
   * row or with one emitted twice, or whose rule and whole rule set are not
   * those of the first `seq` rule records it says its subtask had applied.
   */
  unkeyedProblems(rows: Map<string, UnkeyedRuledClick>): string[] {
    const out: string[] = [];
    if (rows.size !== this.clicks.length) out.push(`${rows.size} rows for ${this.clicks.length} clicks`);
    for (const c of this.clicks) {
      const got = rows.get(c.id);
      if (!got) {
        out.push(`${c.id}: no row`);
        continue;
      }
      if (got.n !== 1) out.push(`${c.id}: emitted ${got.n} times`);
      const rule = this.ruleAfter(got.seq, c.url);
      const want = { limit: rule?.limit ?? null, version: rule?.version ?? 0, rules: this.digestAfter(got.seq) };
      if (got.seq > this.rules.length || got.limit !== want.limit || got.version !== want.version || got.rules !== want.rules) {
        out.push(`${c.id} (${c.url}) on subtask ${got.subtask} after ${got.seq} rules: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
      }
    }
    return out;
  }

  /** What is wrong in `rows` (empty when every click has its row, equal to the reference of the order its subtask applied the rules in). */
  problems(rows: Map<string, SequencedClick>): string[] {
    const out: string[] = [];
    if (rows.size !== this.clicks.length) out.push(`${rows.size} rows for ${this.clicks.length} clicks`);
    /** Per user: the seq of its last click, and how many of its clicks had it. */
    const perUser = new Map<string, { seq: number; since: number }>();
    for (const c of this.clicks) {
      const got = rows.get(c.id);
      if (!got) {
        out.push(`${c.id}: no row`);
        continue;
      }
      const last = perUser.get(c.user);
      if (last && got.seq < last.seq) out.push(`${c.id}: its subtask had applied ${got.seq} rules, fewer than at ${c.user}'s click before (${last.seq})`);
      const since = last && last.seq === got.seq ? last.since + 1 : 1;
      perUser.set(c.user, { seq: got.seq, since });
      const rule = this.ruleAfter(got.seq, c.url);
      const want = { limit: rule?.limit ?? null, version: rule?.version ?? 0, sinceRules: since };
      if (got.seq > this.rules.length || got.limit !== want.limit || got.version !== want.version || got.sinceRules !== want.sinceRules) {
        out.push(`${c.id} (${c.user} ${c.url}) after ${got.seq} rules: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
      }
    }
    return out;
  }
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

  it("applies rules broadcast while clicks flow, each row as the order its subtask applied them says, across a SIGKILL with rules in flight", async () => {
    const random = new Random(SEED + 1);
    const ref = new FlowReference(random);
    let engine = await engines.start();
    expect((await engine.api("/v1/jobs/broadcast-flow/start", { method: "POST", json: {} })).status).toBe(200);

    // The job running: clicks before any rule.
    await ingest(engine, "bcf-clicks", ref.clickBatch(20));
    await caughtUp(engine, "bcf-clicks", "broadcast-flow");
    // Clicks and rules in turns, neither waiting for the other, at a pace the job keeps up with (so that clicks
    // meet the rules at many points); the runtime is SIGKILLed right after a batch of rules.
    const rounds = 10;
    const crashAfter = 2 + random.int(rounds - 4);
    for (let r = 0; r < rounds; r++) {
      await ingest(engine, "bcf-clicks", ref.clickBatch(20 + random.int(20)));
      await ingest(engine, "bcf-rules", ref.ruleBatch(1 + random.int(3)));
      await new Promise((res) => setTimeout(res, random.int(r === crashAfter ? 50 : 150)));
      if (r === crashAfter) engine = await engines.crash(engine);
    }
    // Every rule applied: clicks now see all of them, in both subtasks.
    await caughtUp(engine, "bcf-rules", "broadcast-flow");
    const last = ref.clickBatch(60);
    await ingest(engine, "bcf-clicks", last);
    await caughtUp(engine, "bcf-clicks", "broadcast-flow");

    let problems: string[] = [];
    await waitFor(
      async () => {
        problems = ref.problems(await readTable<SequencedClick>(engine, "bcf-out"));
        return problems.length === 0;
      },
      60_000,
      "every click's row equal to the reference of the order its subtask applied the rules in",
    ).catch((e: Error) => {
      throw new Error(`${e.message}: ${problems.length} problems, first ${JSON.stringify(problems.slice(0, 5))}`);
    });
    const rows = await readTable<SequencedClick>(engine, "bcf-out");
    const seqs = new Set(ref.clicks.map((c) => rows.get(c.id)!.seq));
    console.log(`broadcast-flow: clicks saw ${seqs.size} of ${ref.rules.length + 1} rule counts: ${[...seqs].sort((a, b) => a - b)}`);
    expect(seqs.size, "clicks saw the rules at several points of the flow").toBeGreaterThan(3);
    expect(new Set(last.map((c) => rows.get(c.id)!.subtask)), "both subtasks").toEqual(new Set([0, 1]));
    for (const c of last) expect(rows.get(c.id)!.seq, `${c.id}: every rule applied`).toBe(ref.rules.length);
    const status = (await (await engine.api("/v1/jobs/broadcast-flow")).json()) as { status: string; restarts: number };
    expect(status.status).toBe("RUNNING");
    expect(status.restarts).toBeGreaterThanOrEqual(1);
  }, 150_000);

  it("gives every subtask of a non-keyed broadcast process function the same rules, broadcast while clicks flow, across a SIGKILL and a savepoint restored at another parallelism", async () => {
    const job = "broadcast-unkeyed";
    const random = new Random(SEED + 2);
    const ref = new FlowReference(random);
    let engine = await engines.start();
    expect((await engine.api(`/v1/jobs/${job}/start`, { method: "POST", json: {} })).status).toBe(200);

    /**
     * Clicks and rules in turns, neither waiting for the other; a SIGKILL right after the rules of round `crashAfter`.
     * The rounds after it wait for the restored job to catch up first: a backlog read after the restart may take all
     * its rules before its clicks, and the clicks would then see the rules at one point only.
     */
    const flow = async (rounds: number, crashAfter?: number) => {
      for (let r = 0; r < rounds; r++) {
        await ingest(engine, "bcu-clicks", ref.clickBatch(20 + random.int(20)));
        await ingest(engine, "bcu-rules", ref.ruleBatch(1 + random.int(3)));
        await new Promise((res) => setTimeout(res, random.int(r === crashAfter ? 50 : 150)));
        if (r === crashAfter) {
          engine = await engines.crash(engine);
          await caughtUp(engine, "bcu-rules", job);
          await caughtUp(engine, "bcu-clicks", job);
        }
      }
      await caughtUp(engine, "bcu-rules", job);
      await caughtUp(engine, "bcu-clicks", job);
    };
    const expectRows = async (what: string) => {
      let problems: string[] = [];
      await waitFor(
        async () => {
          problems = ref.unkeyedProblems(await readTable<UnkeyedRuledClick>(engine, "bcu-out"));
          return problems.length === 0;
        },
        60_000,
        what,
      ).catch((e: Error) => {
        throw new Error(`${e.message}: ${problems.length} problems, first ${JSON.stringify(problems.slice(0, 5))}`);
      });
      return readTable<UnkeyedRuledClick>(engine, "bcu-out");
    };

    await ingest(engine, "bcu-clicks", ref.clickBatch(20));
    await flow(8, 2 + random.int(4));
    let rows = await expectRows("every row of the rules its subtask had applied, across the SIGKILL");
    const status = (await (await engine.api(`/v1/jobs/${job}`)).json()) as { status: string; restarts: number };
    expect(status.status).toBe("RUNNING");
    expect(status.restarts, "the SIGKILL restarted the job").toBeGreaterThanOrEqual(1);
    const seqs = new Set(ref.clicks.map((c) => rows.get(c.id)!.seq));
    expect(seqs.size, "clicks saw the rules at several points of the flow").toBeGreaterThan(3);

    // A savepoint, restored at parallelism 3: the clicks are rebalanced now, and the new subtask has only the savepoint's copy of the rules.
    const atStop = ref.rules.length;
    const stop = await engine.api(`/v1/jobs/${job}/stop`, { method: "POST", json: { savepoint: true } });
    expect(stop.status, await stop.clone().text()).toBe(200);
    const { id } = (await stop.json()) as { id: string };
    const restarted = await engine.api(`/v1/jobs/${job}/start`, { method: "POST", json: { fromSavepoint: id, parallelism: { "tag-clicks": 3 } } });
    expect(restarted.status, await restarted.clone().text()).toBe(200);
    const restored = ref.clickBatch(60);
    await ingest(engine, "bcu-clicks", restored);
    await caughtUp(engine, "bcu-clicks", job);
    rows = await expectRows("the clicks after the restore");
    expect(new Set(restored.map((c) => rows.get(c.id)!.subtask)), "clicks after the rescale reached every subtask").toEqual(new Set([0, 1, 2]));
    for (const c of restored) expect(rows.get(c.id)!.seq, `${c.id} on subtask ${rows.get(c.id)!.subtask}: every rule of the savepoint`).toBe(atStop);

    // Rules broadcast while clicks flow at the new parallelism, then clicks that see all of them on every subtask.
    await flow(4);
    const last = ref.clickBatch(60);
    await ingest(engine, "bcu-clicks", last);
    await caughtUp(engine, "bcu-clicks", job);
    rows = await expectRows("every row after the rescale");
    expect(new Set(last.map((c) => rows.get(c.id)!.subtask)), "every subtask").toEqual(new Set([0, 1, 2]));
    for (const c of last) expect(rows.get(c.id)!.rules, `${c.id} on subtask ${rows.get(c.id)!.subtask}: the whole rule set`).toBe(ref.digestAfter(ref.rules.length));
    expect(((await (await engine.api(`/v1/jobs/${job}`)).json()) as { status: string }).status).toBe("RUNNING");
  }, 150_000);
});
