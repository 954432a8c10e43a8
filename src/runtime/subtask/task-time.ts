/**
 * A task's time: its watermarks in and out, and the firing of its timers.
 *
 * A source with a watermark strategy runs one generator per partition it
 * reads ({@link SourceWatermarks}) and sends the combined watermark when it
 * advanced; any other subtask combines its channels' watermarks in a
 * {@link WatermarkValve} and forwards the result when it advanced. Event-time
 * timers fire when the input watermark advanced, before that watermark goes
 * on, so a timer's output is never late downstream. Processing-time timers
 * fire in the task's loop: it waits for the earliest one on the clock and
 * asks the object's alarm to ring then, so an evicted object wakes for it.
 *
 * Everything here runs in the task's loop; nothing fires on its own.
 */
import type { WatermarkStrategy } from "../../time/watermark-strategy.js";
import { NO_WATERMARK, SourceWatermarks, type WatermarkStatus } from "../../time/watermark-generator.js";
import { END_OF_TIME_MS } from "../../time/watermark-strategy.js";
import { WatermarkValve } from "../../time/watermark-valve.js";
import type { OperatorChain } from "../operator-chain.js";
import type { RecordWriter } from "../record-writer.js";
import type { SinkCommitter } from "./sink-committer.js";

/** What the time of a task needs around it. */
export interface TaskTimeParts {
  readonly chain: OperatorChain;
  readonly writer: RecordWriter;
  readonly sinks: SinkCommitter;
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  /** Asks the object's alarm to ring at `atMs` (absent: the host has no alarm for timers). */
  readonly timerAlarm?: (atMs: number) => void;
  /** The input channels (none at a source). */
  readonly channels: readonly string[];
  /** At a source with a watermark strategy: the strategy, the partitions its reader owns, and the operator's name. */
  readonly source?: { readonly strategy: WatermarkStrategy<unknown>; readonly partitions: readonly string[]; readonly label: string };
  readonly isSource: boolean;
  /**
   * The watermark of the checkpoint restored. A keyed subtask's input
   * watermark starts there, not at none, so that records replayed after
   * the restore are late exactly when they were before it; it is not sent
   * on: downstream subtasks restore their own. A source's goes out before
   * its first batch (`Task.runSource`).
   */
  readonly restoredWatermarkMs?: number;
  /**
   * Called when processing-time timers are due, before they fire, and
   * waited for (a lazy restore's state must be in). Event-time timers need
   * none: the input loop waits before it takes the watermark or end of
   * input that fires them (Task.restoreWait).
   */
  readonly beforeProcessingTimers?: () => Promise<void>;
  /**
   * Called between two slices of timers ({@link FIRE_SLICE_TIMERS}), after
   * their output went out: the state may flush what their firing changed.
   */
  readonly betweenTimerSlices?: () => Promise<void>;
  /** Timers in a slice, instead of {@link FIRE_SLICE_TIMERS} (the simulator's smaller slices). */
  readonly fireSliceTimers?: number;
}

/**
 * Timers (of either time domain) fired at most in one go. A window's end over many keys
 * fires as many windows at once (600,000 for a sliding window over
 * 1,000,000 keys); their output goes out, and the state may flush, after
 * each slice, so that neither the output buffered nor the state's changes
 * grow with the number of windows. A slice is large enough for the timers
 * of one time to be read from the image in its order (time-index.ts).
 */
export const FIRE_SLICE_TIMERS = 65_536;

/** The watermark fields of a task's metrics. */
export interface TimeMetrics {
  inputWatermarkMs: number | null;
  outputWatermarkMs: number | null;
  watermarkIdle: boolean;
  timersPending: number;
}

