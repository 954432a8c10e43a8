/**
 * Triggers decide when a window's contents are emitted, as Flink's
 * `Trigger`: each element, event-time timer and processing-time timer of a
 * window asks the window's trigger, which answers with a
 * {@link TriggerResult} and may register timers and keep small per-window
 * state through its {@link TriggerContext}.
 *
 * The window operator owns the timers and the state; triggers are pure
 * decisions over that context, so they are tested without a runtime.
 */
import { JobDefinitionError } from "../errors.js";
import { type Window, maxTimestamp } from "./time-window.js";

/** What a trigger asks of the window operator. */
export type TriggerResult = "continue" | "fire" | "purge" | "fire_and_purge";

/** Whether a result emits the window's contents. */
export function fires(r: TriggerResult): boolean {
  return r === "fire" || r === "fire_and_purge";
}

/** Whether a result clears the window's contents. */
export function purges(r: TriggerResult): boolean {
  return r === "purge" || r === "fire_and_purge";
}

/** A trigger's state of one window and key (e.g. a count). */
export interface TriggerState<T> {
  value(): T | undefined;
  update(value: T): void;
  clear(): void;
}

/** The current key's timers (deduplicated per timestamp), and the clocks. */
export interface KeyTimers {
  /** The operator's current input watermark. */
  readonly currentWatermarkMs: number;
  currentProcessingTimeMs(): number;
  registerEventTimeTimer(timeMs: number): void;
  registerProcessingTimeTimer(timeMs: number): void;
  deleteEventTimeTimer(timeMs: number): void;
  deleteProcessingTimeTimer(timeMs: number): void;
}

/** What a trigger may do for the window (and key) it is asked about: its timers, and its state. */
export interface TriggerContext extends KeyTimers {
  /** The trigger's state `name` of this window and key. */
  state<T>(name: string): TriggerState<T>;
}

/** The context of {@link Trigger.onMerge}: also the state of the windows being merged away. */
export interface OnMergeContext extends TriggerContext {
  /** The windows merged into this one (their timers are deleted by the operator's clear). */
  readonly mergedWindows: readonly Window[];
  /** The trigger's state `name` of one of {@link mergedWindows}. */
  stateOf<T>(name: string, window: Window): TriggerState<T>;
}

/** Flink's Trigger. */
export interface Trigger<T = unknown> {
  /** A short description, for the dashboard and messages. */
  readonly description: string;
  onElement(element: T, timestampMs: number | undefined, window: Window, ctx: TriggerContext): TriggerResult;
  onEventTime(timeMs: number, window: Window, ctx: TriggerContext): TriggerResult;
  onProcessingTime(timeMs: number, window: Window, ctx: TriggerContext): TriggerResult;
  /** Whether this trigger supports merging windows (session windows need it). */
  readonly canMerge: boolean;
  /** Windows were merged into `window`: carry state over and register the timers it needs. */
  onMerge(window: Window, ctx: OnMergeContext): void;
  /** The window is purged: delete its timers and state. */
  clear(window: Window, ctx: TriggerContext): void;
  /**
   * Whether `onElement`, for a window that already holds contents and whose
   * last element time the watermark has not reached, does nothing its first
   * element did not already do, and continues. The window operator then
   * skips the call (and the cleanup timer's registration, also done by the
   * first element) for every element after a window's first.
   */
  readonly repeatsFirstElement?: boolean;
  /**
   * Set when the only timers this trigger registers are at its window's
   * last element time, in this domain (Flink's event- and processing-time
   * triggers): a timer's window is then known from its time.
   */
  readonly timersAtWindowEnd?: "event" | "processing";
}

/**
 * Fires once the watermark passes the window's end, and again for each
 * element that arrives within the allowed lateness (Flink's EventTimeTrigger).
 */
export class EventTimeTrigger implements Trigger {
  readonly description = "event time";
  readonly canMerge = true;
  // Each element registers the same timer, at the window's last element time, or fires once the watermark is there.
  readonly repeatsFirstElement = true;
  readonly timersAtWindowEnd = "event";

  onElement(_element: unknown, _timestampMs: number | undefined, window: Window, ctx: TriggerContext): TriggerResult {
    // A late element within the allowed lateness: the window is already complete, so it fires again now.
    if (maxTimestamp(window) <= ctx.currentWatermarkMs) return "fire";
    ctx.registerEventTimeTimer(maxTimestamp(window));
    return "continue";
  }

