import { describe, expect, it } from "vitest";
import type { OperatorChain } from "../operator-chain.js";
import type { RecordWriter } from "../record-writer.js";
import type { SinkCommitter } from "./sink-committer.js";
import { WatermarkStrategy } from "../../time/watermark-strategy.js";
import { FIRE_SLICE_TIMERS, TaskTime } from "./task-time.js";

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

/** A source task's time over partition p, its records' `ts` 10 ms out of order at most, recording the watermarks sent. */
function sourceTime(restoredWatermarkMs?: number) {
  const sent: (number | null)[] = [];
  const chain = { fireEventTimers: () => 0, nextProcessingTimerMs: () => undefined, timerCount: () => 0 } as unknown as OperatorChain;
  const writer = { broadcastWatermark: async (ms: number | null) => void sent.push(ms) } as unknown as RecordWriter;
  const sinks = { flushIfDue: async () => undefined } as unknown as SinkCommitter;
  const strategy = WatermarkStrategy.forBoundedOutOfOrderness<{ ts: number }>(10).withTimestampAssigner((r) => r.ts) as WatermarkStrategy<unknown>;
  const source = { strategy, partitions: ["p"], label: "in" };
  const time = new TaskTime({ chain, writer, sinks, now: () => 0, sleep: async () => undefined, channels: [], isSource: true, source, restoredWatermarkMs });
  return { time, sent };
}

describe("TaskTime", () => {
  it("keeps in a source's checkpoint the watermark of the batch it read and did not send yet, and a restored source sends it before its first batch", async () => {
    const { time, sent } = sourceTime();
    time.onSourceBatch("p", [{ ts: 100 }, { ts: 120 }]);
    await time.emitSourceWatermark();
    // The next batch is read; an unaligned barrier overtakes it while it waits for credits, its watermark not sent.
    time.onSourceBatch("p", [{ ts: 300 }]);
    expect(sent).toEqual([109]);
    expect(time.currentWatermarkMs).toBe(109);
    expect(time.checkpointWatermarkMs).toBe(289);
    // Restored there: 289 goes out before anything is read, as it went out before the records after that batch.
    const restored = sourceTime(289);
    await restored.time.emitSourceWatermark();
    expect(restored.sent).toEqual([289]);
    restored.time.onSourceBatch("p", [{ ts: 250 }]);
    await restored.time.emitSourceWatermark();
    expect(restored.sent).toEqual([289]);
    // Without a restored watermark, nothing goes out before the first batch.
    const fresh = sourceTime();
    await fresh.time.emitSourceWatermark();
    expect(fresh.sent).toEqual([]);
  });

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

  it("fires a watermark's timers in slices, sending each slice's output and letting the state flush between them, and the watermark after the last", async () => {
    const log: string[] = [];
    let due = 2 * FIRE_SLICE_TIMERS + 1234;
    const chain = {
      fireEventTimers: (_ms: number, max: number) => {
        const n = Math.min(max, due);
        due -= n;
        log.push(`fired ${n}`);
        return n;
      },
      nextProcessingTimerMs: () => undefined,
      timerCount: () => 0,
    } as unknown as OperatorChain;
    const writer = { flush: async () => void log.push("flush"), broadcastWatermark: async (ms: number | null) => void log.push(`watermark ${ms}`) } as unknown as RecordWriter;
    const sinks = { flushIfDue: async () => void log.push("sinks") } as unknown as SinkCommitter;
    const betweenTimerSlices = async () => void log.push("between");
    const time = new TaskTime({ chain, writer, sinks, now: () => 0, sleep: async () => undefined, channels: ["a"], isSource: false, betweenTimerSlices });
    await time.onWatermark("a", 1000, false);
    expect(log).toEqual([
      `fired ${FIRE_SLICE_TIMERS}`,
      "flush",
      "sinks",
      "between",
      `fired ${FIRE_SLICE_TIMERS}`,
      "flush",
      "sinks",
      "between",
      "fired 1234",
      "sinks",
      "watermark 1000",
    ]);
    // A slice that ends the due timers exactly asks once more, and finds none.
    log.length = 0;
    due = FIRE_SLICE_TIMERS;
    await time.onWatermark("a", 2000, false);
    expect(log).toEqual([`fired ${FIRE_SLICE_TIMERS}`, "flush", "sinks", "between", "fired 0", "sinks", "watermark 2000"]);
  });

  it("fires due processing-time timers a slice at a time, telling the loop to come back for the rest", async () => {
    const log: string[] = [];
    let due = FIRE_SLICE_TIMERS + 10;
    const chain = {
      fireEventTimers: () => 0,
      fireProcessingTimers: (_now: number, max: number) => {
        const n = Math.min(max, due);
        due -= n;
        log.push(`fired ${n}`);
        return n;
      },
      nextProcessingTimerMs: () => (due > 0 ? 5 : undefined),
      timerCount: () => 0,
    } as unknown as OperatorChain;
    const writer = { flush: async () => void log.push("flush"), broadcastWatermark: async () => undefined } as unknown as RecordWriter;
    const sinks = { flushIfDue: async () => void log.push("sinks") } as unknown as SinkCommitter;
    const time = new TaskTime({ chain, writer, sinks, now: () => 10, sleep: async () => undefined, channels: ["a"], isSource: false, betweenTimerSlices: async () => void log.push("between") });
    expect(await time.fireProcessingTimers()).toBe(true);
    expect(await time.fireProcessingTimers()).toBe(true);
    expect(await time.fireProcessingTimers()).toBe(false);
    expect(log).toEqual([`fired ${FIRE_SLICE_TIMERS}`, "flush", "sinks", "between", "fired 10", "flush", "sinks"]);
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
