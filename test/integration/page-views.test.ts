/**
 * The `page-views` example job as a user runs it (DESIGN.md, "Names other
 * programs rely on"): page views over HTTP, counted per URL in one-minute
 * event-time windows into `page-views-per-minute`, views whose window
 * already fired counted into `page-views-late`. The reference is computed
 * from what was ingested, in phases whose lateness is unambiguous: views
 * of minutes 0 and 1 (none late: no partition's watermark reaches 0:59.999
 * before the phase ends), then one view at 2:10 per URL (the windows of
 * minutes 0 and 1 fire), then views of minutes 0 and 1 again (late, each
 * of them) and of minute 2, then one at 3:10 per URL (minute 2 fires). The
 * runtime is killed with SIGKILL at a seeded moment of the first phase.
 * For every URL and minute the two tables must hold exactly the reference:
 * count plus late equals views ingested, exactly once.
 */
import { describe, expect, it } from "vitest";
import { type Engine, readTable, waitFor } from "../support/engine.js";
import { caughtUp, engineSet } from "../support/engines.js";
import { Random } from "../support/random.js";

const SEED = Number(process.env.FLOE_SEED ?? 20261206);
/** 2026-01-01T00:00:00.000Z: minute 0 of the test. */
const T0 = Date.UTC(2026, 0, 1);
const MINUTE = 60_000;
const URLS = ["/", "/pricing", "/docs/windows", "/blog?id=7", "/about"];

interface View {
  url: string;
  ts: number;
  user?: string;
}

interface Row {
  url: string;
  window_start: string;
  window_end: string;
  count: number;
}

const rowKey = (url: string, minute: number) => `${url}|${new Date(T0 + minute * MINUTE).toISOString()}`;

const engines = engineSet({ testJobs: false });
const engineAt = engines.start;

async function ingest(engine: Engine, views: readonly View[]): Promise<Response> {
  return engine.api("/v1/ingest/page-views", { method: "POST", body: views.map((v) => JSON.stringify(v)).join("\n"), headers: { "content-type": "application/x-ndjson" } });
}

/** Views of `minute` for random URLs, at random seconds in [from, to). */
function views(random: Random, n: number, minute: number, fromMs = 0, toMs = MINUTE): View[] {
  return Array.from({ length: n }, () => ({ url: URLS[random.int(URLS.length)], ts: T0 + minute * MINUTE + fromMs + random.int(toMs - fromMs), user: `u${random.int(50)}` }));
}

class Reference {
  readonly counts = new Map<string, number>();
  readonly late = new Map<string, number>();

  add(list: readonly View[], late: boolean): void {
    const into = late ? this.late : this.counts;
    for (const v of list) {
      const k = rowKey(v.url, Math.floor((v.ts - T0) / MINUTE));
      into.set(k, (into.get(k) ?? 0) + 1);
    }
  }

  /** The rows of `page-views-per-minute` for the minutes that fired. */
  rows(minutes: readonly number[]): Map<string, Row> {
    const out = new Map<string, Row>();
    for (const [k, count] of this.counts) {
      const [url, start] = k.split("|");
      const minute = (Date.parse(start) - T0) / MINUTE;
      if (!minutes.includes(minute)) continue;
      out.set(k, { url, window_start: start, window_end: new Date(Date.parse(start) + MINUTE).toISOString(), count });
    }
    return out;
  }
}

async function expectTables(engine: Engine, ref: Reference, minutes: number[], what: string): Promise<void> {
  const expectedRows = ref.rows(minutes);
  let last = "";
  await waitFor(
    async () => {
      const rows = await readTable<Row>(engine, "page-views-per-minute");
      const late = await readTable<number>(engine, "page-views-late");
      last = `per-minute ${JSON.stringify([...rows])}; late ${JSON.stringify([...late])}`;
      return JSON.stringify([...rows].sort()) === JSON.stringify([...expectedRows].sort()) && JSON.stringify([...late].sort()) === JSON.stringify([...ref.late].sort());
    },
    60_000,
    what,
  ).catch((e: Error) => {
    throw new Error(`${e.message}; expected per-minute ${JSON.stringify([...expectedRows])}, late ${JSON.stringify([...ref.late])}; got ${last}`);
  });
}

