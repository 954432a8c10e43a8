/**
 * The watermarks of one source subtask (Flink's per-split
 * WatermarkGenerator under a WatermarkOutputMultiplexer): one bounded
 * out-of-orderness generator per source partition the subtask reads, fed
 * the timestamps of that partition's records, combined as the minimum over
 * the partitions that are not idle. The output never goes backwards.
 */
import { RejectedRecord, errorText } from "../api/dead-letter.js";
import { END_OF_TIME_MS, type WatermarkStrategy } from "./watermark-strategy.js";

/** No watermark yet (Flink's Long.MIN_VALUE): below every timestamp. */
export const NO_WATERMARK = Number.NEGATIVE_INFINITY;

/** What a subtask tells its downstream: its watermark (NO_WATERMARK: none yet) and whether it is idle. */
export interface WatermarkStatus {
  readonly watermarkMs: number;
  readonly idle: boolean;
}

/**
 * Flink's BoundedOutOfOrdernessWatermarks: the watermark is the largest
 * timestamp seen − bound − 1 (a record at exactly the bound is not late).
 */
export class BoundedOutOfOrdernessGenerator {
  private maxTimestampMs = NO_WATERMARK;

  constructor(private readonly boundMs: number) {}

  onTimestamp(timestampMs: number): void {
    if (timestampMs > this.maxTimestampMs) this.maxTimestampMs = timestampMs;
  }

  /** The current watermark; NO_WATERMARK before the first record. */
  get watermarkMs(): number {
    return this.maxTimestampMs === NO_WATERMARK ? NO_WATERMARK : this.maxTimestampMs - this.boundMs - 1;
  }
}

interface PartitionState {
  readonly generator: BoundedOutOfOrdernessGenerator;
  /** When a record of this partition last came (on the injected clock). */
  lastActiveMs: number;
}

/** The combined watermark of the partitions one source subtask reads. */
export class SourceWatermarks<T = unknown> {
  private readonly partitions = new Map<string, PartitionState>();
  private readonly assigner: (record: T) => number;
  private ended = false;
  /** What was last announced downstream ({@link poll}). */
  private announced: WatermarkStatus = { watermarkMs: NO_WATERMARK, idle: false };

  constructor(
    private readonly strategy: WatermarkStrategy<T>,
    /** The partitions this subtask reads: each holds the watermark back until it has records or is idle. */
    partitions: readonly string[],
    private readonly now: () => number,
    /** Names the source in the error a bad timestamp raises. */
    private readonly operator: string,
    /** The watermark this source had sent when its restored checkpoint was taken: never goes out lower, and goes out first. */
    private readonly restoredMs: number = NO_WATERMARK,
  ) {
    this.assigner = strategy.timestampAssigner!;
    for (const p of partitions) this.partition(p);
  }

  /**
   * Feeds the records of one batch read from `partition`, in order; returns
   * their timestamps (the records' event times). A record whose timestamp
   * cannot be read (the assigner throws, or gives no finite number) is
   * replaced in `records` by a {@link RejectedRecord}, whose timestamp is
   * NaN and moves no watermark: the source routes it to its dead letters or
   * fails naming its offset.
   */
  onBatch(partition: string, records: unknown[]): number[] {
    const state = this.partition(partition);
    const timestamps = new Array<number>(records.length);
    for (let i = 0; i < records.length; i++) {
      const record = records[i];
      timestamps[i] = Number.NaN;
      if (record instanceof RejectedRecord) continue;
      let ts: unknown;
      try {
        ts = this.assigner(record as T);
      } catch (e) {
        records[i] = new RejectedRecord(record, `the timestamp assigner of source "${this.operator}" threw ${errorText(e)}`);
        continue;
      }
      if (typeof ts !== "number" || !Number.isFinite(ts)) {
        records[i] = new RejectedRecord(record, `the timestamp assigner of source "${this.operator}" returned ${String(ts)}, not a finite number of ms`);
        continue;
      }
      state.generator.onTimestamp(ts);
      timestamps[i] = ts;
    }
    if (records.length > 0) state.lastActiveMs = this.now();
    return timestamps;
  }

  /** A bounded input ended: the watermark goes to the end of time. */
  endOfInput(): void {
    this.ended = true;
  }

  /** The combined status now: min over the partitions that are not idle; idle when all are. */
  current(): WatermarkStatus {
    if (this.ended) return { watermarkMs: END_OF_TIME_MS, idle: false };
    const idleMs = this.strategy.idlenessMs;
    const nowMs = this.now();
    let min = Number.POSITIVE_INFINITY;
    let active = 0;
    // The partitions that went idle last, and their minimum: what the output was just before they did.
    let lastActiveMs = Number.NEGATIVE_INFINITY;
    let lastMin = NO_WATERMARK;
    for (const p of this.partitions.values()) {
      if (p.lastActiveMs > lastActiveMs) {
        lastActiveMs = p.lastActiveMs;
        lastMin = p.generator.watermarkMs;
      } else if (p.lastActiveMs === lastActiveMs) {
        lastMin = Math.min(lastMin, p.generator.watermarkMs);
      }
      if (idleMs !== undefined && nowMs - p.lastActiveMs >= idleMs) continue;
      active++;
      min = Math.min(min, p.generator.watermarkMs);
    }
    // Never backwards: a partition back from idleness, behind the others, holds the output where it is; nor below
    // the restored watermark (the records after the restored offsets were behind it the first time too).
    const floor = Math.max(this.announced.watermarkMs, this.restoredMs);
    // All idle: the watermark the partitions reached before the last of them went idle, whether or not a poll
    // fell between their timeouts (a busy thread may poll once after all of them; the output must not depend on it).
    if (active === 0) return { watermarkMs: Math.max(floor, lastMin), idle: true };
    return { watermarkMs: Math.max(min, floor), idle: false };
  }

  /**
   * What to send downstream now: the status when its watermark advanced or
   * its idleness changed since the last one returned, else undefined.
   */
  poll(): WatermarkStatus | undefined {
    const next = this.current();
    if (next.watermarkMs <= this.announced.watermarkMs && next.idle === this.announced.idle) return undefined;
    this.announced = next;
    return next;
  }

  /** The last status returned by {@link poll}. */
  get output(): WatermarkStatus {
    return this.announced;
  }

  private partition(name: string): PartitionState {
    let state = this.partitions.get(name);
    if (!state) this.partitions.set(name, (state = { generator: new BoundedOutOfOrdernessGenerator(this.strategy.boundMs), lastActiveMs: this.now() }));
    return state;
  }
}
