/**
 * The end-to-end exactly-once proof: the "sinks" job (HTTP ingestion →
 * keyed count → table, R2 files and a webhook, all two-phase commit) runs
 * over a known input while faults land at random moments — user-code
 * exceptions, subtask and coordinator resets, SIGKILL of the whole runtime —
 * and the committed output of every sink must equal exactly the expected
 * output: nothing missing, nothing doubled.
 */
import { crashEngine, resetCoordinator, resetSubtask } from "./crash.js";
import { type Engine, readTable, startEngine } from "./engine.js";
import { Random } from "./random.js";
import { type WebhookServer, startWebhookServer } from "./webhook-server.js";

export type SinkFault = "user-exception" | "subtask-reset" | "coordinator-reset" | "process-kill";

export interface SinksChaosOptions {
  random: Random;
  events: number;
  users: number;
  perRequest: number;
  /** Probability of a fault after each request. */
  faultRate: number;
  /** Probability that a request carries a record whose processing throws once. */
  userFaultRate: number;
  /** Stop sending after this long, whatever `events` says (for duration-bounded runs). */
  durationMs?: number;
  log?: (line: string) => void;
}

export interface SinksChaosResult {
  events: number;
  faults: Record<SinkFault, number>;
  /** Faults that landed while some sink held a sealed, uncommitted transaction. */
  betweenPreCommitAndCommit: number;
  restarts: number;
  problems: string[];
  webhook: { deliveries: number; repeats: number; conflicts: number; refused: number };
  elapsedMs: number;
}

type Metrics = { subtasks: { vertex: string; index: number; sinks: Record<string, { sealed_transactions: number }> }[] };