describe("the page-views job", () => {
  it("refuses views without a string url or a numeric ts at ingestion, accepting nothing of the request", async () => {
    const engine = await engineAt();
    for (const bad of [{ ts: T0 }, { url: "/", ts: "2026-01-01" }, { url: 7, ts: T0 }, { url: "/" }, { url: "/", ts: T0, user: 3 }]) {
      const res = await ingest(engine, [{ url: "/ok", ts: T0 }, bad as unknown as View]);
      expect(res.status, JSON.stringify(bad)).toBe(400);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("invalid_record");
      expect(body.error.message).toMatch(/url|ts|user/);
    }
    const log = (await (await engine.api("/v1/streams/page-views")).json()) as { records: number };
    expect(log.records).toBe(0);
  });

  it("counts views per URL and minute exactly once across a SIGKILL, and counts late views apart", async () => {
    const random = new Random(SEED);
    let engine = await engineAt();
    const start = await engine.api("/v1/jobs/page-views/start", { method: "POST", json: {} });
    expect(start.status, await start.clone().text()).toBe(200);
    const ref = new Reference();

    // Phase 1: minutes 0 and 1 (minute 1 only up to 1:04, so that no window fires yet); a SIGKILL in the middle.
    const rounds = 8;
    const crashAfter = 1 + random.int(rounds - 3);
    for (let i = 0; i < rounds; i++) {
      const batch = [...views(random, 30, 0), ...views(random, 10, 1, 0, 4_000)];
      const res = await ingest(engine, batch);
      expect(res.status, await res.clone().text()).toBe(200);
      ref.add(batch, false);
      if (i === crashAfter) {
        await new Promise((r) => setTimeout(r, random.int(800)));
        engine = await engines.crash(engine);
      }
    }

    // Phase 2: a view at 2:10 per URL moves every URL's partition past minute 1; quiet partitions go idle after 5 s.
    const closing = URLS.map((url) => ({ url, ts: T0 + 2 * MINUTE + 10_000 }));
    expect((await ingest(engine, closing)).status).toBe(200);
    ref.add(closing, false);
    await expectTables(engine, ref, [0, 1], "minutes 0 and 1 fired");

    // Phase 3: views of minutes 0 and 1 are late now; views of minute 2 are not.
    const late = [...views(random, 25, 0), ...views(random, 15, 1)];
    const onTime = views(random, 30, 2, 10_000, MINUTE);
    const mixed = [...late, ...onTime].sort(() => random.int(3) - 1);
    expect((await ingest(engine, mixed)).status).toBe(200);
    ref.add(late, true);
    ref.add(onTime, false);
    // The minute-2 views must reach the window before any partition's 3:10 view moves the watermark past minute 2.
    await caughtUp(engine, "page-views", "page-views");
    const closing2 = URLS.map((url) => ({ url, ts: T0 + 3 * MINUTE + 10_000 }));
    expect((await ingest(engine, closing2)).status).toBe(200);
    ref.add(closing2, false);
    await expectTables(engine, ref, [0, 1, 2], "minute 2 fired and the late views counted");

    // Count plus late is every view ingested, per URL and minute.
    const ingested = rounds * 40 + closing.length + late.length + onTime.length + closing2.length;
    const total = [...ref.counts.values(), ...ref.late.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(ingested);
    const status = (await (await engine.api("/v1/jobs/page-views")).json()) as { status: string; restarts: number };
    expect(status.status).toBe("RUNNING");
    expect(status.restarts).toBeGreaterThanOrEqual(1);
  }, 180_000);
});
