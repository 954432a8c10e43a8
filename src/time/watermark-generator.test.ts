import { RejectedRecord } from "../api/dead-letter.js";
import { describe, expect, it } from "vitest";
import { BoundedOutOfOrdernessGenerator, NO_WATERMARK, SourceWatermarks } from "./watermark-generator.js";
import { END_OF_TIME_MS, WatermarkStrategy } from "./watermark-strategy.js";

interface Rec {
  ts: number;
}

const bounded = (boundMs: number, idlenessMs?: number) => {
  const s = WatermarkStrategy.forBoundedOutOfOrderness<Rec>(boundMs).withTimestampAssigner((r) => r.ts);
  return idlenessMs === undefined ? s : s.withIdleness(idlenessMs);
};
const recs = (...ts: number[]): Rec[] => ts.map((t) => ({ ts: t }));

describe("BoundedOutOfOrdernessGenerator", () => {
  it("trails the largest timestamp by bound + 1", () => {
    const g = new BoundedOutOfOrdernessGenerator(100);
    expect(g.watermarkMs).toBe(NO_WATERMARK);
    g.onTimestamp(1000);
    g.onTimestamp(900);
    expect(g.watermarkMs).toBe(899);
    g.onTimestamp(1500);
    expect(g.watermarkMs).toBe(1399);
  });
});

describe("SourceWatermarks", () => {
  it("combines partitions as the minimum, and waits for every partition", () => {
    const w = new SourceWatermarks(bounded(10), ["p/0", "p/1"], () => 0, "src");
    w.onBatch("p/0", recs(100, 300, 200));
    expect(w.poll()).toBeUndefined();
    w.onBatch("p/1", recs(150));
    expect(w.poll()).toEqual({ watermarkMs: 139, idle: false });
    w.onBatch("p/1", recs(120));
    expect(w.poll()).toBeUndefined();
    w.onBatch("p/1", recs(500));
    expect(w.poll()).toEqual({ watermarkMs: 289, idle: false });
  });

  it("monotonous timestamps: the watermark is one below the latest", () => {
    const w = new SourceWatermarks(WatermarkStrategy.forMonotonousTimestamps<Rec>().withTimestampAssigner((r) => r.ts), ["p/0"], () => 0, "src");
    w.onBatch("p/0", recs(5, 6, 9));
    expect(w.poll()).toEqual({ watermarkMs: 8, idle: false });
  });

  it("lets an idle partition stop holding back, and never goes backwards when it resumes", () => {
    let now = 0;
    const w = new SourceWatermarks(bounded(0, 1000), ["p/0", "p/1"], () => now, "src");
    w.onBatch("p/0", recs(5000));
    expect(w.poll()).toBeUndefined();
    now = 999;
    w.onBatch("p/0", recs(6000));
    expect(w.poll()).toBeUndefined();
    now = 1000;
    // p/1 never had records for the timeout: idle.
    expect(w.poll()).toEqual({ watermarkMs: 5999, idle: false });
    now = 2500;
    // Now p/0 is idle too: the subtask is idle, at the watermark it reached.
    expect(w.poll()).toEqual({ watermarkMs: 5999, idle: true });
    w.onBatch("p/1", recs(10));
    expect(w.poll()).toEqual({ watermarkMs: 5999, idle: false });
    // p/0 is still idle: p/1 alone moves the watermark.
    w.onBatch("p/1", recs(7000));
    expect(w.poll()).toEqual({ watermarkMs: 6999, idle: false });
  });

  it("reaches the same watermark when every partition went idle between two polls", () => {
    let now = 0;
    const w = new SourceWatermarks(bounded(0, 300), ["p/0", "p/1"], () => now, "src");
    now = 100;
    w.onBatch("p/0", recs(50_000));
    // p/1 (never a record) is not idle yet: nothing goes out.
    expect(w.poll()).toBeUndefined();
    // A busy thread polls again only after both timeouts: p/1 went idle at 300, p/0 at 400.
    now = 900;
    expect(w.poll()).toEqual({ watermarkMs: 49_999, idle: true });
    // The same as with a poll between the two timeouts.
    now = 0;
    const polled = new SourceWatermarks(bounded(0, 300), ["p/0", "p/1"], () => now, "src");
    now = 100;
    polled.onBatch("p/0", recs(50_000));
    now = 350;
    expect(polled.poll()).toEqual({ watermarkMs: 49_999, idle: false });
    now = 900;
    expect(polled.poll()).toEqual({ watermarkMs: 49_999, idle: true });
  });

  it("is idle at once with no partition to read", () => {
    const w = new SourceWatermarks(bounded(0), [], () => 0, "src");
    expect(w.poll()).toEqual({ watermarkMs: NO_WATERMARK, idle: true });
  });

  it("goes to the end of time when the input ends", () => {
    const w = new SourceWatermarks(bounded(10), ["p/0", "p/1"], () => 0, "src");
    w.onBatch("p/0", recs(100));
    w.endOfInput();
    expect(w.poll()).toEqual({ watermarkMs: END_OF_TIME_MS, idle: false });
    expect(w.output.watermarkMs).toBe(END_OF_TIME_MS);
  });

  it("rejects a record whose timestamp the assigner cannot give, naming the source, and moves no watermark for it", () => {
    const w = new SourceWatermarks(
      WatermarkStrategy.forMonotonousTimestamps<{ ts?: number; boom?: boolean }>().withTimestampAssigner((r) => {
        if (r.boom) throw new RangeError("no clock");
        return r.ts as number;
      }),
      ["p/0"],
      () => 0,
      "clicks-in",
    );
    const records: unknown[] = [{ ts: 5 }, {}, { boom: true, ts: 99 }, { ts: 7 }];
    const timestamps = w.onBatch("p/0", records);
    expect(timestamps[0]).toBe(5);
    expect(timestamps[3]).toBe(7);
    expect(records[1]).toEqual(new RejectedRecord({}, 'the timestamp assigner of source "clicks-in" returned undefined, not a finite number of ms'));
    expect(records[2]).toEqual(new RejectedRecord({ boom: true, ts: 99 }, 'the timestamp assigner of source "clicks-in" threw RangeError: no clock'));
    expect(w.current().watermarkMs).toBe(6);
  });

  it("starts at the watermark restored with the source's checkpoint: sends it first, and never goes below it", () => {
    const w = new SourceWatermarks(WatermarkStrategy.forBoundedOutOfOrderness<{ ts: number }>(5).withTimestampAssigner((r) => r.ts), ["p/0"], () => 0, "in", 1481);
    expect(w.poll()).toEqual({ watermarkMs: 1481, idle: false });
    w.onBatch("p/0", [{ ts: 1400 }]);
    expect(w.poll()).toBeUndefined();
    w.onBatch("p/0", [{ ts: 1600 }]);
    expect(w.poll()).toEqual({ watermarkMs: 1594, idle: false });
  });
});
