/**
 * Barrier handling in one subtask, as a state machine (Flink's
 * SingleCheckpointBarrierHandler). It decides; the task acts: every method
 * returns the {@link BarrierAction}s to apply, in order, to the input gate,
 * the record writer and the checkpointer.
 *
 * States: waiting for the first barrier; collecting the barriers of one
 * checkpoint (aligned); collecting the in-flight data of one unaligned
 * checkpoint whose snapshot was already taken. Both collections may run at
 * once (an unaligned N while N+1 aligns).
 *
 * - Aligned, exactly-once: a channel whose barrier N arrived is blocked
 *   until barrier N has arrived on every live input; then the subtask
 *   snapshots and forwards N in order. At-least-once: nothing is blocked;
 *   the snapshot is taken when the last barrier arrives, so records after a
 *   barrier may land in it and be replayed after a restore.
 * - Unaligned: the first barrier N (sent as a priority event) snapshots at
 *   once and N goes downstream ahead of everything. What is queued then on
 *   the channels without barrier N, and what they deliver until it comes,
 *   is the checkpoint's in-flight data, persisted with it.
 * - Alignment timeout: barriers come in order and are announced on arrival;
 *   a checkpoint whose alignment has not ended by its trigger time plus the
 *   timeout goes on unaligned (Flink's barrier announcement).
 * - A newer barrier overtaking an unfinished checkpoint, an abort from the
 *   coordinator, and a channel that ends all settle the checkpoint in hand.
 *
 * Pure: time comes through `now()`, deadlines go out as timer requests.
 */
import type { CheckpointMode } from "../api/checkpoint-options.js";

/** What a barrier says about its checkpoint. */
export interface CheckpointBarrier {
  readonly checkpointId: number;
  /** When the coordinator triggered the checkpoint (start delay, alignment deadline). */
  readonly triggerMs: number;
  readonly isSavepoint: boolean;
}

/** A barrier as it arrives on an input channel. */
export interface ArrivedBarrier extends CheckpointBarrier {
  readonly channel: string;
  /** Sent ahead of the records before it: its sender already went unaligned. */
  readonly priority?: boolean;
}

/** One thing the subtask must do, in the order the handler returns them. */
export type BarrierAction =
  /** Take nothing more from `channel` until `unblockAll`. */
  | { readonly kind: "block"; readonly channel: string }
  /** Resume every blocked channel. */
  | { readonly kind: "unblockAll" }
  /** Record the batches that arrive on `channel` from now on. */
  | { readonly kind: "startRecording"; readonly channel: string }
  /** Stop recording `channel`; what it recorded is in-flight data of `checkpointId` when `keep`, else dropped. */
  | { readonly kind: "stopRecording"; readonly channel: string; readonly checkpointId: number; readonly keep: boolean }
  /**
   * In-flight data of `checkpointId` on `channel`, taken now: the batches
   * queued before its barrier, which is taken out of the queue
   * (`upToBarrier`), or every batch queued.
   */
  | { readonly kind: "takeInFlight"; readonly channel: string; readonly checkpointId: number; readonly upToBarrier: boolean }
  /** This subtask cannot take checkpoint `checkpointId`: tell the coordinator why. */
  | { readonly kind: "decline"; readonly checkpointId: number; readonly reason: string }
  /** Every input delivered the barrier: snapshot, and forward the barrier in order behind buffered output. */
  | { readonly kind: "snapshot"; readonly barrier: CheckpointBarrier; readonly firstBarrierMs: number; readonly alignmentMs: number }
  /**
   * Unaligned: snapshot now, forward the barrier as a priority event ahead
   * of buffered output (which becomes in-flight data), and collect the
   * in-flight inputs taken so far. `complete`: none is still to come, the
   * checkpoint's in-flight data is final at once.
   */
  | {
      readonly kind: "snapshotUnaligned";
      readonly barrier: CheckpointBarrier;
      readonly firstBarrierMs: number;
      readonly alignmentMs: number;
      readonly complete: boolean;
    }
  /** The last channel of unaligned `checkpointId` delivered its barrier (or ended): its in-flight data is final. */
  | { readonly kind: "finishUnaligned"; readonly checkpointId: number }
  /**
   * Unaligned `checkpointId` will not complete here: forget its in-flight
   * data, and decline it with `reason` (none when the coordinator aborted it).
   */
  | { readonly kind: "discardUnaligned"; readonly checkpointId: number; readonly reason?: string }
  /** Call {@link BarrierHandler.onAlignmentTimeout} for `checkpointId` after `delayMs`. */
  | { readonly kind: "armTimer"; readonly checkpointId: number; readonly delayMs: number };