  onEventTime(timeMs: number, window: Window, _ctx?: TriggerContext): TriggerResult {
    return timeMs === maxTimestamp(window) ? "fire" : "continue";
  }

  onProcessingTime(_timeMs?: number, _window?: Window, _ctx?: TriggerContext): TriggerResult {
    return "continue";
  }

  onMerge(window: Window, ctx: OnMergeContext): void {
    // Only a window the watermark has not passed needs a timer: a passed one would fire at once and then be late.
    if (maxTimestamp(window) > ctx.currentWatermarkMs) ctx.registerEventTimeTimer(maxTimestamp(window));
  }

  clear(window: Window, ctx: TriggerContext): void {
    ctx.deleteEventTimeTimer(maxTimestamp(window));
  }
}

/** Fires when the processing-time clock passes the window's end (Flink's ProcessingTimeTrigger). */
export class ProcessingTimeTrigger implements Trigger {
  readonly description = "processing time";
  readonly canMerge = true;
  // Each element registers the same timer, at the window's end.
  readonly repeatsFirstElement = true;
  readonly timersAtWindowEnd = "processing";

  onElement(_element: unknown, _timestampMs: number | undefined, window: Window, ctx: TriggerContext): TriggerResult {
    ctx.registerProcessingTimeTimer(maxTimestamp(window));
    return "continue";
  }

  onEventTime(_timeMs?: number, _window?: Window, _ctx?: TriggerContext): TriggerResult {
    return "continue";
  }

  onProcessingTime(_timeMs?: number, _window?: Window, _ctx?: TriggerContext): TriggerResult {
    return "fire";
  }

  onMerge(window: Window, ctx: OnMergeContext): void {
    if (maxTimestamp(window) > ctx.currentProcessingTimeMs()) ctx.registerProcessingTimeTimer(maxTimestamp(window));
  }

  clear(window: Window, ctx: TriggerContext): void {
    ctx.deleteProcessingTimeTimer(maxTimestamp(window));
  }
}

const COUNT = "count";

/** Fires each time a window has received `maxCount` elements since it last fired (Flink's CountTrigger). */
export class CountTrigger implements Trigger {
  readonly canMerge = true;

  private constructor(readonly maxCount: number) {}

  /** Fires every `maxCount` elements. */
  static of(maxCount: number): CountTrigger {
    if (!Number.isSafeInteger(maxCount) || maxCount < 1) throw new JobDefinitionError(`count trigger: the count must be a whole number ≥ 1, got ${maxCount}`);
    return new CountTrigger(maxCount);
  }

  get description(): string {
    return `every ${this.maxCount} elements`;
  }

  onElement(_element: unknown, _timestampMs: number | undefined, _window: Window, ctx: TriggerContext): TriggerResult {
    const count = ctx.state<number>(COUNT);
    const n = (count.value() ?? 0) + 1;
    if (n >= this.maxCount) {
      count.clear();
      return "fire";
    }
    count.update(n);
    return "continue";
  }

  onEventTime(): TriggerResult {
    return "continue";
  }

  onProcessingTime(): TriggerResult {
    return "continue";
  }

  onMerge(_window: Window, ctx: OnMergeContext): void {
    let n = ctx.state<number>(COUNT).value() ?? 0;
    for (const w of ctx.mergedWindows) n += ctx.stateOf<number>(COUNT, w).value() ?? 0;
    if (n > 0) ctx.state<number>(COUNT).update(n);
  }

  clear(_window: Window, ctx: TriggerContext): void {
    ctx.state<number>(COUNT).clear();
  }
}

const NEXT_FIRE = "next-fire";

/**
 * Fires early every `intervalMs` of event time while the window is open,
 * and once more at its end (Flink's ContinuousEventTimeTrigger): the sink
 * sees running results that the final one replaces.
 */
export class ContinuousEventTimeTrigger implements Trigger {
  readonly canMerge = true;

  private constructor(readonly intervalMs: number) {}

  /** Fires every `intervalMs` of event time, and at the window's end. */
  static of(intervalMs: number): ContinuousEventTimeTrigger {
    if (!Number.isSafeInteger(intervalMs) || intervalMs < 1) {
      throw new JobDefinitionError(`continuous event-time trigger: the interval must be a whole number of milliseconds ≥ 1, got ${intervalMs}`);
    }
    return new ContinuousEventTimeTrigger(intervalMs);
  }

