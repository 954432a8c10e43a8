import { describe, expect, it } from "vitest";
import { END_OF_TIME_MS } from "../time/watermark-strategy.js";
import {
  EventTimeSessionWindows,
  GlobalWindows,
  SlidingEventTimeWindows,
  TumblingEventTimeWindows,
  TumblingProcessingTimeWindows,
  type WindowAssigner,
} from "./assigners.js";
import { type Window, windowId } from "./time-window.js";
import { ContinuousEventTimeTrigger, CountTrigger, EventTimeTrigger, PurgingTrigger, type Trigger } from "./triggers.js";
import { type AggregateFunction, aggregateContents, listContents, reduceContents, type WindowContents } from "./window-functions.js";
import { WINDOW_STATE, WindowOperator } from "./window-operator.js";

type Emitted = { key: string; value: unknown; timestampMs: number };

/**
 * A window operator over in-memory keyed state and timers, as the runtime
 * gives it: values go through JSON (as they would into a snapshot), and the
 * watermark fires every due event-time timer in timestamp order.
 */
function harness<ACC, R, OUT>(opts: {
  assigner: WindowAssigner;
  trigger?: Trigger;
  allowedLatenessMs?: number;
  contents: WindowContents<unknown, ACC, R>;
  process?: (key: string, window: Window, results: readonly R[]) => OUT[];
  lateOutput?: boolean;
}) {
  const state = new Map<string, Map<string, Map<string, string>>>();
  const timers = new Map<string, Set<string>>();
  let key = "";
  let watermarkMs = -Infinity;
  let nowMs = 0;
  const emitted: Emitted[] = [];
  const late: Emitted[] = [];
  const table = (map: string) => {
    let byKey = state.get(key);
    if (!byKey) state.set(key, (byKey = new Map()));
    let t = byKey.get(map);
    if (!t) byKey.set(map, (t = new Map()));
    return t;
  };
  const keyTimers = () => {
    let s = timers.get(key);
    if (!s) timers.set(key, (s = new Set()));
    return s;
  };
  /** The operator over the harness's state; built again by `restart` (a new job version restored from its state). */
  const build = (trigger: Trigger | undefined) => new WindowOperator<string, unknown, ACC, R, OUT>(
    {
      label: 'window "test"',
      assigner: opts.assigner,
      trigger,
      allowedLatenessMs: opts.allowedLatenessMs,
      contents: opts.contents,
      process: opts.process && { process: (k, ctx, results, out) => opts.process!(k, ctx.window, results).forEach((v) => out.collect(v)) },
    },
    {
      map: (map) => ({
        get: (field) => {
          const v = table(map).get(field);
          return v === undefined ? undefined : JSON.parse(v);
        },
        put: (field, value) => void table(map).set(field, JSON.stringify(value)),
        remove: (field) => void table(map).delete(field),
      }),
    },
    {
      get currentWatermarkMs() {
        return watermarkMs;
      },
      currentProcessingTimeMs: () => nowMs,
      registerEventTimeTimer: (t) => void keyTimers().add(`event:${t}`),
      registerProcessingTimeTimer: (t) => void keyTimers().add(`processing:${t}`),
      deleteEventTimeTimer: (t) => void keyTimers().delete(`event:${t}`),
      deleteProcessingTimeTimer: (t) => void keyTimers().delete(`processing:${t}`),
    },
    {
      emit: (value, timestampMs) => void emitted.push({ key, value, timestampMs }),
      late: opts.lateOutput ? (value, timestampMs) => void late.push({ key, value, timestampMs }) : undefined,
    },
  );
  let op = build(opts.trigger);
  /** Fires due timers of a domain, earliest first (ties by key), as the timer service does. */
  const fireDue = (domain: "event" | "processing", upToMs: number) => {
    for (;;) {
      let next: { k: string; t: number } | undefined;
      for (const [k, s] of timers) {
        for (const id of s) {
          const [d, t] = id.split(":");
          const ms = Number(t);
          if (d === domain && ms <= upToMs && (!next || ms < next.t || (ms === next.t && k < next.k))) next = { k, t: ms };
        }
      }
      if (!next) return;
      timers.get(next.k)!.delete(`${domain}:${next.t}`);
      key = next.k;
      op.onTimer(key, domain, next.t);
    }
  };
  return {
    get op() {
      return op;
    },
    /** Goes on with an operator built anew over the same state and timers, with `trigger`. */
    restart(trigger: Trigger | undefined) {
      op = build(trigger);
    },
    state,
    emitted,
    late,
    element(k: string, value: unknown, timestampMs?: number) {
      key = k;
      op.processElement(k, value, timestampMs);
    },
    watermark(ms: number) {
      watermarkMs = ms;
      fireDue("event", ms);
    },
    advanceClock(ms: number) {
      nowMs = ms;
      fireDue("processing", ms);
    },
    /** The windows holding contents in the state, counted there: what the operator's gauge must agree with. */
    windowsInState() {
      let n = 0;
      for (const maps of state.values()) n += maps.get(WINDOW_STATE.contents)?.size ?? 0;
      return n;
    },
    /** Keys with any state or timer left. */
    leftovers() {
      const left: string[] = [];
      for (const [k, maps] of state) for (const [m, t] of maps) if (t.size > 0) left.push(`${k}:${m}=${[...t.keys()].join(",")}`);
      for (const [k, s] of timers) if (s.size > 0) left.push(`${k}:timers=${[...s].join(",")}`);
      return left;
    },
  };
}

