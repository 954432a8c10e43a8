/**
 * floe/Flink ratios per workload, from matching result lines. A throughput
 * ratio above 1 means floe is faster; a duration ratio above 1 means floe
 * takes longer. Lines compare only within one core mode (`cores`: "all" or
 * "1"); when both modes ran, {@link ratiosByCores} puts each variant's two
 * ratios side by side. The event-time workloads add window-fire latency
 * (report/windows.ts): a latency ratio above 1 means floe takes longer.
 * The interval join compares records into the join per second and
 * checkpoint durations. The async I/O workload runs on floe only: no ratio.
 */
import type { BenchResult } from "../workloads/common.js";

const ratio = (a: unknown, b: unknown) => (typeof a === "number" && typeof b === "number" && b > 0 ? Math.round((a / b) * 1000) / 1000 : null);

/** The ratios every event-time throughput workload reports (windows, timers, the interval join). */
const eventTimeRatios = (f: BenchResult, k: BenchResult) => ({
  throughput_ratio: ratio(f.events_per_s, k.events_per_s),
  steady_throughput_ratio: ratio(f.steady_events_per_s, k.steady_events_per_s),
  steady_mean_throughput_ratio: ratio(f.steady_mean_events_per_s, k.steady_mean_events_per_s),
  checkpoint_duration_p50_ratio: ratio(f.checkpoint_ms_p50, k.checkpoint_ms_p50),
  checkpoint_duration_max_ratio: ratio(f.checkpoint_ms_max, k.checkpoint_ms_max),
});

/** The core mode of a result line; lines from before the modes existed ran on the whole machine. */
const coresOf = (r: BenchResult) => String(r.cores ?? "all");

/**
 * Whether a floe and a Flink throughput run compare: the same core mode, and
 * the same input size unless both ran by duration (then sizes differ by
 * design and the rates compare).
 */
export function comparable(f: BenchResult, k: BenchResult): boolean {
  if (coresOf(f) !== coresOf(k)) return false;
  return (f.run_by === "duration" && k.run_by === "duration") || f.events === k.events;
}

