/**
 * The sinks as a user sees them: exactly-once output appears only when its
 * checkpoint completes, part files have deterministic names, and a webhook
 * that refuses data fails the job with a clear error instead of retrying
 * forever.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type Engine, startEngine, waitFor } from "../support/engine.js";
import { type WebhookServer, startWebhookServer } from "../support/webhook-server.js";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

let engine: Engine | undefined;
let hook: WebhookServer | undefined;
afterEach(async () => {
  await engine?.dispose().catch(() => undefined);
  await hook?.close();
  engine = undefined;
  hook = undefined;
});

const ingest = (e: Engine, users: string[]) =>
  e.api("/v1/ingest/sink-clicks", { method: "POST", body: users.map((user) => JSON.stringify({ user })).join("\n"), headers: { "content-type": "application/x-ndjson" } });

describe("exactly-once sinks", () => {
  it("show nothing before the checkpoint completes, and everything after (read_committed)", async () => {
    hook = await startWebhookServer();
    engine = await startEngine({ testJobs: true, bindings: { WEBHOOK_URL: hook.url } });
    // Checkpoints only when asked.
    expect((await engine.api("/v1/jobs/sinks/start", { method: "POST", json: { config: { checkpoint: { interval_ms: 3_600_000 } } } })).status).toBe(200);
    expect((await ingest(engine, ["ada", "ada", "bob"])).status).toBe(200);
    await waitFor(async () => {
      const m = (await (await engine!.api("/v1/jobs/sinks/metrics")).json()) as { subtasks: { vertex: string; records_in: number }[] };
      return m.subtasks.filter((s) => s.vertex === "count").reduce((a, s) => a + s.records_in, 0) === 3;
    }, 20_000, "the clicks processed");
    await new Promise((r) => setTimeout(r, 300));
    expect((await engine.api("/v1/tables/sink-counts/ada")).status).toBe(404);
    const files = await engine.mf.getR2Bucket("FILES");
    expect((await files.list({ prefix: "sinks-job/" })).objects).toEqual([]);
    expect(hook.deliveries.size).toBe(0);

    const trigger = await engine.api("/v1/jobs/sinks/checkpoints", { method: "POST" });
    expect(trigger.status).toBe(202);
    const { id } = (await trigger.json()) as { id: number };
    await waitFor(async () => (await engine!.api("/v1/tables/sink-counts/ada")).status === 200, 20_000, "the committed row");
    expect(await (await engine.api("/v1/tables/sink-counts/ada")).json()).toEqual({ key: "ada", value: 2 });
    await waitFor(async () => hook!.deliveries.size > 0 && (await files.list({ prefix: "sinks-job/" })).objects.length > 0, 20_000, "files and webhook");
    const keys = (await files.list({ prefix: "sinks-job/" })).objects.map((o) => o.key);
    for (const k of keys) expect(k).toMatch(new RegExp(`^sinks-job/part-[01]-${String(id).padStart(12, "0")}-0\\.jsonl$`));
    for (const key of hook.deliveries.keys()) expect(key).toMatch(new RegExp(`^sinks/webhook-out/[01]/${id}$`));
    const metrics = (await (await engine.api("/v1/jobs/sinks/metrics")).json()) as { subtasks: { sinks: Record<string, { committed_transactions: number; last_commit_latency_ms: number | null }> }[] };
    const table = metrics.subtasks.flatMap((s) => Object.entries(s.sinks)).filter(([uid]) => uid === "table-out");
    expect(table.some(([, m]) => m.committed_transactions >= 1 && m.last_commit_latency_ms !== null)).toBe(true);
  });

  it("a webhook answering 4xx fails the job with the cause, without retrying the delivery", async () => {
    let requests = 0;
    const server = createServer((req, res) => {
      requests++;
      req.resume();
      req.on("end", () => res.writeHead(400).end("bad payload"));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    try {
      engine = await startEngine({ testJobs: true, bindings: { WEBHOOK_URL: url } });
      const start = await engine.api("/v1/jobs/sinks/start", { method: "POST", json: { config: { checkpoint: { interval_ms: 100 }, restart_strategy: { type: "none" } } } });
      expect(start.status).toBe(200);
      expect((await ingest(engine, ["ada"])).status).toBe(200);
      await waitFor(async () => ((await (await engine!.api("/v1/jobs/sinks")).json()) as { status: string }).status === "FAILED", 20_000, "the job to fail");
      const s = (await (await engine.api("/v1/jobs/sinks")).json()) as { last_error: string };
      expect(s.last_error).toMatch(/sink "webhook-out" failed to commit transaction \d+: webhook .* refused transaction \d+ with 400/);
      expect(requests).toBe(1);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
