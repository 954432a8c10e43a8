/**
 * Each checkpoint option changes what happens: every test here fails if
 * the engine ignores the option it is about.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type Engine, startEngine, waitFor } from "../support/engine.js";

interface Entry {
  id: number;
  status: string;
  trigger_timestamp: number;
  end_to_end_duration: number;
  checkpointed_size: number;
  state_size: number;
  failure_message: string | null;
}
interface Overview {
  counts: { completed: number; failed: number; in_progress: number; total: number };
  history: Entry[];
}

let engine: Engine | undefined;
afterEach(async () => {
  await engine?.dispose().catch(() => undefined);
  engine = undefined;
});

async function startChaos(config: Record<string, unknown>): Promise<Engine> {
  const e = await startEngine({ testJobs: true });
  const res = await e.api("/v1/jobs/chaos/start", { method: "POST", json: { config } });
  expect(res.status, await res.clone().text()).toBe(200);
  return e;
}

async function ingest(e: Engine, events: object[], stream = "chaos-a"): Promise<void> {
  const res = await e.api(`/v1/ingest/${stream}`, { method: "POST", body: events.map((x) => JSON.stringify(x)).join("\n"), headers: { "content-type": "application/x-ndjson" } });
  expect(res.status).toBe(200);
}

async function overview(e: Engine): Promise<Overview> {
  return (await (await e.api("/v1/jobs/chaos/checkpoints")).json()) as Overview;
}

async function status(e: Engine): Promise<{ status: string; restarts: number; last_error: string | null }> {
  return (await (await e.api("/v1/jobs/chaos")).json()) as { status: string; restarts: number; last_error: string | null };
}

const events = (n: number, keys: number, extra: object = {}) => Array.from({ length: n }, (_, i) => ({ key: `k${i % keys}`, value: i, ...extra }));

describe("checkpoint options", () => {
  it("retained: keeps exactly the last N checkpoints and the files they reference", async () => {
    engine = await startChaos({ checkpoint: { interval_ms: 50, retained: 2, incremental: true, full_every: 3 } });
    for (let i = 0; i < 6; i++) {
      await ingest(engine, events(50, 20 + i * 10));
      await waitFor(async () => (await overview(engine!)).counts.completed >= 2 * (i + 1), 20_000, "checkpoints");
    }
    expect((await engine.api("/v1/jobs/chaos/cancel", { method: "POST" })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    const completed = (await overview(engine)).history.filter((h) => h.status === "COMPLETED").map((h) => h.id);
    const bucket = await engine.mf.getR2Bucket("CHECKPOINTS");
    const keys = (await bucket.list({ prefix: "checkpoints/chaos/", limit: 1000 })).objects.map((o) => o.key);
    const metadata = keys.filter((k) => k.endsWith("/_metadata")).sort();
    expect(completed.length).toBeGreaterThan(4);
    expect(metadata).toEqual(completed.slice(0, 2).sort().map((id) => `checkpoints/chaos/chk-${id}/_metadata`));
    // Every remaining state file is referenced by a retained checkpoint.
    const referenced = new Set<string>();
    for (const m of metadata) {
      const meta = JSON.parse(await (await bucket.get(m))!.text()) as { operators: Record<string, { keyed: Record<string, { files: string[] }> }> };
      for (const op of Object.values(meta.operators)) for (const h of Object.values(op.keyed)) h.files.forEach((f) => referenced.add(f));
    }
    // With local recovery (the default), incremental checkpoints are the image's run files, shared between checkpoints.
    const state = keys.filter((k) => k.endsWith(".state") || k.endsWith(".run"));
    expect(state.filter((k) => k.endsWith(".run")).length).toBeGreaterThan(0);
    for (const f of state) expect(referenced.has(f), f).toBe(true);
  });

  it("externalized: cancel keeps the latest checkpoints, or deletes them all when asked", async () => {
    const keysAfterCancel = async (externalized: string) => {
      const e = await startChaos({ checkpoint: { interval_ms: 50, retained: 2, externalized } });
      try {
        await ingest(e, events(50, 10));
        await waitFor(async () => (await overview(e)).counts.completed >= 3, 20_000, "checkpoints");
        expect((await e.api("/v1/jobs/chaos/cancel", { method: "POST" })).status).toBe(200);
        await new Promise((r) => setTimeout(r, 200));
        const bucket = await e.mf.getR2Bucket("CHECKPOINTS");
        return (await bucket.list({ prefix: "checkpoints/chaos/" })).objects.map((o) => o.key);
      } finally {
        await e.dispose();
      }
    };
    const retained = await keysAfterCancel("retain_on_cancellation");
    expect(retained.filter((k) => k.endsWith("/_metadata"))).toHaveLength(2);
    expect(await keysAfterCancel("delete_on_cancellation")).toEqual([]);
  });

  it("restart strategy: when its attempts are used up, the job is FAILED with the cause", async () => {
    engine = await startChaos({ checkpoint: { interval_ms: 50 }, restart_strategy: { type: "fixed-delay", attempts: 1, delay_ms: 10 } });
    // Two records that fail once each (per runtime process): the second failure finds no attempt left.
    await ingest(engine, [{ key: "k", value: 1, failOnce: "r1" }]);
    await waitFor(async () => (await status(engine!)).restarts >= 1, 20_000, "the first restart");
    await waitFor(async () => (await status(engine!)).status === "RUNNING", 20_000, "running again");
    await ingest(engine, [{ key: "k", value: 2, failOnce: "r2" }]);
    await waitFor(async () => (await status(engine!)).status === "FAILED", 20_000, "the job to fail");
    const s = await status(engine);
    expect(s.last_error).toMatch(/injected failure r2/);
    expect(s.last_error).toMatch(/fixed-delay restart strategy exhausted after 1 restarts/);
  });

  it("timeout: a checkpoint not acknowledged in time fails as expired", async () => {
    engine = await startChaos({ checkpoint: { interval_ms: 50, timeout_ms: 1, tolerable_failures: 1000 } });
    await ingest(engine, events(100, 10));
    await waitFor(async () => (await overview(engine!)).counts.failed >= 3, 20_000, "failed checkpoints");
    const o = await overview(engine);
    expect(o.counts.completed).toBe(0);
    expect(o.history.find((h) => h.status === "FAILED")!.failure_message).toMatch(/CHECKPOINT_EXPIRED/);
    expect((await status(engine)).restarts).toBe(0);
  });

  it("tolerable failures: one failure too many fails the job over", async () => {
    engine = await startChaos({ checkpoint: { interval_ms: 50, timeout_ms: 1, tolerable_failures: 2 }, restart_strategy: { type: "none" } });
    await ingest(engine, events(100, 10));
    await waitFor(async () => (await status(engine!)).status === "FAILED", 20_000, "the job to fail");
    const s = await status(engine);
    expect(s.last_error).toMatch(/3 checkpoint failure\(s\) in a row exceed the tolerable 2/);
    expect((await overview(engine)).counts.failed).toBeGreaterThanOrEqual(3);
  });

  it("min pause: the next checkpoint waits that long after the previous one ended", async () => {
    engine = await startChaos({ checkpoint: { interval_ms: 20, min_pause_ms: 300 } });
    await ingest(engine, events(100, 10));
    await waitFor(async () => (await overview(engine!)).counts.completed >= 5, 20_000, "five checkpoints");
    const done = (await overview(engine)).history.filter((h) => h.status !== "IN_PROGRESS").sort((a, b) => a.id - b.id);
    for (let i = 1; i < done.length; i++) {
      const previousEnd = done[i - 1].trigger_timestamp + done[i - 1].end_to_end_duration;
      expect(done[i].trigger_timestamp - previousEnd).toBeGreaterThanOrEqual(295);
    }
  });

  it("max concurrent: never more checkpoints in progress at once than allowed", async () => {
    // The "slow" job's source takes 150 ms per poll, so each checkpoint outlasts the 30 ms interval.
    const mostAtOnce = async (maxConcurrent: number) => {
      const e = await startEngine({ testJobs: true });
      try {
        const res = await e.api("/v1/jobs/slow/start", { method: "POST", json: { config: { checkpoint: { interval_ms: 30, max_concurrent: maxConcurrent } } } });
        expect(res.status).toBe(200);
        await waitFor(async () => ((await (await e.api("/v1/jobs/slow/checkpoints")).json()) as Overview).counts.completed >= 6, 30_000, "six checkpoints");
        const h = ((await (await e.api("/v1/jobs/slow/checkpoints")).json()) as Overview).history.filter((x) => x.status === "COMPLETED");
        let most = 1;
        for (const x of h) {
          const end = x.trigger_timestamp + x.end_to_end_duration;
          most = Math.max(most, h.filter((y) => y.trigger_timestamp >= x.trigger_timestamp && y.trigger_timestamp < end).length);
        }
        return most;
      } finally {
        await e.dispose();
      }
    };
    expect(await mostAtOnce(1)).toBe(1);
    expect(await mostAtOnce(3)).toBeGreaterThan(1);
  });
});
