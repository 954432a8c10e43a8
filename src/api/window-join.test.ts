import { describe, expect, it } from "vitest";
import { chainOf, fakeSink, fakeSource } from "../../test/support/plan-fixtures.js";
import { buildPlan } from "../graph/plan.js";
import { WatermarkStrategy } from "../time/watermark-strategy.js";
import { TumblingEventTimeWindows } from "../window/assigners.js";
import { job } from "./job.js";

interface Ev {
  k: string;
  ts: number;
  id: string;
}

const source = fakeSource<Ev>(1);
const watermarks = WatermarkStrategy.forBoundedOutOfOrderness<Ev>(0).withTimestampAssigner((e) => e.ts);
const sink = fakeSink();

describe("window join", () => {
  it("joins each pair of one key and window, one element of each side, when the window fires", () => {
    const j = job("wj");
    const a = j.source(source, { uid: "a", watermarks });
    const b = j.source(source, { uid: "b", watermarks });
    a.join(b)
      .where((e) => e.k)
      .equalTo((e) => e.k)
      .window(TumblingEventTimeWindows.of(100))
      .apply((l, r) => `${l.id}+${r.id}`, { uid: "join" })
      .sink(sink, { uid: "out" });
    const plan = buildPlan(j);
    const v = plan.vertices.find((x) => x.uids.includes("join"))!;
    expect(v.inputs.map((i) => i.partitioner)).toEqual(["hash", "hash"]);
    let watermark = Number.NEGATIVE_INFINITY;
    const out: unknown[] = [];
    const chain = chainOf(j, v.uids[0], out, () => watermark);
    // What the two tagging maps upstream send: each side's element with its side.
    const push = (side: 1 | 2, e: Ev) => chain.push(e.k, { side, value: e }, e.ts);
    push(1, { k: "x", ts: 10, id: "a1" });
    push(1, { k: "x", ts: 20, id: "a2" });
    push(2, { k: "x", ts: 30, id: "b1" });
    push(2, { k: "y", ts: 40, id: "b2" });
    push(2, { k: "x", ts: 150, id: "b3" });
    watermark = 99;
    chain.fireEventTimers(watermark);
    expect(out).toEqual(["a1+b1", "a2+b1"]);
  });

  it("joins a stream with itself", () => {
    const j = job("self");
    const a = j.source(source, { uid: "a", watermarks });
    a.join(a)
      .where((e) => e.k)
      .equalTo((e) => e.k)
      .window(TumblingEventTimeWindows.of(100))
      .apply((l, r) => `${l.id}+${r.id}`, { uid: "join" })
      .sink(sink, { uid: "out" });
    expect(buildPlan(j).vertices.find((x) => x.uids.includes("join"))!.inputs).toHaveLength(2);
  });
});
