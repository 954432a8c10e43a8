/**
 * A stream joined with itself (issue 19): one upstream vertex feeds both
 * sides of the join, over two lanes of each channel pair
 * (test/fixtures/self-join-jobs.ts). The interval self-join runs with
 * unaligned checkpoints (both lanes' in-flight data in the checkpoint),
 * the window self-join with aligned ones; each across a SIGKILL of the
 * runtime at a seeded round. No event is late (each at most 250 ms behind
 * the newest, with a 300 ms watermark bound on one partition), so the
 * output must be exactly the offline self-join, every pair (an event with
 * itself included) once.
 */
import { describe, expect, it } from "vitest";
import type { Engine } from "../support/engine.js";
import { engineSet } from "../support/engines.js";
import { type JoinEvent, expectPairs } from "../support/join-input.js";
import { Random } from "../support/random.js";

/** As in test/fixtures/self-join-jobs.ts (a Worker module: Node cannot import it). */
const LOWER_MS = -500;
const UPPER_MS = 1000;
const WINDOW_MS = 1000;
const SEED = Number(process.env.FLOE_SEED ?? 20261219);

const engines = engineSet();

/** Every `x+y` pair of one ad for which `joins(x.ts, y.ts)` holds, `x+x` included. */
function selfPairs(events: readonly JoinEvent[], joins: (left: number, right: number) => boolean): Set<string> {
  const out = new Set<string>();
  for (const x of events) for (const y of events) if (x.ad === y.ad && joins(x.ts, y.ts)) out.add(`${x.id}+${y.id}`);
  return out;
}

async function ingest(engine: Engine, stream: string, events: readonly JoinEvent[]): Promise<void> {
  const res = await engine.api(`/v1/ingest/${stream}`, { method: "POST", body: events.map((e) => JSON.stringify(e)).join("\n"), headers: { "content-type": "application/x-ndjson" } });
  expect(res.status, await res.clone().text()).toBe(200);
}

/**
 * Starts `job` and sends `rounds` rounds of events of six ads to `stream`,
 * SIGKILLing the runtime after a seeded round; answers the events sent and
 * the engine running at the end.
 */
async function sendWithCrash(job: string, stream: string, random: Random, rounds = 6, size = 30): Promise<{ engine: Engine; events: JoinEvent[]; clockMs: number }> {
  let engine = await engines.start();
  expect((await engine.api(`/v1/jobs/${job}/start`, { method: "POST", json: {} })).status).toBe(200);
  const crashAfter = 1 + random.int(rounds - 2);
  const events: JoinEvent[] = [];
  let clockMs = 10_000;
  for (let r = 0; r < rounds; r++) {
    const round = Array.from({ length: size }, (_, i) => {
      clockMs += random.int(40);
      return { id: `e${events.length + i}`, ad: `ad${random.int(6)}`, ts: clockMs - random.int(250) };
    });
    events.push(...round);
    await ingest(engine, stream, round);
    if (r === crashAfter) {
      await new Promise((res) => setTimeout(res, random.int(300)));
      engine = await engines.crash(engine);
    }
  }
  return { engine, events, clockMs };
}

describe("a stream joined with itself", () => {
  it("interval self-join: exactly the offline self-join, each pair once, across a SIGKILL with unaligned checkpoints", async () => {
    const { engine, events } = await sendWithCrash("self-interval-join", "sij-events", new Random(SEED));
    const expected = selfPairs(events, (l, r) => r >= l + LOWER_MS && r <= l + UPPER_MS);
    expect(expected.size, "pairs beyond each event with itself").toBeGreaterThan(events.length * 3);
    await expectPairs(engine, "sij-out", expected, "every pair of the interval self-join once");
    const status = (await (await engine.api("/v1/jobs/self-interval-join")).json()) as { status: string; restarts: number };
    expect(status.status).toBe("RUNNING");
    expect(status.restarts, "the SIGKILL restarted the job").toBeGreaterThanOrEqual(1);
  }, 120_000);

  it("window self-join: exactly the offline self-join per ad and window, each pair once, across a SIGKILL", async () => {
    const { engine, events, clockMs } = await sendWithCrash("self-window-join", "swj-events", new Random(SEED + 1));
    // One event far ahead in event time, under an ad of its own: every window so far fires; its own never does.
    await ingest(engine, "swj-events", [{ id: "flush", ad: "flush", ts: clockMs + 5_000 }]);
    const expected = selfPairs(events, (l, r) => Math.floor(l / WINDOW_MS) === Math.floor(r / WINDOW_MS));
    expect(expected.size, "pairs beyond each event with itself").toBeGreaterThan(events.length * 3);
    await expectPairs(engine, "swj-out", expected, "every pair of the window self-join once");
    const status = (await (await engine.api("/v1/jobs/self-window-join")).json()) as { status: string; restarts: number };
    expect(status.status).toBe("RUNNING");
    expect(status.restarts, "the SIGKILL restarted the job").toBeGreaterThanOrEqual(1);
  }, 120_000);
});
