/**
 * Window assigners put each element into zero or more windows, as Flink's
 * `WindowAssigner`s: tumbling, sliding and session windows, each on event
 * time or on processing time, and the global window.
 *
 * @example
 * TumblingEventTimeWindows.of(60_000)            // one-minute windows
 * TumblingEventTimeWindows.of(86_400_000, -3_600_000)  // days in UTC+1
 * SlidingEventTimeWindows.of(600_000, 60_000)    // ten minutes, every minute
 * EventTimeSessionWindows.withGap(30_000)        // sessions closed by 30 s of quiet
 * GlobalWindows.create()                         // give it a trigger, e.g. CountTrigger.of(100)
 */
import { JobDefinitionError } from "../errors.js";
import { GLOBAL_WINDOW, type TimeWindow, type Window, type WindowMerge, mergeWindows, timeWindow, windowStart } from "./time-window.js";
import { EventTimeTrigger, NeverTrigger, ProcessingTimeTrigger, type Trigger } from "./triggers.js";

/** Which clock a window follows. */
export type TimeDomain = "event" | "processing";

/** Flink's WindowAssigner. */
export interface WindowAssigner {
  /** A short description, for the dashboard and messages. */
  readonly description: string;
  /** Event-time windows need each element's timestamp; processing-time windows use the clock. */
  readonly timeDomain: TimeDomain;
  /** Whether windows merge (session windows): the operator then keeps a merging window set per key. */
  readonly merging: boolean;
  /**
   * The windows of an element with event time `timestampMs` (undefined when
   * the element has none) arriving at `processingTimeMs`.
   */
  assign(timestampMs: number | undefined, processingTimeMs: number): readonly Window[];
  /** Merges of the given windows, for merging assigners (none for the others). */
  mergeWindows(windows: readonly TimeWindow[]): WindowMerge[];
  /** The trigger used when the job gives none. */
  defaultTrigger(): Trigger;
  /**
   * The one window this assigner makes that ends at `endMs`, if any: for
   * windows on a grid (tumbling, sliding), whose window a timer's time
   * tells, so that the operator keeps no list of windows per timer.
   */
  windowEndingAt?(endMs: number): TimeWindow | undefined;
}

/** Windows of a fixed size on a grid (tumbling, sliding): they never merge, and fire at their end in their time domain. */
abstract class AlignedWindows implements WindowAssigner {
  readonly merging = false;
  abstract readonly timeDomain: TimeDomain;
  abstract readonly description: string;
  abstract readonly sizeMs: number;
  abstract readonly offsetMs: number;
  /** The grid windows start on: every size (tumbling), every slide (sliding). */
  protected abstract readonly gridMs: number;
  abstract assign(timestampMs: number | undefined, processingTimeMs: number): readonly Window[];

  /**
   * The windows last assigned, frozen: consecutive elements mostly fall in
   * the same windows, and are given the same array and objects instead of
   * new ones per element.
   */
  private last: readonly Window[] = [];
  private lastFirstStart = Number.NaN;

  /** The `count` windows starting at `firstStart`, `firstStart − gridMs`, …, each `sizeMs` long. */
  protected windowsFrom(firstStart: number, count: number): readonly Window[] {
    if (firstStart === this.lastFirstStart && count === this.last.length) return this.last;
    const windows: Window[] = [];
    for (let i = 0, start = firstStart; i < count; i++, start -= this.gridMs) windows.push(Object.freeze(timeWindow(start, start + this.sizeMs)));
    this.lastFirstStart = firstStart;
    this.last = Object.freeze(windows);
    return this.last;
  }

  windowEndingAt(endMs: number): TimeWindow | undefined {
    const start = endMs - this.sizeMs;
    return windowStart(start, this.offsetMs, this.gridMs) === start ? timeWindow(start, endMs) : undefined;
  }

  mergeWindows(): WindowMerge[] {
    return [];
  }

  defaultTrigger(): Trigger {
    return defaultTriggerOf(this.timeDomain);
  }
}

/** Fixed-size, non-overlapping windows, aligned to the epoch plus an offset. */
class TumblingWindows extends AlignedWindows {
  constructor(
    readonly sizeMs: number,
    readonly offsetMs: number,
    readonly timeDomain: TimeDomain,
  ) {
    super();
    wholePositive(`tumbling ${timeDomain}-time windows: the size`, sizeMs);
    offset(`tumbling ${timeDomain}-time windows`, offsetMs, sizeMs);
  }

  protected get gridMs(): number {
    return this.sizeMs;
  }

  get description(): string {
    return `tumbling ${this.timeDomain}-time windows of ${this.sizeMs} ms${this.offsetMs ? `, offset ${this.offsetMs} ms` : ""}`;
  }

  assign(timestampMs: number | undefined, processingTimeMs: number): readonly Window[] {
    const t = timeOf(this, timestampMs, processingTimeMs);
    return this.windowsFrom(windowStart(t, this.offsetMs, this.sizeMs), 1);
  }

}