  get description(): string {
    return `event time, early every ${this.intervalMs} ms`;
  }

  onElement(_element: unknown, timestampMs: number | undefined, window: Window, ctx: TriggerContext): TriggerResult {
    if (maxTimestamp(window) <= ctx.currentWatermarkMs) return "fire";
    ctx.registerEventTimeTimer(maxTimestamp(window));
    const next = ctx.state<number>(NEXT_FIRE);
    if (next.value() === undefined && timestampMs !== undefined) {
      // The first early firing is at the end of the interval this element's time falls into.
      this.registerNextFire(timestampMs - mod(timestampMs, this.intervalMs), window, ctx);
    }
    return "continue";
  }

  onEventTime(timeMs: number, window: Window, ctx: TriggerContext): TriggerResult {
    if (timeMs === maxTimestamp(window)) return "fire";
    const next = ctx.state<number>(NEXT_FIRE);
    if (next.value() === timeMs) {
      next.clear();
      this.registerNextFire(timeMs, window, ctx);
      return "fire";
    }
    return "continue";
  }

  onProcessingTime(): TriggerResult {
    return "continue";
  }

  onMerge(window: Window, ctx: OnMergeContext): void {
    // The earliest pending early firing of the merged windows carries over.
    let next = ctx.state<number>(NEXT_FIRE).value();
    for (const w of ctx.mergedWindows) {
      const t = ctx.stateOf<number>(NEXT_FIRE, w).value();
      if (t !== undefined && (next === undefined || t < next)) next = t;
    }
    if (maxTimestamp(window) > ctx.currentWatermarkMs) ctx.registerEventTimeTimer(maxTimestamp(window));
    if (next !== undefined) {
      ctx.state<number>(NEXT_FIRE).update(next);
      ctx.registerEventTimeTimer(next);
    }
  }

  clear(window: Window, ctx: TriggerContext): void {
    const next = ctx.state<number>(NEXT_FIRE);
    const t = next.value();
    if (t !== undefined) ctx.deleteEventTimeTimer(t);
    next.clear();
    ctx.deleteEventTimeTimer(maxTimestamp(window));
  }

  private registerNextFire(timeMs: number, window: Window, ctx: TriggerContext): void {
    const next = Math.min(timeMs + this.intervalMs, maxTimestamp(window));
    ctx.state<number>(NEXT_FIRE).update(next);
    ctx.registerEventTimeTimer(next);
  }
}

/** Turns every firing of `nested` into a firing that also purges the window (Flink's PurgingTrigger). */
export class PurgingTrigger<T = unknown> implements Trigger<T> {
  private constructor(private readonly nested: Trigger<T>) {}

  static of<T>(nested: Trigger<T>): PurgingTrigger<T> {
    return new PurgingTrigger(nested);
  }

  get description(): string {
    return `${this.nested.description}, purging`;
  }

  get canMerge(): boolean {
    return this.nested.canMerge;
  }

  onElement(element: T, timestampMs: number | undefined, window: Window, ctx: TriggerContext): TriggerResult {
    return purging(this.nested.onElement(element, timestampMs, window, ctx));
  }

  onEventTime(timeMs: number, window: Window, ctx: TriggerContext): TriggerResult {
    return purging(this.nested.onEventTime(timeMs, window, ctx));
  }

  onProcessingTime(timeMs: number, window: Window, ctx: TriggerContext): TriggerResult {
    return purging(this.nested.onProcessingTime(timeMs, window, ctx));
  }

  onMerge(window: Window, ctx: OnMergeContext): void {
    this.nested.onMerge(window, ctx);
  }

  clear(window: Window, ctx: TriggerContext): void {
    this.nested.clear(window, ctx);
  }
}

/** Never fires: the global window's default, which needs a trigger of its own to emit anything. */
export class NeverTrigger implements Trigger {
  readonly description = "never";
  readonly canMerge = true;
  onElement(): TriggerResult {
    return "continue";
  }
  onEventTime(): TriggerResult {
    return "continue";
  }
  onProcessingTime(): TriggerResult {
    return "continue";
  }
  onMerge(): void {}
  clear(): void {}
}

function purging(r: TriggerResult): TriggerResult {
  return fires(r) ? "fire_and_purge" : r;
}

/** `a mod b` for b > 0, never negative (timestamps before the epoch). */
function mod(a: number, b: number): number {
  return ((a % b) + b) % b;
}
