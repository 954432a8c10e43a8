/**
 * Dead letters as a user sees them (issue 17): the `dead-letters` test job
 * (test/fixtures/dead-letter-jobs.ts) routes records its parser or its
 * keyed function throws on to dead letters, which it counts per event id
 * into a table. Across a SIGKILL of the runtime at a seeded moment, the
 * sums must be exact over the good records, and every poison record must be
 * in the dead-letter table once (count 1), with its operator, error, key
 * and, for the parser that runs in the source's chain, its source offset.
 * `dead-strict` has no dead letters: a poison record fails the job, naming
 * the operator and the offset.
 */
import { describe, expect, it } from "vitest";
import { type Engine, readTable, waitFor } from "../support/engine.js";
import { engineSet } from "../support/engines.js";
import { Random } from "../support/random.js";

const SEED = Number(process.env.FLOE_SEED ?? 20261206);

interface RawEvent {
  id: string;
  user: string;
  n?: unknown;
}

interface DeadRow {
  count: number;
  operator: string;
  error: string;
  key: string | number | null;
  source: { partition: string; offset: number } | null;
}

const engines = engineSet();
const engineAt = engines.start;

/** Ingests `events` into `stream`; answers the partition and first offset the request got. */
async function ingest(engine: Engine, stream: string, events: readonly RawEvent[]): Promise<{ partition: number; first_offset: number }> {
  const res = await engine.api(`/v1/ingest/${stream}`, { method: "POST", body: events.map((e) => JSON.stringify(e)).join("\n"), headers: { "content-type": "application/x-ndjson" } });
  expect(res.status, await res.clone().text()).toBe(200);
  const { offsets } = (await res.json()) as { offsets: { partition: number; first_offset: number }[] };
  expect(offsets).toHaveLength(1);
  return offsets[0];
}

describe("dead letters", () => {
  it("take every poison record once, with its operator, error, key and offset, across a SIGKILL; the rest is counted exactly", async () => {
    const random = new Random(SEED);
    let engine = await engineAt();
    expect((await engine.api("/v1/jobs/dead-letters/start", { method: "POST", json: {} })).status).toBe(200);
    const sums = new Map<string, number>();
    const dead = new Map<string, Omit<DeadRow, "count" | "error"> & { error: RegExp }>();
    const rounds = 10;
    const crashAfter = 2 + random.int(rounds - 4);
    let id = 0;
    for (let r = 0; r < rounds; r++) {
      const events: RawEvent[] = [];
      for (let i = 0; i < 30; i++) {
        const user = `u${random.int(5)}`;
        const roll = random.int(20);
        events.push({ id: `e${id++}`, user, n: roll === 0 ? "not a number" : roll === 1 ? 13 : roll });
      }
      const at = await ingest(engine, "dead-letters-in", events);
      events.forEach((e, i) => {
        if (typeof e.n !== "number") {
          dead.set(e.id, { operator: "parse", error: new RegExp(`^TypeError: event ${e.id} has no numeric n$`), key: null, source: { partition: `dead-letters-in/${at.partition}`, offset: at.first_offset + i } });
        } else if (e.n === 13) {
          dead.set(e.id, { operator: "sum", error: new RegExp(`^RangeError: unlucky event ${e.id}$`), key: e.user, source: null });
        } else {
          sums.set(e.user, (sums.get(e.user) ?? 0) + e.n);
        }
      });
      if (r === crashAfter) {
        await new Promise((res) => setTimeout(res, random.int(500)));
        engine = await engines.crash(engine);
      }
    }
    expect(dead.size, "the seed gives poison records of both kinds").toBeGreaterThan(2);

    let last = "";
    await waitFor(
      async () => {
        const got = await readTable<number>(engine, "dead-letters-sums");
        const letters = await readTable<DeadRow>(engine, "dead-letters-out");
        last = `sums ${JSON.stringify([...got])}; letters ${letters.size}/${dead.size}`;
        return got.size === sums.size && [...sums].every(([u, s]) => got.get(u) === s) && letters.size === dead.size;
      },
      60_000,
      "the sums and every dead letter",
    ).catch((e: Error) => {
      throw new Error(`${e.message}; expected sums ${JSON.stringify([...sums])}; got ${last}`);
    });
    const letters = await readTable<DeadRow>(engine, "dead-letters-out");
    for (const [eventId, want] of dead) {
      const row = letters.get(eventId);
      expect(row, eventId).toBeDefined();
      expect(row!.count, `${eventId} arrived once`).toBe(1);
      expect(row!.error).toMatch(want.error);
      expect({ operator: row!.operator, key: row!.key, source: row!.source }).toEqual({ operator: want.operator, key: want.key, source: want.source });
    }
    const status = (await (await engine.api("/v1/jobs/dead-letters")).json()) as { status: string; restarts: number };
    expect(status.status).toBe("RUNNING");
    expect(status.restarts, "only the SIGKILL restarted it").toBe(1);
    const metrics = (await (await engine.api("/v1/jobs/dead-letters/metrics")).json()) as { vertices: { id: string; dead_letters: number }[] };
    expect(metrics.vertices.reduce((n, v) => n + v.dead_letters, 0)).toBeGreaterThan(0);
  }, 120_000);

  it("without a dead-letter output, a poison record fails the job naming the operator and its offset", async () => {
    const engine = await engineAt();
    expect((await engine.api("/v1/jobs/dead-strict/start", { method: "POST", json: {} })).status).toBe(200);
    await ingest(engine, "dead-strict-in", [
      { id: "ok", user: "a", n: 1 },
      { id: "bad", user: "a", n: "x" },
    ]);
    const status = await waitFor(async () => {
      const s = (await (await engine.api("/v1/jobs/dead-strict")).json()) as { status: string; last_error: string | null };
      return s.status === "FAILED" ? s : undefined;
    }, 30_000, "the job failed");
    expect(status.last_error).toMatch(/operator "parse" threw TypeError: event bad has no numeric n at dead-strict-in\/0 offset 1/);
  }, 60_000);
});
