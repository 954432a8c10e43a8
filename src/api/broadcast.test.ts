import { describe, expect, it } from "vitest";
import { buildPlan } from "../graph/plan.js";
import { coInputs } from "../runtime/batch-encoding.js";
import { JobDefinitionError } from "../errors.js";
import { type JobDefinition, job } from "./job.js";
import { mapState, stateTtl, valueState } from "./state.js";
import type { BroadcastProcessFunction, KeyedBroadcastProcessFunction } from "./types.js";
import { chainOf, fakeSink, fakeSource } from "../../test/support/plan-fixtures.js";

interface Click {
  user: string;
  url: string;
}

interface Rule {
  url: string;
  limit: number;
}

const source = <T>(parallelism = 2) => fakeSource<T>(parallelism);
const sink = fakeSink();
const rules = mapState<Rule>("rules");
const seen = valueState<number>("seen");

/** Counts clicks per user and url limit: a click over its url's limit goes out; a new rule resets every user's count. */
const limitClicks: KeyedBroadcastProcessFunction<string, Click, Rule, string> = {
  state: [seen],
  processElement(click, ctx, out) {
    const rule = ctx.getBroadcastState(rules).get(click.url);
    const n = (ctx.getState(seen).value() ?? 0) + 1;
    ctx.getState(seen).update(n);
    if (rule && n > rule.limit) out.collect(`${ctx.currentKey} over ${rule.limit} on ${click.url}`);
  },
  processBroadcastElement(rule, ctx, out) {
    ctx.getBroadcastState(rules).put(rule.url, rule);
    ctx.applyToKeyedState(seen, (user, state) => {
      out.collect(`reset ${user} from ${state.value()}`);
      state.clear();
    });
  },
};

function rulesJob(): JobDefinition {
  const j = job("rules");
  const clicks = j.source(source<Click>(2), { uid: "clicks" });
  const ruleStream = j.source(source<Rule>(1), { uid: "rules-in" }).broadcast(rules);
  clicks
    .keyBy((c) => c.user)
    .connect(ruleStream)
    .process(limitClicks, { uid: "limit", parallelism: 3 })
    .sink(sink, { uid: "out" });
  return j;
}

