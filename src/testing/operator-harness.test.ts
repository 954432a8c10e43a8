import { describe, expect, it } from "vitest";
import type { DeadLetter } from "../api/dead-letter.js";
import type { DataStream } from "../api/job.js";
import { OutputTag } from "../api/output-tag.js";
import { mapState, valueState } from "../api/state.js";
import type { KeyedBroadcastProcessFunction, KeyedCoProcessFunction, KeyedProcessFunction } from "../api/types.js";
import { TumblingProcessingTimeWindows } from "../window/assigners.js";
import { OperatorHarness } from "./operator-harness.js";

interface Click {
  user: string;
  url: string;
  ts: number;
}

const count = valueState<number>("count");

/** Counts per key, and says so again a second (processing time) after each key's first record. */
const countAndRemind: KeyedProcessFunction<string, Click, string> = {
  state: [count],
  processElement(_c, ctx, out) {
    const n = (ctx.getState(count).value() ?? 0) + 1;
    ctx.getState(count).update(n);
    if (n === 1) ctx.timerService().registerProcessingTimeTimer(ctx.timerService().currentProcessingTime() + 1000);
    out.collect(`${ctx.currentKey}=${n}`);
  },
  onTimer(ts, ctx, out) {
    out.collect(`${ctx.currentKey} still ${ctx.getState(count).value()} at ${ts} (${ctx.timeDomain()})`);
  },
};

