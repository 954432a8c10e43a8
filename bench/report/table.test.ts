import { describe, expect, it } from "vitest";
import { table } from "./table.js";

describe("table", () => {
  it("shows an event-time run's throughput, checkpoints, windows and fire latency on its row, and its ratios", () => {
    const out = table([
      {
        bench: "window_sliding",
        engine: "floe",
        variant: "keys=10000,checkpoint_ms=1000",
        events_per_s: 14_324,
        steady_events_per_s: null,
        steady_note: "the run lasted 5 whole seconds, fewer than 10",
        long_enough: false,
        events_processed: 200_000,
        duration_ms: 13_960,
        checkpoints_completed: 12,
        checkpoint_ms_p50: 180,
        checkpoint_ms_max: 900,
        windows_fired: 8,
        window_results: 73_930,
        window_total_count: 1_200_000,
        fire_ms_p50: 22,
        fire_ms_p90: 40,
        fire_ms_max: 41,
        fire_ms_windows: 2,
        fire_ms_over: "all windows",
      },
      { bench: "ratio", engine: "floe/flink", variant: "keys=10000,checkpoint_ms=1000", workload: "window_sliding", flink_state_backend: "hashmap", throughput_ratio: 0.1, fire_latency_p50_ratio: 2.5 },
    ]);
    const [, , floe, ratio] = out.split("\n");
    expect(floe).toContain(
      "14,324 events/s, steady – (the run lasted 5 whole seconds, fewer than 10) [not long enough], 200,000 events in 14 s; 12 checkpoints, p50 180 ms, max 900 ms; 8 windows, 73,930 results (total 1,200,000); fire p50 22 ms, p90 40 ms, max 41 ms over 2 (all windows)",
    );
    expect(ratio).toMatch(/^ratio window_sliding .*floe\/flink hashmap +throughput 0.1, fire_latency_p50 2.5$/);
  });

  it("shows the interval join's pairs and the async workload's limit, marked floe only", () => {
    const out = table([
      {
        bench: "interval_join",
        engine: "floe",
        variant: "keys=10000,checkpoint_ms=1000",
        events_per_s: 50_000,
        steady_events_per_s: 52_000,
        steady_from_s: 2,
        steady_to_s: 19,
        events_processed: 1_000_000,
        duration_ms: 20_000,
        matches: 497_000,
        matches_per_record: 0.497,
        checkpoints_completed: 19,
        checkpoint_ms_p50: 80,
        checkpoint_ms_max: 200,
      },
      {
        bench: "async_io",
        engine: "floe",
        variant: "mode=unordered,capacity=10",
        events_per_s: 1_050,
        steady_events_per_s: 1_080,
        steady_from_s: 1,
        steady_to_s: 19,
        server_mean_open: 11.5,
        in_flight_cap: 12,
        server_answer_ms: 10.9,
        limited_by: "connections",
      },
    ]);
    const [, , join, io] = out.split("\n");
    expect(join).toContain("50,000 records/s into the join, steady 52,000 (s 2–19), 1,000,000 records in 20 s; 497,000 pairs (0.497 per record); 19 checkpoints, p50 80 ms, max 200 ms");
    expect(io).toContain("1,050 results/s, steady 1,080 (s 1–19); 11.5 of 12 requests open on average, answered in 10.9 ms; limited by connections; floe only");
  });
});