describe("broadcast state", () => {
  it("plans the broadcast stream as input 2 of a keyed vertex, sent to every subtask", () => {
    const j = rulesJob();
    const plan = buildPlan(j);
    const v = plan.vertices.find((x) => x.uids.includes("limit"))!;
    expect(v.keyed).toBe(true);
    expect(v.inputs.map((i) => [i.vertex, i.partitioner])).toEqual([
      ["clicks", "hash"],
      ["rules-in", "broadcast"],
    ]);
    expect(Object.fromEntries(coInputs(j, v, 2)!)).toEqual({ "clicks/0": 1, "clicks/1": 1, "rules-in/0": 2 });
    expect(plan.vertices.find((x) => x.id === "rules-in")!.outputs).toMatchObject([{ vertex: "limit", parallelism: 3, partitioner: "broadcast" }]);
  });

  it("lets the keyed side read the rules and the broadcast side write them and reach every key's state", () => {
    const out: unknown[] = [];
    const chain = chainOf(rulesJob(), "limit", out);
    chain.push("ada", { user: "ada", url: "/a" }, undefined, 1);
    chain.push(null, { url: "/a", limit: 1 }, undefined, 2);
    expect(out).toEqual(["reset ada from 1"]);
    chain.push("ada", { user: "ada", url: "/a" }, undefined, 1);
    chain.push("ada", { user: "ada", url: "/a" }, undefined, 1);
    chain.push("bob", { user: "bob", url: "/a" }, undefined, 1);
    expect(out).toEqual(["reset ada from 1", "ada over 1 on /a"]);
    chain.push(null, { url: "/b", limit: 5 }, undefined, 2);
    expect(out.slice(2).sort()).toEqual(["reset ada from 2", "reset bob from 1"]);
    expect(JSON.parse(chain.broadcastState.get("limit")!.snapshot()!)).toEqual({
      rules: [
        ["/a", { url: "/a", limit: 1 }],
        ["/b", { url: "/b", limit: 5 }],
      ],
    });
  });

  it("keeps the keyed side read-only and the broadcast side keyless", () => {
    const attempts: string[] = [];
    const fn: KeyedBroadcastProcessFunction<string, Click, Rule, string> = {
      processElement(_c, ctx) {
        const view = ctx.getBroadcastState(rules) as unknown as Record<string, unknown>;
        attempts.push(typeof view.put);
      },
      processBroadcastElement(_r, ctx) {
        ctx.timerService().registerEventTimeTimer(5);
      },
    };
    const j = job("ro");
    j.source(source<Click>(1), { uid: "clicks" })
      .keyBy((c) => c.user)
      .connect(j.source(source<Rule>(1), { uid: "rules-in" }).broadcast(rules))
      .process(fn, { uid: "ro" })
      .sink(sink, { uid: "out" });
    const chain = chainOf(j, "ro", []);
    chain.push("ada", { user: "ada", url: "/a" }, undefined, 1);
    expect(attempts).toEqual(["undefined"]);
    expect(() => chain.push(null, { url: "/a", limit: 1 }, undefined, 2)).toThrow(/operator "ro": processBroadcastElement has no current key, so no timers/);
  });

  it("runs a non-keyed broadcast process function", () => {
    const tag: BroadcastProcessFunction<Click, Rule, string> = {
      processElement(c, ctx, out) {
        out.collect(`${c.url}: ${ctx.getBroadcastState(rules).get(c.url)?.limit ?? "none"}`);
      },
      processBroadcastElement(r, ctx) {
        ctx.getBroadcastState(rules).put(r.url, r);
      },
    };
    const j = job("plain");
    j.source(source<Click>(2), { uid: "clicks" })
      .connect(j.source(source<Rule>(1), { uid: "rules-in" }).broadcast(rules))
      .process(tag, { uid: "tag" })
      .sink(sink, { uid: "out" });
    const plan = buildPlan(j);
    const v = plan.vertices.find((x) => x.uids.includes("tag"))!;
    expect(v.keyed).toBe(false);
    expect(v.inputs.map((i) => i.partitioner)).toEqual(["forward", "broadcast"]);
    const out: unknown[] = [];
    const chain = chainOf(j, "tag", out);
    chain.push(null, { user: "a", url: "/x" }, undefined, 1);
    chain.push(null, { url: "/x", limit: 2 }, undefined, 2);
    chain.push(null, { user: "a", url: "/x" }, undefined, 1);
    expect(out).toEqual(["/x: none", "/x: 2"]);
  });

  it("partitions a stream broadcast without descriptors to every subtask, never chained", () => {
    const j = job("fanout");
    j.source(source<Click>(1), { uid: "in" })
      .broadcast()
      .map((c) => c, { parallelism: 1, name: "copy" })
      .sink(sink, { uid: "out", parallelism: 1 });
    const plan = buildPlan(j);
    expect(plan.vertices.map((v) => v.name)).toEqual(["in", "copy → out"]);
    expect(plan.vertices[1].inputs[0].partitioner).toBe("broadcast");
  });

  it("refuses what cannot work, naming the operator or state", () => {
    const j = job("bad");
    const clicks = j.source(source<Click>(1), { uid: "clicks" });
    const r = j.source(source<Rule>(1), { uid: "rules-in" });
    expect(() => r.broadcast(valueState<Rule>("rule") as never)).toThrow(/broadcast\(…\) takes map state descriptors \(mapState\(name\)\), got a value state "rule"/);
    expect(() => r.broadcast(mapState<Rule>("r", { ttl: stateTtl(1000).build() }))).toThrow(/broadcast state "r" has a TTL/);
    expect(() => r.broadcast(rules, mapState<Rule>("rules"))).toThrow(/declares state "rules" twice/);
    expect(() => clicks.connect(r.broadcast(rules)).process({ processElement: () => undefined } as never, { uid: "half" })).toThrow(
      /broadcast process function "half" needs processElement and processBroadcastElement/,
    );
    expect(() =>
      clicks.connect(r.broadcast(rules)).process({ processElement: () => undefined, processBroadcastElement: () => undefined, onTimer: () => undefined } as never, { uid: "timed" }),
    ).toThrow(/"timed" defines onTimer, but timers are keyed state/);
    const bp = { processElement: () => undefined, processBroadcastElement: () => undefined };
    // From JavaScript: a broadcast function connected with a stream broadcast
    // without descriptors, or not broadcast at all, keyed or not.
    expect(() => clicks.connect(r.broadcast() as never).process(bp as never, { uid: "bp" })).toThrow(
      'broadcast process function "bp" is connected with a stream broadcast without broadcast state descriptors: name the map states the function keeps, other.broadcast(mapState("rules"))',
    );
    expect(() => clicks.keyBy((c) => c.user).connect(r.broadcast() as never).process(bp, { uid: "kbp" })).toThrow(
      'broadcast process function "kbp" is connected with a stream broadcast without broadcast state descriptors: name the map states the function keeps, other.broadcast(mapState("rules"))',
    );
    expect(() => clicks.connect(r as never).process(bp as never, { name: "plain" })).toThrow(/broadcast process function "plain" is connected with a stream that is not broadcast: connect with other.broadcast\(mapState/);
    expect(() => clicks.keyBy((c) => c.user).connect(r as never).process(bp, { uid: "kplain" })).toThrow(
      /broadcast process function "kplain" is connected with a stream that is not broadcast: .*a\.connect\(b\)\.keyBy\(fa, fb\)/,
    );
    expect(() => clicks.keyBy((c) => c.user).connect(r.keyBy((x) => x.url) as never).process(bp, { uid: "kk" })).toThrow(/"kk" is connected with a stream that is not broadcast/);
    expect(() => clicks.keyBy((c) => c.user).connect(undefined as never)).toThrow(/connect\(\) on a keyed stream needs a broadcast stream, got undefined/);
    expect(() => r.broadcast().keyBy((x) => x.url)).toThrow(/keyBy on a broadcast stream/);

    const noUid = job("no-uid");
    noUid
      .source(source<Click>(1), { uid: "clicks" })
      .connect(noUid.source(source<Rule>(1), { uid: "rules-in" }).broadcast(rules))
      .process({ processElement: () => undefined, processBroadcastElement: () => undefined })
      .sink(sink, { uid: "out" });
    expect(() => buildPlan(noUid)).toThrow(JobDefinitionError);
    expect(() => buildPlan(noUid)).toThrow(/keeps state and needs a uid/);

    const wrongState = job("wrong-state");
    wrongState
      .source(source<Click>(1), { uid: "clicks" })
      .connect(wrongState.source(source<Rule>(1), { uid: "rules-in" }).broadcast(rules))
      .process({ processElement: (_c, ctx) => void ctx.getBroadcastState(mapState("other")), processBroadcastElement: () => undefined }, { uid: "asks" })
      .sink(sink, { uid: "out" });
    expect(() => chainOf(wrongState, "asks", []).push(null, { user: "a", url: "/" }, undefined, 1)).toThrow(
      /operator "asks" asks for broadcast state "other", which its broadcast stream does not declare/,
    );
  });
});
