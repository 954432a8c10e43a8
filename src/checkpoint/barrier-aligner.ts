/**
 * Barrier handling in one subtask, as a small state machine (Flink's
 * SingleCheckpointBarrierHandler: waiting for the first barrier, then
 * collecting barriers).
 *
 * Exactly-once: a channel whose barrier N arrived is blocked until barrier
 * N has arrived on every input; then the subtask snapshots and forwards N.
 * At-least-once: nothing is blocked; the snapshot is taken when the last
 * barrier arrives, so records after a barrier may land in the snapshot and
 * be replayed after a restore.
 */
import type { CheckpointMode } from "../api/checkpoint-options.js";

/** What the subtask must do after a barrier or end-of-input. */
export interface AlignerAction {
  /** Stop taking records from this channel until {@link AlignerAction.unblockAll}. */
  readonly block?: string;
  /** A pending alignment was given up for a newer checkpoint. */
  readonly aborted?: number;
  /** Every input delivered barrier N: snapshot and forward it. */
  readonly snapshot?: number;
  /** Resume every blocked channel. */
  readonly unblockAll?: boolean;
}

type Phase = { kind: "waiting" } | { kind: "collecting"; checkpointId: number; seen: Set<string>; startedMs: number };

export class BarrierAligner {
  private phase: Phase = { kind: "waiting" };
  private readonly live: Set<string>;
  private latestCompleted = 0;
  /** Duration of the last completed alignment. */
  lastAlignmentMs = 0;

  constructor(
    channels: readonly string[],
    private readonly mode: CheckpointMode,
    private readonly now: () => number,
  ) {
    this.live = new Set(channels);
  }

  /** Id of the checkpoint being aligned, if any. */
  get aligning(): number | undefined {
    return this.phase.kind === "collecting" ? this.phase.checkpointId : undefined;
  }

  /** Time since the first barrier of the current alignment. */
  alignmentMs(): number {
    return this.phase.kind === "collecting" ? this.now() - this.phase.startedMs : 0;
  }

  onBarrier(channel: string, checkpointId: number): AlignerAction {
    if (!this.live.has(channel) || checkpointId <= this.latestCompleted) return {};
    let aborted: number | undefined;
    if (this.phase.kind === "collecting") {
      if (checkpointId < this.phase.checkpointId) return {};
      if (checkpointId > this.phase.checkpointId) {
        // A newer barrier overtook an unfinished alignment: that checkpoint cannot complete here.
        aborted = this.phase.checkpointId;
        this.phase = { kind: "waiting" };
      }
    }
    if (this.phase.kind === "waiting") this.phase = { kind: "collecting", checkpointId, seen: new Set(), startedMs: this.now() };
    const p = this.phase as Extract<Phase, { kind: "collecting" }>;
    p.seen.add(channel);
    if (this.complete(p)) return { ...this.finish(p), ...(aborted !== undefined ? { aborted } : {}) };
    return {
      ...(this.mode === "exactly_once" ? { block: channel } : {}),
      ...(aborted !== undefined ? { aborted, unblockAll: true } : {}),
    };
  }

  /** A channel ended: it will send no barrier, so it no longer holds an alignment back. */
  onEndOfInput(channel: string): AlignerAction {
    this.live.delete(channel);
    if (this.phase.kind === "collecting" && this.complete(this.phase)) return this.finish(this.phase);
    return {};
  }

  /**
   * The alignment of the current checkpoint timed out (or an unaligned
   * barrier of it arrived): it goes on unaligned. Ends the alignment and
   * answers the checkpoint and the channels whose barrier already arrived.
   */
  switchToUnaligned(): { checkpointId: number; seen: ReadonlySet<string>; alignmentMs: number } | undefined {
    if (this.phase.kind !== "collecting") return undefined;
    const p = this.phase;
    this.lastAlignmentMs = this.now() - p.startedMs;
    this.latestCompleted = p.checkpointId;
    this.phase = { kind: "waiting" };
    return { checkpointId: p.checkpointId, seen: p.seen, alignmentMs: this.lastAlignmentMs };
  }

  /** The checkpoint was aborted elsewhere: stop aligning it. */
  abort(checkpointId: number): AlignerAction {
    // Late barriers of an aborted checkpoint must not start a new alignment.
    this.latestCompleted = Math.max(this.latestCompleted, checkpointId);
    if (this.phase.kind === "collecting" && this.phase.checkpointId === checkpointId) {
      this.phase = { kind: "waiting" };
      return { aborted: checkpointId, unblockAll: true };
    }
    return {};
  }

  private complete(p: Extract<Phase, { kind: "collecting" }>): boolean {
    for (const c of this.live) if (!p.seen.has(c)) return false;
    return true;
  }

  private finish(p: Extract<Phase, { kind: "collecting" }>): AlignerAction {
    this.lastAlignmentMs = this.now() - p.startedMs;
    this.latestCompleted = p.checkpointId;
    this.phase = { kind: "waiting" };
    return { snapshot: p.checkpointId, unblockAll: true };
  }
}