/** Watermarks and timers of one task. */
export class TaskTime {
  /** A source's watermarks, when the source has a strategy. */
  private readonly sourceWatermarks: SourceWatermarks | undefined;
  /** The input channels' watermarks and idleness. */
  private readonly valve: WatermarkValve;
  /**
   * The restored watermark: the input watermark is never below it. Kept
   * beside the valve rather than in it, because every channel starts below
   * it and the valve would take them for channels back from idleness.
   */
  private readonly floorMs: number;
  /** What this subtask last sent downstream. */
  private outputWatermark: WatermarkStatus = { watermarkMs: NO_WATERMARK, idle: false };
  /** The loop's wait for the earliest processing-time timer, if it waits for one. */
  private timerWait: { atMs: number; promise: Promise<void>; resolve: () => void } | undefined;
  /** The time the object's alarm was last asked to ring for a timer. */
  private timerAlarmMs: number | undefined;

  constructor(private readonly p: TaskTimeParts) {
    this.valve = new WatermarkValve(p.channels);
    this.floorMs = p.isSource ? NO_WATERMARK : (p.restoredWatermarkMs ?? NO_WATERMARK);
    // Every partition the reader owns holds the watermark back until it has records or is idle (Flink's per-split outputs).
    if (p.source) this.sourceWatermarks = new SourceWatermarks(p.source.strategy, p.source.partitions, p.now, p.source.label, p.restoredWatermarkMs);
  }

  /** The subtask's event time: a source's own watermark, else its input watermark; NO_WATERMARK before it has one. */
  get currentWatermarkMs(): number {
    return this.p.isSource ? this.outputWatermark.watermarkMs : this.inputWatermark().watermarkMs;
  }

  /**
   * The watermark a checkpoint keeps. A source's covers every record it
   * read before the barrier, its watermark sent or not: an unaligned
   * barrier overtakes the batch a source waits to send (in-flight data),
   * and the watermark after that batch, not sent yet, is what went out
   * before the records read next. A restored source sends it before its
   * first read (`Task.runSource`). Any other subtask's is its input watermark.
   */
  get checkpointWatermarkMs(): number {
    return this.sourceWatermarks ? this.sourceWatermarks.current().watermarkMs : this.currentWatermarkMs;
  }

  /** The valve's output, not below the restored watermark. */
  private inputWatermark(): WatermarkStatus {
    const status = this.valve.output;
    return status.watermarkMs < this.floorMs ? { ...status, watermarkMs: this.floorMs } : status;
  }

  /** A source read a batch: the records' event times (read before user code runs, which could change them), if it has a strategy. */
  onSourceBatch(partition: string, records: unknown[]): number[] | undefined {
    return this.sourceWatermarks?.onBatch(partition, records);
  }

  /** A source's input ended: its watermark goes to the end of time. */
  async onSourceEnd(): Promise<void> {
    this.sourceWatermarks?.endOfInput();
    await this.emitSourceWatermark();
  }

  /** Sends the source's watermark downstream when it advanced or its idleness changed. */
  async emitSourceWatermark(): Promise<void> {
    const next = this.sourceWatermarks?.poll();
    if (next) await this.emitWatermark(next);
  }

  /**
   * stop --drain: the end of time goes out now, ahead of the final
   * savepoint's barrier, after firing this subtask's event-time timers.
   */
  async drain(): Promise<void> {
    await this.advance({ watermarkMs: END_OF_TIME_MS, idle: false });
  }

  /** A channel's watermark message. */
  async onWatermark(channel: string, watermarkMs: number | null, idle: boolean): Promise<void> {
    if (this.valve.onWatermark(channel, watermarkMs ?? NO_WATERMARK, idle)) await this.advanceInput();
  }

  /** A channel ended: it is at the end of time. When all have, every event-time timer fires, before the final checkpoint. */
  async onChannelEnded(channel: string): Promise<void> {
    if (this.valve.onEndOfInput(channel)) await this.advanceInput();
  }

  /** The valve's output changed: goes on when the input watermark (not below the restored one) did. */
  private async advanceInput(): Promise<void> {
    const next = this.inputWatermark();
    if (next.watermarkMs > this.outputWatermark.watermarkMs || next.idle !== this.outputWatermark.idle) await this.advance(next);
  }

