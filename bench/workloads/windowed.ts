/**
 * The event-time workloads on floe: issue 17's keyed process function with
 * one event-time timer per key and 10 s interval ("bench-timers"), and issue
 * 18's tumbling 10 s and sliding 60 s / 10 s window counts
 * ("bench-tumbling", "bench-sliding"), all in bench/jobs.ts. The input is
 * the generator's with event time (bench/generator.ts `eventTime`, at
 * `eventRate` events per second of event time) and a bounded-out-of-
 * orderness watermark of OUT_OF_ORDERNESS_MS, as the Flink peer's.
 *
 * Runs as workload 2 does (generated.ts: by duration or to the end of a
 * fixed input, the measured vertex's records in sampled every 100 ms).
 * Afterwards the table "bench-windows" holds one row per window (the
 * tally's, committed at checkpoints): the harness turns them into the
 * window figures (report/windows.ts). A run that reached the end of its
 * input is waited for until FINISHED, so that the final checkpoint has
 * committed every window.
 */
import { BENCH_PARALLELISM, BENCH_SLIDING_SIZE_MS, BENCH_WINDOW_MS, OUT_OF_ORDERNESS_MS, WINDOWS_TABLE } from "../generator.js";
import type { WindowRow } from "../report/windows.js";
import type { Engine } from "../../test/support/engine.js";
import { type BenchResult, jobState, until } from "./common.js";
import { type GeneratedRunOptions, checkpointFigures, common, coresSuffix, runGenerated } from "./generated.js";

/** The three event-time workloads: job, measured vertex, result name and windows. */
export const TIMED_WORKLOADS = {
  "keyed-timers": { job: "bench-timers", vertex: "count", bench: "keyed_timers", windowMs: BENCH_WINDOW_MS, slideMs: BENCH_WINDOW_MS },
  "window-tumbling": { job: "bench-tumbling", vertex: "window", bench: "window_tumbling", windowMs: BENCH_WINDOW_MS, slideMs: BENCH_WINDOW_MS },
  "window-sliding": { job: "bench-sliding", vertex: "window", bench: "window_sliding", windowMs: BENCH_SLIDING_SIZE_MS, slideMs: BENCH_WINDOW_MS },
} as const;

export type TimedWorkload = keyof typeof TIMED_WORKLOADS;

/** Options of one timed run: those of workload 2, and the event rate. */
export interface TimedRunOptions extends GeneratedRunOptions {
  /** Events per second of event time. */
  eventRate: number;
}

/** Every row of a table-sink table, page by page. */
async function tableRows<V>(engine: Engine, table: string): Promise<V[]> {
  const rows: V[] = [];
  let cursor: string | null = null;
  do {
    const res = await engine.api(`/v1/tables/${table}?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    // No window committed yet: the table does not exist.
    if (res.status === 404) {
      await res.arrayBuffer();
      return rows;
    }
    if (res.status !== 200) throw new Error(`listing ${table} answered ${res.status}: ${await res.text()}`);
    const page = (await res.json()) as { rows: { value: V }[]; next_cursor: string | null };
    rows.push(...page.rows.map((r) => r.value));
    cursor = page.next_cursor;
  } while (cursor);
  return rows;
}

/** One timed workload on floe. */
export async function benchTimed(workload: TimedWorkload, o: TimedRunOptions): Promise<BenchResult> {
  const w = TIMED_WORKLOADS[workload];
  const r = await runGenerated(w.job, w.vertex, o, {
    bindings: { BENCH_EVENT_RATE: String(o.eventRate) },
    collect: async (engine, complete) => {
      if (complete) await until(`${w.job} finished`, async () => (await jobState(engine, w.job)).status === "FINISHED", 300_000, 100);
      return tableRows<WindowRow>(engine, WINDOWS_TABLE);
    },
  });
  return {
    bench: w.bench,
    engine: "floe",
    variant: `keys=${o.keys},checkpoint_ms=${o.checkpointIntervalMs}${o.localRecovery === false ? ",local_recovery=false" : ""}${coresSuffix(o)}`,
    ...common(o, r),
    parallelism: o.cores === "1" ? 1 : BENCH_PARALLELISM,
    event_rate: o.eventRate,
    window_ms: w.windowMs,
    slide_ms: w.slideMs,
    out_of_orderness_ms: OUT_OF_ORDERNESS_MS,
    first_record_epoch_ms: r.firstRecordEpochMs,
    ...checkpointFigures(o, r),
    series_events_per_s: r.series,
    window_rows: [...(r.collected ?? [])].sort((a, b) => a.end - b.end),
  };
}
