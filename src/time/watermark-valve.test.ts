import { describe, expect, it } from "vitest";
import { NO_WATERMARK } from "./watermark-generator.js";
import { END_OF_TIME_MS } from "./watermark-strategy.js";
import { WatermarkValve } from "./watermark-valve.js";

describe("WatermarkValve", () => {
  it("outputs the minimum over the channels once each has one, never backwards", () => {
    const v = new WatermarkValve(["a", "b"]);
    expect(v.onWatermark("a", 100, false)).toBeUndefined();
    expect(v.onWatermark("b", 50, false)).toEqual({ watermarkMs: 50, idle: false });
    expect(v.onWatermark("b", 40, false)).toBeUndefined();
    expect(v.onWatermark("b", 200, false)).toEqual({ watermarkMs: 100, idle: false });
    expect(v.onWatermark("a", 150, false)).toEqual({ watermarkMs: 150, idle: false });
    expect(v.output).toEqual({ watermarkMs: 150, idle: false });
  });

  it("leaves idle channels out, is idle when all are, and a returning channel does not pull it back", () => {
    const v = new WatermarkValve(["a", "b"]);
    v.onWatermark("a", 10, false);
    expect(v.onWatermark("b", NO_WATERMARK, true)).toEqual({ watermarkMs: 10, idle: false });
    expect(v.onWatermark("a", 30, false)).toEqual({ watermarkMs: 30, idle: false });
    expect(v.onWatermark("a", 30, true)).toEqual({ watermarkMs: 30, idle: true });
    // b comes back behind the output: it is not aligned and holds nothing back, nor pulls the output back.
    expect(v.onWatermark("b", 5, false)).toEqual({ watermarkMs: 30, idle: false });
    expect(v.onWatermark("b", 20, false)).toBeUndefined();
    expect(v.onWatermark("b", 45, false)).toEqual({ watermarkMs: 45, idle: false });
    // a returns at 30 < 45: not aligned until it catches up; b alone moves the output meanwhile.
    expect(v.onWatermark("a", 30, false)).toBeUndefined();
    expect(v.onWatermark("b", 60, false)).toEqual({ watermarkMs: 60, idle: false });
    expect(v.onWatermark("a", 70, false)).toBeUndefined();
    expect(v.onWatermark("b", 80, false)).toEqual({ watermarkMs: 70, idle: false });
  });

  it("counts an ended channel as at the end of time", () => {
    const v = new WatermarkValve(["a", "b"]);
    v.onWatermark("a", 10, false);
    expect(v.onEndOfInput("b")).toEqual({ watermarkMs: 10, idle: false });
    expect(v.onEndOfInput("a")).toEqual({ watermarkMs: END_OF_TIME_MS, idle: false });
  });

  it("does not jump to the end of time when the channels still running go idle beside an ended one", () => {
    const v = new WatermarkValve(["a", "b", "c"]);
    v.onWatermark("a", 40, false);
    v.onWatermark("b", 30, false);
    expect(v.onEndOfInput("c")).toEqual({ watermarkMs: 30, idle: false });
    expect(v.onWatermark("b", 30, true)).toEqual({ watermarkMs: 40, idle: false });
    expect(v.onWatermark("a", 51, true)).toEqual({ watermarkMs: 51, idle: true });
    // Records come back on a: the watermark goes on from where it was, and reaches the end only when all have ended.
    expect(v.onWatermark("a", 60, false)).toEqual({ watermarkMs: 60, idle: false });
    expect(v.onEndOfInput("a")).toEqual({ watermarkMs: 60, idle: true });
    expect(v.onEndOfInput("b")).toEqual({ watermarkMs: END_OF_TIME_MS, idle: false });
  });

  it("reaches the end of time with inputs that sent no watermark", () => {
    const v = new WatermarkValve(["a"]);
    expect(v.output.watermarkMs).toBe(NO_WATERMARK);
    expect(v.onEndOfInput("a")).toEqual({ watermarkMs: END_OF_TIME_MS, idle: false });
  });

  it("ignores channels it does not know", () => {
    expect(new WatermarkValve(["a"]).onWatermark("z", 5, false)).toBeUndefined();
  });
});
