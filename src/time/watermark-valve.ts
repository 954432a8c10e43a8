/**
 * The input side of a subtask's watermarks (Flink's StatusWatermarkValve):
 * per input channel its watermark and whether it is idle; the subtask's
 * input watermark is the minimum over the active channels, never goes
 * backwards, and the subtask is idle when every channel is.
 */
import { NO_WATERMARK, type WatermarkStatus } from "./watermark-generator.js";
import { END_OF_TIME_MS } from "./watermark-strategy.js";

interface ChannelWatermark {
  watermarkMs: number;
  idle: boolean;
  /**
   * Whether the channel takes part in the minimum. A channel back from
   * idleness behind the output does not, until it catches up: it must not
   * hold the output back at a value it already passed (Flink's alignment).
   */
  aligned: boolean;
}

/** Watermarks and idleness over the input channels of one subtask. */
export class WatermarkValve {
  private readonly channels = new Map<string, ChannelWatermark>();
  private out: WatermarkStatus = { watermarkMs: NO_WATERMARK, idle: false };

  constructor(channelIds: readonly string[]) {
    for (const id of channelIds) this.channels.set(id, { watermarkMs: NO_WATERMARK, idle: false, aligned: true });
  }

  /** The subtask's input watermark and idleness now. */
  get output(): WatermarkStatus {
    return this.out;
  }

  /**
   * A channel's watermark message: its sender's watermark (NO_WATERMARK:
   * none yet) and idleness. Answers the new output when it changed (the
   * watermark advanced or the idleness flipped), else undefined.
   */
  onWatermark(channel: string, watermarkMs: number, idle: boolean): WatermarkStatus | undefined {
    const c = this.channels.get(channel);
    if (!c) return undefined;
    const before = this.out;
    // Active first, then the watermark; the watermark first, then idle: a message's watermark always counts.
    if (!idle) this.setIdle(c, false);
    if (watermarkMs > c.watermarkMs) {
      c.watermarkMs = watermarkMs;
      if (!c.idle && c.watermarkMs >= this.out.watermarkMs) c.aligned = true;
    }
    if (idle) this.setIdle(c, true);
    this.recompute();
    return this.changedSince(before);
  }

  /** A channel ended: it is at the end of time, and holds nothing back. */
  onEndOfInput(channel: string): WatermarkStatus | undefined {
    return this.onWatermark(channel, END_OF_TIME_MS, false);
  }

  private setIdle(c: ChannelWatermark, idle: boolean): void {
    c.idle = idle;
    c.aligned = !idle && c.watermarkMs >= this.out.watermarkMs;
  }

  private recompute(): void {
    if (this.channels.size === 0) {
      this.out = { watermarkMs: this.out.watermarkMs, idle: true };
      return;
    }
    let min = Number.POSITIVE_INFINITY;
    let aligned = 0;
    let anyLive = false;
    let anyActive = false;
    let maxIdle = NO_WATERMARK;
    for (const c of this.channels.values()) {
      // A channel at the end of time (ended, or its sender's input did) holds nothing back and sends nothing more.
      if (c.watermarkMs >= END_OF_TIME_MS) continue;
      anyLive = true;
      if (c.idle) {
        maxIdle = Math.max(maxIdle, c.watermarkMs);
        continue;
      }
      anyActive = true;
      if (!c.aligned) continue;
      aligned++;
      min = Math.min(min, c.watermarkMs);
    }
    if (!anyLive) {
      this.out = { watermarkMs: END_OF_TIME_MS, idle: false };
      return;
    }
    if (!anyActive) {
      // Every channel still running is idle: what they reached is safe to pass on (Flink flushes the max). Not
      // the end of time of a channel that ended: an idle channel may still send records, which must not all be late.
      this.out = { watermarkMs: Math.max(this.out.watermarkMs, maxIdle), idle: true };
      return;
    }
    this.out = { watermarkMs: aligned > 0 ? Math.max(this.out.watermarkMs, min) : this.out.watermarkMs, idle: false };
  }

  private changedSince(before: WatermarkStatus): WatermarkStatus | undefined {
    return this.out.watermarkMs > before.watermarkMs || this.out.idle !== before.idle ? this.out : undefined;
  }
}
