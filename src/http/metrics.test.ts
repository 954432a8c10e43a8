import { describe, expect, it } from "vitest";
import type { TaskMetrics } from "../runtime/messages.js";
import { metricsBody, vertexWatermark } from "./metrics.js";

const task = (vertex: string, index: number, w: Partial<Pick<TaskMetrics, "inputWatermarkMs" | "outputWatermarkMs" | "watermarkIdle" | "inputChannels" | "timersPending">>): TaskMetrics => ({
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
  });

  it("answers per vertex and per subtask", () => {
    const body = metricsBody("j", [task("v", 0, { inputWatermarkMs: 7, outputWatermarkMs: 7 })], null, 0);
    expect(body.vertices[0].watermark_ms).toBe(7);
    expect(body.subtasks[0]).toMatchObject({ input_watermark_ms: 7, output_watermark_ms: 7, watermark_idle: false });
  });

  it("shows the timers pending per subtask and their sum per vertex", () => {
    const body = metricsBody("j", [task("v", 0, { timersPending: 3 }), task("v", 1, { timersPending: 4 })], null, 0);
    expect(body.subtasks.map((s) => s.timers_pending)).toEqual([3, 4]);
    expect(body.vertices[0].timers_pending).toBe(7);
  });
});
