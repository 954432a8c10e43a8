/**
 * Savepoints as a user runs them: take one, rescale from it, stop with one
 * and start again, and get clear errors for savepoints that cannot be used.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type Engine, readTable, startEngine, waitFor } from "../support/engine.js";
import { expectError } from "../support/http.js";
import { Random } from "../support/random.js";
import { checkFiles, checkTable, checkWebhook } from "../support/sinks-chaos.js";
import { startWebhookServer, type WebhookServer } from "../support/webhook-server.js";

type Totals = { count: number; sum: number; a: number; b: number };

let engine: Engine | undefined;
let hook: WebhookServer | undefined;
afterEach(async () => {
  await engine?.dispose().catch(() => undefined);
  await hook?.close();
  engine = undefined;
  hook = undefined;
});

/** Events for the chaos job, with the totals they fold to. */
function events(random: Random, n: number, keys: number, expected: Map<string, Totals>, branch: "a" | "b") {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const key = `k${i < keys ? i : random.int(keys)}`;
    const value = random.int(100);
    const t = expected.get(key) ?? { count: 0, sum: 0, a: 0, b: 0 };
    expected.set(key, { count: t.count + 1, sum: t.sum + value, a: t.a + (branch === "a" ? 1 : 0), b: t.b + (branch === "b" ? 1 : 0) });
    lines.push(JSON.stringify({ key, value }));
  }
  return lines.join("\n");
}

async function ingest(e: Engine, stream: string, body: string) {
  const res = await e.api(`/v1/ingest/${stream}`, { method: "POST", body, headers: { "content-type": "application/x-ndjson" } });
  expect(res.status).toBe(200);
}

async function tableEquals(e: Engine, expected: Map<string, Totals>): Promise<boolean> {
  const rows = await readTable<Totals>(e, "chaos-out");
  return rows.size === expected.size && [...expected].every(([k, v]) => JSON.stringify(rows.get(k)) === JSON.stringify(v));
}