/** Fixed-size windows that start every `slideMs`, so that an element is in `sizeMs / slideMs` of them. */
class SlidingWindows extends AlignedWindows {
  constructor(
    readonly sizeMs: number,
    readonly slideMs: number,
    readonly offsetMs: number,
    readonly timeDomain: TimeDomain,
  ) {
    super();
    const what = `sliding ${timeDomain}-time windows`;
    wholePositive(`${what}: the size`, sizeMs);
    wholePositive(`${what}: the slide`, slideMs);
    offset(what, offsetMs, slideMs);
    if (slideMs > sizeMs) {
      throw new JobDefinitionError(`${what}: the slide (${slideMs} ms) is larger than the size (${sizeMs} ms), so elements between two windows would be in none; use a slide ≤ the size (equal: tumbling windows)`);
    }
    // Each element would be copied into size / slide windows: beyond a few thousand that is a mistake, not a job.
    if (sizeMs / slideMs > MAX_WINDOWS_PER_ELEMENT) {
      throw new JobDefinitionError(`${what}: a size of ${sizeMs} ms with a slide of ${slideMs} ms puts each element in ${Math.ceil(sizeMs / slideMs)} windows (at most ${MAX_WINDOWS_PER_ELEMENT})`);
    }
  }

  protected get gridMs(): number {
    return this.slideMs;
  }

  get description(): string {
    return `sliding ${this.timeDomain}-time windows of ${this.sizeMs} ms every ${this.slideMs} ms${this.offsetMs ? `, offset ${this.offsetMs} ms` : ""}`;
  }

  assign(timestampMs: number | undefined, processingTimeMs: number): readonly Window[] {
    const t = timeOf(this, timestampMs, processingTimeMs);
    const first = windowStart(t, this.offsetMs, this.slideMs);
    let count = 0;
    for (let start = first; start > t - this.sizeMs; start -= this.slideMs) count++;
    return this.windowsFrom(first, count);
  }

}

/** Windows that grow while elements keep coming within `gapMs` of each other, and merge when one bridges two. */
class SessionWindows implements WindowAssigner {
  readonly merging = true;

  constructor(
    readonly gapMs: number,
    readonly timeDomain: TimeDomain,
  ) {
    wholePositive(`${timeDomain}-time session windows: the gap`, gapMs);
  }

  get description(): string {
    return `${this.timeDomain}-time session windows with a gap of ${this.gapMs} ms`;
  }

  assign(timestampMs: number | undefined, processingTimeMs: number): readonly Window[] {
    const t = timeOf(this, timestampMs, processingTimeMs);
    return [timeWindow(t, t + this.gapMs)];
  }

  mergeWindows(windows: readonly TimeWindow[]): WindowMerge[] {
    return mergeWindows(windows);
  }

  defaultTrigger(): Trigger {
    return defaultTriggerOf(this.timeDomain);
  }
}

/** Every element in one window per key, which only a trigger of its own (e.g. a count) ever fires. */
class GlobalWindowAssigner implements WindowAssigner {
  readonly description = "global window";
  // Its default trigger never fires, and purging happens only by trigger: no timer is ever involved.
  readonly timeDomain: TimeDomain = "processing";
  readonly merging = false;

  assign(): Window[] {
    return [GLOBAL_WINDOW];
  }

  mergeWindows(): WindowMerge[] {
    return [];
  }

  defaultTrigger(): Trigger {
    return new NeverTrigger();
  }
}

/** Windows one element may be assigned to at most (sliding windows). */
export const MAX_WINDOWS_PER_ELEMENT = 1000;

/** Tumbling windows on event time. */
export const TumblingEventTimeWindows = {
  of: (sizeMs: number, offsetMs = 0): WindowAssigner => new TumblingWindows(sizeMs, offsetMs, "event"),
};

/** Tumbling windows on processing time. */
export const TumblingProcessingTimeWindows = {
  of: (sizeMs: number, offsetMs = 0): WindowAssigner => new TumblingWindows(sizeMs, offsetMs, "processing"),
};

/** Sliding windows on event time. */
export const SlidingEventTimeWindows = {
  of: (sizeMs: number, slideMs: number, offsetMs = 0): WindowAssigner => new SlidingWindows(sizeMs, slideMs, offsetMs, "event"),
};

/** Sliding windows on processing time. */
export const SlidingProcessingTimeWindows = {
  of: (sizeMs: number, slideMs: number, offsetMs = 0): WindowAssigner => new SlidingWindows(sizeMs, slideMs, offsetMs, "processing"),
};

/** Session windows on event time. */
export const EventTimeSessionWindows = {
  withGap: (gapMs: number): WindowAssigner => new SessionWindows(gapMs, "event"),
};

/** Session windows on processing time. */
export const ProcessingTimeSessionWindows = {
  withGap: (gapMs: number): WindowAssigner => new SessionWindows(gapMs, "processing"),
};

/** The global window. */
export const GlobalWindows = {
  create: (): WindowAssigner => new GlobalWindowAssigner(),
};

/** The time an element is windowed by: its timestamp (event time, required) or the clock. */
function timeOf(a: WindowAssigner, timestampMs: number | undefined, processingTimeMs: number): number {
  if (a.timeDomain === "processing") return processingTimeMs;
  if (timestampMs === undefined || !Number.isFinite(timestampMs)) {
    throw new Error(
      `${a.description}: an element has no event time; give its source a watermark strategy with a timestamp assigner, or use processing-time windows`,
    );
  }
  return timestampMs;
}

function defaultTriggerOf(domain: TimeDomain): Trigger {
  return domain === "event" ? new EventTimeTrigger() : new ProcessingTimeTrigger();
}

function wholePositive(what: string, ms: number): void {
  if (!Number.isSafeInteger(ms) || ms <= 0) throw new JobDefinitionError(`${what} must be a whole number of milliseconds > 0, got ${ms}`);
}

function offset(what: string, offsetMs: number, periodMs: number): void {
  if (!Number.isSafeInteger(offsetMs) || Math.abs(offsetMs) >= periodMs) {
    throw new JobDefinitionError(`${what}: the offset must be a whole number of milliseconds with |offset| < ${periodMs}, got ${offsetMs}`);
  }
}
