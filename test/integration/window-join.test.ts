/**
 * The window join as a user runs it (issue 19): the `window-join` test job
 * (test/fixtures/join-jobs.ts) joins impressions and clicks by ad in
 * tumbling one-second event-time windows. No record is late (see
 * test/support/join-input.ts), so once event time has moved past the last
 * window, the output must be exactly the offline join (same ad, same
 * window), each pair once: under the chaos test's faults with aligned
 * checkpoints (a seeded schedule of three of each: user exceptions in the
 * join function, resets of join and counting subtasks, coordinator resets
 * and SIGKILLs of the runtime; test/support/join-input.ts, FLOE_SEED
 * replays another), and across a savepoint restored at parallelism 3 with
 * windows open.
 */
import { describe, expect, it } from "vitest";
import type { Engine } from "../support/engine.js";
import { engineSet } from "../support/engines.js";
import { JoinInput, chaosConfig, expectPairs, expectRecovered } from "../support/join-input.js";
import { Random } from "../support/random.js";

/** As WINDOW_JOIN_MS in test/fixtures/join-jobs.ts (a Worker module: Node cannot import it). */
const WINDOW_MS = 1000;
const SEED = Number(process.env.FLOE_SEED ?? 20261206);

const engines = engineSet();
const engineAt = engines.start;

/** The pairs of records in one window; the flush records (ad "flush") are in windows that never fire. */
const expectedOf = (input: JoinInput) => input.pairs((i, c) => Math.floor(i / WINDOW_MS) === Math.floor(c / WINDOW_MS));

/** Moves event time on both streams far past every window so far: they all fire. */
async function flush(engine: Engine, input: JoinInput): Promise<void> {
  input.skip(5_000);
  const r = input.round(1);
  // Under an ad and ids of their own: they join only each other, in a window the watermark has not passed.
  for (const e of [...r.impressions, ...r.clicks]) {
    e.ad = "flush";
    e.id = `flush-${e.id}`;
  }
  for (const [stream, list] of [
    ["ij-impressions", r.impressions],
    ["ij-clicks", r.clicks],
  ] as const) {
    const res = await engine.api(`/v1/ingest/${stream}`, { method: "POST", json: list });
    expect(res.status).toBe(200);
  }
}

/** The table holds exactly `expected` but the flush pair, which sits in a window that has not fired. */
async function expectJoined(engine: Engine, expected: Set<string>, what: string): Promise<void> {
  await expectPairs(engine, "wj-out", new Set([...expected].filter((p) => !p.includes("flush"))), what);
}

describe("window join", () => {
  it("equals the offline join per ad and window, each pair once, under user exceptions, subtask and coordinator resets and SIGKILLs", async () => {
    const input = new JoinInput(new Random(SEED));
    const { engine, faults } = await input.sendWithFaults(await engineAt(), "window-join", engines.crash, {
      rounds: 16,
      size: 25,
      each: 3,
      parallelism: { join: 2, "count-pairs": 2 },
      joins: (i, c) => Math.floor(i / WINDOW_MS) === Math.floor(c / WINDOW_MS),
      config: chaosConfig(false),
    });
    await flush(engine, input);
    expect(expectedOf(input).size, "the input joins").toBeGreaterThan(100);
    expect(faults["user-exception"], "pairs the join function throws at").toBeGreaterThanOrEqual(3);
    await expectJoined(engine, new Set([...expectedOf(input), ...input.thrownPairs()]), `every pair once after the faults ${JSON.stringify(faults)}, seed ${SEED}`);
    await expectRecovered(engine, "window-join", { restarts: 3, unaligned: false });
  }, 120_000);

  it("keeps open windows through a savepoint restored at parallelism 3", async () => {
    const engine = await engineAt();
    expect((await engine.api("/v1/jobs/window-join/start", { method: "POST", json: {} })).status).toBe(200);
    const input = new JoinInput(new Random(SEED + 1));
    for (let r = 0; r < 3; r++) await input.send(engine, 25);
    const stop = await engine.api("/v1/jobs/window-join/stop", { method: "POST", json: { savepoint: true } });
    expect(stop.status, await stop.clone().text()).toBe(200);
    const { id } = (await stop.json()) as { id: string };
    const before = { impressions: new Set(input.impressions.map((e) => e.id)), clicks: new Set(input.clicks.map((e) => e.id)) };
    const restarted = await engine.api("/v1/jobs/window-join/start", { method: "POST", json: { fromSavepoint: id, parallelism: { join: 3, "count-pairs": 3 } } });
    expect(restarted.status, await restarted.clone().text()).toBe(200);
    for (let r = 0; r < 3; r++) await input.send(engine, 25);
    await flush(engine, input);
    const expected = expectedOf(input);
    const across = [...expected].filter((p) => {
      const [i, c] = p.split("+");
      return before.impressions.has(i) !== before.clicks.has(c);
    });
    expect(across.length, "pairs of a record from before the savepoint and one from after, in a window open across it").toBeGreaterThan(0);
    await expectJoined(engine, expected, "every pair once after the rescale");
  }, 120_000);
});
