/**
 * Flink's interval join, as a keyed co-process function: an element `a` of
 * the first stream joins every element `b` of the second with the same key
 * and `a.ts + lower ≤ b.ts ≤ a.ts + upper` (bounds inclusive unless made
 * exclusive). Event time only. Each side's elements wait in keyed map
 * state (one entry per timestamp) until the watermark passes the last time
 * the other side could still join them, when an event-time timer drops
 * them: a left element at `ts` once it passed `ts + upper` (or `ts` when
 * upper < 0), a right element once it passed `ts − lower` (or `ts` when
 * lower > 0). An element whose timestamp is behind the watermark when it
 * arrives is late and dropped, as in Flink; one at the watermark still
 * joins (so cleanup waits until the watermark is past, one ms later than
 * Flink's).
 */
import type { Collector, KeyedCoProcessFunction, KeyedContext, OnTimerContext } from "../api/types.js";
import { mapState } from "../api/state.js";
import type { OutputTag } from "../api/output-tag.js";
import type { Key } from "../graph/key-groups.js";
import { JobDefinitionError } from "../errors.js";

/** What a join function sees for one pair. */
export interface ProcessJoinContext<K extends Key = Key> {
  readonly currentKey: K;
  readonly leftTimestamp: number;
  readonly rightTimestamp: number;
  /** The pair's event time: the larger of the two (the output carries the later-arriving element's, see docs/joins.md). */
  readonly timestamp: number;
  output<X>(tag: OutputTag<X>, value: X): void;
}

/** Flink's ProcessJoinFunction: called once per joined pair. */
export interface ProcessJoinFunction<L, R, O, K extends Key = Key> {
  processElement(left: L, right: R, ctx: ProcessJoinContext<K>, out: Collector<O>): void;
}

/** The bounds of an interval join, in ms relative to the left element's time. */
export interface IntervalBounds {
  readonly lowerMs: number;
  readonly upperMs: number;
  readonly lowerExclusive?: boolean;
  readonly upperExclusive?: boolean;
}

/** Reserved state names of the interval join (a key's buffered elements per side, by timestamp). */
export const JOIN_STATE = { left: "__join.left", right: "__join.right" } as const;

const LEFT = mapState<unknown[]>(JOIN_STATE.left);
const RIGHT = mapState<unknown[]>(JOIN_STATE.right);

/** Checks the bounds when the join is defined; throws naming the operator. */
export function checkBounds(label: string, b: IntervalBounds): void {
  for (const [what, ms] of [
    ["lower bound", b.lowerMs],
    ["upper bound", b.upperMs],
  ] as const) {
    if (!Number.isSafeInteger(ms)) throw new JobDefinitionError(`interval join "${label}": the ${what} must be a whole number of milliseconds, got ${ms}`);
  }
  if (b.lowerMs > b.upperMs) throw new JobDefinitionError(`interval join "${label}": the lower bound (${b.lowerMs} ms) is above the upper bound (${b.upperMs} ms), so nothing would join`);
}

/** The keyed co-process function of an interval join. */
export function intervalJoinFunction<K extends Key, L, R, O>(label: string, bounds: IntervalBounds, join: ProcessJoinFunction<L, R, O, K>): KeyedCoProcessFunction<K, L, R, O> {
  checkBounds(label, bounds);
  const lower = bounds.lowerMs + (bounds.lowerExclusive ? 1 : 0);
  const upper = bounds.upperMs - (bounds.upperExclusive ? 1 : 0);
  /** When a buffered element can join nothing more: the watermark passed every time the other side could have. */
  const leftCleanup = (ts: number) => (upper > 0 ? ts + upper : ts);
  const rightCleanup = (ts: number) => (lower <= 0 ? ts - lower : ts);

  const timestampOf = (ctx: KeyedContext<K>, side: string): number => {
    const ts = ctx.timestamp;
    if (ts === undefined) throw new Error(`interval join "${label}": an element of the ${side} side has no event time; give its source a watermark strategy`);
    return ts;
  };

  const onElement = (value: unknown, ctx: KeyedContext<K>, out: Collector<O>, isLeft: boolean) => {
    const ts = timestampOf(ctx, isLeft ? "left" : "right");
    const watermark = ctx.timerService().currentWatermark();
    // Late: the other side's partners may already be gone (Flink drops it too).
    if (ts < watermark) return;
    const mine = ctx.getMapState(isLeft ? LEFT : RIGHT);
    const field = String(ts);
    const bucket = mine.get(field);
    if (bucket) {
      bucket.push(value);
      mine.put(field, bucket);
    } else mine.put(field, [value]);
    const other = ctx.getMapState(isLeft ? RIGHT : LEFT);
    for (const [otherField, values] of other.entries()) {
      const otherTs = Number(otherField);
      const [leftTs, rightTs] = isLeft ? [ts, otherTs] : [otherTs, ts];
      if (rightTs < leftTs + lower || rightTs > leftTs + upper) continue;
      const pair: ProcessJoinContext<K> = {
        currentKey: ctx.currentKey,
        leftTimestamp: leftTs,
        rightTimestamp: rightTs,
        timestamp: Math.max(leftTs, rightTs),
        output: (tag, v) => ctx.output(tag, v),
      };
      for (const o of values) {
        if (isLeft) join.processElement(value as L, o as R, pair, out);
        else join.processElement(o as L, value as R, pair, out);
      }
    }
    // Dropped once the watermark is past the cleanup time: an element at exactly the watermark is not late, and may still join.
    ctx.timerService().registerEventTimeTimer((isLeft ? leftCleanup(ts) : rightCleanup(ts)) + 1);
  };

  return {
    state: [LEFT, RIGHT],
    processElement1: (value, ctx, out) => onElement(value, ctx, out, true),
    processElement2: (value, ctx, out) => onElement(value, ctx, out, false),
    onTimer(timestampMs: number, ctx: OnTimerContext<K>) {
      for (const [state, cleanup] of [
        [LEFT, leftCleanup],
        [RIGHT, rightCleanup],
      ] as const) {
        const m = ctx.getMapState(state);
        for (const field of m.keys()) if (cleanup(Number(field)) < timestampMs) m.remove(field);
      }
    },
  };
}
