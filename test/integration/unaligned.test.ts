/**
 * Unaligned checkpoints: barriers overtake queued data, the in-flight data
 * is persisted with the checkpoint and replayed on restore.
 */
import { afterEach, describe, expect, it } from "vitest";
import { crashEngine } from "../support/crash.js";
import { type Engine, readTable, startEngine, waitFor } from "../support/engine.js";
import { type WebhookServer, startWebhookServer } from "../support/webhook-server.js";

type Totals = { count: number; sum: number; a: number; b: number };
let engine: Engine | undefined;
let hook: WebhookServer | undefined;
afterEach(async () => {
  await engine?.dispose().catch(() => undefined);
  await hook?.close();
  engine = undefined;
  hook = undefined;
});

interface Entry {
  id: number;
  status: string;
  checkpoint_type: string;
  persisted_data: number;
}

const modes = [
  { name: "unaligned checkpoints", checkpoint: { unaligned: true } },
  // Aligned first; a checkpoint still aligning 100 ms after its trigger turns unaligned.
  { name: "aligned checkpoints with an alignment timeout", checkpoint: { unaligned: true, aligned_checkpoint_timeout_ms: 100 } },
];

describe.each(modes)("$name", (mode) => {
  it("persist in-flight data under backpressure, and a restore replays it exactly once", async () => {
    // A slow webhook behind the sum keeps its channels full.
    hook = await startWebhookServer({ delayMs: 150 });
    const bindings = { WEBHOOK_URL: hook.url };
    engine = await startEngine({ testJobs: true, bindings });
    const dir = engine.persistDir;
    const config = { checkpoint: { interval_ms: 50, retained: 1000, ...mode.checkpoint }, restart_strategy: { type: "fixed-delay", delay_ms: 10 } };
    expect((await engine.api("/v1/jobs/backpressure/start", { method: "POST", json: { config } })).status).toBe(200);
    if (mode.checkpoint.aligned_checkpoint_timeout_ms) {
      // Without backpressure, barriers align well within the timeout: plain aligned checkpoints, no in-flight data.
      const idle = await waitFor(async () => {
        const h = ((await (await engine!.api("/v1/jobs/backpressure/checkpoints")).json()) as { history: Entry[] }).history;
        return h.find((x) => x.status === "COMPLETED");
      }, 30_000, "a checkpoint of the idle job");
      expect(idle.checkpoint_type).toBe("CHECKPOINT");
      expect(idle.persisted_data).toBe(0);
    }
    const expected = new Map<string, Totals>();
    let sent = 0;
    const send = async (e: Engine, n: number) => {
      const lines: string[] = [];
      for (let i = 0; i < n; i++) {
        const key = `k${(sent + i) % 97}`;
        const value = (sent + i) % 13;
        const t = expected.get(key) ?? { count: 0, sum: 0, a: 0, b: 0 };
        expected.set(key, { count: t.count + 1, sum: t.sum + value, a: t.a + 1, b: t.b });
        lines.push(JSON.stringify({ key, value, work: 100_000 }));
      }
      sent += n;
      const res = await e.api(`/v1/ingest/bp-in`, { method: "POST", body: lines.join("\n"), headers: { "content-type": "application/x-ndjson" } });
      expect(res.status).toBe(200);
    };
    for (let i = 0; i < 6; i++) await send(engine, 8000);
    // Under backpressure, a checkpoint's barriers overtake queued batches, which become its in-flight data.
    let withData: Entry | undefined;
    await waitFor(async () => {
      const h = ((await (await engine!.api("/v1/jobs/backpressure/checkpoints")).json()) as { history: Entry[] }).history;
      const newest = h.find((x) => x.status === "COMPLETED");
      if (newest && newest.persisted_data > 0) withData = newest;
      return withData;
    }, 30_000, "a completed checkpoint with in-flight data");
    expect(withData, "a checkpoint with in-flight data").toBeDefined();
    expect(withData!.checkpoint_type).toBe("UNALIGNED_CHECKPOINT");
    // Crash, then start again from exactly that checkpoint: its in-flight data must be replayed once.
    await crashEngine(engine);
    engine = await startEngine({ testJobs: true, persistDir: dir, bindings });
    await waitFor(async () => ((await (await engine!.api("/v1/jobs/backpressure")).json()) as { status: string }).status === "RUNNING", 30_000, "the resumed job");
    expect((await engine.api("/v1/jobs/backpressure/cancel", { method: "POST" })).status).toBe(200);
    const restart = await engine.api("/v1/jobs/backpressure/start", { method: "POST", json: { fromCheckpoint: withData!.id, config } });
    expect(restart.status, await restart.clone().text()).toBe(200);
    await send(engine, 3000);
    await waitFor(async () => {
      const rows = await readTable<Totals>(engine!, "bp-out");
      return rows.size === expected.size && [...expected].every(([k, v]) => JSON.stringify(rows.get(k)) === JSON.stringify(v));
    }, 60_000, "exact totals after restoring the checkpoint with in-flight data");
    const o = (await (await engine.api("/v1/jobs/backpressure/checkpoints")).json()) as { latest: { restored: { id: number } } };
    expect(o.latest.restored.id).toBe(withData!.id);
  });
});