/** How a subtask's checkpoints are taken, and what the handler reads of the world. */
export interface BarrierHandlerOptions {
  /** Input channels, in the gate's order. */
  readonly channels: readonly string[];
  readonly mode: CheckpointMode;
  /** Aligned checkpoints go unaligned this long after their trigger (0: unaligned from the start, or never). */
  readonly alignTimeoutMs: number;
  readonly now: () => number;
  /** The newest checkpoint this subtask snapshotted (the checkpointer's). */
  readonly lastCheckpointId: () => number;
  /** Whether barrier `checkpointId` waits in `channel`'s queue (arrived in order, not yet processed). */
  readonly barrierQueued: (channel: string, checkpointId: number) => boolean;
}

/** The checkpoint whose barriers are being collected (aligned). */
interface Collecting {
  readonly barrier: CheckpointBarrier;
  /** Channels whose barrier arrived. */
  readonly seen: Set<string>;
  readonly startedMs: number;
}

/** An unaligned checkpoint between its snapshot and the last of its barriers. */
interface Unaligned {
  readonly checkpointId: number;
  /** Channels whose barrier has not arrived: what they deliver until it does is in-flight data. */
  readonly pending: Set<string>;
}

/** The barrier state machine of one subtask. */
export class BarrierHandler {
  /** The aligned checkpoint being collected; undefined while waiting for a first barrier. */
  private collecting: Collecting | undefined;
  /** The unaligned checkpoint whose in-flight data is being recorded. */
  private unaligned: Unaligned | undefined;
  /** Channels that have not ended. */
  private readonly live: Set<string>;
  /** Barriers of checkpoints up to this one are stale for alignment (completed, switched, overtaken or aborted). */
  private latestSettled = 0;
  /** The newest checkpoint whose barrier reached this subtask, taken or not. */
  private maxBarrierIdSeen = 0;
  /** When the first barrier of the current (or last) alignment arrived: the snapshot's start delay. */
  private firstBarrierMs = 0;
  /** Checkpoints announced here whose alignment deadline is armed (alignment timeout), with their trigger times. */
  private readonly announced = new Map<number, number>();
  /** Duration of the last completed alignment. */
  private lastAlignment = 0;

  constructor(private readonly options: BarrierHandlerOptions) {
    this.live = new Set(options.channels);
  }

  /** Id of the checkpoint being aligned, if any. */
  get aligning(): number | undefined {
    return this.collecting?.barrier.checkpointId;
  }

  /** Id of the unaligned checkpoint whose in-flight data is being recorded, if any. */
  get collectingInFlight(): number | undefined {
    return this.unaligned?.checkpointId;
  }

  /** The newest checkpoint whose barrier reached this subtask, taken or not. */
  get maxBarrierId(): number {
    return this.maxBarrierIdSeen;
  }

  /** Duration of the last completed alignment. */
  get lastAlignmentMs(): number {
    return this.lastAlignment;
  }

  /** Time since the first barrier of the current alignment. */
  alignmentMs(): number {
    return this.collecting ? this.options.now() - this.collecting.startedMs : 0;
  }

  /**
   * A barrier arrives (unaligned checkpoints on): decides at once, before it
   * is queued. `consumed`: it was handled here and never enters the queue;
   * otherwise it is queued and comes back in order through {@link onBarrier}.
   */
  onBarrierArrived(b: ArrivedBarrier): { consumed: boolean; actions: BarrierAction[] } {
    // Savepoints stay aligned (as Flink's): portable, with no in-flight data.
    if (b.isSavepoint) return { consumed: false, actions: [] };
    this.maxBarrierIdSeen = Math.max(this.maxBarrierIdSeen, b.checkpointId);
    const actions: BarrierAction[] = [];
    if (this.unaligned?.checkpointId === b.checkpointId) {
      this.channelDone(b.channel, actions);
      return { consumed: true, actions };
    }
    if (b.checkpointId <= this.options.lastCheckpointId()) return { consumed: true, actions };
    if (this.options.alignTimeoutMs > 0 && !b.priority) {
      // With an alignment timeout, barriers start aligned, in order, unless their sender already switched.
      if (!this.announced.has(b.checkpointId)) {
        this.announced.set(b.checkpointId, b.triggerMs);
        actions.push({ kind: "armTimer", checkpointId: b.checkpointId, delayMs: alignmentDeadlineDelayMs(b.triggerMs, this.options.alignTimeoutMs, this.options.now()) });
      }
      return { consumed: false, actions };
    }
    this.dropUnaligned(b.checkpointId, false, actions);
    const aligning = this.aligning;
    if (aligning !== undefined && aligning > b.checkpointId) {
      actions.push({ kind: "decline", checkpointId: b.checkpointId, reason: `received barrier ${b.checkpointId} while aligning the newer ${aligning}` });
      return { consumed: true, actions };
    }
    if (aligning !== undefined && aligning < b.checkpointId) {
      this.settle(aligning);
      this.collecting = undefined;
      actions.push({ kind: "unblockAll" }, { kind: "decline", checkpointId: aligning, reason: overtaken(b.checkpointId, aligning) });
    }
    this.switchToUnaligned({ checkpointId: b.checkpointId, triggerMs: b.triggerMs, isSavepoint: false }, b.channel, actions);
    return { consumed: true, actions };
  }

