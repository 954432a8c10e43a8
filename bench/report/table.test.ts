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
});
