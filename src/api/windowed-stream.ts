/**
 * `keyBy(…).window(assigner)`: Flink's WindowedStream. A window is built
 * from an assigner, an optional trigger and allowed lateness, and one
 * window function; it becomes a keyed process operator (see
 * src/window/window-process-function.ts), so its state, timers,
 * checkpoints and rescaling are those of any keyed operator.
 *
 * @example
 * stream.keyBy((v) => v.url)
 *   .window(TumblingEventTimeWindows.of(60_000))
 *   .aggregate(countViews, perMinute, { uid: "views-per-minute" })
 */
import type { Key } from "../graph/key-groups.js";
import type { WindowAssigner } from "../window/assigners.js";
import type { Trigger } from "../window/triggers.js";
import { type AggregateFunction, type ProcessWindowFunction, aggregateContents, listContents, reduceContents, type WindowContents } from "../window/window-functions.js";
import { windowProcessFunction } from "../window/window-process-function.js";
import type { DataStream, KeyedStream } from "./job.js";
import type { OperatorOptions } from "./types.js";
import { OutputTag } from "./output-tag.js";
import { JobDefinitionError } from "../errors.js";

export class WindowedStream<K extends Key, T> {
  private triggerOf: Trigger<T> | undefined;
  private latenessMs = 0;
  private lateTag: OutputTag<T> | undefined;

  constructor(
    private readonly keyed: KeyedStream<K, T>,
    private readonly assigner: WindowAssigner,
  ) {}

  /** Replaces the assigner's default trigger. */
  trigger(trigger: Trigger<T>): this {
    this.triggerOf = trigger;
    return this;
  }

  /** Elements up to `ms` late (event time) still update their window, which fires again. */
  allowedLateness(ms: number): this {
    this.latenessMs = ms;
    return this;
  }

  /**
   * Elements too late for every window they belong to (event time, past
   * the window's end plus the allowed lateness) go to side output `tag`
   * instead of being dropped; read them with `getSideOutput(tag)` on the
   * window's result stream. Each element is either in its windows' results
   * or in this output, never both.
   */
  sideOutputLateData(tag: OutputTag<T>): this {
    if (!(tag instanceof OutputTag)) throw new JobDefinitionError("sideOutputLateData() needs an OutputTag");
    this.lateTag = tag;
    return this;
  }

  reduce<O = T>(reduce: (a: T, b: T) => T, process?: ProcessWindowFunction<T, O, K>, options: OperatorOptions = {}): DataStream<O> {
    return this.build(reduceContents(reduce), process, options);
  }

  aggregate<ACC, R, O = R>(f: AggregateFunction<T, ACC, R>, process?: ProcessWindowFunction<R, O, K>, options: OperatorOptions = {}): DataStream<O> {
    return this.build(aggregateContents(f), process, options);
  }

  process<O>(process: ProcessWindowFunction<T, O, K>, options: OperatorOptions = {}): DataStream<O> {
    return this.build(listContents<T>(), process, options);
  }

  private build<ACC, R, O>(contents: WindowContents<T, ACC, R>, process: ProcessWindowFunction<R, O, K> | undefined, options: OperatorOptions): DataStream<O> {
    const label = `window "${options.name ?? options.uid ?? "window"}"`;
    const tag = this.lateTag;
    const fn = windowProcessFunction<K, T, ACC, R, O>(
      { label, assigner: this.assigner, trigger: this.triggerOf, allowedLatenessMs: this.latenessMs, contents, process },
      tag === undefined ? undefined : (ctx, value) => ctx.output(tag, value),
    );
    const needsEventTime = this.assigner.timeDomain === "event" ? this.assigner.description : undefined;
    return this.keyed.processWith(fn, options, needsEventTime === undefined ? {} : { needsEventTime });
  }
}
