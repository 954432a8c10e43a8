/**
 * State TTL end to end, as a user sees it in a table (docs/state.md). The
 * test Worker's `state-ttl` job (test/fixtures/ttl-jobs.ts) counts a key's
 * visits in a session that ends TTL_MS after its last visit (a value state
 * with a TTL) and lists the visits of the last TTL_MS (a list state whose
 * elements expire one by one). Each visit writes its own row with the
 * processing time it was processed at, so that the test checks every row
 * against the rows before it: what expired and what did not follows from
 * those times alone, whatever the machine's speed. The scenarios make
 * sure that both happen, and that a SIGKILL of the runtime and the restore,
 * and a savepoint restored at another parallelism, keep each entry's
 * last-access time (an entry expires TTL_MS after it was written, not
 * after the restore).
 */
import { describe, expect, it } from "vitest";
import { type Engine, readTable, waitFor } from "../support/engine.js";
import { engineSet } from "../support/engines.js";

/** As TTL_VISIT_MS in test/fixtures/ttl-jobs.ts (a Worker module: Node cannot import it). */
const TTL_MS = 5000;

interface VisitRow {
  seq: number;
  at: number;
  count: number;
  recent: number[];
}

const engines = engineSet();
const engineAt = engines.start;

async function start(engine: Engine, job = "state-ttl"): Promise<Response> {
  return engine.api(`/v1/jobs/${job}/start`, { method: "POST", json: {} });
}

async function visit(engine: Engine, key: string, seq: number): Promise<void> {
  const res = await engine.api("/v1/ingest/ttl-in", { method: "POST", json: [{ key, seq }] });
  expect(res.status, await res.clone().text()).toBe(200);
}

/** Sends visit `seq` of `key` and waits for its row (committed: its checkpoint completed). */
async function visitAndRead(engine: Engine, key: string, seq: number): Promise<VisitRow> {
  await visit(engine, key, seq);
  return waitFor(async () => (await readTable<VisitRow>(engine, "ttl-out")).get(`${key}#${seq}`), 30_000, `the row of ${key}#${seq}`);
}

/** Sleeps until the wall clock (the runtime's clock too) reaches `ms`. */
async function sleepUntil(ms: number): Promise<void> {
  const wait = ms - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}

/**
 * Every row of `key` (seq 1..n) checked against the rows before it: the
 * session count goes on while visits are less than TTL_MS apart and starts
 * again at 1 after a gap of TTL_MS or more; `recent` holds exactly the
 * visits of the last TTL_MS (each element expires TTL_MS after its own
 * visit).
 */
function expectConsistent(rows: Map<string, VisitRow>, key: string, n: number): VisitRow[] {
  const mine = Array.from({ length: n }, (_, i) => rows.get(`${key}#${i + 1}`)!);
  expect(mine.every((r) => r !== undefined), `${key}: every row`).toBe(true);
  mine.forEach((row, i) => {
    const prev = mine[i - 1];
    const count = prev !== undefined && prev.at + TTL_MS > row.at ? prev.count + 1 : 1;
    const recent = mine.slice(0, i + 1).filter((r) => r === row || r.at + TTL_MS > row.at).map((r) => r.seq);
    expect({ count: row.count, recent: row.recent }, `${key}#${row.seq} at +${row.at - mine[0].at} ms`).toEqual({ count, recent });
  });
  return mine;
}

