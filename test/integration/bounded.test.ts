/**
 * Bounded jobs end exactly-once (FLIP-147, docs/checkpoints.md "End of
 * input: the final checkpoint") in the real runtime. The test Worker's
 * bounded jobs read a slow generator to its end, count per key and write a
 * table and a slow webhook; each run must reach FINISHED with exactly the
 * expected output, with and without subtask and coordinator resets, some
 * aimed after the sources reached their end. The runs share one engine
 * (starting workerd costs seconds), each with its own copy of the job.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { metadataKey } from "../../src/storage/layout.js";
import { coordinatorName, subtaskName } from "../../src/runtime/names.js";
import { resetCoordinator, resetSubtask } from "../support/crash.js";
import { type Engine, readTable, startEngine, waitFor } from "../support/engine.js";
import { Random } from "../support/random.js";
import { type WebhookServer, startWebhookServer } from "../support/webhook-server.js";

// The input, as boundedJob in test/fixtures/jobs.ts generates it (a Worker module: Node cannot import it).
const PARTITIONS = 3;
const COUNT = 240;
const KEYS = 13;
const recordOf = (i: number, p: number) => ({ key: `k${(i * 7 + p * 5) % KEYS}`, value: p * 1000 + i });

/** The test Worker's copies of the bounded job: the fault-free run takes the first, each seed one more. */
const JOBS = ["bounded-0", "bounded-1", "bounded-2", "bounded-3", "bounded-4"];
const SEEDS = (process.env.FLOE_BOUNDED_SEEDS ?? "7,19,31,43").split(",").map(Number);
if (SEEDS.length > JOBS.length - 1) throw new Error(`at most ${JOBS.length - 1} seeds per run: test/fixtures/jobs.ts registers ${JOBS.length} bounded jobs`);

const SUBTASKS = [
  ["gen", 0],
  ["gen", 1],
  ["count", 0],
  ["count", 1],
  ["table-out", 0],
  ["table-out", 1],
  ["to-line", 0],
  ["to-line", 1],
] as const;
/** The subtasks that hold sinks ("to-line" holds the webhook sink). */
const SINK_SUBTASKS = SUBTASKS.filter(([vertex]) => vertex === "table-out" || vertex === "to-line");
/**
 * How long the webhook takes to answer. Each commit of the webhook sink waits
 * this long, so that its subtasks stay between their end of input and
 * finishing for a few hundred ms: time for a reset to land there.
 */
const WEBHOOK_DELAY_MS = 150;

interface Totals {
  count: number;
  sum: number;
}

interface Status {
  status: string;
  attempt: number;
  restarts: number;
  last_error: string | null;
  end_time: number | null;
  latest_completed_checkpoint: number | null;
}

interface HistoryEntry {
  id: number;
  status: string;
  trigger_timestamp: number;
  latest_ack_timestamp: number | null;
  num_acknowledged_subtasks: number;
  failure_message: string | null;
}

interface Overview {
  counts: { total: number; completed: number; failed: number; restored: number };
  history: HistoryEntry[];
}

/** Per key: how many records and the sum of their values, over the whole bounded input. */
function expectedTotals(): Map<string, Totals> {
  const out = new Map<string, Totals>();
  for (let p = 0; p < PARTITIONS; p++) {
    for (let i = 0; i < COUNT; i++) {
      const r = recordOf(i, p);
      const t = out.get(r.key) ?? { count: 0, sum: 0 };
      out.set(r.key, { count: t.count + 1, sum: t.sum + r.value });
    }
  }
  return out;
}

const EXPECTED = expectedTotals();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function getJson<T>(engine: Engine, path: string): Promise<T> {
  const res = await engine.api(path);
  if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
}

const jobStatus = (engine: Engine, job: string) => getJson<Status>(engine, `/v1/jobs/${job}`);

async function startJob(engine: Engine, job: string, checkpoint: Record<string, unknown>): Promise<void> {
  const res = await engine.api(`/v1/jobs/${job}/start`, {
    method: "POST",
    json: { config: { checkpoint: { interval_ms: 80, ...checkpoint }, restart_strategy: { type: "fixed-delay", delay_ms: 20 } } },
  });
  if (res.status !== 200) throw new Error(`starting ${job} answered ${res.status}: ${await res.text()}`);
}

