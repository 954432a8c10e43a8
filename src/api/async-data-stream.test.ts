import { describe, expect, it } from "vitest";
import { type Click, fakeSink, fakeSource } from "../../test/support/plan-fixtures.js";
import { JobDefinitionError } from "../errors.js";
import { buildPlan } from "../graph/plan.js";
import { AsyncRetryStrategies } from "../async/retry-strategy.js";
import { AsyncDataStream } from "./async-data-stream.js";
import type { AsyncFunction } from "./async-function.js";
import { job } from "./job.js";

const lookup: AsyncFunction<Click, string> = { asyncInvoke: async (c) => [c.user] };

function expectError(fn: () => unknown, pattern: RegExp): void {
  expect(fn).toThrow(JobDefinitionError);
  expect(fn).toThrow(pattern);
}

describe("AsyncDataStream", () => {
  it("puts the async operator in a vertex of its own, with defaults for capacity and connections", () => {
    const j = job("async-plan");
    const clicks = j.source(fakeSource<Click>(), { uid: "in" }).map((c) => c, { name: "before" });
    const out = AsyncDataStream.unorderedWait(clicks, lookup, { uid: "lookup", timeoutMs: 500, capacity: 20 }).map((s) => s.length, { name: "after" });
    out.sink(fakeSink(), { uid: "out" });
    const plan = buildPlan(j);
    expect(plan.vertices.map((v) => v.name)).toEqual(["in → before", "lookup", "after → out"]);
    const node = j.nodes.find((n) => n.kind === "async")!;
    expect(node.async).toMatchObject({ mode: "unordered", timeoutMs: 500, capacity: 20, maxConcurrentRequests: 6 });
    // The async options stay out of the operator's options.
    expect(node.options).toEqual({ uid: "lookup" });
  });

  it("takes a plain function, and caps connections at the capacity", () => {
    const j = job("async-fn");
    const s = AsyncDataStream.orderedWait(j.source(fakeSource<Click>(), { uid: "in" }), async (c: Click) => [c.n], { uid: "a", timeoutMs: 1, capacity: 2 });
    s.sink(fakeSink(), { uid: "out" });
    expect(j.nodes[1].async).toMatchObject({ mode: "ordered", capacity: 2, maxConcurrentRequests: 2 });
  });

  it("takes a keyed stream: its vertex is keyed, its input partitioned by the key", () => {
    const j = job("async-keyed");
    AsyncDataStream.orderedWait(j.source(fakeSource<Click>(), { uid: "in" }).keyBy((c) => c.user), lookup, { uid: "lookup", timeoutMs: 100, parallelism: 3 }).sink(fakeSink(), { uid: "out" });
    const plan = buildPlan(j);
    const v = plan.vertices.find((x) => x.uids.includes("lookup"))!;
    expect(v.keyed).toBe(true);
    expect(plan.vertices.find((x) => x.uids.includes("in"))!.outputs.map((o) => o.partitioner)).toEqual(["hash"]);
    expect(j.nodes.find((n) => n.kind === "async")!.inputs[0].keySelector).toBeTypeOf("function");
  });

  it("needs a uid: the records in flight are state", () => {
    const j = job("async-uid");
    AsyncDataStream.orderedWait(j.source(fakeSource<Click>(), { uid: "in" }), lookup, { timeoutMs: 100 }).sink(fakeSink(), { uid: "out" });
    expectError(() => buildPlan(j), /async operator "async#1".*needs a uid/);
  });

  it("refuses bad options naming the operator", () => {
    const src = () => job("bad").source(fakeSource<Click>(), { uid: "in" });
    expectError(() => AsyncDataStream.orderedWait(src(), lookup, { uid: "x", timeoutMs: 0 }), /async operator "x": timeoutMs must be a number > 0/);
    expectError(() => AsyncDataStream.orderedWait(src(), lookup, { uid: "x", timeoutMs: -5 }), /timeoutMs/);
    expectError(() => AsyncDataStream.unorderedWait(src(), lookup, { uid: "x", timeoutMs: 10, capacity: 0 }), /async operator "x": capacity must be an integer > 0/);
    expectError(() => AsyncDataStream.unorderedWait(src(), lookup, { uid: "x", timeoutMs: 10, capacity: -1 }), /capacity/);
    expectError(() => AsyncDataStream.unorderedWait(src(), lookup, { uid: "x", timeoutMs: 10, maxConcurrentRequests: 7 }), /maxConcurrentRequests must be an integer in 1\.\.6/);
    expectError(() => AsyncDataStream.unorderedWait(src(), {} as never, { uid: "x", timeoutMs: 10 }), /needs a function or an object with an asyncInvoke/);
    expectError(() => AsyncDataStream.unorderedWait(src(), lookup, { uid: "x", timeoutMs: 10, retry: { maxAttempts: 3 } as never }), /AsyncRetryStrategies/);
    expectError(() => AsyncDataStream.unorderedWait({} as never, lookup, { uid: "x", timeoutMs: 10 }), /needs a DataStream or a KeyedStream \(operator "x"\)/);
    expect(() => AsyncDataStream.unorderedWait(src(), lookup, { uid: "x", timeoutMs: 10, retry: AsyncRetryStrategies.fixedDelay({ maxAttempts: 2, delayMs: 1 }) })).not.toThrow();
  });
});