  /** A barrier taken from the queue in order (aligned checkpoints). */
  onBarrier(b: ArrivedBarrier): BarrierAction[] {
    this.maxBarrierIdSeen = Math.max(this.maxBarrierIdSeen, b.checkpointId);
    if (this.collecting === undefined) this.firstBarrierMs = this.options.now();
    const actions: BarrierAction[] = [];
    // Settled checkpoints' barriers are stale, except those of the alignment in hand: an abort of a newer checkpoint
    // settles that one only (its barriers came first on no channel here, or the newer would be in hand).
    if (!this.live.has(b.channel) || (b.checkpointId <= this.latestSettled && b.checkpointId !== this.collecting?.barrier.checkpointId)) return actions;
    let aborted: number | undefined;
    const c = this.collecting;
    if (c) {
      if (b.checkpointId < c.barrier.checkpointId) return actions;
      if (b.checkpointId > c.barrier.checkpointId) {
        // A newer barrier overtook an unfinished alignment: that checkpoint cannot complete here.
        aborted = c.barrier.checkpointId;
        this.collecting = undefined;
      }
    }
    const p = (this.collecting ??= {
      barrier: { checkpointId: b.checkpointId, triggerMs: b.triggerMs, isSavepoint: b.isSavepoint },
      seen: new Set(),
      startedMs: this.options.now(),
    });
    p.seen.add(b.channel);
    if (this.complete(p)) {
      if (aborted !== undefined) actions.push({ kind: "decline", checkpointId: aborted, reason: overtaken(b.checkpointId, aborted) });
      this.finishAlignment(p, actions);
      return actions;
    }
    // An overtaken alignment reopens its channels before the new barrier's channel closes.
    if (aborted !== undefined) actions.push({ kind: "unblockAll" });
    if (this.options.mode === "exactly_once") actions.push({ kind: "block", channel: b.channel });
    if (aborted !== undefined) actions.push({ kind: "decline", checkpointId: aborted, reason: overtaken(b.checkpointId, aborted) });
    return actions;
  }

  /** A channel delivered its end of input: it sends no barrier, so it holds no checkpoint back any more. */
  onEndOfInput(channel: string): BarrierAction[] {
    const actions: BarrierAction[] = [];
    this.channelDone(channel, actions);
    this.live.delete(channel);
    if (this.collecting && this.complete(this.collecting)) this.finishAlignment(this.collecting, actions);
    return actions;
  }

  /** The deadline armed by an `armTimer` action passed: the checkpoint goes on unaligned unless it is settled. */
  onAlignmentTimeout(checkpointId: number): BarrierAction[] {
    const triggerMs = this.announced.get(checkpointId) ?? 0;
    this.announced.delete(checkpointId);
    const actions: BarrierAction[] = [];
    if (checkpointId <= this.options.lastCheckpointId() || this.unaligned?.checkpointId === checkpointId) return actions;
    // An older alignment still running here: the newer checkpoint waits its turn.
    const aligning = this.aligning;
    if (aligning !== undefined && aligning !== checkpointId) return actions;
    // Savepoints are never announced: they stay aligned.
    this.switchToUnaligned({ checkpointId, triggerMs, isSavepoint: false }, undefined, actions);
    return actions;
  }

  /** The coordinator aborted checkpoint N: an alignment or an in-flight collection of it is given up. */
  notifyAborted(checkpointId: number): BarrierAction[] {
    const actions: BarrierAction[] = [];
    this.dropUnaligned(checkpointId, true, actions);
    // Late barriers of an aborted checkpoint must not start a new alignment.
    this.settle(checkpointId);
    if (this.collecting?.barrier.checkpointId === checkpointId) {
      this.collecting = undefined;
      actions.push({ kind: "unblockAll" });
    }
    return actions;
  }

