import { describe, expect, it } from "vitest";
import { type Click, fakeSink, fakeSource } from "../../test/support/plan-fixtures.js";
import { job } from "../api/job.js";
import { OutputTag } from "../api/output-tag.js";
import type { ProcessFunction } from "../api/types.js";
import { JobDefinitionError } from "../errors.js";
import { buildPlan } from "./plan.js";

const rejected = new OutputTag<Click>("rejected");
/** Clicks with n > 0 go on, the others to the side output "rejected". */
const split: ProcessFunction<Click, Click> = {
  processElement: (c, ctx, out) => (c.n > 0 ? out.collect(c) : ctx.output(rejected, c)),
};

function expectJobError(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(JobDefinitionError);
  expect((caught as Error).message).toMatch(pattern);
}

describe("side outputs in the plan", () => {
  it("ends the producer's chain: the main and the side consumer get vertices of their own, the side edge carries its tag", () => {
    const j = job("side");
    const valid = j.source(fakeSource(2), { uid: "in" }).process(split, { uid: "split" });
    valid.map((c) => c).sink(fakeSink(), { uid: "valid-out" });
    valid.getSideOutput(rejected).sink(fakeSink(), { uid: "rejected-out" });
    const plan = buildPlan(j);
    const producer = plan.vertices.find((v) => v.uids.includes("split"))!;
    expect(producer.uids).toEqual(["in", "split"]);
    expect(producer.outputs.map((o) => ({ to: o.vertex, tag: o.tag, partitioner: o.partitioner }))).toEqual([
      { to: expect.any(String), tag: undefined, partitioner: "forward" },
      { to: "rejected-out", tag: "rejected", partitioner: "forward" },
    ]);
    expect(plan.vertices.find((v) => v.uids.includes("valid-out"))!.nodes).toHaveLength(2);
  });

  it("keys a side output like any stream", () => {
    const j = job("side-keyed");
    const valid = j.source(fakeSource(2), { uid: "in" }).process(split, { uid: "split" });
    valid.sink(fakeSink(), { uid: "valid-out" });
    valid
      .getSideOutput(rejected)
      .keyBy((c) => c.user)
      .sink(fakeSink(), { uid: "rejected-out", parallelism: 3 });
    const out = buildPlan(j).vertices.find((v) => v.uids.includes("split"))!.outputs.find((o) => o.tag === "rejected")!;
    expect(out).toMatchObject({ vertex: "rejected-out", parallelism: 3, partitioner: "hash", tag: "rejected" });
  });

  it("reads a side output through a union with another stream", () => {
    const j = job("side-union");
    const a = j.source(fakeSource(1), { uid: "a" }).process(split, { uid: "split" });
    const b = j.source(fakeSource(1), { uid: "b" });
    j.union(a.getSideOutput(rejected), b).sink(fakeSink(), { uid: "out" });
    const plan = buildPlan(j);
    const sink = plan.vertices.find((v) => v.uids.includes("out"))!;
    expect(sink.inputs.map((i) => i.vertex).sort()).toEqual(["a", "b"].sort());
    expect(plan.vertices.find((v) => v.uids.includes("split"))!.outputs).toMatchObject([{ vertex: "out", tag: "rejected" }]);
  });

  it("refuses a side output of an operator that is not a process function, naming it", () => {
    const j = job("side-map");
    const mapped = j.source(fakeSource(1), { uid: "in" }).map((c) => c, { name: "double" });
    expectJobError(() => mapped.getSideOutput(rejected), /operator "double".*only process functions and windows/);
  });

  it("refuses two tag objects with one id (perhaps of different types), naming the operator", () => {
    const j = job("side-twice");
    const s = j.source(fakeSource(1), { uid: "in" }).process(split, { uid: "split" });
    s.getSideOutput(rejected).sink(fakeSink(), { uid: "r1" });
    const other = new OutputTag<number>("rejected");
    expectJobError(() => s.getSideOutput(other), /operator "split".*another OutputTag with id "rejected"/);
  });

  it("gives an operator reading both the main and a side output of one operator a lane for the second", () => {
    const j = job("side-both");
    const s = j.source(fakeSource(2), { uid: "in" }).process(split, { uid: "split" });
    j.union(s, s.getSideOutput(rejected)).sink(fakeSink(), { uid: "out", parallelism: 3 });
    const plan = buildPlan(j);
    expect(plan.vertices.find((v) => v.uids.includes("split"))!.outputs).toEqual([
      { vertex: "out", parallelism: 3, partitioner: "rebalance", toNode: 2, inputIndex: 0 },
      { vertex: "out", parallelism: 3, partitioner: "rebalance", toNode: 2, inputIndex: 1, tag: "rejected", lane: 1 },
    ]);
    expect(plan.vertices.find((v) => v.uids.includes("out"))!.inputs).toEqual([
      { vertex: "in", parallelism: 2, partitioner: "rebalance", inputIndex: 0 },
      { vertex: "in", parallelism: 2, partitioner: "rebalance", inputIndex: 1, lane: 1 },
    ]);
  });

  it("refuses a tag id that is not a name", () => {
    expect(() => new OutputTag("")).toThrow(/output tag id/);
    expect(() => new OutputTag("a b")).toThrow(/output tag id/);
  });
});
