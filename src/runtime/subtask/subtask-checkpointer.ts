/**
 * One subtask's part of a checkpoint (Flink's SubtaskCheckpointCoordinator):
 *
 * 1. the synchronous part, in one turn: keyed state captured, source
 *    positions read, sinks pre-committed;
 * 2. the barrier forwarded downstream: in order behind buffered output
 *    (aligned), ahead of it (unaligned: what it overtakes is output
 *    in-flight data), or in order until the alignment deadline, then ahead;
 * 3. asynchronously, the state files and the in-flight data uploaded;
 * 4. the acknowledgement with its statistics (sync, async, alignment and
 *    start delay times, sizes), retried through the coordinator reports;
 *    a failed upload declines the checkpoint instead.
 */
import type { SourceReader } from "../../api/types.js";
import { alignmentDeadlineDelayMs, type CheckpointBarrier } from "../../checkpoint/barrier-handler.js";
import type { ChannelStateHandle, SubtaskAck } from "../../checkpoint/types.js";
import type { KeyedStateBackend } from "../../state/keyed-state.js";
import type { BroadcastSnapshot } from "../../state/broadcast-state.js";
import type { KeyedSnapshotter } from "../../state/snapshotter.js";
import { END_OF_TIME_MS } from "../../time/watermark-strategy.js";
import { type BufferedOutput, encodeChannelState } from "../batch-encoding.js";
import type { RecordWriter } from "../record-writer.js";
import type { SinkCommitter } from "./sink-committer.js";

/** What the checkpointer needs of the outside world (a part of the task's host). */
export interface CheckpointHost {
  now(): number;
  sleep(ms: number): Promise<void>;
  putChannelState(checkpointId: number, body: string): Promise<ChannelStateHandle>;
  acknowledge(ack: SubtaskAck & { checkpointId: number }): Promise<void>;
  decline(checkpointId: number, reason: string): Promise<void>;
}

/** What the checkpointer snapshots and where its barriers go. */
export interface CheckpointerParts {
  readonly host: CheckpointHost;
  /** A report the coordinator must get, retried while the task lives. */
  readonly report: (call: () => Promise<void>) => Promise<void>;
  readonly snapshotter: KeyedSnapshotter;
  readonly keyedState: ReadonlyMap<string, KeyedStateBackend>;
  readonly reader: SourceReader | undefined;
  readonly sourceUid: string | undefined;
  readonly writer: RecordWriter;
  readonly sinks: SinkCommitter;
  readonly attempt: number;
  /** This subtask's id (`vertex/index`), as acks name it. */
  readonly subtaskId: string;
  /** This subtask as people read it, for decline reasons. */
  readonly describe: string;
  /** Unaligned checkpoints are on (savepoints stay aligned regardless). */
  readonly unaligned: boolean;
  /** Aligned checkpoints turn unaligned this long after their trigger (0: never, or unaligned from the start). */
  readonly alignTimeoutMs: number;
  /** The subtask's event time now (absent: the task has none to keep). */
  readonly watermarkMs?: () => number;
  /** An async I/O operator's records in flight now, per uid (absent: the task has none). */
  readonly inFlight?: () => Readonly<Record<string, readonly unknown[]>>;
  /**
   * Broadcast state per operator uid, as JSON text (absent: the task has
   * none). Subtask 0 sends it with every ack; the others only with an
   * unaligned part, whose in-flight data may hold broadcast records that
   * subtask 0 had already applied (docs/joins.md, "Broadcast state").
   */
  readonly broadcast?: { readonly capture: () => Readonly<Record<string, string>>; readonly always: boolean };
}

/** Given the in-flight data's handle (null: none), uploads and acknowledges asynchronously. */
export type AckFn = (channelState: Promise<ChannelStateHandle | null>, unaligned: boolean) => void;

/** Source positions kept for checkpoints that never complete: older ones are dropped beyond this many. */
const MAX_PENDING_POSITIONS = 16;

/** The unaligned checkpoint whose in-flight inputs are still being collected. */
interface CollectingInFlight {
  readonly checkpointId: number;
  /** Input in-flight data per channel: batches' JSON texts, in arrival order. */
  readonly inputs: Map<string, string[]>;
  /** Output in-flight data: records buffered when the barrier overtook them, per target. */
  readonly outputs: BufferedOutput;
  readonly ack: AckFn;
}

/** Takes a subtask's snapshots and reports them. */
export class SubtaskCheckpointer {
  /** The newest checkpoint this subtask snapshotted (or restored). */
  private lastId = 0;
  /** Source positions of checkpoints not completed yet: the reader hears of them on completion. */
  private readonly positionsAt = new Map<number, Record<string, number>>();
  /** The unaligned checkpoint whose in-flight inputs are being collected, if any. */
  private collecting: CollectingInFlight | undefined;