  /**
   * Checkpoint N goes on unaligned here: its alignment timed out, or an
   * unaligned barrier of it arrived on `via`. Channels whose barrier was
   * already processed keep their later batches for the next checkpoint; of
   * the others, what is queued before their barrier (and, when it has not
   * arrived, what arrives until it does) is in-flight data.
   */
  private switchToUnaligned(barrier: CheckpointBarrier, via: string | undefined, actions: BarrierAction[]): void {
    let seen: ReadonlySet<string> = new Set();
    let alignmentMs = 0;
    const c = this.collecting;
    if (c && c.barrier.checkpointId === barrier.checkpointId) {
      seen = c.seen;
      alignmentMs = this.lastAlignment = this.options.now() - c.startedMs;
      this.collecting = undefined;
    } else {
      this.firstBarrierMs = this.options.now();
    }
    // In-order barriers of N that come later are stale.
    this.settle(barrier.checkpointId);
    const pending = new Set<string>();
    for (const channel of this.live) {
      if (seen.has(channel)) continue;
      const upToBarrier = channel !== via && this.options.barrierQueued(channel, barrier.checkpointId);
      actions.push({ kind: "takeInFlight", channel, checkpointId: barrier.checkpointId, upToBarrier });
      if (channel !== via && !upToBarrier) pending.add(channel);
    }
    actions.push({ kind: "unblockAll" });
    this.dropUnaligned(barrier.checkpointId, false, actions);
    for (const channel of pending) actions.push({ kind: "startRecording", channel });
    actions.push({ kind: "snapshotUnaligned", barrier, firstBarrierMs: this.firstBarrierMs, alignmentMs, complete: pending.size === 0 });
    if (pending.size > 0) this.unaligned = { checkpointId: barrier.checkpointId, pending };
  }

  /**
   * Gives up an unfinished unaligned checkpoint older than `newer` (or
   * `newer` itself, when it was aborted): its channels stop recording, so
   * that what they received is not taken as in-flight data of a later
   * checkpoint — those records were processed, and are in its state.
   */
  private dropUnaligned(newer: number, aborted: boolean, actions: BarrierAction[]): void {
    const u = this.unaligned;
    if (!u || u.checkpointId > newer || (u.checkpointId === newer && !aborted)) return;
    for (const channel of u.pending) actions.push({ kind: "stopRecording", channel, checkpointId: u.checkpointId, keep: false });
    this.unaligned = undefined;
    if (aborted) actions.push({ kind: "discardUnaligned", checkpointId: u.checkpointId });
    else actions.push({ kind: "discardUnaligned", checkpointId: u.checkpointId, reason: `received barrier ${newer} before the last barrier of ${u.checkpointId}` });
  }

  /** `channel`'s barrier of the unaligned checkpoint came (or the channel ended): its in-flight data is complete. */
  private channelDone(channel: string, actions: BarrierAction[]): void {
    const u = this.unaligned;
    if (!u || !u.pending.delete(channel)) return;
    actions.push({ kind: "stopRecording", channel, checkpointId: u.checkpointId, keep: true });
    if (u.pending.size > 0) return;
    this.unaligned = undefined;
    actions.push({ kind: "finishUnaligned", checkpointId: u.checkpointId });
  }

  private settle(checkpointId: number): void {
    this.latestSettled = Math.max(this.latestSettled, checkpointId);
  }

  private complete(c: Collecting): boolean {
    for (const channel of this.live) if (!c.seen.has(channel)) return false;
    return true;
  }

  /** Snapshot first: records behind blocked channels belong to the next checkpoint. */
  private finishAlignment(c: Collecting, actions: BarrierAction[]): void {
    this.lastAlignment = this.options.now() - c.startedMs;
    this.settle(c.barrier.checkpointId);
    this.collecting = undefined;
    this.dropUnaligned(c.barrier.checkpointId, false, actions);
    actions.push({ kind: "snapshot", barrier: c.barrier, firstBarrierMs: this.firstBarrierMs, alignmentMs: this.lastAlignment }, { kind: "unblockAll" });
  }
}

/** Time left at `nowMs` until an aligned checkpoint triggered at `triggerMs` turns unaligned. */
export function alignmentDeadlineDelayMs(triggerMs: number, alignTimeoutMs: number, nowMs: number): number {
  return Math.max(0, triggerMs + alignTimeoutMs - nowMs);
}

function overtaken(newer: number, older: number): string {
  return `received barrier ${newer} before finishing alignment of ${older}`;
}
