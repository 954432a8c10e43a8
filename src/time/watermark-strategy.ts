/**
 * How a source's records get their event time and how far behind the
 * newest timestamp its watermark trails: Flink's WatermarkStrategy, given
 * per source in its options. The strategy is checked when the job is
 * defined; the runtime builds one {@link SourceWatermarks} per source
 * subtask from it (watermark-generator.ts).
 */
import { JobDefinitionError } from "../errors.js";

/**
 * The end of event time: a bounded input that ended is at it, so every
 * event-time timer and window downstream may fire. Number.MAX_SAFE_INTEGER
 * rather than Infinity, so that it survives JSON (RPC, metrics).
 */
export const END_OF_TIME_MS = Number.MAX_SAFE_INTEGER;

/** Reads a record's event time, in milliseconds since the epoch. */
export type TimestampAssigner<T> = (record: T) => number;

/**
 * A watermark strategy. Immutable: every `with…` returns a new strategy.
 *
 * @example
 * WatermarkStrategy.forBoundedOutOfOrderness<Click>(5000)
 *   .withTimestampAssigner((c) => c.ts)
 *   .withIdleness(60_000)
 */
export class WatermarkStrategy<T> {
  private constructor(
    /** How late a record may be, in event time, after the newest one seen: the watermark is max timestamp − bound − 1. */
    readonly boundMs: number,
    readonly timestampAssigner: TimestampAssigner<T> | undefined,
    /** A partition without records for this long (processing time) stops holding the watermark back; undefined: never. */
    readonly idlenessMs: number | undefined,
  ) {}

  /** Records arrive at most `boundMs` later (in event time) than the newest one before them. */
  static forBoundedOutOfOrderness<T>(boundMs: number): WatermarkStrategy<T> {
    return new WatermarkStrategy<T>(boundMs, undefined, undefined);
  }

  /** Timestamps never decrease within a partition (bound 0). */
  static forMonotonousTimestamps<T>(): WatermarkStrategy<T> {
    return new WatermarkStrategy<T>(0, undefined, undefined);
  }

  /** Where a record's event time comes from. */
  withTimestampAssigner(assigner: TimestampAssigner<T>): WatermarkStrategy<T> {
    return new WatermarkStrategy<T>(this.boundMs, assigner, this.idlenessMs);
  }

  /** A partition without records for `idlenessMs` is idle: it stops holding the watermark back until records arrive again. */
  withIdleness(idlenessMs: number): WatermarkStrategy<T> {
    return new WatermarkStrategy<T>(this.boundMs, this.timestampAssigner, idlenessMs);
  }

  /**
   * Throws a {@link JobDefinitionError} naming `operator` if the strategy
   * cannot run. floe's sources attach no timestamps to their records, so a
   * strategy without an assigner has no event time to read.
   */
  validate(operator: string): void {
    const bad = (what: string) => new JobDefinitionError(`source "${operator}": watermark strategy ${what}`);
    if (!Number.isFinite(this.boundMs) || this.boundMs < 0) throw bad(`needs a finite out-of-orderness bound ≥ 0 ms, got ${this.boundMs}`);
    if (this.idlenessMs !== undefined && (!Number.isFinite(this.idlenessMs) || this.idlenessMs <= 0)) {
      throw bad(`needs a finite idleness timeout > 0 ms, got ${this.idlenessMs}`);
    }
    if (typeof this.timestampAssigner !== "function") {
      throw bad("needs a timestamp assigner (withTimestampAssigner): the source's records carry no timestamp");
    }
  }
}
