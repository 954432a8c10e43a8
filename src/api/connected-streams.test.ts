import { describe, expect, it } from "vitest";
import { chainOf } from "../../test/support/plan-fixtures.js";
import { buildPlan } from "../graph/plan.js";
import { coInputs } from "../runtime/batch-encoding.js";
import { JobDefinitionError } from "../errors.js";
import { type JobDefinition, job } from "./job.js";
import { valueState } from "./state.js";
import type { CoProcessFunction, KeyedCoProcessFunction, SinkDefinition, SinkWriter, SourceDefinition } from "./types.js";

interface Click {
  user: string;
  url: string;
  ts: number;
}

interface Profile {
  id: string;
  name: string;
}

function source<T>(parallelism = 2): SourceDefinition<T> {
  return {
    kind: "fake-source",
    replayable: true,
    defaultParallelism: parallelism,
    createReader: () => {
      throw new Error("not read by the chain");
    },
  };
}

const sink: SinkDefinition = { kind: "fake-sink", createWriter: () => ({}) as SinkWriter };

const profile = valueState<string>("name");
const waiting = valueState<Click[]>("waiting");

/** Enriches clicks with the user's name; clicks before the profile wait in state, and give up at a timer. */
const enrich: KeyedCoProcessFunction<string, Click, Profile, string> = {
  state: [profile, waiting],
  processElement1(click, ctx, out) {
    const name = ctx.getState(profile).value();
    if (name !== undefined) return out.collect(`${click.url} by ${name}`);
    ctx.getState(waiting).update([...(ctx.getState(waiting).value() ?? []), click]);
    ctx.timerService().registerEventTimeTimer(click.ts + 1000);
  },
  processElement2(p, ctx, out) {
    ctx.getState(profile).update(p.name);
    for (const c of ctx.getState(waiting).value() ?? []) out.collect(`${c.url} by ${p.name}`);
    ctx.getState(waiting).clear();
  },
  onTimer(_ts, ctx, out) {
    for (const c of ctx.getState(waiting).value() ?? []) out.collect(`${c.url} by nobody`);
    ctx.getState(waiting).clear();
  },
};

function enrichJob(): JobDefinition {
  const j = job("enrich");
  const clicks = j.source(source<Click>(), { uid: "clicks" });
  const profiles = j.source(source<Profile>(1), { uid: "profiles" });
  clicks
    .connect(profiles)
    .keyBy((c) => c.user, (p) => p.id)
    .process(enrich, { uid: "enrich", parallelism: 2 })
    .map((s) => s, { uid: "after" })
    .sink(sink, { uid: "out" });
  return j;
}

describe("connected streams", () => {
  it("plan one vertex with both inputs, hash-partitioned by each side's key, and tell which channel feeds which input", () => {
    const j = enrichJob();
    const plan = buildPlan(j);
    const v = plan.vertices.find((x) => x.uids.includes("enrich"))!;
    expect(v.keyed).toBe(true);
    expect(v.inputs.map((i) => [i.vertex, i.partitioner, i.inputIndex])).toEqual([
      ["clicks", "hash", 0],
      ["profiles", "hash", 1],
    ]);
    expect(Object.fromEntries(coInputs(j, v, 0)!)).toEqual({ "clicks/0": 1, "clicks/1": 1, "profiles/0": 2 });
    expect(coInputs(j, plan.vertices.find((x) => x.uids.includes("clicks"))!, 0)).toBeUndefined();
  });

  it("give both inputs one key's state and timers", () => {
    const j = enrichJob();
    const plan = buildPlan(j);
    const v = plan.vertices.find((x) => x.uids.includes("enrich"))!;
    let watermark = Number.NEGATIVE_INFINITY;
    const out: unknown[] = [];
    const chain = chainOf(j, v.uids[0], out, () => watermark);
    chain.push("ada", { user: "ada", url: "/a", ts: 100 }, 100, 1);
    chain.push("bob", { user: "bob", url: "/b", ts: 200 }, 200, 1);
    expect(out).toEqual([]);
    chain.push("ada", { id: "ada", name: "Ada" }, 150, 2);
    expect(out).toEqual(["/a by Ada"]);
    chain.push("ada", { user: "ada", url: "/c", ts: 300 }, 300, 1);
    expect(out).toEqual(["/a by Ada", "/c by Ada"]);
    watermark = 1200;
    chain.fireEventTimers(watermark);
    expect(out).toEqual(["/a by Ada", "/c by Ada", "/b by nobody"]);
  });

  it("run a co-process function without keys", () => {
    const tagBoth: CoProcessFunction<Click, Profile, string> = {
      processElement1: (c, _ctx, out) => out.collect(`click ${c.url}`),
      processElement2: (p, _ctx, out) => out.collect(`profile ${p.id}`),
    };
    const j = job("co");
    j.source(source<Click>(1), { uid: "clicks" }).connect(j.source(source<Profile>(1), { uid: "profiles" })).process(tagBoth, { uid: "both" }).sink(sink, { uid: "out" });
    const plan = buildPlan(j);
    const v = plan.vertices.find((x) => x.uids.includes("both"))!;
    expect(v.keyed).toBe(false);
    const out: unknown[] = [];
    const chain = chainOf(j, v.uids[0], out, () => 0);
    chain.push(null, { user: "a", url: "/x", ts: 0 }, undefined, 1);
    chain.push(null, { id: "a", name: "A" }, undefined, 2);
    expect(out).toEqual(["click /x", "profile a"]);
  });

  it("refuse what cannot work, naming the operator", () => {
    const j = job("bad");
    const a = j.source(source<Click>(1), { uid: "a" });
    const b = j.source(source<Profile>(1), { uid: "b" });
    expect(() => a.connect(b).process({ processElement1: () => undefined } as never, { uid: "half" })).toThrow(/co-process function "half" needs processElement1 and processElement2/);
    expect(() =>
      a.connect(b).process({ processElement1: () => undefined, processElement2: () => undefined, onTimer: () => undefined } as never, { uid: "timed" }),
    ).toThrow(/"timed" defines onTimer, but timers are keyed state/);
  });

  it("connect a stream with itself over two lanes of one upstream vertex", () => {
    const self = job("self");
    const s = self.source(source<Click>(2), { uid: "s" });
    s.connect(s)
      .keyBy((c) => c.user, (c) => c.user)
      .process({ processElement1: () => undefined, processElement2: () => undefined }, { uid: "both" })
      .sink(sink, { uid: "out" });
    const plan = buildPlan(self);
    expect(plan.vertices.find((v) => v.id === "s")!.outputs).toMatchObject([
      { vertex: "both", partitioner: "hash", inputIndex: 0 },
      { vertex: "both", partitioner: "hash", inputIndex: 1, lane: 1 },
    ]);
    expect(plan.vertices.find((v) => v.id === "s")!.outputs[0]).not.toHaveProperty("lane");
    const both = plan.vertices.find((v) => v.id === "both")!;
    expect(coInputs(self, both, 0)).toEqual(new Map([["s/0", 1], ["s/1", 1], ["s/0#1", 2], ["s/1#1", 2]]));
  });
});
