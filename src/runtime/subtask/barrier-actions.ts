/**
 * Carries out what the {@link BarrierHandler} decided a barrier, an end of
 * input, an alignment deadline or an abort means: on the input gate (block,
 * record, take in-flight data), the checkpointer (snapshots, aligned and
 * unaligned) and the sinks (at-least-once commits at the barrier), and
 * declines to the coordinator. The handler decides; this applies; the task
 * only says when.
 */
import type { BarrierAction, BarrierHandler } from "../../checkpoint/barrier-handler.js";
import { inFlightBatch, inFlightWatermark } from "../batch-encoding.js";
import type { InputGate } from "../input-gate.js";
import type { ChannelMessage } from "../messages.js";
import type { SinkCommitter } from "./sink-committer.js";
import type { SubtaskCheckpointer } from "./subtask-checkpointer.js";

/** What barrier actions act on. */
export interface BarrierActionParts {
  readonly gate: InputGate;
  readonly barriers: BarrierHandler;
  readonly checkpointer: SubtaskCheckpointer;
  readonly sinks: SinkCommitter;
  readonly sleep: (ms: number) => Promise<void>;
  /** Whether the task still runs (an alignment deadline after its end does nothing). */
  readonly running: () => boolean;
  /** Fails the task. */
  readonly fail: (e: unknown) => Promise<void>;
  /** Tells the coordinator this subtask cannot take checkpoint N; resolves once sent (a lost decline costs only time). */
  readonly decline: (checkpointId: number, reason: string) => Promise<void>;
}

/** Applies barrier actions to one task's parts. */
export class BarrierActions {
  constructor(private readonly p: BarrierActionParts) {}

  /**
   * Carries out barrier actions in the consumer loop: a decline is sent
   * before the loop goes on, and an aligned snapshot forwards its barrier
   * (and at-least-once sinks publish) before the channels reopen.
   */
  async applyInLoop(actions: readonly BarrierAction[]): Promise<void> {
    const taken = new Map<string, string[]>();
    for (const a of actions) {
      if (a.kind === "decline") await this.p.decline(a.checkpointId, a.reason);
      else if (a.kind === "snapshot") await this.p.checkpointer.checkpoint(a.barrier, a.firstBarrierMs, a.alignmentMs);
      else this.apply(a, taken);
    }
  }

  /**
   * Carries out barrier actions in one turn (an arriving barrier, an
   * alignment deadline, an abort): nothing is awaited, and a throw reaches
   * the caller as it did.
   */
  applyNow(actions: readonly BarrierAction[]): void {
    const taken = new Map<string, string[]>();
    for (const a of actions) {
      if (a.kind === "decline") void this.p.decline(a.checkpointId, a.reason);
      else if (a.kind === "snapshot") this.p.checkpointer.checkpoint(a.barrier, a.firstBarrierMs, a.alignmentMs).catch((e: unknown) => this.p.fail(e));
      else this.apply(a, taken);
    }
  }

  /** One action that needs no waiting; `taken` collects the input in-flight data taken for an unaligned snapshot. */
  private apply(a: Exclude<BarrierAction, { kind: "decline" | "snapshot" }>, taken: Map<string, string[]>): void {
    const { gate, checkpointer } = this.p;
    switch (a.kind) {
      case "block":
        gate.block(a.channel);
        return;
      case "unblockAll":
        gate.unblockAll();
        return;
      case "startRecording":
        gate.startRecording(a.channel);
        return;
      case "stopRecording": {
        const recorded = gate.stopRecording(a.channel);
        if (a.keep) checkpointer.addInFlight(a.checkpointId, a.channel, batchTexts(recorded));
        return;
      }
      case "takeInFlight": {
        const batches = a.upToBarrier ? (gate.takeBarrier(a.channel, a.checkpointId) ?? []) : gate.queuedBatches(a.channel);
        if (batches.length > 0) taken.set(a.channel, batchTexts(batches));
        return;
      }
      case "snapshotUnaligned": {
        const id = a.barrier.checkpointId;
        checkpointer.beginUnaligned(a.barrier, a.firstBarrierMs, a.alignmentMs, taken);
        if (a.complete) checkpointer.finishUnaligned(id);
        // At-least-once sinks publish now; the consumer loop waits for that before its next message, as at an aligned barrier.
        this.p.sinks.commitAtBarrierBeforeNext(id);
        return;
      }
      case "finishUnaligned":
        checkpointer.finishUnaligned(a.checkpointId);
        return;
      case "discardUnaligned":
        checkpointer.discardUnaligned(a.checkpointId);
        if (a.reason !== undefined) void this.p.decline(a.checkpointId, a.reason);
        return;
      case "armTimer":
        // The deadline of an announced barrier: the checkpoint goes on unaligned unless it settled first.
        void this.p
          .sleep(a.delayMs)
          .then(() => {
            if (this.p.running()) this.applyNow(this.p.barriers.onAlignmentTimeout(a.checkpointId));
          })
          .catch((e: unknown) => this.p.fail(e));
        return;
    }
  }
}

/**
 * Queued batches and watermarks as in-flight data is stored: the batches'
 * records' JSON texts, with their event times when they have some, and the
 * watermarks between them, in order.
 */
function batchTexts(messages: readonly ChannelMessage[]): string[] {
  return messages.map((m) => {
    if (m.kind === "watermark") return inFlightWatermark(m.watermarkMs, m.idle);
    const b = m as { records: string; timestamps?: string };
    return inFlightBatch(b.records, b.timestamps);
  });
}
