/**
 * Event-time watermarks end to end, as a user sees them in the metrics
 * (docs/time.md): the test Worker's watermark jobs (test/fixtures/jobs.ts)
 * read out-of-order records with known timestamps, and every subtask's and
 * vertex's watermark must be max ts − bound − 1 over the partitions that are
 * not idle, never going back; a bounded source ends at the end of time.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashKey } from "../../src/graph/key-groups.js";
import { END_OF_TIME_MS } from "../../src/time/watermark-strategy.js";
import { type Engine, startEngine, waitFor } from "../support/engine.js";

/** As WATERMARK_BOUND_MS in test/fixtures/jobs.ts (a Worker module: Node cannot import it). */
const BOUND_MS = 1000;

interface Metrics {
  vertices: { id: string; watermark_ms: number | null }[];
  subtasks: { vertex: string; index: number; status: string; records_in: number; input_watermark_ms: number | null; output_watermark_ms: number | null; watermark_idle: boolean }[];
}

/** An Idempotency-Key that lands a request in `partition` of a 2-partition stream (ingest.ts: hashKey(key) mod partitions). */
function keyFor(partition: number, n: number): string {
  for (let i = 0; ; i++) {
    const key = `wm-${n}-${i}`;
    if (hashKey(key) % 2 === partition) return key;
  }
}

describe("event-time watermarks", () => {
  let engine: Engine;
  let requests = 0;
  beforeAll(async () => {
    engine = await startEngine({ testJobs: true });
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  async function start(job: string): Promise<void> {
    const res = await engine.api(`/v1/jobs/${job}/start`, { method: "POST", json: {} });
    expect(res.status).toBe(200);
  }

  async function ingest(stream: string, partition: number, ts: number[]): Promise<void> {
    const body = ts.map((t, i) => JSON.stringify({ key: `k${i % 3}`, ts: t })).join("\n");
    const res = await engine.api(`/v1/ingest/${stream}`, { method: "POST", body, headers: { "content-type": "application/x-ndjson", "idempotency-key": keyFor(partition, requests++) } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { offsets: { partition: number }[] }).offsets[0].partition).toBe(partition);
  }

  async function metrics(job: string): Promise<Metrics> {
    return (await (await engine.api(`/v1/jobs/${job}/metrics`)).json()) as Metrics;
  }

  /** Waits until every subtask and vertex of `job` shows `watermarkMs` (sources as output, the others as input). */
  async function waitForWatermark(job: string, watermarkMs: number | null, what: string, subtasks = 3): Promise<Metrics> {
    return waitFor(
      async () => {
        const m = await metrics(job);
        if (m.subtasks.length !== subtasks) return false;
        const ok =
          m.vertices.every((v) => v.watermark_ms === watermarkMs) &&
          m.subtasks.every((s) => (s.vertex === "wm-in" || s.vertex === "wm-gen" ? s.output_watermark_ms : s.input_watermark_ms) === watermarkMs);
        return ok && m;
      },
      20_000,
      what,
    );
  }

  it("follows the slowest partition, max ts − bound − 1, through a keyed edge", async () => {
    await start("watermarks");
    // Out of order within partition 0; partition 1 has nothing yet and holds the watermark back.
    await ingest("watermarks-in", 0, [10_000, 9_000, 12_000, 11_500]);
    const held = await waitFor(
      async () => {
        const m = await metrics("watermarks");
        return m.subtasks.filter((s) => s.vertex === "wm-count").reduce((n, s) => n + s.records_in, 0) === 4 && m;
      },
      20_000,
      "partition 0's records through",
    );
    expect(held.vertices.map((v) => v.watermark_ms)).toEqual([null, null]);

    await ingest("watermarks-in", 1, [5_000, 7_000, 6_000]);
    const m = await waitForWatermark("watermarks", 7_000 - BOUND_MS - 1, "min over partitions");
    expect(m.subtasks.filter((s) => s.vertex === "wm-count").map((s) => [s.index, s.input_watermark_ms, s.output_watermark_ms])).toEqual([
      [0, 5_999, 5_999],
      [1, 5_999, 5_999],
    ]);
    expect(m.subtasks.every((s) => !s.watermark_idle)).toBe(true);

    // Partition 1 moves past partition 0: partition 0 is now the slowest.
    await ingest("watermarks-in", 1, [20_000, 15_000]);
    await waitForWatermark("watermarks", 12_000 - BOUND_MS - 1, "partition 0 the slowest");
    // A late record (below the watermark) moves nothing back.
    await ingest("watermarks-in", 0, [1_000]);
    await ingest("watermarks-in", 0, [30_000]);
    await waitForWatermark("watermarks", 20_000 - BOUND_MS - 1, "partition 1 the slowest again");
  });

  it("lets idle partitions stop holding the watermark back, without going backwards when they resume", async () => {
    await start("watermarks-idle");
    await ingest("watermarks-idle-in", 0, [50_000, 49_000]);
    // Partition 1 never had records: idle after 300 ms.
    await waitForWatermark("watermarks-idle", 50_000 - BOUND_MS - 1, "partition 1 idle");
    // Then partition 0 too: every subtask is idle, at the watermark it reached.
    await waitFor(async () => (await metrics("watermarks-idle")).subtasks.every((s) => s.watermark_idle), 20_000, "all idle");
    expect((await metrics("watermarks-idle")).vertices.map((v) => v.watermark_ms)).toEqual([48_999, 48_999]);

    // Partition 1 resumes behind the watermark: the watermark stays.
    await ingest("watermarks-idle-in", 1, [30_000]);
    await waitFor(
      async () => (await metrics("watermarks-idle")).subtasks.filter((s) => s.vertex === "wm-count").reduce((n, s) => n + s.records_in, 0) === 3,
      20_000,
      "the late record through",
    );
    expect((await metrics("watermarks-idle")).vertices.map((v) => v.watermark_ms)).toEqual([48_999, 48_999]);
    await ingest("watermarks-idle-in", 1, [70_000]);
    await waitForWatermark("watermarks-idle", 70_000 - BOUND_MS - 1, "partition 1 ahead, partition 0 idle");
  });

  it("reaches the end of time when a bounded source ends", async () => {
    await start("watermarks-bounded");
    // Monotonous timestamps: partition 1 is 1 ms ahead, so the watermark is partition 0's latest − 1 while they run.
    const during = await waitFor(
      async () => {
        const m = await metrics("watermarks-bounded");
        const w = m.vertices.find((v) => v.id === "wm-count")?.watermark_ms;
        return typeof w === "number" && w < END_OF_TIME_MS && m;
      },
      20_000,
      "a watermark while the source runs",
    );
    const w = during.vertices.find((v) => v.id === "wm-count")!.watermark_ms!;
    expect((w + 1) % 1000 === 0 || (w + 1) % 1000 === 1).toBe(true);
    await waitForWatermark("watermarks-bounded", END_OF_TIME_MS, "the end of time", 4);
    await waitFor(async () => ((await (await engine.api("/v1/jobs/watermarks-bounded")).json()) as { status: string }).status === "FINISHED", 30_000, "FINISHED");
  });
});
