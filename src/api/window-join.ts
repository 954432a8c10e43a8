/**
 * `a.join(b).where(fa).equalTo(fb).window(assigner).apply(fn)`: Flink's
 * window join. Elements of both sides with one key in one window are
 * joined pairwise when the window fires. As in Flink, it is built from
 * parts that exist: each side is tagged, the two are unioned, keyed by
 * their side's key, and windowed; the window's function takes the cross
 * product of its two sides. So its state, timers, lateness and
 * checkpoints are a window's (docs/windows.md).
 *
 * @example
 * orders.join(payments)
 *   .where((o) => o.orderId).equalTo((p) => p.orderId)
 *   .window(TumblingEventTimeWindows.of(60_000))
 *   .apply((order, payment) => ({ ...order, paidAt: payment.ts }), { uid: "paid-orders" })
 */
import type { Key } from "../graph/key-groups.js";
import type { WindowAssigner } from "../window/assigners.js";
import type { Trigger } from "../window/triggers.js";
import type { ProcessWindowContext } from "../window/window-functions.js";
import type { DataStream, JobDefinition } from "./job.js";
import type { OperatorOptions } from "./types.js";

/** One side's element as the window holds it: which side, and the element. */
interface Tagged {
  readonly side: 1 | 2;
  readonly value: unknown;
}

/** Flink's JoinFunction: one output per joined pair. */
export type JoinFunction<A, B, O> = (first: A, second: B, ctx: ProcessWindowContext) => O;

/** `a.join(b)`: give the first side's key with {@link JoinedStreams.where}. */
export class JoinedStreams<A, B> {
  constructor(
    private readonly job: JobDefinition,
    private readonly first: DataStream<A>,
    private readonly second: DataStream<B>,
  ) {}

  where<K extends Key>(firstKey: (value: A) => K): { equalTo(secondKey: (value: B) => K): { window(assigner: WindowAssigner): WindowedJoin<K, A, B> } } {
    return {
      equalTo: (secondKey) => ({
        window: (assigner) => new WindowedJoin<K, A, B>(this.job, this.first, this.second, firstKey, secondKey, assigner),
      }),
    };
  }
}

/** A window join with its assigner; `apply` gives the join function. */
export class WindowedJoin<K extends Key, A, B> {
  private triggerOf: Trigger | undefined;
  private latenessMs = 0;

  constructor(
    private readonly job: JobDefinition,
    private readonly first: DataStream<A>,
    private readonly second: DataStream<B>,
    private readonly firstKey: (value: A) => K,
    private readonly secondKey: (value: B) => K,
    private readonly assigner: WindowAssigner,
  ) {}

  /** Replaces the assigner's default trigger. */
  trigger(trigger: Trigger): this {
    this.triggerOf = trigger;
    return this;
  }

  /** Elements up to `ms` late still join, and the window fires again with the pairs they make. */
  allowedLateness(ms: number): this {
    this.latenessMs = ms;
    return this;
  }

  /** Calls `fn` for every pair of one key and window, one of each side, when the window fires. */
  apply<O>(fn: JoinFunction<A, B, O>, options: OperatorOptions = {}): DataStream<O> {
    const { firstKey, secondKey } = this;
    const tagged = this.job.union<Tagged>(
      this.first.map((value): Tagged => ({ side: 1, value })),
      this.second.map((value): Tagged => ({ side: 2, value })),
    );
    let windowed = tagged.keyBy((t) => (t.side === 1 ? firstKey(t.value as A) : secondKey(t.value as B))).window(this.assigner);
    if (this.triggerOf) windowed = windowed.trigger(this.triggerOf as Trigger<Tagged>);
    if (this.latenessMs !== 0) windowed = windowed.allowedLateness(this.latenessMs);
    return windowed.process<O>(
      {
        process(_key, ctx, elements, out) {
          for (const l of elements) {
            if (l.side !== 1) continue;
            for (const r of elements) if (r.side === 2) out.collect(fn(l.value as A, r.value as B, ctx));
          }
        },
      },
      options,
    );
  }
}