export async function runSinksChaos(o: SinksChaosOptions): Promise<SinksChaosResult> {
  const started = Date.now();
  const log = o.log ?? (() => undefined);
  // A slow, sometimes failing receiver keeps transactions sealed but uncommitted for a while: faults land there.
  const hook = await startWebhookServer({ random: new Random(o.random.seed + 1), failRate: 0.1, delayMs: 80 });
  const bindings = { WEBHOOK_URL: hook.url };
  let engine = await startEngine({ testJobs: true, bindings });
  const faults: Record<SinkFault, number> = { "user-exception": 0, "subtask-reset": 0, "coordinator-reset": 0, "process-kill": 0 };
  let between = 0;
  const expected = new Map<string, number>();
  try {
    const start = await engine.api("/v1/jobs/sinks/start", { method: "POST", json: { config: { restart_strategy: { type: "fixed-delay", delay_ms: 20 } } } });
    if (start.status !== 200) throw new Error(`start failed: ${start.status} ${await start.text()}`);
    const vertices = ((await start.json()) as { vertices: { id: string; parallelism: number }[] }).vertices;
    const subtasks = vertices.flatMap((v) => Array.from({ length: v.parallelism }, (_, i) => [v.id, i] as const));
    let sent = 0;
    let failId = 0;
    while (sent < o.events && (o.durationMs === undefined || Date.now() - started < o.durationMs)) {
      const n = Math.min(o.perRequest, o.events - sent);
      const lines: string[] = [];
      const failAt = o.random.chance(o.userFaultRate) ? o.random.int(n) : -1;
      for (let i = 0; i < n; i++) {
        const user = `u${o.random.int(o.users)}`;
        expected.set(user, (expected.get(user) ?? 0) + 1);
        lines.push(JSON.stringify(i === failAt ? { user, failOnce: `s${o.random.seed}-${failId++}` } : { user }));
      }
      if (failAt >= 0) faults["user-exception"]++;
      const key = `req-${o.random.seed}-${sent}`;
      // Retried with the same Idempotency-Key until acknowledged: a lost answer never duplicates input.
      for (;;) {
        const res = await engine.api("/v1/ingest/sink-clicks", { method: "POST", body: lines.join("\n"), headers: { "content-type": "application/x-ndjson", "idempotency-key": key } }).catch(() => null);
        if (res?.status === 200) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      sent += n;
      // Paced input: the run spans many checkpoints, so faults meet every phase of the protocol.
      await new Promise((r) => setTimeout(r, o.random.int(60)));
      if (!o.random.chance(o.faultRate)) continue;
      // Half the faults wait for a sealed, uncommitted transaction: the window two-phase commit exists for.
      const targeted = o.random.chance(0.5);
      let sealed = false;
      const until = Date.now() + (targeted ? 2_000 : o.random.int(400));
      do {
        const m = (await (await engine.api("/v1/jobs/sinks/metrics")).json().catch(() => ({ subtasks: [] }))) as Metrics;
        sealed = m.subtasks.some((s) => Object.values(s.sinks ?? {}).some((x) => x.sealed_transactions > 0));
        if (sealed && targeted) break;
        await new Promise((r) => setTimeout(r, 5));
      } while (Date.now() < until);
      const fault = o.random.pick(["subtask-reset", "subtask-reset", "coordinator-reset", "process-kill"] as const);
      faults[fault]++;
      if (sealed) between++;
      log(`after ${sent} events: ${fault}${sealed ? " (sealed transactions pending)" : ""}`);
      if (fault === "subtask-reset") {
        const [vertex, index] = o.random.pick(subtasks);
        await resetSubtask(engine, "sinks", vertex, index);
      } else if (fault === "coordinator-reset") {
        await resetCoordinator(engine, "sinks");
      } else {
        const dir = engine.persistDir;
        await crashEngine(engine);
        engine = await startEngine({ testJobs: true, bindings, persistDir: dir });
      }
    }
    const total = [...expected.values()].reduce((a, b) => a + b, 0);
    log(`sent ${total} events; waiting for the committed output`);
    const problems = await waitForExactOutput(engine, hook, expected, 180_000);
    const status = (await (await engine.api("/v1/jobs/sinks")).json()) as { restarts: number; status: string; last_error: string | null };
    if (status.status !== "RUNNING") problems.push(`job is ${status.status}: ${status.last_error}`);
    return {
      events: total,
      faults,
      betweenPreCommitAndCommit: between,
      restarts: status.restarts,
      problems,
      webhook: { deliveries: hook.deliveries.size, repeats: hook.repeats, conflicts: hook.conflicts, refused: hook.refused },
      elapsedMs: Date.now() - started,
    };
  } finally {
    await engine.dispose().catch(() => undefined);
    await hook.close();
  }
}

/** Polls until every sink's committed output equals the expected output; returns what still differs at the deadline. */
async function waitForExactOutput(engine: Engine, hook: WebhookServer, expected: Map<string, number>, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let problems: string[] = [];
  for (;;) {
    problems = [...(await checkTable(engine, expected)), ...(await checkFiles(engine, expected)), ...checkWebhook(hook, expected)];
    if (problems.length === 0 || Date.now() > deadline) return problems.slice(0, 20);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function checkTable(engine: Engine, expected: Map<string, number>): Promise<string[]> {
  const rows = await readTable<number>(engine, "sink-counts");
  const out: string[] = [];
  for (const [u, n] of expected) if (rows.get(u) !== n) out.push(`table: ${u} is ${rows.get(u)}, expected ${n}`);
  for (const u of rows.keys()) if (!expected.has(u)) out.push(`table: unexpected row ${u}`);
  return out;
}

/** Every (user, n) for n in 1..count must appear exactly once. */
export function compareUpdates(where: string, seen: Map<string, number>, expected: Map<string, number>): string[] {
  const out: string[] = [];
  for (const [u, count] of expected) {
    for (let n = 1; n <= count; n++) {
      const c = seen.get(`${u}#${n}`) ?? 0;
      if (c !== 1) out.push(`${where}: ${u} update ${n} appears ${c} times`);
      if (out.length > 10) return out;
    }
  }
  for (const [k, c] of seen) {
    const [u, n] = k.split("#");
    if ((expected.get(u) ?? 0) < Number(n)) out.push(`${where}: unexpected update ${k} (${c} times)`);
  }
  return out;
}

export async function checkFiles(engine: Engine, expected: Map<string, number>): Promise<string[]> {
  const bucket = await engine.mf.getR2Bucket("FILES");
  const seen = new Map<string, number>();
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix: "sinks-job/", cursor });
    for (const o of page.objects) {
      const text = await (await bucket.get(o.key))!.text();
      for (const line of text.split("\n")) {
        if (!line) continue;
        const r = JSON.parse(line) as { user: string; n: number };
        const k = `${r.user}#${r.n}`;
        seen.set(k, (seen.get(k) ?? 0) + 1);
      }
    }
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return compareUpdates("files", seen, expected);
}

export function checkWebhook(hook: WebhookServer, expected: Map<string, number>): string[] {
  const seen = new Map<string, number>();
  for (const body of hook.deliveries.values()) {
    for (const r of JSON.parse(body) as { user: string; n: number }[]) {
      const k = `${r.user}#${r.n}`;
      seen.set(k, (seen.get(k) ?? 0) + 1);
    }
  }
  const out = compareUpdates("webhook", seen, expected);
  if (hook.conflicts > 0) out.push(`webhook: ${hook.conflicts} repeated deliveries carried a different body`);
  return out;
}