  /**
   * Fires the event-time timers the watermark reached, sends their output,
   * then the watermark: a timer's output precedes the watermark that fired
   * it, so it is never late downstream.
   */
  private async advance(status: WatermarkStatus): Promise<void> {
    const slice = this.p.fireSliceTimers ?? FIRE_SLICE_TIMERS;
    let fired = 0;
    for (;;) {
      const n = this.p.chain.fireEventTimers(status.watermarkMs, slice);
      fired += n;
      if (n < slice) break;
      // Maybe more due: what this slice emitted goes out first (credits bound it), and the state may flush.
      await this.p.writer.flush();
      await this.p.sinks.flushIfDue();
      await this.p.betweenTimerSlices?.();
    }
    if (fired > 0) await this.p.sinks.flushIfDue();
    await this.emitWatermark(status);
  }

  /** Sends a watermark and idleness downstream, on every channel. */
  private async emitWatermark(status: WatermarkStatus): Promise<void> {
    this.outputWatermark = status;
    await this.p.writer.broadcastWatermark(wireWatermark(status.watermarkMs), status.idle);
  }

  /** Whether a processing-time timer is pending. */
  hasProcessingTimers(): boolean {
    return this.p.chain.nextProcessingTimerMs() !== undefined;
  }

  /**
   * Fires the processing-time timers that are due, a slice at most
   * ({@link FIRE_SLICE_TIMERS}), and sends what they emitted; resolves
   * whether any fired (the loop then asks again before it takes input).
   */
  async fireProcessingTimers(): Promise<boolean> {
    const next = this.p.chain.nextProcessingTimerMs();
    if (next === undefined || next > this.p.now()) return false;
    await this.p.beforeProcessingTimers?.();
    const slice = this.p.fireSliceTimers ?? FIRE_SLICE_TIMERS;
    const fired = this.p.chain.fireProcessingTimers(this.p.now(), slice);
    await this.p.writer.flush();
    await this.p.sinks.flushIfDue();
    // More may be due: the loop comes back for them before it takes any input, the state let flush first.
    if (fired >= slice) await this.p.betweenTimerSlices?.();
    return true;
  }

  /**
   * Resolves once the earliest processing-time timer is due (at the latest
   * at its time, or when the alarm rings), and asks for the alarm then: one
   * wait per timer time, not one per idle turn. Undefined without timers.
   */
  nextTimerDue(): Promise<void> | undefined {
    const atMs = this.p.chain.nextProcessingTimerMs();
    if (atMs === undefined) return undefined;
    if (this.timerAlarmMs !== atMs) {
      this.timerAlarmMs = atMs;
      this.p.timerAlarm?.(atMs);
    }
    const current = this.timerWait;
    if (current && current.atMs <= atMs) return current.promise;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    const w = { atMs, promise, resolve };
    this.timerWait = w;
    void this.p.sleep(Math.max(0, atMs - this.p.now())).then(() => {
      if (this.timerWait === w) this.timerWait = undefined;
      resolve();
    });
    return promise;
  }

  /** The object's alarm rang: the loop's wait for a timer ends, and it fires what is due. */
  onAlarm(): void {
    this.timerAlarmMs = undefined;
    const w = this.timerWait;
    this.timerWait = undefined;
    w?.resolve();
  }

  metrics(): TimeMetrics {
    return {
      inputWatermarkMs: this.p.isSource ? null : wireWatermark(this.inputWatermark().watermarkMs),
      outputWatermarkMs: wireWatermark(this.outputWatermark.watermarkMs),
      watermarkIdle: this.p.isSource ? this.outputWatermark.idle : this.inputWatermark().idle,
      timersPending: this.p.chain.timerCount(),
    };
  }
}

/** A watermark as it travels and shows in metrics: null for none yet. */
function wireWatermark(watermarkMs: number): number | null {
  return watermarkMs === NO_WATERMARK ? null : watermarkMs;
}
