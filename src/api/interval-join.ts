/**
 * `a.keyBy(fa).intervalJoin(b.keyBy(fb)).between(lowerMs, upperMs).process(fn)`:
 * Flink's interval join of two keyed streams on event time. It becomes a
 * keyed co-process operator (src/join/interval-join.ts), so its buffered
 * elements and cleanup timers are keyed state like any other.
 *
 * @example
 * impressions.keyBy((i) => i.adId)
 *   .intervalJoin(clicks.keyBy((c) => c.adId))
 *   .between(0, 600_000)                                  // a click within 10 minutes after the impression
 *   .process({ processElement: (imp, click, ctx, out) => out.collect({ adId: ctx.currentKey, delayMs: ctx.rightTimestamp - ctx.leftTimestamp }) }, { uid: "attributed" })
 */
import type { Key } from "../graph/key-groups.js";
import { type IntervalBounds, type ProcessJoinFunction, checkBounds, intervalJoinFunction } from "../join/interval-join.js";
import type { KeyedCoProcessFunction, OperatorOptions } from "./types.js";
import type { DataStream } from "./job.js";

/** Builds the join's operator: a keyed co-process node over both sides that needs event time. */
export type CoProcessBuilder = <O>(fn: KeyedCoProcessFunction<any, any, any, O>, options: OperatorOptions, needsEventTime: string) => DataStream<O>;

/** Two keyed streams to join by time: give the interval with {@link IntervalJoin.between}. */
export class IntervalJoin<K extends Key, L, R> {
  constructor(private readonly build: CoProcessBuilder) {}

  /** Joins `a` with every `b` of its key whose time is in `[a.ts + lowerMs, a.ts + upperMs]`. */
  between(lowerMs: number, upperMs: number): IntervalJoined<K, L, R> {
    return new IntervalJoined<K, L, R>(this.build, { lowerMs, upperMs });
  }
}

/** An interval join with its bounds; `process` gives it its join function. */
export class IntervalJoined<K extends Key, L, R> {
  constructor(
    private readonly build: CoProcessBuilder,
    private bounds: IntervalBounds,
  ) {
    checkBounds("interval join", bounds);
  }

  /** The lower bound does not join: `b.ts > a.ts + lowerMs`. */
  lowerBoundExclusive(): this {
    this.bounds = { ...this.bounds, lowerExclusive: true };
    return this;
  }

  /** The upper bound does not join: `b.ts < a.ts + upperMs`. */
  upperBoundExclusive(): this {
    this.bounds = { ...this.bounds, upperExclusive: true };
    return this;
  }

  /** Calls `fn` once per joined pair. */
  process<O>(fn: ProcessJoinFunction<L, R, O, K>, options: OperatorOptions = {}): DataStream<O> {
    const label = options.name ?? options.uid ?? "interval join";
    const b = this.bounds;
    const description = `interval join between ${b.lowerMs} and ${b.upperMs} ms`;
    return this.build(intervalJoinFunction<K, L, R, O>(label, b, fn), options, description);
  }
}
