/**
 * Connected streams as a user writes them (issue 19): the `connect` test
 * job (test/fixtures/connect-jobs.ts) enriches clicks with user profiles
 * from a second stream in a keyed co-process function, holding a click in
 * keyed state until its profile comes, or giving up at an event-time timer.
 * The input comes in phases whose outcome does not depend on timing
 * (profiles first; clicks, some of them waiting; the profiles they wait
 * for; then a click late enough in event time to time the rest out), with
 * a SIGKILL of the runtime at a seeded moment. Every click's output must be
 * in the table exactly once with the expected name.
 */
import { afterEach, describe, expect, it } from "vitest";
import { crashEngine } from "../support/crash.js";
import { type Engine, readTable, startEngine, waitFor } from "../support/engine.js";
import { Random } from "../support/random.js";

const SEED = Number(process.env.FLOE_SEED ?? 20261206);

interface EnrichedRow {
  name: string;
  times: number;
}

let engines: Engine[] = [];
afterEach(async () => {
  for (const e of engines) await e.dispose().catch(() => undefined);
  engines = [];
});

async function engineAt(persistDir?: string): Promise<Engine> {
  const e = await startEngine({ testJobs: true, persistDir });
  engines.push(e);
  return e;
}

async function ingest(engine: Engine, stream: string, records: readonly object[]): Promise<void> {
  const res = await engine.api(`/v1/ingest/${stream}`, { method: "POST", body: records.map((r) => JSON.stringify(r)).join("\n"), headers: { "content-type": "application/x-ndjson" } });
  expect(res.status, await res.clone().text()).toBe(200);
}

/** Waits until the job checkpointed past every record of `stream`: each went through the operator before what comes next. */
async function caughtUp(engine: Engine, stream: string): Promise<void> {
  await waitFor(async () => {
    const s = (await (await engine.api(`/v1/streams/${stream}`)).json()) as { partitions: { next_offset: number; jobs: { job: string; lag: number; active: boolean }[] }[] };
    return s.partitions.every((p) => p.next_offset === 0 || p.jobs.some((j) => j.job === "connect" && j.active && j.lag === 0));
  }, 30_000, `the job checkpointed past ${stream}`);
}

describe("connected streams", () => {
  it("enrich clicks with profiles from a second stream in a keyed co-process function, exactly once across a SIGKILL", async () => {
    const random = new Random(SEED);
    let engine = await engineAt();
    const dir = engine.persistDir;
    expect((await engine.api("/v1/jobs/connect/start", { method: "POST", json: {} })).status).toBe(200);
    const expected = new Map<string, string>();
    const names = (u: number) => `User ${u}`;

    // Profiles of u0..u4 first.
    await ingest(engine, "connect-profiles", [0, 1, 2, 3, 4].map((u) => ({ user: `u${u}`, name: names(u), ts: 1000 })));
    await caughtUp(engine, "connect-profiles");

    // Clicks of u0..u9 within half a second of event time (no timer fires yet); u5..u9 wait. A SIGKILL in the middle.
    const rounds = 6;
    const crashAfter = 1 + random.int(rounds - 2);
    let id = 0;
    for (let r = 0; r < rounds; r++) {
      const clicks = Array.from({ length: 20 }, () => {
        const u = random.int(10);
        const click = { id: `c${id++}`, user: `u${u}`, ts: 2000 + random.int(500) };
        expected.set(click.id, u < 5 ? names(u) : u < 8 ? names(u) : "nobody");
        return click;
      });
      await ingest(engine, "connect-clicks", clicks);
      if (r === crashAfter) {
        await new Promise((res) => setTimeout(res, random.int(400)));
        await crashEngine(engine);
        engines = engines.filter((e) => e !== engine);
        engine = await engineAt(dir);
      }
    }
    await caughtUp(engine, "connect-clicks");

    // The profiles u5..u7 were waiting for: their clicks go out with the names.
    await ingest(engine, "connect-profiles", [5, 6, 7].map((u) => ({ user: `u${u}`, name: names(u), ts: 1500 })));
    await caughtUp(engine, "connect-profiles");

    // A click far later in event time: once the profiles' partition is idle, the watermark passes every waiting
    // click's timer, and u8's and u9's give up.
    await ingest(engine, "connect-clicks", [{ id: "trigger", user: "nobody-knows", ts: 10_000 }]);

    let last = "";
    await waitFor(
      async () => {
        const rows = await readTable<EnrichedRow>(engine, "connect-out");
        last = JSON.stringify([...rows].filter(([k, v]) => expected.get(k) !== v.name || v.times !== 1).slice(0, 5));
        return rows.size === expected.size && [...expected].every(([k, name]) => rows.get(k)?.name === name && rows.get(k)?.times === 1);
      },
      60_000,
      "every click once, with its name",
    ).catch((e: Error) => {
      throw new Error(`${e.message}; wrong or extra rows: ${last}`);
    });
    const rows = await readTable<EnrichedRow>(engine, "connect-out");
    expect(rows.has("trigger"), "the trigger click waits for its own timer").toBe(false);
    const status = (await (await engine.api("/v1/jobs/connect")).json()) as { status: string; restarts: number };
    expect(status.status).toBe("RUNNING");
    expect(status.restarts).toBeGreaterThanOrEqual(1);
  }, 120_000);
});