describe("savepoints", () => {
  it("a savepoint taken at parallelism 2 restores at 1, 3 and 8 with the results of a run that never stopped", async () => {
    engine = await startEngine({ testJobs: true });
    const random = new Random(7);
    const expected = new Map<string, Totals>();
    const start = await engine.api("/v1/jobs/chaos/start", { method: "POST", json: { parallelism: { "sum-per-key": 2, "in-a": 2 } } });
    expect(start.status).toBe(200);
    await ingest(engine, "chaos-a", events(random, 400, 50, expected, "a"));
    await ingest(engine, "chaos-b", events(random, 200, 50, expected, "b"));
    await waitFor(() => tableEquals(engine!, expected), 20_000, "the first part in the table");

    const sp = await engine.api("/v1/jobs/chaos/savepoints", { method: "POST" });
    expect(sp.status).toBe(200);
    const { id, location } = (await sp.json()) as { id: string; location: string };
    expect(id).toMatch(/^savepoint-\d+$/);
    expect(location).toBe(`r2://savepoints/chaos/${id}/`);
    const files = (await (await engine.mf.getR2Bucket("CHECKPOINTS")).list({ prefix: `savepoints/chaos/${id}/` })).objects.map((o) => o.key);
    expect(files).toContain(`savepoints/chaos/${id}/_metadata`);
    expect(files.some((k) => /sum-per-key\/[01]\.state$/.test(k))).toBe(true);
    expect((await engine.api("/v1/jobs/chaos/cancel", { method: "POST" })).status).toBe(200);

    // The second part goes into the log once; every run from the savepoint reads it after the savepoint's offsets.
    const part2 = new Map(expected);
    await ingest(engine, "chaos-a", events(random, 300, 50, part2, "a"));
    await ingest(engine, "chaos-b", events(random, 100, 50, part2, "b"));
    for (const p of [1, 3, 8]) {
      const res = await engine.api("/v1/jobs/chaos/start", { method: "POST", json: { fromSavepoint: id, parallelism: { "sum-per-key": p, "in-a": Math.min(p, 3) } } });
      expect(res.status, await res.clone().text()).toBe(200);
      expect(((await res.json()) as { parallelism: Record<string, number> }).parallelism["sum-per-key"]).toBe(p);
      await waitFor(() => tableEquals(engine!, part2), 30_000, `the results at parallelism ${p}`);
      const m = (await (await engine.api("/v1/jobs/chaos/metrics")).json()) as { vertices: { id: string; records_in: number; state_keys: number }[] };
      const keyed = m.vertices.find((v) => v.id === "sum-per-key")!;
      // Every key's state landed somewhere, and only the second part was read again.
      expect(keyed.state_keys).toBe(50);
      expect(keyed.records_in).toBe(400);
      expect((await engine.api("/v1/jobs/chaos/cancel", { method: "POST" })).status).toBe(200);
    }
  });

  it("stop-with-savepoint, then start from it: the sinks lose and duplicate nothing", async () => {
    hook = await startWebhookServer();
    engine = await startEngine({ testJobs: true, bindings: { WEBHOOK_URL: hook.url } });
    expect((await engine.api("/v1/jobs/sinks/start", { method: "POST", json: {} })).status).toBe(200);
    const expected = new Map<string, number>();
    const send = async (n: number) => {
      const users = Array.from({ length: n }, (_, i) => `u${i % 37}`);
      for (const u of users) expected.set(u, (expected.get(u) ?? 0) + 1);
      const res = await engine!.api("/v1/ingest/sink-clicks", { method: "POST", body: users.map((user) => JSON.stringify({ user })).join("\n"), headers: { "content-type": "application/x-ndjson" } });
      expect(res.status).toBe(200);
    };
    await send(500);
    const stop = await engine.api("/v1/jobs/sinks/stop", { method: "POST", json: { savepoint: true, drain: true } });
    expect(stop.status, await stop.clone().text()).toBe(200);
    const stopped = (await stop.json()) as { id: string; status: { status: string } };
    expect(stopped.status.status).toBe("FINISHED");
    // Everything before the savepoint's barrier was committed when the job stopped.
    await send(300);
    const res = await engine.api("/v1/jobs/sinks/start", { method: "POST", json: { fromSavepoint: stopped.id } });
    expect(res.status, await res.clone().text()).toBe(200);
    await waitFor(async () => (await checkTable(engine!, expected)).length === 0 && (await checkFiles(engine!, expected)).length === 0 && checkWebhook(hook!, expected).length === 0, 30_000, "exact output");
  });

  it("a native savepoint (the checkpoint's own, possibly incremental files, copied) restores at another parallelism", async () => {
    engine = await startEngine({ testJobs: true });
    const random = new Random(11);
    const expected = new Map<string, Totals>();
    const config = { checkpoint: { interval_ms: 50, incremental: true, full_every: 5 } };
    expect((await engine.api("/v1/jobs/chaos/start", { method: "POST", json: { config } })).status).toBe(200);
    for (let i = 0; i < 3; i++) {
      await ingest(engine, "chaos-a", events(random, 100, 20, expected, "a"));
      await waitFor(() => tableEquals(engine!, expected), 20_000, "each part in the table");
    }
    const sp = await engine.api("/v1/jobs/chaos/savepoints", { method: "POST", json: { format: "native" } });
    expect(sp.status, await sp.clone().text()).toBe(200);
    const { id } = (await sp.json()) as { id: string };
    const bucket = await engine.mf.getR2Bucket("CHECKPOINTS");
    const meta = JSON.parse(await (await bucket.get(`savepoints/chaos/${id}/_metadata`))!.text()) as { operators: Record<string, { keyed: Record<string, { files: string[] }> }> };
    const files = Object.values(meta.operators["sum-per-key"].keyed).flatMap((h) => h.files);
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect(f.startsWith(`savepoints/chaos/${id}/native/`), f).toBe(true);
    expect((await engine.api("/v1/jobs/chaos/cancel", { method: "POST", json: { savepoint: false } })).status).toBe(200);
    // The checkpoints it copied from may go; the savepoint does not depend on them.
    const part2 = new Map(expected);
    await ingest(engine, "chaos-b", events(random, 100, 20, part2, "b"));
    const res = await engine.api("/v1/jobs/chaos/start", { method: "POST", json: { fromSavepoint: id, parallelism: { "sum-per-key": 3 } } });
    expect(res.status, await res.clone().text()).toBe(200);
    await waitFor(() => tableEquals(engine!, part2), 20_000, "results after the native savepoint");
  });

  it("cancel-with-savepoint cancels the job after the savepoint completed", async () => {
    engine = await startEngine({ testJobs: true });
    expect((await engine.api("/v1/jobs/chaos/start", { method: "POST", json: {} })).status).toBe(200);
    const res = await engine.api("/v1/jobs/chaos/cancel", { method: "POST", json: { savepoint: true } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { id: string; status: { status: string } };
    expect(body.id).toMatch(/^savepoint-\d+$/);
    expect(body.status.status).toBe("CANCELED");
    const overview = (await (await engine.api("/v1/jobs/chaos/checkpoints")).json()) as { latest: { savepoint: { checkpoint_type: string } } };
    expect(overview.latest.savepoint.checkpoint_type).toBe("SAVEPOINT");
  });

  it("refuses savepoints that cannot be used, and leaves a running job untouched", async () => {
    engine = await startEngine({ testJobs: true });
    const bucket = await engine.mf.getR2Bucket("CHECKPOINTS");
    expect((await engine.api("/v1/jobs/chaos/start", { method: "POST", json: {} })).status).toBe(200);
    const { id } = (await (await engine.api("/v1/jobs/chaos/savepoints", { method: "POST" })).json()) as { id: string };
    // While it runs, a start is refused whatever it names.
    await expectError(await engine.api("/v1/jobs/chaos/start", { method: "POST", json: { fromSavepoint: id } }), 409, "job_running");
    expect((await engine.api("/v1/jobs/chaos/cancel", { method: "POST" })).status).toBe(200);
    const key = `savepoints/chaos/${id}/_metadata`;
    const good = await (await bucket.get(key))!.text();
    const start = (body: object) => engine!.api("/v1/jobs/chaos/start", { method: "POST", json: body });

    await expectError(await start({ fromSavepoint: "savepoint-999999" }), 404, "savepoint_not_found");
    await bucket.put(key, good.slice(0, good.length / 2));
    await expectError(await start({ fromSavepoint: id }), 400, "savepoint_corrupt", /corrupt or truncated/);
    await bucket.put(key, JSON.stringify({ ...JSON.parse(good), version: 9 }));
    await expectError(await start({ fromSavepoint: id }), 400, "unsupported_format_version", /version 9/);
    await bucket.put(key, JSON.stringify({ ...JSON.parse(good), job: "clicks" }));
    await expectError(await start({ fromSavepoint: id }), 400, "savepoint_of_other_job", /job "clicks"/);
    await bucket.put(key, JSON.stringify({ ...JSON.parse(good), maxParallelism: 32 }));
    await expectError(await start({ fromSavepoint: id }), 400, "max_parallelism_changed", /32/);
    // The clicks job reading a savepoint of the chaos job's folder: its own folder has none.
    await expectError(await engine.api("/v1/jobs/clicks/start", { method: "POST", json: { fromSavepoint: id } }), 404, "savepoint_not_found");
    await bucket.put(key, good);
    const status = (await (await engine.api("/v1/jobs/chaos")).json()) as { status: string };
    expect(status.status).toBe("CANCELED");
    expect((await start({ fromSavepoint: id })).status).toBe(200);
  });
});
