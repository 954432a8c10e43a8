import { describe, expect, it } from "vitest";
import type { OperatorChain } from "../operator-chain.js";
import type { RecordWriter } from "../record-writer.js";
import type { SinkCommitter } from "./sink-committer.js";
import { TaskTime } from "./task-time.js";

/** A keyed task's time over channels a and b, recording the timers fired and the watermarks sent. */
function keyedTime(restoredWatermarkMs?: number) {
  const fired: number[] = [];
  const sent: (number | null)[] = [];
  const chain = { fireEventTimers: (ms: number) => (fired.push(ms), 0), nextProcessingTimerMs: () => undefined, timerCount: () => 0 } as unknown as OperatorChain;
  const writer = { broadcastWatermark: async (ms: number | null) => void sent.push(ms) } as unknown as RecordWriter;
  const sinks = { flushIfDue: async () => undefined } as unknown as SinkCommitter;
  const time = new TaskTime({ chain, writer, sinks, now: () => 0, sleep: async () => undefined, channels: ["a", "b"], isSource: false, restoredWatermarkMs });
  return { time, fired, sent };
}

describe("TaskTime", () => {
  it("starts a restored task at the checkpoint's watermark, and moves on once every channel passes it", async () => {
    const { time, fired, sent } = keyedTime(500);
    expect(time.currentWatermarkMs).toBe(500);
    expect(time.metrics().inputWatermarkMs).toBe(500);
    await time.onWatermark("a", 100, false);
    await time.onWatermark("b", 700, false);
    // The channels' minimum (100) is below the restored watermark: the task stays at 500 and says so once.
    expect(time.currentWatermarkMs).toBe(500);
    await time.onWatermark("a", 300, false);
    await time.onWatermark("a", 600, false);
    expect(time.currentWatermarkMs).toBe(600);
    expect(sent).toEqual([500, 600]);
    expect(fired).toEqual([500, 600]);
  });

  it("follows the channels from none without a restored watermark", async () => {
    const { time, sent } = keyedTime();
    expect(time.metrics().inputWatermarkMs).toBeNull();
    await time.onWatermark("a", 100, false);
    await time.onWatermark("b", 50, false);
    await time.onWatermark("b", 200, false);
    expect(sent).toEqual([50, 100]);
  });
});
