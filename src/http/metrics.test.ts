import { describe, expect, it } from "vitest";
import type { TaskMetrics } from "../runtime/messages.js";
import { END_OF_TIME_MS } from "../time/watermark-strategy.js";
import { metricsBody, vertexWatermark, watermarkLag } from "./metrics.js";

const task = (
  vertex: string,
  index: number,
  w: Partial<
    Pick<TaskMetrics, "inputWatermarkMs" | "outputWatermarkMs" | "watermarkIdle" | "inputChannels" | "timersPending" | "openWindows" | "stateBytesInMemory" | "stateEntriesEvicted" | "stateReadbacks">
  >,
): TaskMetrics => ({
  vertex,
  index,
  attempt: 1,
  status: "running",
  recordsIn: 0,
  recordsOut: 0,
  queuedBatches: 0,
  backpressuredMs: 0,
  positions: null,
  sourceLag: null,
  inputChannels: 1,
  stateKeys: 0,
  pendingSinkBytes: 0,
  sinks: {},
  lastCheckpointId: 0,
  inputWatermarkMs: null,
  outputWatermarkMs: null,
  watermarkIdle: false,
  timersPending: 0,
  openWindows: null,
  ...w,
});

describe("watermarks in metrics", () => {
  it("shows a vertex's watermark as the minimum over its subtasks", () => {
    expect(vertexWatermark([task("v", 0, { inputWatermarkMs: 50 }), task("v", 1, { inputWatermarkMs: 30 })])).toBe(30);
    expect(vertexWatermark([task("v", 0, { inputWatermarkMs: 50 }), task("v", 1, {})])).toBeNull();
  });

  it("reads a source's output watermark, and leaves idle subtasks out unless all are", () => {
    const src = (i: number, outputWatermarkMs: number | null, watermarkIdle = false) => task("src", i, { inputChannels: 0, outputWatermarkMs, watermarkIdle });
    expect(vertexWatermark([src(0, 80), src(1, null, true)])).toBe(80);
    expect(vertexWatermark([src(0, 80, true), src(1, 60, true)])).toBe(60);
    // All idle: one that never had a watermark (no record in its partitions) holds nothing back either.
    expect(vertexWatermark([src(0, 80, true), src(1, null, true)])).toBe(80);
    expect(vertexWatermark([src(0, null, true), src(1, null, true)])).toBeNull();
    expect(vertexWatermark([src(0, 80), src(1, null)])).toBeNull();
  });

  it("answers per vertex and per subtask", () => {
    const body = metricsBody("j", [task("v", 0, { inputWatermarkMs: 7, outputWatermarkMs: 7 })], null, 0);
    expect(body.vertices[0].watermark_ms).toBe(7);
    expect(body.subtasks[0]).toMatchObject({ watermark_ms: 7, input_watermark_ms: 7, output_watermark_ms: 7, watermark_idle: false });
  });

  it("gives a subtask's event time as its vertex reads it: a source's own watermark, any other's input watermark", () => {
    const body = metricsBody("j", [task("src", 0, { inputChannels: 0, outputWatermarkMs: 40 }), task("w", 0, { inputWatermarkMs: 30, outputWatermarkMs: 30 })], null, 0);
    expect(body.subtasks.map((s) => [s.vertex, s.watermark_ms, s.input_watermark_ms])).toEqual([
      ["src", 40, null],
      ["w", 30, 30],
    ]);
  });

  it("says how far a vertex's watermark trails the clock, and nothing without one or at the end of time", () => {
    const body = metricsBody("j", [task("v", 0, { inputWatermarkMs: 1_000 }), task("v", 1, { inputWatermarkMs: 4_000 }), task("none", 0, {})], null, 6_500);
    expect(body.vertices.map((v) => [v.id, v.watermark_ms, v.watermark_lag_ms])).toEqual([
      ["v", 1_000, 5_500],
      ["none", null, null],
    ]);
    expect(watermarkLag(END_OF_TIME_MS, 6_500)).toBeNull();
  });

  it("shows the timers pending per subtask and their sum per vertex", () => {
    const body = metricsBody("j", [task("v", 0, { timersPending: 3 }), task("v", 1, { timersPending: 4 })], null, 0);
    expect(body.subtasks.map((s) => s.timers_pending)).toEqual([3, 4]);
    expect(body.vertices[0].timers_pending).toBe(7);
  });

  it("shows open windows per subtask and their sum per vertex, and null where no operator has windows", () => {
    const body = metricsBody("j", [task("w", 0, { openWindows: 2 }), task("w", 1, { openWindows: 0 }), task("w", 2, { openWindows: 5 }), task("map", 0, {})], null, 0);
    expect(body.subtasks.map((s) => s.open_windows)).toEqual([2, 0, 5, null]);
    expect(body.vertices.map((v) => [v.id, v.open_windows])).toEqual([
      ["w", 7],
      ["map", null],
    ]);
  });
});

describe("keyed state under a memory budget in metrics", () => {
  it("answers bytes in memory, evictions and read-backs per subtask, summed per vertex, in snake_case", () => {
    const body = metricsBody(
      "j",
      [task("k", 0, { stateBytesInMemory: 1000, stateEntriesEvicted: 5, stateReadbacks: 2 }), task("k", 1, { stateBytesInMemory: 500, stateEntriesEvicted: 1, stateReadbacks: 0 })],
      null,
      0,
    );
    expect(body.subtasks[0]).toMatchObject({ state_bytes_in_memory: 1000, state_entries_evicted: 5, state_readbacks: 2 });
    expect(body.vertices[0]).toMatchObject({ state_bytes_in_memory: 1500, state_entries_evicted: 6, state_readbacks: 2 });
  });

  it("answers 0 for a subtask that reports none (an older deployment's counters)", () => {
    expect(metricsBody("j", [task("k", 0, {})], null, 0).subtasks[0]).toMatchObject({ state_bytes_in_memory: 0, state_entries_evicted: 0, state_readbacks: 0 });
  });
});
