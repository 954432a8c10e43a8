import { afterEach, describe, expect, it } from "vitest";
import { crashEngine } from "../support/crash.js";
import { type Engine, readTable, startEngine, waitFor } from "../support/engine.js";

interface Overview {
  counts: { completed: number; failed: number; restored: number };
  latest: { completed: { id: number } | null };
}

async function ingest(engine: Engine, users: string[]): Promise<void> {
  const res = await engine.api("/v1/ingest/clicks", {
    method: "POST",
    body: users.map((user) => JSON.stringify({ user })).join("\n"),
    headers: { "content-type": "application/x-ndjson" },
  });
  expect(res.status).toBe(200);
}

async function tableRows(engine: Engine): Promise<Map<string, number>> {
  return readTable<number>(engine, "clicks-per-user");
}

async function checkpoints(engine: Engine): Promise<Overview> {
  return (await (await engine.api("/v1/jobs/clicks/checkpoints")).json()) as Overview;
}

describe("recovery", () => {
  let engine: Engine | undefined;
  afterEach(async () => {
    await engine?.dispose().catch(() => undefined);
    engine = undefined;
  });

  it("resumes a RUNNING job from its latest checkpoint after the whole runtime was killed", async () => {
    engine = await startEngine();
    const dir = engine.persistDir;
    const res = await engine.api("/v1/jobs/clicks/start", { method: "POST", json: { config: { checkpoint: { interval_ms: 200 } } } });
    expect(res.status).toBe(200);
    const expected = new Map<string, number>();
    const send = async (e: Engine, n: number, salt: number) => {
      const users = Array.from({ length: n }, (_, i) => `u${(i * 31 + salt) % 50}`);
      for (const u of users) expected.set(u, (expected.get(u) ?? 0) + 1);
      await ingest(e, users);
    };
    await send(engine, 500, 1);
    await waitFor(async () => (await checkpoints(engine!)).counts.completed >= 2, 20_000, "two completed checkpoints");
    await send(engine, 500, 2);
    await crashEngine(engine);

    engine = await startEngine({ persistDir: dir });
    // Nobody asks: the coordinator's alarm finds its subtasks lost and fails over.
    await waitFor(async () => (await checkpoints(engine!)).counts.restored >= 1, 30_000, "a restore");
    await send(engine, 500, 3);
    await waitFor(async () => {
      const rows = await tableRows(engine!);
      return rows.size === expected.size && [...expected].every(([k, v]) => rows.get(k) === v);
    }, 30_000, "exact counts after recovery");
    const status = (await (await engine.api("/v1/jobs/clicks")).json()) as { status: string; restarts: number };
    expect(status.status).toBe("RUNNING");
    expect(status.restarts).toBeGreaterThanOrEqual(1);
    // Restored from a checkpoint, not replayed from the start: the new attempt read less than everything.
    const overview = (await (await engine.api("/v1/jobs/clicks/checkpoints")).json()) as { latest: { restored: { id: number } } };
    expect(overview.latest.restored.id).toBeGreaterThanOrEqual(2);
    const metrics = (await (await engine.api("/v1/jobs/clicks/metrics")).json()) as { subtasks: { vertex: string; records_in: number }[] };
    const reread = metrics.subtasks.filter((m) => m.vertex === "count-per-user").reduce((a, m) => a + m.records_in, 0);
    expect(reread).toBeLessThan(1500);
    expect(reread).toBeGreaterThanOrEqual(500);
  });
});

describe("runs", () => {
  let engine: Engine | undefined;
  afterEach(async () => {
    await engine?.dispose().catch(() => undefined);
    engine = undefined;
  });

  it("a fresh start never falls back to a checkpoint of an earlier run", async () => {
    engine = await startEngine();
    const start = (config: object) => engine!.api("/v1/jobs/clicks/start", { method: "POST", json: { config } });
    expect((await start({ checkpoint: { interval_ms: 100 } })).status).toBe(200);
    await ingest(engine, ["old", "old", "old"]);
    await waitFor(async () => (await checkpoints(engine!)).counts.completed >= 2, 20_000, "checkpoints of the first run");
    expect((await engine.api("/v1/jobs/clicks/cancel", { method: "POST" })).status).toBe(200);
    // The second run checkpoints rarely: a failure comes before its first checkpoint.
    const second = await start({ checkpoint: { interval_ms: 3_600_000 }, restart_strategy: { type: "fixed-delay", delay_ms: 10 } });
    expect(second.status).toBe(200);
    expect(((await second.json()) as { latest_completed_checkpoint: number | null }).latest_completed_checkpoint).toBeNull();
    const ns = await engine.mf.getDurableObjectNamespace("SUBTASK");
    await (ns.get(ns.idFromName("job:clicks/vertex:count-per-user/subtask:0")) as unknown as { reset(): Promise<void> }).reset().catch(() => undefined);
    await ingest(engine, ["new"]);
    await waitFor(async () => ((await (await engine!.api("/v1/jobs/clicks")).json()) as { restarts: number; status: string }).restarts >= 1, 20_000, "a restart");
    const overview = (await (await engine.api("/v1/jobs/clicks/checkpoints")).json()) as { latest: { restored: unknown } };
    expect(overview.latest.restored).toBeNull();
  });

  it("refuses a manual checkpoint when the run has checkpointing off", async () => {
    engine = await startEngine();
    expect((await engine.api("/v1/jobs/clicks/start", { method: "POST", json: { config: { checkpoint: { interval_ms: 0 } } } })).status).toBe(200);
    const res = await engine.api("/v1/jobs/clicks/checkpoints", { method: "POST" });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("checkpointing_disabled");
  });

  it("refuses a start body that is not sent as JSON instead of starting with defaults", async () => {
    engine = await startEngine();
    const res = await engine.api("/v1/jobs/clicks/start", { method: "POST", body: '{"config":{"checkpoint":{"interval_ms":-5}}}', headers: { "content-type": "text/plain" } });
    expect(res.status).toBe(415);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unsupported_media_type");
    expect(((await (await engine.api("/v1/jobs/clicks")).json()) as { status: string }).status).toBe("CREATED");
  });
});