describe("state TTL", () => {
  it("a session count that expires TTL_MS after the last visit, and a list whose elements expire one by one", async () => {
    const engine = await engineAt();
    const started = await start(engine);
    expect(started.status, await started.clone().text()).toBe(200);

    const a1 = await visitAndRead(engine, "a", 1);
    expect(a1).toMatchObject({ count: 1, recent: [1] });
    await sleepUntil(a1.at + TTL_MS / 2);
    const a2 = await visitAndRead(engine, "a", 2);
    // Half a TTL later: the session goes on, nothing expired yet.
    expect(a2.at - a1.at).toBeLessThan(TTL_MS);
    expect(a2).toMatchObject({ count: 2, recent: [1, 2] });
    // Past visit 1's TTL but within visit 2's: the list drops visit 1 alone; the count, written at visit 2, lives on.
    await sleepUntil(a1.at + TTL_MS + 300);
    const a3 = await visitAndRead(engine, "a", 3);
    expect(a3.at - a2.at, "visit 3 came within visit 2's TTL: raise TTL_MS").toBeLessThan(TTL_MS);
    expect(a3).toMatchObject({ count: 3, recent: [2, 3] });
    // A gap of more than TTL_MS: the session ended, the list is empty but for this visit.
    await sleepUntil(a3.at + TTL_MS + 300);
    const a4 = await visitAndRead(engine, "a", 4);
    expect(a4).toMatchObject({ count: 1, recent: [4] });
    // Another key, untouched by a's expiry.
    const b1 = await visitAndRead(engine, "b", 1);
    expect(b1).toMatchObject({ count: 1, recent: [1] });
    expectConsistent(await readTable<VisitRow>(engine, "ttl-out"), "a", 4);
  });

  it("keeps each entry's last-access time across a SIGKILL and the restore: entries expire TTL_MS after their visit, not after the restore", async () => {
    let engine = await engineAt();
    const started = await start(engine);
    expect(started.status, await started.clone().text()).toBe(200);

    const c1 = await visitAndRead(engine, "c", 1);
    // Half a TTL later, e's first visit; its row is committed, so the checkpoint holding c's and e's state completed.
    await sleepUntil(c1.at + TTL_MS / 2);
    const e1 = await visitAndRead(engine, "e", 1);
    const crashMs = Date.now();
    engine = await engines.crash(engine);
    await waitFor(async () => ((await (await engine.api("/v1/jobs/state-ttl")).json()) as { restarts: number }).restarts >= 1, 30_000, "the restore after the crash");

    // e's state survived the crash, within its TTL: the session goes on.
    const e2 = await visitAndRead(engine, "e", 2);
    expect(e2.at - e1.at, "e#2 came later than e#1's TTL: the case proves nothing, raise TTL_MS").toBeLessThan(TTL_MS);
    expect(e2).toMatchObject({ count: 2, recent: [1, 2] });
    // Past c#1's TTL as counted from its visit, but within a TTL from the crash: had the restore stamped
    // the entries anew, c's session would go on and c#1 would still be listed.
    await sleepUntil(c1.at + TTL_MS + 300);
    const c2 = await visitAndRead(engine, "c", 2);
    expect(c2.at - crashMs, "c#2 came a TTL after the crash: the case proves nothing, raise TTL_MS").toBeLessThan(TTL_MS);
    expect(c2).toMatchObject({ count: 1, recent: [2] });
    const rows = await readTable<VisitRow>(engine, "ttl-out");
    expectConsistent(rows, "c", 2);
    expectConsistent(rows, "e", 2);
    const status = (await (await engine.api("/v1/jobs/state-ttl")).json()) as { status: string };
    expect(status.status).toBe("RUNNING");
  });

  it("keeps each entry's last-access time through a savepoint restored at another parallelism (key groups move to other subtasks)", async () => {
    const engine = await engineAt();
    const started = await start(engine);
    expect(started.status, await started.clone().text()).toBe(200);
    const keys = ["k0", "k1", "k2", "k3", "k4", "k5"];
    const res = await engine.api("/v1/ingest/ttl-in", { method: "POST", json: keys.map((key) => ({ key, seq: 1 })) });
    expect(res.status, await res.clone().text()).toBe(200);
    const first = await waitFor(async () => {
      const rows = await readTable<VisitRow>(engine, "ttl-out");
      return keys.every((k) => rows.has(`${k}#1`)) && rows;
    }, 30_000, "the first visits");
    const lastFirstMs = Math.max(...keys.map((k) => first.get(`${k}#1`)!.at));
    const stop = await engine.api("/v1/jobs/state-ttl/stop", { method: "POST", json: { savepoint: true } });
    expect(stop.status, await stop.clone().text()).toBe(200);
    const { id } = (await stop.json()) as { id: string };
    // The restart comes a third of a TTL after the first visits, so that k3..k5's second visits (a TTL after
    // their first) are well within a TTL of it, however fast the stop was.
    await sleepUntil(lastFirstMs + TTL_MS / 3);
    const restartMs = Date.now();
    const restarted = await engine.api("/v1/jobs/state-ttl/start", { method: "POST", json: { fromSavepoint: id, parallelism: { visits: 3 } } });
    expect(restarted.status, await restarted.clone().text()).toBe(200);
    expect(((await restarted.json()) as { parallelism: Record<string, number> }).parallelism.visits).toBe(3);

    // k0..k2 come back within their TTL: their sessions go on, on whichever of the 3 subtasks owns them now.
    for (const k of keys.slice(0, 3)) await visit(engine, k, 2);
    // k3..k5 come back past their TTL as counted from their first visit, but within a TTL from the restart.
    await sleepUntil(lastFirstMs + TTL_MS + 300);
    for (const k of keys.slice(3)) await visit(engine, k, 2);
    const rows = await waitFor(async () => {
      const r = await readTable<VisitRow>(engine, "ttl-out");
      return keys.every((k) => r.has(`${k}#2`)) && r;
    }, 30_000, "the second visits");
    for (const k of keys.slice(0, 3)) {
      const row = rows.get(`${k}#2`)!;
      expect(row.at - first.get(`${k}#1`)!.at, `${k}#2 came later than ${k}#1's TTL: raise TTL_MS`).toBeLessThan(TTL_MS);
      expect(row, k).toMatchObject({ count: 2, recent: [1, 2] });
    }
    for (const k of keys.slice(3)) {
      const row = rows.get(`${k}#2`)!;
      expect(row.at - restartMs, `${k}#2 came a TTL after the restart: the case proves nothing, raise TTL_MS`).toBeLessThan(TTL_MS);
      expect(row, k).toMatchObject({ count: 1, recent: [2] });
    }
    for (const k of keys) expectConsistent(rows, k, 2);
  });

  it("refuses to start a job whose state has a TTL of 0, naming the operator and the state", async () => {
    const engine = await engineAt();
    const res = await start(engine, "state-ttl-bad");
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("invalid_job");
    expect(body.error.message).toContain('operator "sessions": state "session": ttl.ttlMs must be a finite number of milliseconds > 0, got 0');
  });
});
