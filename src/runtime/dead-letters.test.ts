import { describe, expect, it } from "vitest";
import { type DeadLetter, RejectedRecord } from "../api/dead-letter.js";
import { type JobDefinition, job } from "../api/job.js";
import { OutputTag } from "../api/output-tag.js";
import { valueState } from "../api/state.js";
import type { KeyedProcessFunction, SinkDefinition, SinkWriter, SourceDefinition } from "../api/types.js";
import { JobDefinitionError } from "../errors.js";
import { buildPlan } from "../graph/plan.js";
import { OperatorChain } from "./operator-chain.js";

interface Event {
  user: string;
  n: number;
}

const source: SourceDefinition<Event> = {
  kind: "fake-source",
  replayable: true,
  defaultParallelism: 1,
  createReader: () => {
    throw new Error("not read by the chain");
  },
};
const sink: SinkDefinition = {
  kind: "fake-sink",
  createWriter: () => {
    throw new Error("not written by the chain");
  },
};

const dead = new OutputTag<DeadLetter>("dead");

/** The chain of the vertex holding `uid`, collecting its main and side output. */
function chainWith(j: JobDefinition, uid: string) {
  const plan = buildPlan(j);
  const vertex = plan.vertices.find((v) => v.uids.includes(uid))!;
  const main: unknown[] = [];
  const side: { tag: string; value: unknown; ts: number | undefined }[] = [];
  const chain = new OperatorChain(j, vertex, {
    subtaskIndex: 0,
    maxParallelism: plan.maxParallelism,
    emit: (v) => main.push(v),
    emitSide: (tag, value, ts) => side.push({ tag, value, ts }),
    currentWatermarkMs: () => Number.NEGATIVE_INFINITY,
    now: () => 0,
    // A sink chained in writes to `main` as the tail's output would.
    createSinkWriter: () => ({ write: (v: unknown) => void main.push(v) }) as unknown as SinkWriter,
  });
  return { chain, main, side, vertex };
}

const parse = (e: Event) => {
  if (e.n < 0) throw new RangeError(`negative n ${e.n}`);
  return { ...e, n: e.n * 10 };
};

describe("dead letters", () => {
  it("route a record a map throws on, with the error, the operator, and its source offset, and go on with the next", () => {
    const j = job("dl");
    const parsed = j.source(source, { uid: "in" }).map(parse, { uid: "parse", deadLetters: dead });
    parsed.sink(sink, { uid: "out" });
    parsed.getSideOutput(dead).sink(sink, { uid: "dead-out" });
    const { chain, main, side, vertex } = chainWith(j, "parse");
    expect(vertex.uids).toEqual(["in", "parse"]);
    chain.pushSourceBatch("events/1", 40, [{ user: "a", n: 1 }, { user: "b", n: -2 }, { user: "c", n: 3 }], [100, 200, 300]);
    expect(main).toEqual([{ user: "a", n: 10 }, { user: "c", n: 30 }]);
    expect(side).toEqual([
      {
        tag: "dead",
        value: { operator: "parse", error: "RangeError: negative n -2", key: null, source: { partition: "events/1", offset: 41 }, value: { user: "b", n: -2 } },
        ts: 200,
      },
    ]);
    expect(chain.deadLetters).toBe(1);
  });

  it("route a source's rejected record (bad JSON, a timestamp it cannot read) with what was read", () => {
    const j = job("dl-source");
    const events = j.source(source, { uid: "in", deadLetters: dead });
    events.sink(sink, { uid: "out" });
    events.getSideOutput(dead).sink(sink, { uid: "dead-out" });
    const { chain, main, side } = chainWith(j, "in");
    chain.pushSourceBatch("events/0", 7, [{ user: "a", n: 1 }, new RejectedRecord("{oops", "not JSON")]);
    expect(main).toEqual([{ user: "a", n: 1 }]);
    expect(side.map((s) => s.value)).toEqual([{ operator: "in", error: "Error: not JSON", key: null, source: { partition: "events/0", offset: 8 }, value: "{oops" }]);
  });

  it("without a dead-letter output, fail naming the operator, the key and the offset", () => {
    const j = job("dl-none");
    j.source(source, { uid: "in" }).map(parse, { uid: "parse" }).sink(sink, { uid: "out" });
    const { chain } = chainWith(j, "parse");
    expect(() => chain.pushSourceBatch("events/1", 40, [{ user: "a", n: 1 }, { user: "b", n: -2 }])).toThrow(
      'operator "parse" threw RangeError: negative n -2 at events/1 offset 41',
    );
    const k = job("dl-source-none");
    k.source(source, { uid: "in" }).sink(sink, { uid: "out" });
    expect(() => chainWith(k, "in").chain.pushSourceBatch("events/0", 7, [new RejectedRecord("{oops", "not JSON")])).toThrow('source "in" rejected the record at events/0 offset 7: not JSON');
  });

  it("route a keyed process function's own errors with the key, but not errors raised downstream of its collector", () => {
    const count = valueState<number>("count");
    const counter: KeyedProcessFunction<string, Event, number> = {
      state: [count],
      processElement(e, ctx, out) {
        const n = (ctx.getState(count).value() ?? 0) + 1;
        ctx.getState(count).update(n);
        if (e.n === 13) throw new Error("unlucky");
        out.collect(e.n);
      },
    };
    const j = job("dl-keyed");
    const counted = j
      .source(source, { uid: "in" })
      .keyBy((e) => e.user)
      .process(counter, { uid: "count", deadLetters: dead });
    counted.map((n) => {
      if (n === 99) throw new Error("downstream");
      return n;
    }, { uid: "after" }).sink(sink, { uid: "out" });
    counted.getSideOutput(dead).sink(sink, { uid: "dead-out" });
    const { chain, main, side } = chainWith(j, "count");
    chain.push("u1", { user: "u1", n: 13 }, 5);
    chain.push("u1", { user: "u1", n: 2 }, 6);
    expect(main).toEqual([2]);
    expect(side.map((s) => s.value)).toEqual([{ operator: "count", error: "Error: unlucky", key: "u1", source: null, value: { user: "u1", n: 13 } }]);
    // The state written before the throw stays (documented): u1 was counted twice.
    expect([...chain.keyedState.get("count")!.allEntries()].map((e) => e.value)).toEqual([2]);
  });

  it("are refused when no stream reads them, or on a sink", () => {
    const j = job("dl-unread");
    j.source(source, { uid: "in" }).map(parse, { uid: "parse", deadLetters: dead }).sink(sink, { uid: "out" });
    expect(() => buildPlan(j)).toThrow(JobDefinitionError);
    expect(() => buildPlan(j)).toThrow(/operator "parse" routes dead letters to "dead", but no stream reads them/);
    const k = job("dl-sink");
    k.source(source, { uid: "in" }).sink(sink, { uid: "out", deadLetters: dead });
    expect(() => buildPlan(k)).toThrow(/sink "out" has deadLetters/);
  });
});
