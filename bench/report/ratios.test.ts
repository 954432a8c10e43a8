import { describe, expect, it } from "vitest";
import type { BenchResult } from "../workloads/common.js";
import { comparable, ratios, ratiosByCores } from "./ratios.js";

const count = (engine: string, cores: string, eventsPerS: number, steady: number, extra: Partial<BenchResult> = {}): BenchResult => ({
  bench: "keyed_count",
  engine,
  variant: `keys=10000,checkpoint_ms=1000${cores === "1" && engine === "floe" ? ",cores=1" : ""}`,
  cores,
  run_by: "duration",
  events: 2147483646,
  keys: 10_000,
  checkpoint_interval_ms: 1000,
  events_per_s: eventsPerS,
  steady_events_per_s: steady,
  steady_mean_events_per_s: steady,
  checkpoint_ms_p50: 100,
  checkpoint_ms_max: 200,
  ...(engine === "flink" ? { state_backend: "hashmap" } : {}),
  ...extra,
});

describe("comparable", () => {
  it("compares runs of one core mode only", () => {
    expect(comparable(count("floe", "1", 1, 1), count("flink", "1", 1, 1))).toBe(true);
    expect(comparable(count("floe", "1", 1, 1), count("flink", "all", 1, 1))).toBe(false);
  });

  it("takes a line without a mode for a whole-machine run (earlier rounds)", () => {
    const { cores: _, ...old } = count("flink", "all", 1, 1);
    expect(comparable(count("floe", "all", 1, 1), old as BenchResult)).toBe(true);
  });

  it("needs the same input size unless both ran by duration", () => {
    const bounded = (engine: string, events: number) => count(engine, "all", 1, 1, { run_by: "events", events });
    expect(comparable(bounded("floe", 2_000_000), bounded("flink", 2_000_000))).toBe(true);
    expect(comparable(bounded("floe", 2_000_000), bounded("flink", 4_000_000))).toBe(false);
    expect(comparable(count("floe", "all", 1, 1, { events: 10 }), count("flink", "all", 1, 1, { events: 20 }))).toBe(true);
  });
});

describe("ratios", () => {
  const results = [count("floe", "all", 300, 330), count("flink", "all", 600, 660), count("floe", "1", 200, 220), count("flink", "1", 100, 110)];

  it("pairs floe and Flink within each core mode and says which", () => {
    const lines = ratios(results);
    expect(lines.map((l) => [l.cores, l.throughput_ratio, l.steady_throughput_ratio, l.steady_mean_throughput_ratio])).toEqual([
      ["all", 0.5, 0.5, 0.5],
      ["1", 2, 2, 2],
    ]);
  });

  it("puts both modes' ratios of a variant on one line when both ran", () => {
    expect(ratiosByCores(ratios(results))).toEqual([
      {
        bench: "ratio_by_cores",
        engine: "floe/flink",
        variant: "keys=10000,checkpoint_ms=1000",
        workload: "keyed_count",
        flink_state_backend: "hashmap",
        steady_throughput_ratio_all_cores: 0.5,
        steady_throughput_ratio_one_core: 2,
        throughput_ratio_all_cores: 0.5,
        throughput_ratio_one_core: 2,
      },
    ]);
  });

  it("gives no side-by-side line when one mode ran", () => {
    expect(ratiosByCores(ratios(results.slice(0, 2)))).toEqual([]);
  });
});

describe("ratios of the event-time workloads", () => {
  const timed = (engine: string, eventsPerS: number, checkpointMs: number, fireMs: number, extra: Partial<BenchResult> = {}): BenchResult => ({
    ...count(engine, "all", eventsPerS, eventsPerS),
    bench: "window_tumbling",
    event_rate: 10_000,
    checkpoint_ms_p50: checkpointMs,
    checkpoint_ms_max: checkpointMs * 2,
    fire_ms_p50: fireMs,
    fire_ms_p90: fireMs * 2,
    fire_ms_max: fireMs * 4,
    ...extra,
  });

  it("gives throughput, checkpoint duration and window-fire latency as floe/Flink", () => {
    const [line] = ratios([timed("floe", 100, 300, 50), timed("flink", 400, 100, 25)]);
    expect(line).toMatchObject({
      workload: "window_tumbling",
      throughput_ratio: 0.25,
      steady_throughput_ratio: 0.25,
      checkpoint_duration_p50_ratio: 3,
      checkpoint_duration_max_ratio: 3,
      fire_latency_p50_ratio: 2,
      fire_latency_p90_ratio: 2,
      fire_latency_max_ratio: 2,
    });
  });

  it("pairs only runs of one workload, key count and event rate", () => {
    expect(ratios([timed("floe", 1, 1, 1), timed("flink", 1, 1, 1, { event_rate: 20_000 })])).toEqual([]);
    expect(ratios([timed("floe", 1, 1, 1), timed("flink", 1, 1, 1, { bench: "window_sliding" })])).toEqual([]);
    expect(ratios([timed("floe", 1, 1, 1), timed("flink", 1, 1, 1, { keys: 1_000_000 })])).toEqual([]);
  });

  it("has no latency ratio when a side fired no window by the watermark", () => {
    const [line] = ratios([timed("floe", 1, 1, 1, { fire_ms_p50: null }), timed("flink", 1, 1, 1)]);
    expect(line.fire_latency_p50_ratio).toBeNull();
  });
});

describe("ratios of the interval join", () => {
  const join = (engine: string, eventsPerS: number, checkpointMs: number, extra: Partial<BenchResult> = {}): BenchResult => ({
    ...count(engine, "all", eventsPerS, eventsPerS),
    bench: "interval_join",
    event_rate: 10_000,
    lower_ms: -500,
    upper_ms: 500,
    checkpoint_ms_p50: checkpointMs,
    checkpoint_ms_max: checkpointMs * 2,
    ...extra,
  });

  it("gives throughput into the join and checkpoint duration as floe/Flink", () => {
    const [line] = ratios([join("floe", 100, 300), join("flink", 400, 100)]);
    expect(line).toMatchObject({ workload: "interval_join", throughput_ratio: 0.25, steady_throughput_ratio: 0.25, checkpoint_duration_p50_ratio: 3, checkpoint_duration_max_ratio: 3 });
    expect(line).not.toHaveProperty("fire_latency_p50_ratio");
  });

  it("pairs only runs of the same bounds, keys and event rate", () => {
    expect(ratios([join("floe", 1, 1), join("flink", 1, 1, { upper_ms: 1000 })])).toEqual([]);
    expect(ratios([join("floe", 1, 1), join("flink", 1, 1, { keys: 1_000_000 })])).toEqual([]);
    expect(ratios([join("floe", 1, 1), join("flink", 1, 1, { event_rate: 20_000 })])).toEqual([]);
  });

  it("gives no ratio for the async I/O workload, which runs on floe only", () => {
    expect(ratios([{ bench: "async_io", engine: "floe", variant: "mode=ordered,capacity=1", events_per_s: 90 }])).toEqual([]);
  });
});
