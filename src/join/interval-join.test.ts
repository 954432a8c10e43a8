import { describe, expect, it } from "vitest";
import { fakeSink, fakeSource } from "../../test/support/plan-fixtures.js";
import { type JobDefinition, job } from "../api/job.js";
import type { SinkWriter } from "../api/types.js";
import { JobDefinitionError } from "../errors.js";
import { buildPlan } from "../graph/plan.js";
import { OperatorChain } from "../runtime/operator-chain.js";
import { WatermarkStrategy } from "../time/watermark-strategy.js";

interface Ev {
  k: string;
  ts: number;
  id: string;
}

const source = fakeSource<Ev>(1);
const watermarks = WatermarkStrategy.forBoundedOutOfOrderness<Ev>(0).withTimestampAssigner((e) => e.ts);

function joinJob(lower: number, upper: number, exclusive = false): JobDefinition {
  const j = job("ij");
  const a = j.source(source, { uid: "a", watermarks }).keyBy((e) => e.k);
  const b = j.source(source, { uid: "b", watermarks }).keyBy((e) => e.k);
  let joined = a.intervalJoin(b).between(lower, upper);
  if (exclusive) joined = joined.lowerBoundExclusive().upperBoundExclusive();
  joined
    .process({ processElement: (l, r, ctx, out) => out.collect(`${l.id}+${r.id}@${ctx.timestamp}`) }, { uid: "join" })
    .sink(fakeSink(), { uid: "out" });
  return j;
}

function chainOf(j: JobDefinition) {
  const plan = buildPlan(j);
  const v = plan.vertices.find((x) => x.uids.includes("join"))!;
  let watermark = Number.NEGATIVE_INFINITY;
  const out: string[] = [];
  const chain = new OperatorChain(j, v, {
    subtaskIndex: 0,
    maxParallelism: plan.maxParallelism,
    emit: (x) => out.push(x as string),
    currentWatermarkMs: () => watermark,
    now: () => 0,
    createSinkWriter: () => ({ write: (x: unknown) => void out.push(x as string) }) as unknown as SinkWriter,
  });
  return {
    chain,
    out,
    push: (e: Ev, side: 1 | 2) => chain.push(e.k, e, e.ts, side),
    advance(ms: number) {
      watermark = ms;
      chain.fireEventTimers(ms);
    },
  };
}

/** A seeded PRNG (mulberry32). */
function prng(seed: number) {
  let a = seed;
  return (n: number) => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

describe("interval join", () => {
  for (const [lower, upper] of [
    [-50, 100],
    [10, 30],
    [-40, -5],
    [0, 0],
  ]) {
    it(`equals a brute-force join of the elements that were not late, between ${lower} and ${upper}, and leaves no state`, () => {
      for (let seed = 1; seed <= 20; seed++) {
        const rnd = prng(seed * 7 + lower);
        const j = chainOf(joinJob(lower, upper));
        const seen: { e: Ev; side: 1 | 2 }[] = [];
        let watermark = Number.NEGATIVE_INFINITY;
        let clock = 0;
        for (let i = 0; i < 200; i++) {
          clock += rnd(10);
          const e: Ev = { k: `k${rnd(3)}`, ts: clock - rnd(60), id: `${i}` };
          const side = (rnd(2) + 1) as 1 | 2;
          if (e.ts >= watermark) seen.push({ e, side });
          j.push(e, side);
          if (rnd(10) === 0) {
            watermark = Math.max(watermark, clock - 40);
            j.advance(watermark);
          }
        }
        const expected: string[] = [];
        for (const l of seen.filter((x) => x.side === 1)) {
          for (const r of seen.filter((x) => x.side === 2)) {
            if (l.e.k === r.e.k && r.e.ts >= l.e.ts + lower && r.e.ts <= l.e.ts + upper) expected.push(`${l.e.id}+${r.e.id}@${Math.max(l.e.ts, r.e.ts)}`);
          }
        }
        expect([...j.out].sort(), `seed ${seed}`).toEqual(expected.sort());
        j.advance(Number.MAX_SAFE_INTEGER);
        expect(j.chain.timerCount(), `seed ${seed}: timers left`).toBe(0);
        expect([...j.chain.keyedState.values()][0].size(), `seed ${seed}: state left`).toBe(0);
      }
    });
  }

  it("leaves out exclusive bounds", () => {
    const j = chainOf(joinJob(-10, 10, true));
    j.push({ k: "a", ts: 100, id: "l" }, 1);
    for (const ts of [90, 91, 100, 109, 110]) j.push({ k: "a", ts, id: `r${ts}` }, 2);
    expect(j.out.map((s) => s.split("@")[0])).toEqual(["l+r91", "l+r100", "l+r109"]);
  });

  it("is refused with bounds that join nothing, or without event time, naming it", () => {
    expect(() => joinJob(10, 5)).toThrow(JobDefinitionError);
    expect(() => joinJob(10, 5)).toThrow(/lower bound \(10 ms\) is above the upper bound \(5 ms\)/);
    const j = job("no-time");
    const a = j.source(source, { uid: "a" }).keyBy((e) => e.k);
    const b = j.source(source, { uid: "b", watermarks }).keyBy((e) => e.k);
    a.intervalJoin(b).between(0, 10).process({ processElement: () => undefined }, { uid: "join" }).sink(fakeSink(), { uid: "out" });
    expect(() => buildPlan(j)).toThrow(/operator "join" \(interval join between 0 and 10 ms\) needs event time, but source "a" has no watermark strategy/);

    // From JavaScript, where the types do not stop it: the other side not keyed.
    const nk = job("not-keyed");
    const left = nk.source(source, { uid: "a", watermarks }).keyBy((e) => e.k);
    const right = nk.source(source, { uid: "b", watermarks });
    const unkeyed = left.intervalJoin(right as never).between(0, 10);
    expect(() => unkeyed.process({ processElement: () => undefined }, { uid: "pairs" })).toThrow(JobDefinitionError);
    expect(() => unkeyed.process({ processElement: () => undefined }, { uid: "pairs" })).toThrow(
      'interval join "pairs" joins two keyed streams, but its other side is a stream that is not keyed: key both sides, a.keyBy(fa).intervalJoin(b.keyBy(fb))',
    );
    expect(() => left.intervalJoin(undefined as never).between(0, 10).process({ processElement: () => undefined })).toThrow(
      /interval join "interval join" joins two keyed streams, but its other side is undefined: key both sides/,
    );
  });
});
