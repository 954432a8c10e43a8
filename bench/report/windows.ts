/**
 * Figures of the windowed and timer workloads, computed here the same way
 * for floe and Flink from the one row per window each engine reports.
 *
 * Both jobs end in a tally keyed by window end (bench/jobs.ts
 * `tallyWindows`, FlinkBench's `Tally`): each result of a window carries
 * the wall time its window subtask fired it (`fired_ms`), and the tally
 * writes a row when the watermark passes the window's last ms at the
 * tally, that is once every window subtask fired the window and all its
 * results arrived. So:
 *
 *   window-fire latency = received_ms − first_fired_ms
 *
 * from the first window subtask whose watermark passed the window's end
 * (timers fire as the watermark advances, before it is forwarded) to the
 * moment every result of the window has been emitted and received
 * downstream. Not to a commit: Flink's peer has no transactional sink, and
 * floe's table commit would add up to a checkpoint interval.
 *
 * Windows fired by the end of input (`final`: the end of time fires every
 * open window at once) are counted but left out of the latency. When the
 * run has a steady window (report/steady.ts), the latency is taken over the
 * windows fired in it; otherwise over all.
 */
import type { BenchResult } from "../workloads/common.js";

/** One window's row, as both engines report it. */
export interface WindowRow {
  /** The window's end (exclusive), event-time ms. */
  end: number;
  results: number;
  total: number;
  first_fired_ms: number;
  received_ms: number;
  final: boolean;
}

/** The window fields of a result line. */
export interface WindowFigures {
  windows_fired: number;
  window_results: number;
  window_total_count: number;
  final_windows: number;
  /** "steady window" or "all windows": which windows the latency is over. */
  fire_ms_over: string;
  fire_ms_windows: number;
  fire_ms_p50: number | null;
  fire_ms_p90: number | null;
  fire_ms_max: number | null;
}

/** The q-quantile (nearest rank) of `xs`; null when empty. */
function quantile(xs: readonly number[], q: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

/**
 * The figures of a run's window rows. `steady`: the run's steady window in
 * whole seconds since `firstRecordEpochMs` (its last second included).
 */
export function windowFigures(rows: readonly WindowRow[], firstRecordEpochMs: number, steady?: { fromS: number; toS: number }): WindowFigures {
  const timed = rows.filter((r) => !r.final);
  const inSteady = steady
    ? timed.filter((r) => {
        const t = (r.first_fired_ms - firstRecordEpochMs) / 1000;
        return t >= steady.fromS && t < steady.toS + 1;
      })
    : [];
  const over = inSteady.length > 0 ? inSteady : timed;
  const latencies = over.map((r) => r.received_ms - r.first_fired_ms);
  return {
    windows_fired: rows.length,
    window_results: rows.reduce((a, r) => a + r.results, 0),
    window_total_count: rows.reduce((a, r) => a + r.total, 0),
    final_windows: rows.length - timed.length,
    fire_ms_over: inSteady.length > 0 ? "steady window" : "all windows",
    fire_ms_windows: over.length,
    fire_ms_p50: quantile(latencies, 0.5),
    fire_ms_p90: quantile(latencies, 0.9),
    fire_ms_max: latencies.length === 0 ? null : Math.max(...latencies),
  };
}

/** The result lines (`bench` values) of the workloads with window rows. */
export const WINDOWED_BENCHES = new Set(["keyed_timers", "window_tumbling", "window_sliding"]);

/**
 * In runs of a fixed number of events that ran to the end (`complete`):
 * each line's windows, results and total against the reference, and floe's
 * against Flink's of the same variant. Returns one message per mismatch.
 */
export function checkWindowTotals(
  results: readonly BenchResult[],
  expected: (r: BenchResult) => { windows: number; results: number; total: number } | null,
): string[] {
  const lines = results.filter((r) => WINDOWED_BENCHES.has(r.bench) && r.run_by === "events" && r.complete !== false);
  const problems: string[] = [];
  const totals = (r: BenchResult) => ({ windows: r.windows_fired, results: r.window_results, total: r.window_total_count });
  for (const r of lines) {
    const want = expected(r);
    if (want && JSON.stringify(totals(r)) !== JSON.stringify(want)) {
      problems.push(`${r.engine} ${r.bench} ${r.variant}: ${JSON.stringify(totals(r))}, expected ${JSON.stringify(want)}`);
    }
  }
  for (const f of lines.filter((r) => r.engine === "floe")) {
    for (const k of lines.filter((r) => r.engine === "flink" && r.bench === f.bench && r.keys === f.keys && r.events === f.events && r.event_rate === f.event_rate)) {
      if (JSON.stringify(totals(f)) !== JSON.stringify(totals(k))) problems.push(`${f.bench} ${f.variant}: floe ${JSON.stringify(totals(f))} ≠ Flink ${JSON.stringify(totals(k))}`);
    }
  }
  return problems;
}