/** Waits for FINISHED; a FAILED job or a timeout throws with the job's status, checkpoints and metrics. */
async function waitForFinished(engine: Engine, job: string, what: string, timeoutMs = 30_000): Promise<Status> {
  let status: Status | undefined;
  let problem: string;
  try {
    status = await waitFor(async () => {
      const s = await jobStatus(engine, job);
      return ["FINISHED", "FAILED", "CANCELED"].includes(s.status) ? s : undefined;
    }, timeoutMs, `${what}: the job FINISHED`);
    if (status.status === "FINISHED") return status;
    problem = `${what}: the job is ${status.status}: ${status.last_error}`;
  } catch (e) {
    status = await jobStatus(engine, job).catch(() => undefined);
    problem = (e as Error).message;
  }
  const overview = await getJson<Overview>(engine, `/v1/jobs/${job}/checkpoints`).catch(() => null);
  const metrics = await getJson<unknown>(engine, `/v1/jobs/${job}/metrics`).catch(() => null);
  throw new Error(`${problem}\nstatus ${JSON.stringify(status)}\ncheckpoints ${JSON.stringify(overview?.counts)} ${JSON.stringify(overview?.history.slice(0, 4))}\nmetrics ${JSON.stringify(metrics)}`);
}

/**
 * Every difference between the job's output and the exact expected one:
 * the table holds each key's final count and sum; the webhook deliveries
 * hold each key's updates 1..count exactly once (a replayed update published
 * twice, or one never published, shows there even where the table's upsert
 * hides it).
 */
async function outputProblems(engine: Engine, hook: WebhookServer, job: string): Promise<string[]> {
  const problems: string[] = [];
  const table = await readTable<Totals>(engine, `${job}-out`);
  for (const [key, want] of EXPECTED) {
    const got = table.get(key);
    if (got?.count !== want.count || got.sum !== want.sum) problems.push(`table: key ${key} expected count ${want.count} sum ${want.sum}, got ${JSON.stringify(got ?? null)}`);
  }
  for (const key of table.keys()) if (!EXPECTED.has(key)) problems.push(`table: unexpected key ${key}`);

  // Deliveries are kept per Idempotency-Key (job/uid/subtask/transaction): a transaction delivered again counts once.
  const seen = new Map<string, number>();
  for (const [idempotencyKey, body] of hook.deliveries) {
    if (!idempotencyKey.startsWith(`${job}/`)) continue;
    for (const { key, n } of JSON.parse(body) as { key: string; n: number }[]) seen.set(`${key}#${n}`, (seen.get(`${key}#${n}`) ?? 0) + 1);
  }
  for (const [key, want] of EXPECTED) {
    for (let n = 1; n <= want.count; n++) {
      const times = seen.get(`${key}#${n}`) ?? 0;
      if (times !== 1) problems.push(`webhook: key ${key} update ${n} delivered ${times} times`);
    }
  }
  for (const [k, times] of seen) {
    const [key, n] = k.split("#");
    if (Number(n) > (EXPECTED.get(key)?.count ?? 0)) problems.push(`webhook: unexpected update ${n} of key ${key} (${times} times)`);
  }
  if (hook.conflicts > 0) problems.push(`webhook: ${hook.conflicts} transaction(s) delivered again with another body`);
  return problems;
}

interface SubtaskMetrics {
  vertex: string;
  index: number;
  attempt: number;
  status: string;
  positions: Record<string, number> | null;
}

const isSink = (t: SubtaskMetrics) => SINK_SUBTASKS.some(([v, i]) => v === t.vertex && i === t.index);
/** Whether a source subtask has read all its partitions to their end. */
const atEnd = (t: SubtaskMetrics) => t.vertex === "gen" && t.positions !== null && Object.values(t.positions).every((p) => p === COUNT);

/**
 * Polls the job's metrics, with no pause (the end of input comes a few
 * hundred ms before FINISHED), until `when` holds for the subtasks of
 * its current attempt; answers them, or null once every subtask finished or
 * the job is no longer running.
 */
