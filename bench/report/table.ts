/** The short table printed on stderr at the end of a run. */
import type { BenchResult } from "../workloads/common.js";

const n = (x: unknown) => (typeof x === "number" ? x.toLocaleString("en-US") : String(x ?? "–"));
const mb = (x: unknown) => (typeof x === "number" ? `${(x / 1e6).toFixed(1)} MB` : "–");

/** The steady figure with its window, or why there is none, and a mark when the run was not long enough. */
function steady(r: BenchResult): string {
  const figure = r.steady_events_per_s === null ? `steady – (${String(r.steady_note)})` : `steady ${n(r.steady_events_per_s)} (s ${n(r.steady_from_s)}–${n(r.steady_to_s)})`;
  return figure + (r.long_enough === false ? " [not long enough]" : "");
}

/** The figure a reader looks for first, per result. */
function figures(r: BenchResult): string {
  switch (r.bench) {
    case "map_filter":
      return `${n(r.events_per_s)} events/s, ${steady(r)}` + (r.complete === false ? `, ${n(r.events_processed)} events` : ` (passed ${n(r.passed)})`);
    case "keyed_count":
      return (
        `${n(r.events_per_s)} events/s, ${steady(r)}, ${n(r.events_processed)} events in ${n(Math.round(Number(r.duration_ms) / 1000))} s` +
        (Number(r.checkpoint_interval_ms) > 0 ? `; ${n(r.checkpoints_completed)} checkpoints, p50 ${n(r.checkpoint_ms_p50)} ms, max ${n(r.checkpoint_ms_max)} ms` : "")
      );
    case "keyed_timers":
    case "window_tumbling":
    case "window_sliding":
      return (
        `${n(r.events_per_s)} events/s, ${steady(r)}, ${n(r.events_processed)} events in ${n(Math.round(Number(r.duration_ms) / 1000))} s; ` +
        `${n(r.checkpoints_completed)} checkpoints, p50 ${n(r.checkpoint_ms_p50)} ms, max ${n(r.checkpoint_ms_max)} ms; ` +
        `${n(r.windows_fired)} windows, ${n(r.window_results)} results (total ${n(r.window_total_count)}); ` +
        `fire p50 ${n(r.fire_ms_p50)} ms, p90 ${n(r.fire_ms_p90)} ms, max ${n(r.fire_ms_max)} ms over ${n(r.fire_ms_windows)} (${String(r.fire_ms_over)})`
      );
    case "interval_join":
      return (
        `${n(r.events_per_s)} records/s into the join, ${steady(r)}, ${n(r.events_processed)} records in ${n(Math.round(Number(r.duration_ms) / 1000))} s; ` +
        `${n(r.matches)} pairs (${n(r.matches_per_record)} per record); ` +
        `${n(r.checkpoints_completed)} checkpoints, p50 ${n(r.checkpoint_ms_p50)} ms, max ${n(r.checkpoint_ms_max)} ms`
      );
    case "async_io":
      return (
        `${n(r.events_per_s)} results/s, ${steady(r)}; ${n(r.server_mean_open)} of ${n(r.in_flight_cap)} requests open on average, ` +
        `answered in ${n(r.server_answer_ms)} ms; limited by ${String(r.limited_by ?? "–")}; floe only`
      );
    case "checkpoint_size":
      return `1st ${n(r.full_checkpoint_ms)} ms ${mb(r.full_checkpoint_bytes)}; 2nd ${n(r.second_checkpoint_ms)} ms ${mb(r.second_checkpoint_bytes)}; recovery ${n(r.recovery_to_first_record_ms)} ms${r.r2_restore_to_first_record_ms === undefined ? "" : `; from R2 at p=1 ${n(r.r2_restore_to_first_record_ms)} ms (whole ${n(r.r2_restore_whole_ms)} ms)`}${r.r2_rescale_out_to_first_record_ms === undefined ? "" : `; at p=4 ${n(r.r2_rescale_out_to_first_record_ms)} ms (whole ${n(r.r2_rescale_out_whole_ms)} ms)`}`;
    case "recovery":
      return `first record after ${n(r.recovery_to_first_record_ms)} ms; time lost ${n(r.time_lost_ms)} ms`;
    case "latency_max":
      return `${n(r.events_per_s)} events/s committed, steady (${n(r.ingested_per_s)}/s ingested), saturated; p99 ${n(r.latency_ms_p99)} ms`;
    case "latency":
      return `p50 ${n(r.latency_ms_p50)} ms, p99 ${n(r.latency_ms_p99)} ms (${n(r.rate_per_s)} events/s)`;
    case "ingest_keyed_count":
      return `${n(r.processed_events_per_s)} events/s`;
    case "unaligned_sim":
      // Virtual ms, p50 before the overload → in its last third, per mode.
      return Object.entries(r)
        .filter(([, v]) => typeof v === "object" && v !== null && "late_ms_p50" in v)
        .map(([mode, v]) => {
          const m = v as Record<string, number>;
          return `${mode} ${n(m.early_ms_p50)}→${n(m.late_ms_p50)} ms (${n(m.unaligned)}/${n(m.completed)} unaligned)`;
        })
        .join("; ");
    case "error":
      return String(r.error ?? "").split("\n")[0].slice(0, 120);
    case "ratio_by_cores":
      return `steady: whole machine ${n(r.steady_throughput_ratio_all_cores)}, one core ${n(r.steady_throughput_ratio_one_core)}; overall: ${n(r.throughput_ratio_all_cores)}, ${n(r.throughput_ratio_one_core)}`;
    case "ratio":
      return Object.entries(r)
        .filter(([k]) => k.endsWith("_ratio"))
        .map(([k, v]) => `${k.replace(/_ratio$/, "")} ${v ?? "–"}`)
        .join(", ");
    default:
      return "";
  }
}

/** Rows of workload, variant, engine and figures, aligned. */
export function table(results: readonly BenchResult[]): string {
  const rows = results.map((r) => [
    r.bench === "ratio" || r.bench === "ratio_by_cores" ? `${r.bench.replace(/_/g, " ")} ${String(r.workload)}` : r.bench,
    // Flink's lines name no core mode in their variant; floe's do.
    r.cores === "1" && !r.variant.includes("cores=1") ? `${r.variant},cores=1` : r.variant,
    r.engine === "flink" || r.bench.startsWith("ratio") ? `${r.engine} ${String(r.state_backend ?? r.flink_state_backend ?? "")}`.trim() : r.engine,
    figures(r),
  ]);
  const head = ["workload", "variant", "engine", "figures"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const fmt = (row: string[]) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]))).join("  ");
  return [fmt(head), fmt(widths.map((w) => "-".repeat(w))), ...rows.map(fmt)].join("\n");
}
