/**
 * One upstream vertex feeding an operator through two inputs (issue 19):
 * `events.connect(events)`, keyed by user, and a union of that operator's
 * main and side output into one sink (test/fixtures/self-connect-jobs.ts).
 * Each pair travels on two lanes of one channel pair, with their own
 * sequence numbers, barriers and in-flight data; with unaligned
 * checkpoints and a SIGKILL at a seeded moment, every record must be
 * counted exactly once on each input. And `events.connect(events.map(…))`
 * (test/fixtures/self-connect-jobs.ts, `connect-map`): one stream into both
 * inputs, once through a map, across a SIGKILL with aligned checkpoints.
 */
import { describe, expect, it } from "vitest";
import { readTable, waitFor } from "../support/engine.js";
import { caughtUp, engineSet } from "../support/engines.js";
import { Random } from "../support/random.js";

const SEED = Number(process.env.FLOE_SEED ?? 20261207);

const engines = engineSet();

describe("a stream connected with itself", () => {
  it("counts every record once on each input and each lane, exactly once across a SIGKILL with unaligned checkpoints", async () => {
    const random = new Random(SEED);
    let engine = await engines.start();
    expect((await engine.api("/v1/jobs/self-connect/start", { method: "POST", json: {} })).status).toBe(200);
    const perUser = new Map<string, number>();
    const rounds = 8;
    const crashAfter = 1 + random.int(rounds - 3);
    let id = 0;
    for (let r = 0; r < rounds; r++) {
      const events = Array.from({ length: 50 }, () => {
        const user = `u${random.int(12)}`;
        perUser.set(user, (perUser.get(user) ?? 0) + 1);
        return { id: `e${id++}`, user };
      });
      const res = await engine.api("/v1/ingest/self-events", { method: "POST", body: events.map((e) => JSON.stringify(e)).join("\n"), headers: { "content-type": "application/x-ndjson" } });
      expect(res.status, await res.clone().text()).toBe(200);
      if (r === crashAfter) {
        await new Promise((res) => setTimeout(res, random.int(300)));
        engine = await engines.crash(engine);
      }
    }
    await caughtUp(engine, "self-events", "self-connect");
    const expected = new Map<string, number>([...perUser].flatMap(([user, n]) => [[`${user}:1`, n] as const, [`${user}:2`, n] as const]));
    let last = "";
    await waitFor(
      async () => {
        const rows = await readTable<{ count: number }>(engine, "self-connect-out");
        last = JSON.stringify([...rows].filter(([k, v]) => expected.get(k) !== v.count));
        return rows.size === expected.size && [...expected].every(([k, n]) => rows.get(k)?.count === n);
      },
      60_000,
      "every user's count on both inputs",
    ).catch((e: Error) => {
      throw new Error(`${e.message}; wrong rows: ${last}`);
    });
    const status = (await (await engine.api("/v1/jobs/self-connect")).json()) as { status: string; restarts: number };
    expect(status.status).toBe("RUNNING");
    expect(status.restarts).toBeGreaterThanOrEqual(1);
  }, 120_000);

  it("connects a stream with a map of itself: every user's count and sum exact across a SIGKILL", async () => {
    const random = new Random(SEED + 1);
    let engine = await engines.start();
    expect((await engine.api("/v1/jobs/connect-map/start", { method: "POST", json: {} })).status).toBe(200);
    const expected = new Map<string, number>();
    const add = (key: string, n: number) => expected.set(key, (expected.get(key) ?? 0) + n);
    const rounds = 8;
    const crashAfter = 1 + random.int(rounds - 3);
    let id = 0;
    for (let r = 0; r < rounds; r++) {
      const events = Array.from({ length: 50 }, () => {
        const user = `u${random.int(12)}`;
        add(`${user}:count`, 1);
        add(`${user}:sum`, id);
        return { id: `e${id++}`, user };
      });
      const res = await engine.api("/v1/ingest/connect-map-events", { method: "POST", body: events.map((e) => JSON.stringify(e)).join("\n"), headers: { "content-type": "application/x-ndjson" } });
      expect(res.status, await res.clone().text()).toBe(200);
      if (r === crashAfter) {
        await new Promise((res) => setTimeout(res, random.int(300)));
        engine = await engines.crash(engine);
      }
    }
    await caughtUp(engine, "connect-map-events", "connect-map");
    let last = "";
    await waitFor(
      async () => {
        const rows = await readTable<{ value: number }>(engine, "connect-map-out");
        last = JSON.stringify([...rows].filter(([k, v]) => expected.get(k) !== v.value));
        return rows.size === expected.size && [...expected].every(([k, n]) => rows.get(k)?.value === n);
      },
      60_000,
      "every user's count on input 1 and sum on input 2",
    ).catch((e: Error) => {
      throw new Error(`${e.message}; wrong rows: ${last}`);
    });
    const status = (await (await engine.api("/v1/jobs/connect-map")).json()) as { status: string; restarts: number };
    expect(status.status).toBe("RUNNING");
    expect(status.restarts).toBeGreaterThanOrEqual(1);
  }, 120_000);
});