async function waitForSubtasks(engine: Engine, job: string, when: (subtasks: SubtaskMetrics[]) => boolean, what: string): Promise<SubtaskMetrics[] | null> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const m = await getJson<{ subtasks: SubtaskMetrics[] }>(engine, `/v1/jobs/${job}/metrics`);
    if (m.subtasks.length === SUBTASKS.length) {
      if (m.subtasks.every((t) => t.status === "finished")) return null;
      if (when(m.subtasks)) return m.subtasks;
    } else {
      // Restarting (no subtasks of the new attempt yet), or not running any more.
      const s = await jobStatus(engine, job);
      if (s.status !== "RUNNING" && s.status !== "RESTARTING") return null;
      await sleep(20);
    }
  }
  throw new Error(`${what} never came (status ${JSON.stringify(await jobStatus(engine, job))})`);
}

/**
 * A reset of each of the job's objects, with its stub made now: through
 * Miniflare's proxy a stub costs round trips, and a reset aimed between the
 * end of input and FINISHED has about a hundred ms to land. Each is for one use.
 */
async function resets(engine: Engine, job: string): Promise<Map<string, () => Promise<void>>> {
  type Resettable = { reset(): Promise<void> };
  const subtasks = await engine.mf.getDurableObjectNamespace("SUBTASK");
  const coordinators = await engine.mf.getDurableObjectNamespace("COORDINATOR");
  const out = new Map<string, () => Promise<void>>();
  for (const [vertex, index] of SUBTASKS) {
    const stub = subtasks.get(subtasks.idFromName(subtaskName(job, vertex, index))) as unknown as Resettable;
    out.set(`${vertex}/${index}`, () => stub.reset().catch(() => undefined));
  }
  const coordinator = coordinators.get(coordinators.idFromName(coordinatorName(job))) as unknown as Resettable;
  out.set("coordinator", () => coordinator.reset().catch(() => undefined));
  return out;
}