/** One ratio line per floe result and each Flink result it compares with. */
export function ratios(results: readonly BenchResult[]): BenchResult[] {
  const out: BenchResult[] = [];
  const floe = results.filter((r) => r.engine === "floe");
  const flink = results.filter((r) => r.engine === "flink");
  const line = (f: BenchResult, k: BenchResult, figures: Record<string, number | null>): BenchResult => ({
    bench: "ratio",
    engine: "floe/flink",
    variant: f.variant,
    workload: f.bench,
    cores: coresOf(f),
    flink_state_backend: (k.state_backend as string | undefined) ?? null,
    ...figures,
  });
  for (const f of floe) {
    switch (f.bench) {
      case "map_filter":
        for (const k of flink.filter((x) => x.bench === "map_filter" && comparable(f, x))) {
          out.push(
            line(f, k, {
              throughput_ratio: ratio(f.events_per_s, k.events_per_s),
              steady_throughput_ratio: ratio(f.steady_events_per_s, k.steady_events_per_s),
              steady_mean_throughput_ratio: ratio(f.steady_mean_events_per_s, k.steady_mean_events_per_s),
            }),
          );
        }
        break;
      case "keyed_count":
        for (const k of flink.filter((x) => x.bench === "keyed_count" && x.keys === f.keys && x.checkpoint_interval_ms === f.checkpoint_interval_ms && comparable(f, x))) {
          const figures: Record<string, number | null> = {
            throughput_ratio: ratio(f.events_per_s, k.events_per_s),
            steady_throughput_ratio: ratio(f.steady_events_per_s, k.steady_events_per_s),
            steady_mean_throughput_ratio: ratio(f.steady_mean_events_per_s, k.steady_mean_events_per_s),
          };
          if (Number(f.checkpoint_interval_ms) > 0) {
            figures.checkpoint_duration_p50_ratio = ratio(f.checkpoint_ms_p50, k.checkpoint_ms_p50);
            figures.checkpoint_duration_max_ratio = ratio(f.checkpoint_ms_max, k.checkpoint_ms_max);
          }
          out.push(line(f, k, figures));
        }
        break;
      case "keyed_timers":
      case "window_tumbling":
      case "window_sliding":
        for (const k of flink.filter(
          (x) => x.bench === f.bench && x.keys === f.keys && x.checkpoint_interval_ms === f.checkpoint_interval_ms && x.event_rate === f.event_rate && comparable(f, x),
        )) {
          out.push(
            line(f, k, {
              ...eventTimeRatios(f, k),
              fire_latency_p50_ratio: ratio(f.fire_ms_p50, k.fire_ms_p50),
              fire_latency_p90_ratio: ratio(f.fire_ms_p90, k.fire_ms_p90),
              fire_latency_max_ratio: ratio(f.fire_ms_max, k.fire_ms_max),
            }),
          );
        }
        break;
      case "interval_join":
        for (const k of flink.filter(
          (x) =>
            x.bench === "interval_join" &&
            x.keys === f.keys &&
            x.checkpoint_interval_ms === f.checkpoint_interval_ms &&
            x.event_rate === f.event_rate &&
            x.lower_ms === f.lower_ms &&
            x.upper_ms === f.upper_ms &&
            comparable(f, x),
        )) {
          out.push(
            line(f, k, eventTimeRatios(f, k)),
          );
        }
        break;
      case "checkpoint_size":
        // Full against every full Flink run; incremental against RocksDB incremental (the heap backend has none).
        for (const k of flink.filter((x) => x.bench === "checkpoint_size" && x.keys === f.keys && x.incremental === f.incremental)) {
          out.push(
            line(f, k, {
              full_checkpoint_duration_ratio: ratio(f.full_checkpoint_ms, k.full_checkpoint_ms),
              second_checkpoint_duration_ratio: ratio(f.second_checkpoint_ms, k.second_checkpoint_ms),
              second_checkpoint_bytes_ratio: ratio(f.second_checkpoint_bytes, k.second_checkpoint_bytes),
              recovery_ratio: ratio(f.recovery_to_first_record_ms, k.recovery_to_first_record_ms),
              // floe's lazy restore from R2 (a start from the checkpoint at parallelism 1) against Flink's recovery.
              ...(f.r2_restore_to_first_record_ms === undefined ? {} : { r2_recovery_ratio: ratio(f.r2_restore_to_first_record_ms, k.recovery_to_first_record_ms) }),
            }),
          );
        }
        break;
      case "recovery":
        for (const k of flink.filter((x) => x.bench === "recovery" && x.keys === f.keys && x.checkpoint_interval_ms === f.checkpoint_interval_ms)) {
          out.push(
            line(f, k, {
              recovery_ratio: ratio(f.recovery_to_first_record_ms, k.recovery_to_first_record_ms),
              time_lost_ratio: ratio(f.time_lost_ms, k.time_lost_ms),
            }),
          );
        }
        break;
    }
  }
  return out;
}

/**
 * When a variant ran in both core modes: one line with its floe/Flink
 * throughput ratios on the whole machine and on one core, side by side
 * (per Flink state backend). Variants are told apart without their
 * ",cores=1" suffix.
 */
export function ratiosByCores(ratioLines: readonly BenchResult[]): BenchResult[] {
  const base = (r: BenchResult) => r.variant.replace(/,cores=1$/, "");
  const key = (r: BenchResult) => `${String(r.workload)}|${base(r)}|${String(r.flink_state_backend)}`;
  const throughput = ratioLines.filter((r) => r.bench === "ratio" && "throughput_ratio" in r);
  const out: BenchResult[] = [];
  const done = new Set<string>();
  for (const all of throughput.filter((r) => coresOf(r) === "all")) {
    const one = throughput.find((r) => coresOf(r) === "1" && key(r) === key(all));
    if (!one || done.has(key(all))) continue;
    done.add(key(all));
    out.push({
      bench: "ratio_by_cores",
      engine: "floe/flink",
      variant: base(all),
      workload: all.workload,
      flink_state_backend: all.flink_state_backend,
      steady_throughput_ratio_all_cores: all.steady_throughput_ratio,
      steady_throughput_ratio_one_core: one.steady_throughput_ratio,
      throughput_ratio_all_cores: all.throughput_ratio,
      throughput_ratio_one_core: one.throughput_ratio,
    });
  }
  return out;
}