  constructor(private readonly parts: CheckpointerParts) {}

  /** The newest checkpoint this subtask snapshotted (or restored). */
  get lastCheckpointId(): number {
    return this.lastId;
  }

  /** The task was restored from checkpoint N. */
  restoredFrom(checkpointId: number): void {
    this.lastId = checkpointId;
  }

  /**
   * Takes checkpoint N in order: the snapshot, then barrier N behind the
   * buffered output (unaligned sources between batches send it ahead;
   * with an alignment timeout it overtakes what is left at the deadline);
   * once the barrier is out, at-least-once sinks publish.
   */
  async checkpoint(barrier: CheckpointBarrier, firstBarrierMs: number, alignmentMs: number): Promise<void> {
    const { writer, host, unaligned, alignTimeoutMs } = this.parts;
    const { checkpointId, triggerMs, isSavepoint } = barrier;
    const ack = this.snapshot(barrier, firstBarrierMs, alignmentMs);
    if (unaligned && !isSavepoint && alignTimeoutMs > 0) {
      // Aligned with a timeout: the barrier waits its turn behind buffered output, until the checkpoint's deadline.
      const deadline = host.sleep(alignmentDeadlineDelayMs(triggerMs, alignTimeoutMs, host.now()));
      const { overtaken, done } = writer.broadcastBarrierUntil(checkpointId, triggerMs, deadline);
      const outputs = await overtaken;
      ack(outputs === null ? Promise.resolve(null) : this.putInFlight(checkpointId, {}, outputs), outputs !== null);
      await done;
    } else if (unaligned && !isSavepoint) {
      // Unaligned (a source, between batches): the barrier skips the credit queue; anything still buffered is in-flight data.
      const outputs = writer.bufferedOutput();
      writer.broadcastPriorityBarrier(checkpointId, triggerMs, isSavepoint);
      ack(this.putInFlight(checkpointId, {}, outputs), true);
    } else {
      await writer.broadcastBarrier(checkpointId, triggerMs, isSavepoint);
      ack(Promise.resolve(null), false);
    }
    await this.parts.sinks.commitAtBarrier(checkpointId);
  }

  /**
   * Takes unaligned checkpoint N now: the snapshot, then barrier N ahead of
   * the buffered output, which becomes output in-flight data. `inputs` is
   * the input in-flight data taken so far; more may follow through
   * {@link addInFlight} until {@link finishUnaligned}.
   */
  beginUnaligned(barrier: CheckpointBarrier, firstBarrierMs: number, alignmentMs: number, inputs: Map<string, string[]>): void {
    const outputs = this.parts.writer.bufferedOutput();
    const ack = this.snapshot(barrier, firstBarrierMs, alignmentMs);
    this.parts.writer.broadcastPriorityBarrier(barrier.checkpointId, barrier.triggerMs, barrier.isSavepoint);
    this.collecting = { checkpointId: barrier.checkpointId, inputs, outputs, ack };
  }

  /** More input in-flight data of the unaligned checkpoint N on `channel`. */
  addInFlight(checkpointId: number, channel: string, batches: readonly string[]): void {
    const c = this.collecting;
    if (c?.checkpointId !== checkpointId || batches.length === 0) return;
    c.inputs.set(channel, [...(c.inputs.get(channel) ?? []), ...batches]);
  }

  /** The in-flight data of unaligned checkpoint N is complete: it is uploaded and the checkpoint acknowledged. */
  finishUnaligned(checkpointId: number): void {
    const c = this.collecting;
    if (c?.checkpointId !== checkpointId) return;
    this.collecting = undefined;
    c.ack(this.putInFlight(checkpointId, Object.fromEntries(c.inputs), c.outputs), true);
  }

  /** Unaligned checkpoint N will not complete here (declined or aborted): its in-flight data is dropped. */
  discardUnaligned(checkpointId: number): void {
    if (this.collecting?.checkpointId === checkpointId) this.collecting = undefined;
  }

  /** A checkpoint of a subtask whose input and outputs ended: snapshot and acknowledge, with no barrier to forward. */
  checkpointAtEnd(barrier: CheckpointBarrier): void {
    const nowMs = this.parts.host.now();
    this.snapshot(barrier, nowMs, 0)(Promise.resolve(null), false);
  }