const count: AggregateFunction<unknown, number, number> = { createAccumulator: () => 0, add: (_v, a) => a + 1, merge: (a, b) => a + b, getResult: (a) => a };
const withWindow = (k: string, w: Window, results: readonly number[]) => [{ key: k, window: windowId(w), count: results[0] }];

/**
 * Ends the input (the watermark at the end of time) and checks what a reference computed: the last result of each
 * key's window (`<key>@<window id>` → count), the late elements, and nothing left in state or timers.
 */
function expectReference(h: ReturnType<typeof harness<number, number, unknown>>, expected: Map<string, number>, lateCount: number): void {
  h.watermark(END_OF_TIME_MS);
  const last = new Map<string, number>();
  for (const e of h.emitted) {
    const v = e.value as { key: string; window: string; count: number };
    last.set(`${v.key}@${v.window}`, v.count);
  }
  expect(last).toEqual(expected);
  expect(h.late).toHaveLength(lateCount);
  expect(h.leftovers()).toEqual([]);
}

describe("WindowOperator", () => {
  it("tumbling event time: one result per key and window when the watermark passes its end, then nothing left", () => {
    const h = harness({ assigner: TumblingEventTimeWindows.of(60_000), contents: aggregateContents(count), process: withWindow });
    h.element("/a", {}, 1_000);
    h.element("/b", {}, 2_000);
    h.element("/a", {}, 59_999);
    h.element("/a", {}, 60_000);
    h.watermark(59_998);
    expect(h.emitted).toEqual([]);
    h.watermark(59_999);
    expect(h.emitted).toEqual([
      { key: "/a", value: { key: "/a", window: "0:60000", count: 2 }, timestampMs: 59_999 },
      { key: "/b", value: { key: "/b", window: "0:60000", count: 1 }, timestampMs: 59_999 },
    ]);
    h.watermark(END_OF_TIME_MS);
    expect(h.emitted.at(-1)).toEqual({ key: "/a", value: { key: "/a", window: "60000:120000", count: 1 }, timestampMs: 119_999 });
    expect(h.leftovers()).toEqual([]);
  });

  it("allowed lateness: a late element within it fires the window again with the updated result; later ones go to the late output", () => {
    const h = harness({ assigner: TumblingEventTimeWindows.of(10_000), allowedLatenessMs: 5_000, contents: aggregateContents(count), lateOutput: true });
    h.element("k", "a", 1_000);
    h.watermark(10_000);
    expect(h.emitted.map((e) => e.value)).toEqual([1]);
    h.element("k", "b", 2_000);
    expect(h.emitted.map((e) => e.value)).toEqual([1, 2]);
    h.watermark(14_999);
    // Cleaned up at end + lateness = 9_999 + 5_000.
    expect(h.leftovers()).toEqual([]);
    h.element("k", "c", 3_000);
    expect(h.late).toEqual([{ key: "k", value: "c", timestampMs: 3_000 }]);
    expect(h.emitted).toHaveLength(2);
    expect(h.leftovers()).toEqual([]);
  });

  it("without a late output, late elements are dropped and counted", () => {
    const h = harness({ assigner: TumblingEventTimeWindows.of(10_000), contents: aggregateContents(count) });
    h.watermark(20_000);
    h.element("k", "late", 5_000);
    expect(h.op.lateDropped).toBe(1);
    expect(h.emitted).toEqual([]);
    expect(h.leftovers()).toEqual([]);
  });

  it("sliding: each element counts in every window that holds it", () => {
    const h = harness({ assigner: SlidingEventTimeWindows.of(10_000, 5_000), contents: aggregateContents(count), process: withWindow });
    h.element("k", 1, 7_000);
    h.element("k", 2, 12_000);
    h.watermark(END_OF_TIME_MS);
    expect(h.emitted.map((e) => e.value)).toEqual([
      { key: "k", window: "0:10000", count: 1 },
      { key: "k", window: "5000:15000", count: 2 },
      { key: "k", window: "10000:20000", count: 1 },
    ]);
    expect(h.leftovers()).toEqual([]);
  });

  it("session windows merge when an element bridges two, merging contents and timers", () => {
    const h = harness({ assigner: EventTimeSessionWindows.withGap(1_000), contents: listContents<unknown>(), process: (k, w, els) => [{ k, w: windowId(w), els: [...els].sort() }] });
    h.element("u", "a", 0);
    h.element("u", "c", 1_800);
    h.watermark(900);
    expect(h.emitted).toEqual([]);
    // Bridges [0, 1000) and [1800, 2800).
    h.element("u", "b", 950);
    h.watermark(2_798);
    expect(h.emitted).toEqual([]);
    h.watermark(2_799);
    expect(h.emitted.map((e) => e.value)).toEqual([{ k: "u", w: "0:2800", els: ["a", "b", "c"] }]);
    h.watermark(END_OF_TIME_MS);
    expect(h.emitted).toHaveLength(1);
    expect(h.leftovers()).toEqual([]);
  });

  it("processing-time windows fire from the clock", () => {
    const h = harness({ assigner: TumblingProcessingTimeWindows.of(1_000), contents: reduceContents<number>((a, b) => a + b) });
    h.advanceClock(100);
    h.element("k", 5);
    h.element("k", 7);
    h.advanceClock(998);
    expect(h.emitted).toEqual([]);
    h.advanceClock(999);
    expect(h.emitted).toEqual([{ key: "k", value: 12, timestampMs: 999 }]);
    expect(h.leftovers()).toEqual([]);
  });

  it("a global window with a purging count trigger emits every n elements, and never by time", () => {
    const h = harness({ assigner: GlobalWindows.create(), trigger: PurgingTrigger.of(CountTrigger.of(3)), contents: listContents<unknown>() });
    for (const v of [1, 2, 3, 4, 5, 6, 7]) h.element("k", v);
    expect(h.emitted.map((e) => e.value)).toEqual([1, 2, 3, 4, 5, 6]);
    h.watermark(END_OF_TIME_MS);
    expect(h.emitted).toHaveLength(6);
  });

  it("a continuous event-time trigger fires early results, then the final one", () => {
    const h = harness({ assigner: TumblingEventTimeWindows.of(60_000), trigger: ContinuousEventTimeTrigger.of(20_000), contents: aggregateContents(count) });
    h.element("k", 1, 1_000);
    h.watermark(20_000);
    h.element("k", 2, 25_000);
    h.watermark(40_000);
    h.watermark(60_000);
    expect(h.emitted.map((e) => [e.value, e.timestampMs])).toEqual([
      [1, 59_999],
      [2, 59_999],
      [2, 59_999],
    ]);
    expect(h.leftovers()).toEqual([]);
  });

  it("refuses a negative lateness and a trigger that cannot merge session windows, naming the operator", () => {
    expect(() => harness({ assigner: TumblingEventTimeWindows.of(1_000), allowedLatenessMs: -1, contents: aggregateContents(count) })).toThrow(
      /window "test": allowed lateness must be a whole number of milliseconds ≥ 0, got -1/,
    );
    const noMerge: Trigger = { ...CountTrigger.of(2), description: "custom", canMerge: false, onElement: () => "continue", onEventTime: () => "continue", onProcessingTime: () => "continue", onMerge: () => undefined, clear: () => undefined };
    expect(() => harness({ assigner: EventTimeSessionWindows.withGap(10), trigger: noMerge, contents: aggregateContents(count) })).toThrow(/trigger "custom" cannot merge/);
  });

  it("agrees with a reference over random out-of-order input: the last result of each window counts exactly its on-time and allowed-late elements", () => {
    for (let run = 0; run < 50; run++) {
      const size = 1_000;
      const lateness = run % 2 === 0 ? 0 : 700;
      const bound = 500;
      const h = harness({ assigner: TumblingEventTimeWindows.of(size), allowedLatenessMs: lateness, contents: aggregateContents(count), process: withWindow, lateOutput: true });
      const expected = new Map<string, number>();
      let maxTs = 0;
      let watermark = -Infinity;
      let lateCount = 0;
      for (let i = 0; i < 400; i++) {
        const key = `k${Math.floor(Math.random() * 4)}`;
        // Mostly within the bound, sometimes much later than it.
        const ts = Math.max(0, maxTs + Math.floor(Math.random() * 200) - (Math.random() < 0.1 ? 2_000 : Math.floor(Math.random() * bound)));
        const start = Math.floor(ts / size) * size;
        if (start + size - 1 + lateness <= watermark) lateCount++;
        else expected.set(`${key}@${start}:${start + size}`, (expected.get(`${key}@${start}:${start + size}`) ?? 0) + 1);
        h.element(key, i, ts);
        maxTs = Math.max(maxTs, ts);
        if (maxTs - bound - 1 > watermark) {
          watermark = maxTs - bound - 1;
          h.watermark(watermark);
        }
      }
      expectReference(h, expected, lateCount);
    }
  });

  it("agrees with a reference for sliding windows of many slides at epoch times: each element counts once in every window it was on time for", () => {
    // 150 windows an element, and as many timer times: more texts than the operator keeps, so they are built again too.
    const size = 1_500;
    const slide = 10;
    const epoch = 1_765_000_000_000;
    for (let run = 0; run < 8; run++) {
      const lateness = run % 2 === 0 ? 0 : 300;
      const h = harness({ assigner: SlidingEventTimeWindows.of(size, slide), allowedLatenessMs: lateness, contents: aggregateContents(count), process: withWindow, lateOutput: true });
      const expected = new Map<string, number>();
      let maxTs = epoch;
      let watermark = -Infinity;
      let lateCount = 0;
      for (let i = 0; i < 150; i++) {
        const key = `k${Math.floor(Math.random() * 3)}`;
        const ts = maxTs + Math.floor(Math.random() * 100) - (Math.random() < 0.15 ? 1_000 + Math.floor(Math.random() * 1_500) : 0);
        let counted = false;
        for (let start = ts - (((ts % slide) + slide) % slide); start > ts - size; start -= slide) {
          if (start + size - 1 + lateness <= watermark) continue;
          counted = true;
          const id = `${key}@${start}:${start + size}`;
          expected.set(id, (expected.get(id) ?? 0) + 1);
        }
        if (!counted) lateCount++;
        h.element(key, i, ts);
        maxTs = Math.max(maxTs, ts);
        if (maxTs - 200 > watermark) {
          watermark = maxTs - 200;
          h.watermark(watermark);
        }
      }
      expectReference(h, expected, lateCount);
    }
  });

  it("fires the windows an earlier version listed per timer, then keeps no lists: the windows of a grid are known from a timer's time", () => {
    // A trigger that fires as the default one and does not say its timers are at the window's end: the operator keeps
    // a list of windows per timer, as every version before windows known from the time did.
    const listing: Trigger = Object.assign(Object.create(EventTimeTrigger.prototype) as EventTimeTrigger, { timersAtWindowEnd: undefined });
    for (const lateness of [0, 2_000]) {
      const h = harness({ assigner: SlidingEventTimeWindows.of(3_000, 1_000), allowedLatenessMs: lateness, contents: aggregateContents(count), process: withWindow, lateOutput: true });
      h.restart(listing);
      h.element("a", 1, 500);
      h.element("b", 1, 2_500);
      const lists = () => [...h.state.values()].reduce((n, maps) => n + (maps.get(WINDOW_STATE.eventTimers)?.size ?? 0), 0);
      expect(lists()).toBeGreaterThan(0);
      h.watermark(1_200);
      // Restored with the default trigger: the listed windows still fire and clean up, their lists go, and new
      // windows get none.
      h.restart(undefined);
      h.element("a", 1, 2_000);
      h.element("c", 1, 4_000);
      h.watermark(END_OF_TIME_MS);
      expect(lists()).toBe(0);
      const last = new Map<string, number>();
      for (const e of h.emitted) {
        const v = e.value as { key: string; window: string; count: number };
        last.set(`${v.key}@${v.window}`, v.count);
      }
      expect(Object.fromEntries(last)).toEqual({
        "a@-2000:1000": 1,
        "a@-1000:2000": 1,
        "a@0:3000": 2,
        "a@1000:4000": 1,
        "a@2000:5000": 1,
        "b@0:3000": 1,
        "b@1000:4000": 1,
        "b@2000:5000": 1,
        "c@2000:5000": 1,
        "c@3000:6000": 1,
        "c@4000:7000": 1,
      });
      expect(h.leftovers()).toEqual([]);
    }
  });

  describe("open windows", () => {
    const assigners: [string, () => Parameters<typeof harness<unknown, unknown, unknown>>[0]][] = [
      ["tumbling, allowed lateness", () => ({ assigner: TumblingEventTimeWindows.of(1_000), allowedLatenessMs: 700, contents: aggregateContents(count) as WindowContents<unknown, unknown, unknown>, lateOutput: true })],
      ["sliding", () => ({ assigner: SlidingEventTimeWindows.of(1_000, 250), contents: aggregateContents(count) as WindowContents<unknown, unknown, unknown> })],
      ["sessions", () => ({ assigner: EventTimeSessionWindows.withGap(300), contents: listContents<unknown>() as WindowContents<unknown, unknown, unknown> })],
      ["purging continuous trigger", () => ({ assigner: TumblingEventTimeWindows.of(2_000), trigger: PurgingTrigger.of(ContinuousEventTimeTrigger.of(500)), contents: aggregateContents(count) as WindowContents<unknown, unknown, unknown> })],
      ["global, purging count trigger", () => ({ assigner: GlobalWindows.create(), trigger: PurgingTrigger.of(CountTrigger.of(3)), contents: listContents<unknown>() as WindowContents<unknown, unknown, unknown> })],
    ];
    for (const [name, options] of assigners) {
      it(`${name}: counted from the state on the first read, then kept up to date as windows open, merge, fire and close`, () => {
        for (let run = 0; run < 20; run++) {
          const h = harness(options());
          const recount = () => h.windowsInState();
          const noRecount = () => {
            throw new Error("counted the state again");
          };
          let maxTs = 0;
          let watermark = -Infinity;
          // The first read comes later in each run, as after a restore into state that holds windows already.
          const firstReadAt = Math.floor(Math.random() * 150);
          for (let i = 0; i < 300; i++) {
            const ts = Math.max(0, maxTs + Math.floor(Math.random() * 120) - Math.floor(Math.random() * 400));
            maxTs = Math.max(maxTs, ts);
            h.element(`k${Math.floor(Math.random() * 5)}`, i, ts);
            if (Math.random() < 0.2 && maxTs - 300 > watermark) {
              watermark = maxTs - 300;
              h.watermark(watermark);
            }
            if (i === firstReadAt) expect(h.op.openWindows(recount)).toBe(h.windowsInState());
            if (i > firstReadAt) expect(h.op.openWindows(noRecount)).toBe(h.windowsInState());
          }
          h.watermark(END_OF_TIME_MS);
          expect(h.op.openWindows(noRecount)).toBe(h.windowsInState());
        }
      });
    }

    it("tumbling windows per key: one open per key and window until the watermark passes its end, none after", () => {
      const h = harness({ assigner: TumblingEventTimeWindows.of(60_000), contents: aggregateContents(count) });
      h.element("/a", {}, 1_000);
      h.element("/b", {}, 2_000);
      h.element("/a", {}, 3_000);
      expect(h.op.openWindows(() => h.windowsInState())).toBe(2);
      h.element("/a", {}, 61_000);
      expect(h.op.openWindows(() => 0)).toBe(3);
      h.watermark(59_999);
      expect(h.op.openWindows(() => 0)).toBe(1);
      h.watermark(END_OF_TIME_MS);
      expect(h.op.openWindows(() => 0)).toBe(0);
    });
  });
});