describe("OperatorHarness", () => {
  it("fires processing-time timers when the test moves the clock, and keeps them in a snapshot", () => {
    const h = OperatorHarness.forKeyedProcessFunction(countAndRemind, (c) => c.user, { processingTimeMs: 5_000 });
    h.processElement({ user: "ada", url: "/", ts: 0 });
    h.setProcessingTime(5_999);
    expect(h.output()).toEqual(["ada=1"]);
    expect(h.pendingTimers()).toBe(1);
    const snap = h.snapshot();
    h.setProcessingTime(6_000);
    expect(h.output()).toEqual(["ada=1", "ada still 1 at 6000 (processing)"]);

    const r = OperatorHarness.forKeyedProcessFunction(countAndRemind, (c) => c.user, { processingTimeMs: 5_999 }).restore(snap);
    expect(r.state("ada").getState(count).value()).toBe(1);
    r.setProcessingTime(7_000);
    expect(r.output()).toEqual(["ada still 1 at 6000 (processing)"]);
    expect(() => r.setProcessingTime(6_000)).toThrow(/goes forward only/);
  });

  it("runs a keyed co-process function, both inputs sharing one key's state", () => {
    const name = valueState<string>("name");
    const enrich: KeyedCoProcessFunction<string, Click, { id: string; name: string }, string> = {
      state: [name],
      processElement1: (c, ctx, out) => out.collect(`${c.url} by ${ctx.getState(name).value() ?? "?"}`),
      processElement2: (p, ctx) => ctx.getState(name).update(p.name),
    };
    const h = OperatorHarness.forStream((clicks: DataStream<Click>, profiles: DataStream<{ id: string; name: string }>) =>
      clicks.connect(profiles).keyBy((c) => c.user, (p) => p.id).process(enrich, { uid: "enrich" }),
    );
    h.processElement({ user: "ada", url: "/a", ts: 1 });
    h.processElement2({ id: "ada", name: "Ada" });
    h.processElement({ user: "ada", url: "/b", ts: 2 });
    expect(h.output()).toEqual(["/a by ?", "/b by Ada"]);
    expect(h.keys("name")).toEqual(["ada"]);
  });

  it("runs a keyed broadcast process function, and restores one copy of its broadcast state into every subtask", () => {
    const limits = mapState<number>("limits");
    const seen = valueState<number>("seen");
    const limit: KeyedBroadcastProcessFunction<string, Click, { url: string; max: number }, string> = {
      state: [seen],
      processElement(c, ctx, out) {
        const n = (ctx.getState(seen).value() ?? 0) + 1;
        ctx.getState(seen).update(n);
        const max = ctx.getBroadcastState(limits).get(c.url);
        if (max !== undefined && n > max) out.collect(`${ctx.currentKey} over ${max}`);
      },
      processBroadcastElement(rule, ctx) {
        ctx.getBroadcastState(limits).put(rule.url, rule.max);
      },
    };
    const build = (clicks: DataStream<Click>, rules: DataStream<{ url: string; max: number }>) =>
      clicks.keyBy((c) => c.user).connect(rules.broadcast(limits)).process(limit, { uid: "limit" });
    const h = OperatorHarness.forStream(build);
    h.processBroadcastElement({ url: "/", max: 1 });
    h.processElement({ user: "ada", url: "/", ts: 0 }).processElement({ user: "ada", url: "/", ts: 0 });
    expect(h.output()).toEqual(["ada over 1"]);
    const snap = h.snapshot();
    for (const subtaskIndex of [0, 1]) {
      const r = OperatorHarness.forStream(build, { parallelism: 2, subtaskIndex }).restore(snap);
      const user = Array.from({ length: 20 }, (_, i) => `user-${i}`).find((u) => r.owns(u))!;
      r.processElement({ user, url: "/", ts: 0 }).processElement({ user, url: "/", ts: 0 });
      expect(r.output()).toEqual([`${user} over 1`]);
    }
    expect(() => h.processElement2({ url: "/x", max: 2 })).not.toThrow();
  });

  it("runs a processing-time window", () => {
    const h = OperatorHarness.forStream((clicks: DataStream<Click>) =>
      clicks
        .keyBy((c) => c.url)
        .window(TumblingProcessingTimeWindows.of(1000))
        .reduce<string>((a) => a, { process: (url, _ctx, [first], out) => out.collect(`${url} from ${first.user}`) }, { uid: "w" }),
    );
    h.setProcessingTime(100);
    h.processElement({ user: "ada", url: "/", ts: 0 }).processElement({ user: "bob", url: "/", ts: 0 });
    h.setProcessingTime(999);
    expect(h.output()).toEqual(["/ from ada"]);
  });

  it("routes a record the function throws on to its dead letters, and otherwise names operator and key", () => {
    const dead = new OutputTag<DeadLetter>("dead");
    const picky: KeyedProcessFunction<string, Click, string> = {
      processElement(c, _ctx, out) {
        if (c.url === "") throw new Error("no url");
        out.collect(c.url);
      },
    };
    const h = OperatorHarness.forStream((s: DataStream<Click>) => s.keyBy((c) => c.user).process(picky, { uid: "picky", deadLetters: dead }));
    h.processElement({ user: "ada", url: "", ts: 0 }).processElement({ user: "ada", url: "/ok", ts: 0 });
    expect(h.output()).toEqual(["/ok"]);
    expect(h.deadLetters()).toEqual([{ operator: "picky", error: "Error: no url", key: "ada", source: null, value: { user: "ada", url: "", ts: 0 } }]);

    const strict = OperatorHarness.forKeyedProcessFunction(picky, (c) => c.user, { uid: "strict" });
    expect(() => strict.processElement({ user: "bob", url: "", ts: 0 })).toThrow(/operator "strict" \(key "bob"\) threw Error: no url/);
  });

  it("refuses what the engine would refuse: a key that changes over JSON, a record with no JSON form, an event-time window without event time", () => {
    const byDate = OperatorHarness.forStream((s: DataStream<{ at: Date }>) => s.keyBy((v) => (v.at instanceof Date ? v.at.getTime() : -1)).process({ processElement: () => undefined }, { uid: "d" }));
    expect(() => byDate.processElement({ at: new Date(5) })).toThrow(/JSON round trip/);
    const h = OperatorHarness.forKeyedProcessFunction(countAndRemind, (c) => c.user);
    expect(() => h.processElement({ user: "ada", url: "/", ts: 0, big: 1n } as unknown as Click)).toThrow();
    const key = OperatorHarness.forKeyedProcessFunction(countAndRemind, (c) => c.url as unknown as string);
    expect(() => key.processElement({ user: "ada" } as Click)).toThrow(/key selector returned undefined/);
  });

  it("refuses a snapshot of another operator or another number of key groups, and a restore after the first element", () => {
    const h = OperatorHarness.forKeyedProcessFunction(countAndRemind, (c) => c.user, { uid: "a" });
    const snap = h.snapshot();
    expect(() => OperatorHarness.forKeyedProcessFunction(countAndRemind, (c) => c.user, { uid: "b" }).restore(snap)).toThrow(/uids differ/);
    expect(() => OperatorHarness.forKeyedProcessFunction(countAndRemind, (c) => c.user, { uid: "a", maxParallelism: 64 }).restore(snap)).toThrow(/maxParallelism 128/);
    h.processElement({ user: "ada", url: "/", ts: 0 });
    expect(() => h.restore(snap)).toThrow(/before the first element/);
    expect(() => OperatorHarness.forStream(() => undefined)).toThrow(/added 0/);
  });

  it("opens a rich function with the env it is given", async () => {
    const tagged: KeyedProcessFunction<string, Click, string> & { prefix?: string } = {
      open(ctx) {
        this.prefix = `${(ctx.env as { PREFIX: string }).PREFIX}${ctx.subtaskIndex}`;
      },
      processElement(c, _ctx, out) {
        out.collect(`${this.prefix}:${c.user}`);
      },
    };
    const h = await OperatorHarness.forKeyedProcessFunction(tagged, (c) => c.user, { env: { PREFIX: "p" } }).open();
    h.processElement({ user: "ada", url: "/", ts: 0 });
    expect(h.output()).toEqual(["p0:ada"]);
  });

  it("takes microseconds per element", () => {
    const h = OperatorHarness.forKeyedProcessFunction(countAndRemind, (c) => c.user);
    const started = performance.now();
    for (let i = 0; i < 10_000; i++) h.processElement({ user: `u${i % 100}`, url: "/", ts: i });
    const perElementUs = ((performance.now() - started) * 1000) / 10_000;
    expect(perElementUs).toBeLessThan(100);
  });
});
