import { describe, expect, it } from "vitest";
import { type JobDefinition, job } from "../api/job.js";
import type { KeyedProcessFunction, RichMapFunction, RuntimeContext, SinkWriter, SourceDefinition } from "../api/types.js";
import { JobDefinitionError } from "../errors.js";
import { buildPlan } from "../graph/plan.js";
import { FunctionOpenError, OperatorChain } from "./operator-chain.js";

interface Event {
  user: string;
  n: number;
}

const source: SourceDefinition<Event> = {
  kind: "fake-source",
  replayable: true,
  defaultParallelism: 2,
  createReader: () => {
    throw new Error("not read by the chain");
  },
};

/** Subtask `index` of the vertex holding `uid`, collecting what reaches the chained sink. */
function chainAt(j: JobDefinition, uid: string, index: number) {
  const plan = buildPlan(j);
  const vertex = plan.vertices.find((v) => v.uids.includes(uid))!;
  const out: unknown[] = [];
  const chain = new OperatorChain(j, vertex, {
    subtaskIndex: index,
    maxParallelism: plan.maxParallelism,
    emit: (v) => out.push(v),
    currentWatermarkMs: () => Number.NEGATIVE_INFINITY,
    now: () => 0,
    createSinkWriter: () => ({ write: (v: unknown) => void out.push(v) }) as unknown as SinkWriter,
  });
  return { chain, out };
}

const rt = (attempt = 1): Omit<RuntimeContext, "operatorUid" | "subtaskIndex"> => ({ jobName: "rich", parallelism: 2, attempt, env: { PREFIX: "user-" } });

describe("rich functions", () => {
  it("open once per parallel instance with its own `this`, before records, with the bindings; close once", async () => {
    const log: string[] = [];
    const tag: KeyedProcessFunction<string, Event, string> & { label?: string } = {
      async open(ctx) {
        await Promise.resolve();
        this.label = `${(ctx.env as { PREFIX: string }).PREFIX}${ctx.subtaskIndex}@${ctx.attempt}`;
        log.push(`open ${ctx.operatorUid} ${ctx.subtaskIndex}/${ctx.parallelism}`);
      },
      processElement(e, _ctx, out) {
        out.collect(`${this.label}:${e.user}`);
      },
      close() {
        log.push(`close ${this.label}`);
      },
    };
    const j = job("rich");
    j.source(source, { uid: "in" })
      .keyBy((e) => e.user)
      .process(tag, { uid: "tag" })
      .sink({ kind: "s", createWriter: () => ({}) as SinkWriter }, { uid: "out" });
    const a = chainAt(j, "tag", 0);
    const b = chainAt(j, "tag", 1);
    await a.chain.open(rt());
    await b.chain.open(rt(3));
    a.chain.push("x", { user: "x", n: 1 });
    b.chain.push("y", { user: "y", n: 1 });
    expect(a.out).toEqual(["user-0@1:x"]);
    expect(b.out).toEqual(["user-1@3:y"]);
    expect(tag.label, "the shared function object is untouched").toBeUndefined();
    await a.chain.close();
    await a.chain.close();
    expect(log).toEqual(["open tag 0/2", "open tag 1/2", "close user-0@1"]);
  });

  it("work as objects for map, with open and close", async () => {
    const scale: RichMapFunction<Event, number> & { factor?: number } = {
      open() {
        this.factor = 10;
      },
      map(e) {
        return e.n * this.factor!;
      },
    };
    const j = job("rich-map");
    j.source(source, { uid: "in" }).map(scale, { uid: "scale" }).sink({ kind: "s", createWriter: () => ({}) as SinkWriter }, { uid: "out" });
    const { chain, out } = chainAt(j, "scale", 0);
    await chain.open(rt());
    chain.push(null, { user: "a", n: 4 });
    expect(out).toEqual([40]);
  });

  it("fail the task naming the operator when open throws", async () => {
    const j = job("rich-bad");
    j.source(source, { uid: "in" })
      .process({ open: () => Promise.reject(new Error("no such table")), processElement: () => undefined }, { uid: "lookup" })
      .sink({ kind: "s", createWriter: () => ({}) as SinkWriter }, { uid: "out" });
    const { chain } = chainAt(j, "lookup", 0);
    const e = await chain.open(rt()).then(() => undefined, (err: unknown) => err);
    expect(e).toBeInstanceOf(FunctionOpenError);
    expect((e as Error).message).toBe('operator "lookup" failed to open: Error: no such table');
  });

  it("refuse an object without the method of its kind when the job is defined", () => {
    const s = job("rich-shape").source(source, { uid: "in" });
    expect(() => s.map({ open() {} } as unknown as RichMapFunction<Event, number>, { uid: "m" })).toThrow(JobDefinitionError);
    expect(() => s.filter({ map: () => true } as never, { uid: "f" })).toThrow(/filter "f" needs a function or an object with a filter\(value\) method/);
  });
});
