/**
 * Connected streams as a user writes them (issue 19): the `connect` test
 * job (test/fixtures/connect-jobs.ts) enriches clicks with user profiles
 * from a second stream in a keyed co-process function, holding a click in
 * keyed state until its profile comes, or giving up at an event-time timer.
 * The input comes in phases whose outcome does not depend on timing
 * (profiles first; clicks, some of them waiting; the profiles they wait
 * for; then a click late enough in event time to time the rest out), with
 * a SIGKILL of the runtime at a seeded moment. Every click's output must be
 * in the table exactly once with the expected name; those that give up come
 * from onTimer through a side output. And a co-process function without keys
 * (`co-route`) sends records of both inputs to its main output and to a side
 * output per input, all read again through one union: across a SIGKILL,
 * every record once, the way it went.
 */
import { describe, expect, it } from "vitest";
import { type Engine, readTable, waitFor } from "../support/engine.js";
import { caughtUp, engineSet } from "../support/engines.js";
import { Random } from "../support/random.js";

const SEED = Number(process.env.FLOE_SEED ?? 20261206);

interface EnrichedRow {
  name: string;
  times: number;
}

interface RoutedRow {
  via: string;
  times: number;
}

const engines = engineSet();
const engineAt = engines.start;

async function ingest(engine: Engine, stream: string, records: readonly object[]): Promise<void> {
  const res = await engine.api(`/v1/ingest/${stream}`, { method: "POST", body: records.map((r) => JSON.stringify(r)).join("\n"), headers: { "content-type": "application/x-ndjson" } });
  expect(res.status, await res.clone().text()).toBe(200);
}

describe("connected streams", () => {
  it("enrich clicks with profiles from a second stream in a keyed co-process function, exactly once across a SIGKILL", async () => {
    const random = new Random(SEED);
    let engine = await engineAt();
    expect((await engine.api("/v1/jobs/connect/start", { method: "POST", json: {} })).status).toBe(200);
    const expected = new Map<string, string>();
    const names = (u: number) => `User ${u}`;

    // Profiles of u0..u4 first.
    await ingest(engine, "connect-profiles", [0, 1, 2, 3, 4].map((u) => ({ user: `u${u}`, name: names(u), ts: 1000 })));
    await caughtUp(engine, "connect-profiles", "connect");

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
        engine = await engines.crash(engine);
      }
    }
    await caughtUp(engine, "connect-clicks", "connect");

    // The profiles u5..u7 were waiting for: their clicks go out with the names.
    await ingest(engine, "connect-profiles", [5, 6, 7].map((u) => ({ user: `u${u}`, name: names(u), ts: 1500 })));
    await caughtUp(engine, "connect-profiles", "connect");

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

  it("route both inputs of a co-process function without keys to its main and side outputs, exactly once across a SIGKILL", async () => {
    const random = new Random(SEED + 1);
    let engine = await engineAt();
    expect((await engine.api("/v1/jobs/co-route/start", { method: "POST", json: {} })).status).toBe(200);
    const expected = new Map<string, string>();
    const rounds = 8;
    const crashAfter = 1 + random.int(rounds - 3);
    let n = 0;
    for (let r = 0; r < rounds; r++) {
      for (const [input, stream] of [
        [1, "co-route-a"],
        [2, "co-route-b"],
      ] as const) {
        const records = Array.from({ length: 10 + random.int(30) }, () => {
          const k = n++;
          const id = `${input === 1 ? "a" : "b"}${k}`;
          expected.set(id, `${k % 3 === 0 ? "side" : "main"}-${input}`); // every third to its input's side output
          return { id };
        });
        await ingest(engine, stream, records);
      }
      if (r === crashAfter) {
        await new Promise((res) => setTimeout(res, random.int(300)));
        engine = await engines.crash(engine);
      }
    }
    expect(new Set(expected.values()), "every way taken").toEqual(new Set(["main-1", "side-1", "main-2", "side-2"]));
    let last = "";
    await waitFor(
      async () => {
        const rows = await readTable<RoutedRow>(engine, "co-route-out");
        last = JSON.stringify([...rows].filter(([k, v]) => expected.get(k) !== v.via || v.times !== 1).slice(0, 5));
        return rows.size === expected.size && [...expected].every(([k, via]) => rows.get(k)?.via === via && rows.get(k)?.times === 1);
      },
      60_000,
      "every record once, the way it went",
    ).catch((e: Error) => {
      throw new Error(`${e.message}; wrong or extra rows: ${last}`);
    });
    const status = (await (await engine.api("/v1/jobs/co-route")).json()) as { status: string; restarts: number };
    expect(status.status).toBe("RUNNING");
    expect(status.restarts).toBeGreaterThanOrEqual(1);
  }, 120_000);
});
