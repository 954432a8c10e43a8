/**
 * The interval join as a user runs it (issue 19): the `interval-join` test
 * job (test/fixtures/join-jobs.ts) joins impressions and clicks by ad
 * between −500 and +1000 ms. Both streams advance together in event time,
 * each record within the watermark bound of its stream, so none is late and
 * the output must be exactly the offline join of everything ingested: each
 * pair once. Once under the chaos test's faults, with unaligned checkpoints:
 * a seeded schedule of three of each, user exceptions in the join function,
 * resets of join and counting subtasks, coordinator resets and SIGKILLs of
 * the runtime (test/support/join-input.ts; FLOE_SEED replays another); and
 * once across a savepoint restored at another parallelism with elements
 * waiting in the join's state.
 */
import { describe, expect, it } from "vitest";
import { engineSet } from "../support/engines.js";
import { JoinInput, chaosConfig, expectPairs, expectRecovered } from "../support/join-input.js";
import { Random } from "../support/random.js";

/** The pairs the interval join makes. */
const expectedOf = (input: JoinInput) => input.pairs((i, c) => c >= i + LOWER && c <= i + UPPER);

/** As JOIN_LOWER_MS and JOIN_UPPER_MS in test/fixtures/join-jobs.ts (a Worker module: Node cannot import it). */
const LOWER = -500;
const UPPER = 1000;
const SEED = Number(process.env.FLOE_SEED ?? 20261206);

const engines = engineSet();
const engineAt = engines.start;

describe("interval join", () => {
  it("equals the offline join of everything ingested, each pair once, under user exceptions, subtask and coordinator resets and SIGKILLs, with unaligned checkpoints", async () => {
    const input = new JoinInput(new Random(SEED));
    const { engine, faults } = await input.sendWithFaults(await engineAt(), "interval-join", engines.crash, {
      rounds: 16,
      size: 25,
      each: 3,
      parallelism: { join: 2, "count-pairs": 2 },
      joins: (i, c) => c >= i + LOWER && c <= i + UPPER,
      config: chaosConfig(true),
    });
    expect(expectedOf(input).size, "the input joins").toBeGreaterThan(200);
    expect(faults["user-exception"], "pairs the join function throws at").toBeGreaterThanOrEqual(3);
    await expectPairs(engine, "ij-out", new Set([...expectedOf(input), ...input.thrownPairs()]), `every pair once after the faults ${JSON.stringify(faults)}, seed ${SEED}`);
    await expectRecovered(engine, "interval-join", { restarts: 3, unaligned: true });
  }, 120_000);

  it("keeps waiting elements through a savepoint restored at parallelism 3", async () => {
    const engine = await engineAt();
    expect((await engine.api("/v1/jobs/interval-join/start", { method: "POST", json: {} })).status).toBe(200);
    const input = new JoinInput(new Random(SEED + 1));
    for (let r = 0; r < 3; r++) await input.send(engine, 25);
    await expectPairs(engine, "ij-out", expectedOf(input), "the pairs before the savepoint");
    const stop = await engine.api("/v1/jobs/interval-join/stop", { method: "POST", json: { savepoint: true } });
    expect(stop.status, await stop.clone().text()).toBe(200);
    const { id } = (await stop.json()) as { id: string };
    const restarted = await engine.api("/v1/jobs/interval-join/start", { method: "POST", json: { fromSavepoint: id, parallelism: { join: 3, "count-pairs": 3 } } });
    expect(restarted.status, await restarted.clone().text()).toBe(200);
    // The next rounds start where event time stopped: their clicks join impressions restored from the savepoint.
    const before = new Set(input.impressions.map((i) => i.id));
    const clicksBefore = new Set(input.clicks.map((c) => c.id));
    for (let r = 0; r < 3; r++) await input.send(engine, 25);
    const across = [...expectedOf(input)].filter((p) => {
      const [i, c] = p.split("+");
      return before.has(i) !== clicksBefore.has(c);
    });
    expect(across.length, "pairs of an element from before the savepoint and one from after").toBeGreaterThan(0);
    await expectPairs(engine, "ij-out", expectedOf(input), "every pair once after the rescale");
  }, 120_000);
});
