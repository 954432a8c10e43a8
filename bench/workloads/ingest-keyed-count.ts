/**
 * The example pipeline end to end: HTTP ingestion → keyed count → table.
 * Events are sent as NDJSON requests of `batch` events with `concurrency`
 * requests in flight; the clock stops when every count is visible in the
 * table, and the table is checked against the exact expected counts.
 */
import { type Engine, readTable, startEngine } from "../../test/support/engine.js";

export interface IngestBenchOptions {
  events: number;
  keys: number;
  batch: number;
  concurrency: number;
  /** Checkpoint interval of the run; the job's own (1 s) when absent, 0 turns checkpoints off. */
  checkpointIntervalMs?: number;
}

export async function benchIngestKeyedCount(o: IngestBenchOptions) {
  const engine = await startEngine();
  try {
    const config = o.checkpointIntervalMs === undefined ? {} : { checkpoint: { interval_ms: o.checkpointIntervalMs } };
    const start = await engine.api("/v1/jobs/clicks/start", { method: "POST", json: { config } });
    if (start.status !== 200) throw new Error(`start failed: ${await start.text()}`);

    // Key of event i is a fixed function of i, so the expected counts are known.
    const keyOf = (i: number) => `user-${(i * 7919) % o.keys}`;
    const bodies: string[] = [];
    for (let first = 0; first < o.events; first += o.batch) {
      const lines: string[] = [];
      for (let i = first; i < Math.min(o.events, first + o.batch); i++) lines.push(`{"user":"${keyOf(i)}","url":"/p/${i % 100}"}`);
      bodies.push(lines.join("\n"));
    }

    const t0 = performance.now();
    let next = 0;
    const send = async () => {
      while (next < bodies.length) {
        const body = bodies[next++];
        const res = await engine.api("/v1/ingest/clicks", { method: "POST", body, headers: { "content-type": "application/x-ndjson" } });
        if (res.status !== 200) throw new Error(`ingest failed: ${res.status} ${await res.text()}`);
        await res.arrayBuffer();
      }
    };
    await Promise.all(Array.from({ length: o.concurrency }, send));
    const ingestedMs = performance.now() - t0;

    await waitForCount(engine, o.events, 600_000);
    const processedMs = performance.now() - t0;
    await verifyTable(engine, o, keyOf);
    const totalMs = performance.now() - t0;
    return {
      bench: "ingest_keyed_count",
      checkpoint_interval_ms: o.checkpointIntervalMs ?? 1000,
      events: o.events,
      keys: o.keys,
      batch: o.batch,
      concurrency: o.concurrency,
      ingest_events_per_s: Math.round(o.events / (ingestedMs / 1000)),
      processed_events_per_s: Math.round(o.events / (processedMs / 1000)),
      end_to_end_events_per_s: Math.round(o.events / (totalMs / 1000)),
      ingest_ms: Math.round(ingestedMs),
      processed_ms: Math.round(processedMs),
      total_ms: Math.round(totalMs),
    };
  } finally {
    await engine.dispose();
  }
}

async function waitForCount(engine: Engine, events: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await engine.api("/v1/jobs/clicks/metrics");
    const m = (await res.json()) as { subtasks: { vertex: string; records_in: number; pending_sink_bytes: number }[] };
    const keyed = m.subtasks.filter((s) => s.vertex === "count-per-user");
    const n = keyed.reduce((a, s) => a + s.records_in, 0);
    if (n >= events && keyed.every((s) => s.pending_sink_bytes === 0)) return;
    if (Date.now() > deadline) throw new Error(`only ${n} of ${events} events processed`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Reads the whole table and compares with the exact expected counts; retries until they match. */
async function verifyTable(engine: Engine, o: IngestBenchOptions, keyOf: (i: number) => string): Promise<void> {
  const expected = new Map<string, number>();
  for (let i = 0; i < o.events; i++) expected.set(keyOf(i), (expected.get(keyOf(i)) ?? 0) + 1);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const rows = await readTable<number>(engine, "clicks-per-user");
    const wrong = [...expected].filter(([k, v]) => rows.get(k) !== v).length;
    if (wrong === 0 && rows.size === expected.size) return;
    if (Date.now() > deadline) throw new Error(`table differs from the expected counts for ${wrong} keys`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