  /** Checkpoint N completed: the source positions it holds (for the reader's report), forgetting older ones. */
  positionsCompleted(checkpointId: number): Record<string, number> | undefined {
    const positions = this.positionsAt.get(checkpointId);
    for (const id of this.positionsAt.keys()) if (id <= checkpointId) this.positionsAt.delete(id);
    return positions;
  }

  /**
   * The synchronous part of this subtask's checkpoint: keyed state captured,
   * source positions read, sinks pre-committed, all in one turn. Returns the
   * function that, given the in-flight data's handle, uploads and
   * acknowledges asynchronously.
   */
  private snapshot(barrier: CheckpointBarrier, firstBarrierMs: number, alignmentMs: number): AckFn {
    const { host, snapshotter, keyedState, reader, sourceUid, sinks, attempt, subtaskId, describe, report } = this.parts;
    const { checkpointId, triggerMs, isSavepoint } = barrier;
    const t0 = host.now();
    const prepared = isSavepoint ? snapshotter.prepareSavepoint(checkpointId, keyedState) : snapshotter.prepare(checkpointId, keyedState);
    const positions = reader?.positions();
    if (positions && !isSavepoint) {
      this.positionsAt.set(checkpointId, positions);
      // Checkpoints that never complete must not pile up.
      if (this.positionsAt.size > MAX_PENDING_POSITIONS) this.positionsAt.delete(this.positionsAt.keys().next().value!);
    }
    const sinkHandles = sinks.preCommit(checkpointId);
    // Captured in this turn, as keyed state is: records emitted later are in it, and are emitted again after a restore from it.
    const inFlight = this.parts.inFlight?.();
    const broadcast = this.parts.broadcast?.capture();
    const watermarkMs = checkpointedWatermark(this.parts.watermarkMs?.());
    const syncMs = host.now() - t0;
    this.lastId = checkpointId;
    const startDelayMs = Math.max(0, firstBarrierMs - triggerMs);
    const asyncStart = host.now();
    const upload = snapshotter.upload(prepared);
    // Awaited by the ack below, which declines on failure; an unaligned checkpoint dropped before its ack reports nothing.
    upload.catch(() => undefined);
    return (channelStatePromise, unaligned) => {
      void Promise.all([upload, channelStatePromise])
        .then(
          ([done, channelState]) => {
            const sendBroadcast = broadcast && Object.keys(broadcast).length > 0 && (this.parts.broadcast!.always || unaligned);
            const ack = {
              checkpointId,
              subtask: subtaskId,
              attempt,
              keyed: done.handles,
              sources: positions && sourceUid ? { [sourceUid]: positions } : {},
              sinks: sinkHandles,
              ...(inFlight ? { inFlight } : {}),
              ...(sendBroadcast ? { broadcast: parseBroadcast(broadcast) } : {}),
              syncMs,
              asyncMs: host.now() - asyncStart,
              alignmentMs,
              startDelayMs,
              ackTimestamp: host.now(),
              checkpointedBytes: done.checkpointedBytes + (channelState?.bytes ?? 0),
              stateBytes: done.stateBytes,
              channelState,
              unaligned,
              watermarkMs,
            };
            return report(() => host.acknowledge(ack));
          },
          (e: unknown) => host.decline(checkpointId, `subtask ${describe} could not upload its snapshot: ${(e as Error)?.message ?? e}`),
        )
        // An ack undelivered after its retries, or a decline undelivered: the coordinator's checkpoint timeout aborts the checkpoint.
        .catch(() => undefined);
    };
  }

  /** Persists a subtask's in-flight data of checkpoint N (nothing when there is none). */
  private putInFlight(checkpointId: number, inputs: Record<string, string[]>, outputs: BufferedOutput): Promise<ChannelStateHandle | null> {
    if (Object.keys(inputs).length === 0 && Object.keys(outputs.records).length === 0) return Promise.resolve(null);
    return this.parts.host.putChannelState(checkpointId, encodeChannelState({ inputs, outputs: outputs.records, outputTimestamps: outputs.timestamps }));
  }
}

/**
 * The watermark an ack records: none before the first (−∞), and none at
 * the end of time, which only a drain or an ended input reaches: a job
 * started from a drained savepoint takes records as new (docs/time.md).
 */
function checkpointedWatermark(watermarkMs: number | undefined): number | null {
  return watermarkMs === undefined || !Number.isFinite(watermarkMs) || watermarkMs >= END_OF_TIME_MS ? null : watermarkMs;
}

function parseBroadcast(texts: Readonly<Record<string, string>>): Record<string, BroadcastSnapshot> {
  const out: Record<string, BroadcastSnapshot> = {};
  for (const [uid, text] of Object.entries(texts)) out[uid] = JSON.parse(text) as BroadcastSnapshot;
  return out;
}
