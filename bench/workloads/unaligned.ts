/**
 * Aligned against unaligned checkpoints under backpressure: the
 * "backpressure" job (a CPU-heavy keyed sum feeding a table and a slow
 * at-least-once webhook) gets a backlog of events, and checkpoints are taken
 * every `intervalMs` while it drains. Aligned barriers queue behind the
 * backlog; unaligned ones overtake it and persist the in-flight data.
 */
import { startEngine } from "../../test/support/engine.js";
import { startWebhookServer } from "../../test/support/webhook-server.js";

export interface UnalignedBenchOptions {
  events: number;
  /** CPU iterations per event in the keyed sum. */
  work: number;
  intervalMs: number;
  webhookDelayMs: number;
  /** For the third mode: aligned first, unaligned after this long. Default 100 ms. */
  alignmentTimeoutMs?: number;
}

interface Entry {
  status: string;
  end_to_end_duration: number;
  alignment_duration: number;
  start_delay: number;
  persisted_data: number;
  checkpoint_type: string;
}

const quantile = (xs: number[], q: number) => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
};

type Mode = "aligned" | "unaligned" | "alignment-timeout";

async function run(o: UnalignedBenchOptions, mode: Mode) {
  const unaligned = mode !== "aligned";
  const hook = await startWebhookServer({ delayMs: o.webhookDelayMs });
  const engine = await startEngine({ testJobs: true, bindings: { WEBHOOK_URL: hook.url } });
  try {
    const timeout = mode === "alignment-timeout" ? { aligned_checkpoint_timeout_ms: o.alignmentTimeoutMs ?? 100 } : {};
    const config = { checkpoint: { interval_ms: o.intervalMs, unaligned, timeout_ms: 600_000, ...timeout } };
    const start = await engine.api("/v1/jobs/backpressure/start", { method: "POST", json: { config } });
    if (start.status !== 200) throw new Error(await start.text());
    for (let first = 0; first < o.events; first += 8000) {
      const lines: string[] = [];
      for (let i = first; i < Math.min(o.events, first + 8000); i++) lines.push(`{"key":"k${i % 97}","value":1,"work":${o.work}}`);
      const res = await engine.api("/v1/ingest/bp-in", { method: "POST", body: lines.join("\n"), headers: { "content-type": "application/x-ndjson" } });
      if (res.status !== 200) throw new Error(await res.text());
    }
    const t0 = performance.now();
    // Until the backlog is processed.
    for (;;) {
      const m = (await (await engine.api("/v1/jobs/backpressure/metrics")).json()) as { vertices: { id: string; records_in: number }[] };
      if ((m.vertices.find((v) => v.id === "bp-sum")?.records_in ?? 0) >= o.events) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const drainMs = performance.now() - t0;
    const h = ((await (await engine.api("/v1/jobs/backpressure/checkpoints")).json()) as { history: Entry[] }).history.filter((x) => x.status === "COMPLETED");
    const e2e = h.map((x) => x.end_to_end_duration);
    return {
      mode,
      checkpoints_completed: h.length,
      unaligned_checkpoints: h.filter((x) => x.checkpoint_type === "UNALIGNED_CHECKPOINT").length,
      end_to_end_ms_p50: quantile(e2e, 0.5),
      end_to_end_ms_max: Math.max(0, ...e2e),
      alignment_ms_max: Math.max(0, ...h.map((x) => x.alignment_duration)),
      start_delay_ms_max: Math.max(0, ...h.map((x) => x.start_delay)),
      persisted_bytes_total: h.reduce((a, x) => a + x.persisted_data, 0),
      persisted_bytes_max: Math.max(0, ...h.map((x) => x.persisted_data)),
      drain_ms: Math.round(drainMs),
    };
  } finally {
    await engine.dispose();
    await hook.close();
  }
}

export async function benchUnaligned(o: UnalignedBenchOptions) {
  const aligned = await run(o, "aligned");
  const unaligned = await run(o, "unaligned");
  const withTimeout = await run(o, "alignment-timeout");
  return {
    bench: "unaligned_vs_aligned_under_backpressure",
    events: o.events,
    interval_ms: o.intervalMs,
    aligned,
    unaligned,
    alignment_timeout: withTimeout,
    max_duration_ratio: unaligned.end_to_end_ms_max > 0 ? Math.round((aligned.end_to_end_ms_max / unaligned.end_to_end_ms_max) * 10) / 10 : null,
  };
}