describe("a bounded job ends exactly-once", () => {
  let engine: Engine;
  let hook: WebhookServer;
  beforeAll(async () => {
    hook = await startWebhookServer({ delayMs: WEBHOOK_DELAY_MS });
    engine = await startEngine({ testJobs: true, bindings: { WEBHOOK_URL: hook.url } });
  });
  afterAll(async () => {
    await engine?.dispose();
    await hook?.close();
  });

  it("without faults: FINISHED after a final checkpoint taken at the end of input, with exactly the expected output", async () => {
    const job = JOBS[0];
    const t0 = Date.now();
    await startJob(engine, job, {});
    const status = await waitForFinished(engine, job, "no faults");
    console.log(`no faults: FINISHED in ${Date.now() - t0} ms, checkpoint ${status.latest_completed_checkpoint} the last`);
    expect(status.restarts, `last error: ${status.last_error}`).toBe(0);

    const overview = await getJson<Overview>(engine, `/v1/jobs/${job}/checkpoints`);
    const completed = overview.history.filter((h) => h.status === "COMPLETED");
    expect(completed.length, "completed checkpoints").toBeGreaterThan(0);
    const last = completed.reduce((a, b) => (b.id > a.id ? b : a));
    expect(status.latest_completed_checkpoint).toBe(last.id);
    // The scheduler may trigger one more as the subtasks finish: the job's end aborts it.
    for (const later of overview.history.filter((h) => h.id > last.id)) {
      expect(`${later.id} ${later.status} ${later.failure_message}`, "a checkpoint after the final one").toMatch(/^\d+ FAILED JOB_STOPPED: the job finished$/);
    }
    expect(last.num_acknowledged_subtasks, "every subtask took the final checkpoint").toBe(SUBTASKS.length);
    expect(status.end_time, "the job finished after its final checkpoint completed").toBeGreaterThanOrEqual(last.latest_ack_timestamp!);

    // The final checkpoint was taken after the end of input: its source positions are at the end.
    const metadata = await (await engine.mf.getR2Bucket("CHECKPOINTS")).get(metadataKey("", job, last.id));
    expect(metadata, `_metadata of checkpoint ${last.id}`).not.toBeNull();
    const { operators } = JSON.parse(await metadata!.text()) as { operators: Record<string, { sources: Record<string, Record<string, number>> }> };
    const positions = Object.assign({}, ...Object.values(operators.gen.sources)) as Record<string, number>;
    expect(positions, `source positions in checkpoint ${last.id}`).toEqual(Object.fromEntries(Array.from({ length: PARTITIONS }, (_, p) => [`generator/${p}`, COUNT])));

    expect(await outputProblems(engine, hook, job)).toEqual([]);
  });

  SEEDS.forEach((seed, n) => {
    it(`seed ${seed}: subtask and coordinator resets, some after the end of input, change nothing in the output`, async () => {
      const job = JOBS[n + 1];
      const random = new Random(seed);
      const unaligned = random.chance(0.5);
      const faults: string[] = [];
      const t0 = Date.now();
      const ms = () => Date.now() - t0;
      // The default checkpoint timeout (600 s): a Coordinator reset fails the acks in flight to it, and the
      // subtasks send them again; a lost one would hold the final checkpoint past the test's time.
      await startJob(engine, job, { unaligned });

      // While the job reads: resets at seeded moments.
      const early = 1 + random.int(2);
      for (let f = 0; f < early; f++) {
        await sleep(150 + random.int(500));
        if (random.chance(0.3)) {
          faults.push(`${ms()} ms: coordinator`);
          await resetCoordinator(engine, job);
        } else {
          const [vertex, index] = random.pick(SUBTASKS);
          faults.push(`${ms()} ms: ${vertex}/${index}`);
          await resetSubtask(engine, job, vertex, index);
        }
      }

      // After one source subtask read its end while the other still reads: the ended one is triggered directly.
      const halfEnded = await waitForSubtasks(engine, job, (ts) => ts.some(atEnd) && !ts.filter((t) => t.vertex === "gen").every(atEnd), `seed ${seed}: one source at its end`);
      if (halfEnded) {
        const ended = halfEnded.find(atEnd)!;
        const target = random.chance(0.25) ? null : random.pick([ended, ...halfEnded.filter((t) => t.status === "running" && isSink(t))]);
        await sleep(random.int(150));
        faults.push(`${ms()} ms, after gen/${ended.index} ended (attempt ${ended.attempt}): ${target ? `${target.vertex}/${target.index}` : "coordinator"}`);
        if (target) await resetSubtask(engine, job, target.vertex, target.index);
        else await resetCoordinator(engine, job);
      }

      // After every source read its end, before the job finished: the final checkpoint or its commit is under way.
      // A second aim waits for the attempt that the first one's failover started.
      let aimedAttempt = 0;
      const aims = 1 + random.int(2);
      for (let f = 0; f < aims; f++) {
        const reset = await resets(engine, job);
        const ended = await waitForSubtasks(
          engine,
          job,
          (ts) => ts[0].attempt !== aimedAttempt && ts.filter((t) => t.vertex === "gen").every(atEnd),
          `seed ${seed}: every source at its end`,
        );
        if (ended === null) break;
        aimedAttempt = ended[0].attempt;
        // A sink subtask that has not finished: the webhook's slow commits hold "to-line" there longest.
        const unfinished = ended.filter((t) => t.status === "running");
        const slowest = unfinished.filter((t) => t.vertex === "to-line");
        const sinks = unfinished.filter(isSink);
        const target = random.chance(0.25) || unfinished.length === 0 ? null : random.pick(slowest.length > 0 ? slowest : sinks.length > 0 ? sinks : unfinished);
        const at = ms();
        await reset.get(target ? `${target.vertex}/${target.index}` : "coordinator")!();
        // Read after the reset, a status other than FINISHED means the reset came first.
        const before = (await jobStatus(engine, job)).status !== "FINISHED";
        faults.push(`${at} ms, after every source ended (attempt ${aimedAttempt}): ${target ? `${target.vertex}/${target.index}` : "coordinator"}${before ? "" : " (the job had finished)"}`);
      }

      const what = `seed ${seed} (unaligned ${unaligned}; faults ${faults.join(", ")})`;
      const status = await waitForFinished(engine, job, what);
      const overview = await getJson<Overview>(engine, `/v1/jobs/${job}/checkpoints`);
      const expired = overview.history.filter((h) => h.failure_message?.startsWith("CHECKPOINT_EXPIRED")).map((h) => h.id);
      console.log(`${what}: FINISHED in ${ms()} ms, restarts ${status.restarts}, checkpoints ${JSON.stringify(overview.counts)}, expired ${JSON.stringify(expired)}`);
      const problems = await outputProblems(engine, hook, job);
      expect(problems.slice(0, 10), `${what}; ${problems.length} problems; replay: FLOE_BOUNDED_SEEDS=${seed} npx vitest run --project integration test/integration/bounded.test.ts`).toEqual([]);
      expect(halfEnded, `${what}: no reset landed between the end of a source and FINISHED`).not.toBeNull();
    });
  });
});
