/**
 * Inside the Workers runtime (the vitest plugin runs these tests in
 * workerd): the objects' own contracts, with the platform's eviction (memory
 * gone, storage kept) applied to them directly.
 */
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { coordinatorName, streamPartitionName, subtaskName } from "../../src/runtime/names.js";

describe("StreamPartition in the runtime", () => {
  it("keeps acknowledged appends across an eviction and answers a repeated idempotency key with the first offsets", async () => {
    const stub = env.STREAM_PARTITION.get(env.STREAM_PARTITION.idFromName(streamPartitionName("clicks", 0)));
    const first = await stub.append(['{"user":"a"}', '{"user":"b"}'], "req-1");
    expect(first).toEqual({ firstOffset: 0, endOffset: 2, count: 2, duplicate: false });
    await evictDurableObject(stub);
    const again = await stub.append(['{"user":"a"}', '{"user":"b"}'], "req-1");
    expect(again).toEqual({ firstOffset: 0, endOffset: 2, count: 2, duplicate: true });
    const next = await stub.append(['{"user":"c"}']);
    expect(next.firstOffset).toBe(2);
    const read = await stub.read(1, 10);
    expect(read).toMatchObject({ firstOffset: 1, count: 2, endOffset: 3 });
    expect(read.lines.split("\n")).toEqual(['{"user":"b"}', '{"user":"c"}']);
    // The log is in the object's SQLite storage, one row per chunk.
    const rows = await runInDurableObject(stub, (_instance, state) => state.storage.sql.exec("SELECT COUNT(*) AS n FROM log").one().n);
    expect(rows).toBe(2);
  });
});

describe("a job across an eviction", () => {
  it("a subtask evicted by the platform reports its task lost, and the coordinator fails over", async () => {
    const start = await exports.default.fetch("http://floe/v1/jobs/clicks/start", {
      method: "POST",
      headers: { authorization: `Bearer ${env.FLOE_ADMIN_TOKEN}`, "content-type": "application/json" },
      body: "{}",
    });
    expect(start.status).toBe(200);
    const { attempt } = (await start.json()) as { attempt: number };
    const subtask = env.SUBTASK.get(env.SUBTASK.idFromName(subtaskName("clicks", "count-per-user", 0)));
    expect(await subtask.ping(attempt)).toBe("running");
    // A running task keeps its object in memory with a timer each heartbeat renews: the platform evicts it only once
    // that has run out (no heartbeat for a minute), as here. With the timer pending, the eviction would wait for it.
    await runInDurableObject(subtask, (instance) => {
      (instance as unknown as { coreValue: { keepAlive?: { cancel(): void } } }).coreValue.keepAlive?.cancel();
    });
    await evictDurableObject(subtask);
    // Memory is gone, storage is kept: the object knows its deployment but not a running task.
    expect(await subtask.ping(attempt)).toBe("lost");
    const coordinator = env.COORDINATOR.get(env.COORDINATOR.idFromName(coordinatorName("clicks")));
    await runInDurableObject(coordinator, async (instance) => {
      await (instance as unknown as { heartbeat(): Promise<void> }).heartbeat();
    });
    const status = (await (await exports.default.fetch("http://floe/v1/jobs/clicks", { headers: { authorization: `Bearer ${env.FLOE_ADMIN_TOKEN}` } })).json()) as {
      status: string;
      attempt: number;
      last_error: string;
    };
    expect(status.attempt).toBeGreaterThan(attempt);
    expect(["RESTARTING", "RUNNING"]).toContain(status.status);
    // Found by the heartbeat, or first by a sender whose next batch or barrier the object refused.
    expect(status.last_error).toMatch(/count-per-user\/0 (lost its running task|refused message \d+: not-deployed)/);
  });
});

describe("the Worker in the runtime", () => {
  it("refuses the control API without the admin token", async () => {
    const res = await exports.default.fetch("http://floe/v1/jobs");
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: { code: "unauthorized", message: expect.stringContaining("Bearer") } });
  });
});
