/**
 * One running subtask (Flink's StreamTask): its lifecycle (restore, start,
 * cancel, fail, metrics) and its two loops, the source loop and the input
 * loop, wired to three parts that each keep their own state:
 *
 * - {@link BarrierHandler} (src/checkpoint/barrier-handler.ts) decides what
 *   a barrier, an end of input, an alignment deadline or an abort means, and
 *   answers actions that are applied here to the input gate, the record
 *   writer and the checkpointer;
 * - {@link SubtaskCheckpointer} takes the snapshot, forwards the barrier,
 *   uploads and acknowledges;
 * - {@link SinkCommitter} drives the sinks' two-phase commit;
 * - {@link TaskTime}: see below.
 *
 * The Durable Object around it (subtask.ts) only does I/O; everything here
 * reaches the outside through {@link TaskHost}, which keeps the loops
 * testable in plain Node and in the simulator.
 *
 * One consumer loop per subtask: incoming batches wait in the input gate,
 * and each batch is processed in one synchronous turn (keyed state updated,
 * sink output staged) before anything is awaited.
 *
 * {@link TaskTime} (task-time.ts) keeps the watermarks in and out and
 * fires timers; its watermark ({@link currentWatermarkMs}) is the one
 * number the chained operators share.
 *
 * Timers (keyed process functions): event-time timers fire in the input
 * loop when the input watermark advanced, before that watermark goes
 * downstream (Flink's order); processing-time timers fire in the input loop
 * once the clock reached them: the loop waits for input or the earliest
 * timer, whichever comes first, and the object's alarm is set for that
 * timer ({@link TaskHost.timerAlarm}). Firing only in the loop keeps a
 * timer's output and its removal from state on the same side of every
 * barrier. Once the input ended, processing-time timers no longer fire (as
 * in Flink); they stay in state.
 */
import type { JobDefinition, LogicalNode } from "../../api/job.js";
import { resolveStateConfig } from "../../api/state-options.js";
import type { SinkMetrics, SinkWriter, SourceReader, StagingStore } from "../../api/types.js";
import { BarrierHandler, type CheckpointBarrier } from "../../checkpoint/barrier-handler.js";
import { type ChannelStateHandle, type KeyedStateHandle, type SubtaskAck, ownHandle } from "../../checkpoint/types.js";
import { hashKey, inRange, isKey, type Key, type KeyGroupRange } from "../../graph/key-groups.js";
import type { FillKey, RunFill } from "../../state/runs/run-fill.js";
import { nodeLabel, type PlanVertex, verticesCarryingOrigins } from "../../graph/plan.js";
import type { StateBacking, StateEntry } from "../../state/keyed-state.js";
import { KeyedSnapshotter, type SnapshotStore } from "../../state/snapshotter.js";
import {
  type BatchOrigins,
  type BatchTimestamps,
  checkReceivedKey,
  decodeBatch,
  decodeOrigins,
  KeySelectorError,
  decodeChannelState,
  fromInFlight,
  type InputKeys,
  coInputs,
  CoInputKeyTypes,
  inputKeys,
  keyedOperatorName,
  type KeySelector,
  receivedKeyError,
  selectorThrewError,
} from "../batch-encoding.js";
import { InputGate } from "../input-gate.js";
import { type BarrierMessage, type ChannelMessage, channelId, type DeliveryResult, type RestoreSpec, type SubtaskDeployment, type TaskMetrics, type TaskStatus } from "../messages.js";
import { OperatorChain, UserCodeError } from "../operator-chain.js";
import { RecordWriter, type SendFn } from "../record-writer.js";
import { retry } from "../../retry.js";
import { BarrierActions } from "./barrier-actions.js";
import { TaskTime } from "./task-time.js";
import { SinkCommitter } from "./sink-committer.js";
import { SubtaskCheckpointer } from "./subtask-checkpointer.js";
import { AsyncStage } from "./async-stage.js";

export { SINK_FLUSH_INTERVAL_MS } from "./sink-committer.js";

/**
 * An operator's keyed state that a lazy restore is still reading from R2
 * (run-fill.ts): a record whose key's blocks are not in yet waits for
 * them, and what may read every key (a timer due, a broadcast element, a
 * savepoint) for the whole state.
 */
export interface StateFill {
  readonly fill: Pick<RunFill, "has" | "ensure" | "progress">;
  /** Settles once every block is in; rejects when a read failed (or a restore began). */
  readonly done: Promise<void>;
  /**
   * The restored keys, when the restore could not know them before reading
   * the state (part of a file, at a higher parallelism): counted once every
   * block is in.
   */
  readonly keys?: Promise<number>;
}

/** Where a task's I/O goes. */
export interface TaskHost {
  readonly env: unknown;
  readonly send: SendFn;
  readonly snapshots: SnapshotStore;
  readonly staging: StagingStore;
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Writes (or reads) a subtask's in-flight data of an unaligned checkpoint. */
  putChannelState(checkpointId: number, body: string): Promise<ChannelStateHandle>;
  getChannelState(handle: ChannelStateHandle): Promise<string>;
  /**
   * Restored keyed state of one operator: the local image, read on demand,
   * when it holds exactly checkpoint `spec.checkpointId`; else the entries
   * read from the checkpoint's files.
   */
  loadState(uid: string, spec: RestoreSpec, range: KeyGroupRange): Promise<{ backing: StateBacking; fill?: StateFill } | { entries: StateEntry[] }>;
  /** The local image of operator `uid` read on demand, for a memory budget to evict to (absent: no image, no budget). */
  imageBacking?(uid: string): StateBacking;
  /** A memory budget that replaces the job's (the simulator's small states; see `SubtaskFaultSeams.memoryBudgetBytes`). */
  readonly memoryBudgetBytes?: number;
  /** Timers fired at most in one slice, replacing `FIRE_SLICE_TIMERS` (the simulator's; see `SubtaskFaultSeams.fireSliceTimers`). */
  readonly fireSliceTimers?: number;
  acknowledge(ack: SubtaskAck & { checkpointId: number }): Promise<void>;
  decline(checkpointId: number, reason: string): Promise<void>;
  reportFailure(message: string): Promise<void>;
  /** End of input reached with checkpointing on: the coordinator triggers this subtask directly from now on. */
  reportEndOfData(): Promise<void>;
  reportFinished(): Promise<void>;
  /**
   * The earliest processing-time timer is at `atMs`: the object's alarm
   * should ring then (it wakes the object; see {@link Task.onAlarm}).
   */
  timerAlarm?(atMs: number): void;
}

/** How often a report to the coordinator is tried (again after 50 ms, doubling: 1.55 s in all). */
const COORDINATOR_ATTEMPTS = 6;
/**
 * Records of a keyed batch whose state is read ahead together (see
 * pushPrefetched): their blocks, a few hundred at most, must stay in the
 * image's block cache until the records read them.
 */
const PREFETCH_RECORDS = 128;

/** How long an idle source waits before polling again. */
export const SOURCE_IDLE_POLL_MS = 20;

/** A checkpoint the coordinator triggered at a source (or at a subtask whose input ended). */
interface Trigger extends CheckpointBarrier {
  /** A source stops reading once it has emitted this barrier (stop-with-savepoint). */
  readonly stopAfter?: boolean;
  /** The source sends the end of time before this barrier, so every event-time timer fires into it (stop --drain). */
  readonly drain?: boolean;
}

/** A deployed subtask of one attempt. */
export class Task {
  /** The chained operators, from the head (a source, or the input's first operator) to the sinks. */
  readonly chain: OperatorChain;
  /** The input channels' queues. */
  readonly gate: InputGate;
  /** The output channels. */
  readonly writer: RecordWriter;
  /** This subtask's vertex of the plan. */
  readonly vertex: PlanVertex;
  /** The key selector of each input channel: batches carry values, and keys are computed again here. */
  private readonly inputKeys: InputKeys;
  /** For a co-process head: which input (1 or 2) each channel feeds. */
  private readonly coInputs: Map<string, 1 | 2> | undefined;
  /** A keyed co-process head: its two inputs' key types, spot-checked per batch. */
  private readonly coKeyTypes: CoInputKeyTypes | undefined;
  /** Keyed state snapshots and their uploads (incremental chains). */
  private readonly snapshotter: KeyedSnapshotter;
  /** What barriers mean here: the state machine whose actions {@link actions} carry out. */
  private readonly barriers: BarrierHandler;
  /** Applies the barrier handler's actions. */
  private readonly actions: BarrierActions;
  /** Snapshots, barrier forwarding, uploads and acks. */
  private readonly checkpointer: SubtaskCheckpointer;
  /** The sinks' two-phase commit. */
  private readonly sinks: SinkCommitter;
  /** The source's reader, when the chain's head is a source. */
  private readonly reader: SourceReader | undefined;
  /** The source's uid: its positions go into checkpoints under it. */
  private readonly sourceUid: string | undefined;
  /** Aligned checkpoints turn unaligned after this long from their trigger (0: unaligned from the start, or never). */
  private readonly alignTimeoutMs: number;
  /** Where the task is in its lifecycle: created → running → finished, failed or canceled. */
  private status: TaskStatus = "created";
  /** The input loop, once started. */
  private loop: Promise<void> | undefined;
  /** In-flight data restored and waiting to be processed ahead of new input. */
  private replayPending = false;
  /** Checkpoints triggered at this source, taken at its next batch boundary. */
  private readonly triggers: Trigger[] = [];
  /** A source waits for credits to send the batch it read (its state is the one after that batch). */
  private sourceFlushing = false;
  /** A source sent what it restored (its watermark) before its first read. */
  private sourceStarted = false;
  /** Whether a stop-with-savepoint stopped this source (it reads nothing more). */
  private stopped = false;
  /** Watermarks in and out, and the firing of timers. */
  private readonly time: TaskTime;
  /** The async I/O operator, when it heads the vertex (it is then alone in it). */
  private readonly asyncStage: AsyncStage | undefined;

  constructor(
    readonly deployment: SubtaskDeployment,
    private readonly job: JobDefinition,
    private readonly host: TaskHost,
  ) {
    const { plan, index, attempt } = deployment;
    const vertex = plan.vertices.find((v) => v.id === deployment.vertex);
    if (!vertex) throw new Error(`job "${job.name}" has no vertex "${deployment.vertex}"`);
    this.vertex = vertex;
    const carrying = verticesCarryingOrigins(plan, job.nodes);
    this.writer = new RecordWriter(
      vertex.outputs.map((o) => ({
        vertex: o.vertex,
        parallelism: o.parallelism,
        partitioner: o.partitioner,
        keySelector: job.nodes[o.toNode].inputs[o.inputIndex].keySelector,
        operator: keyedOperatorName(job.nodes[o.toNode]),
        tag: o.tag,
        lane: o.lane,
        origins: carrying.has(o.vertex),
      })),
      { vertex: vertex.id, index, attempt },
      plan.maxParallelism,
      host.send,
      plan.batchSize,
      () => host.now(),
      undefined,
      () => this.chain.origin(),
    );
    this.writer.onFailure = (e) => void this.fail(e);
    this.chain = new OperatorChain(job, vertex, {
      subtaskIndex: index,
      maxParallelism: plan.maxParallelism,
      emit: (v, timestampMs) => this.writer.emit(v, timestampMs),
      emitSide: (tag, v, timestampMs) => this.writer.emitSide(tag, v, timestampMs),
      currentWatermarkMs: () => this.currentWatermarkMs,
      now: () => host.now(),
      createSinkWriter: (node: LogicalNode): SinkWriter =>
        node.sink!.createWriter({
          jobName: job.name,
          uid: node.options.uid!,
          subtaskIndex: index,
          parallelism: vertex.parallelism,
          env: host.env,
          runId: deployment.runId,
          staging: host.staging,
          now: () => host.now(),
          sleep: (ms) => host.sleep(ms),
        }),
    });
    this.inputKeys = inputKeys(job, vertex, index);
    this.coInputs = coInputs(job, vertex, index);
    this.coKeyTypes = this.coInputs && vertex.keyed ? new CoInputKeyTypes(job.nodes[vertex.nodes[0]]) : undefined;
    const channels = [...this.inputKeys.keys()];
    this.gate = new InputGate(channels);
    const { checkpoint } = deployment;
    this.alignTimeoutMs = checkpoint.unaligned ? checkpoint.alignedCheckpointTimeoutMs : 0;
    if (checkpoint.unaligned) this.gate.priorityBarriers = (b) => this.onBarrierArrived(b);
    const head = job.nodes[vertex.nodes[0]];
    this.reader = head.source?.createReader({ jobName: job.name, subtaskIndex: index, parallelism: vertex.parallelism, env: host.env, now: () => host.now(), sleep: (ms) => host.sleep(ms) });
    this.sourceUid = head.source ? head.options.uid : undefined;
    this.asyncStage = head.kind === "async" ? this.createAsyncStage(head) : undefined;
    this.snapshotter = new KeyedSnapshotter(host.snapshots, checkpoint, deployment.keyGroupRange ?? { start: 0, end: plan.maxParallelism - 1 });
    this.sinks = new SinkCommitter(this.chain.sinks, checkpoint.intervalMs > 0, attempt, () => host.now());
    this.time = new TaskTime({
      chain: this.chain,
      writer: this.writer,
      sinks: this.sinks,
      now: () => host.now(),
      sleep: (ms) => host.sleep(ms),
      timerAlarm: host.timerAlarm ? (atMs) => host.timerAlarm!(atMs) : undefined,
      channels,
      source: this.reader && head.watermarks ? { strategy: head.watermarks, partitions: Object.keys(this.reader.positions()), label: nodeLabel(head) } : undefined,
      isSource: this.reader !== undefined,
      restoredWatermarkMs: deployment.restore?.watermarkMs,
      beforeProcessingTimers: () => this.awaitRestoredState(),
      ...(host.fireSliceTimers === undefined ? {} : { fireSliceTimers: host.fireSliceTimers }),
      betweenTimerSlices: async () => {
        this.flushStateIfWanted();
        await this.stallForState();
      },
    });
    this.checkpointer = new SubtaskCheckpointer({
      host,
      report: (call) => this.toCoordinator(call),
      snapshotter: this.snapshotter,
      keyedState: this.chain.keyedState,
      reader: this.reader,
      sourceUid: this.sourceUid,
      writer: this.writer,
      sinks: this.sinks,
      attempt,
      subtaskId: channelId(vertex.id, index),
      describe: this.describe(),
      unaligned: checkpoint.unaligned,
      alignTimeoutMs: this.alignTimeoutMs,
      watermarkMs: () => this.time.checkpointWatermarkMs,
      inFlight: this.asyncStage ? () => this.asyncStage!.snapshot() : undefined,
      broadcast: this.chain.broadcastState.size > 0 ? { capture: () => this.captureBroadcast(), always: index === 0 } : undefined,
    });
    this.barriers = new BarrierHandler({
      channels,
      mode: checkpoint.mode,
      alignTimeoutMs: this.alignTimeoutMs,
      now: () => host.now(),
      lastCheckpointId: () => this.checkpointer.lastCheckpointId,
      barrierQueued: (channel, checkpointId) => this.gate.hasBarrier(channel, checkpointId),
    });
    this.actions = new BarrierActions({
      gate: this.gate,
      barriers: this.barriers,
      checkpointer: this.checkpointer,
      sinks: this.sinks,
      sleep: (ms) => host.sleep(ms),
      running: () => this.status === "running",
      fail: (e) => this.fail(e),
      decline: (checkpointId, reason) => this.declineNow(checkpointId, reason),
    });
  }

  get isSource(): boolean {
    return this.reader !== undefined;
  }

  get state(): TaskStatus {
    return this.status;
  }

  /** The subtask's event time: a source's own watermark, else its input watermark; NO_WATERMARK before it has one. */
  get currentWatermarkMs(): number {
    return this.time.currentWatermarkMs;
  }

  /** Checkpointing is on for the run: sinks commit on completion, not on a timer. */
  private get checkpointing(): boolean {
    return this.deployment.checkpoint.intervalMs > 0;
  }

  /** Restores the deployment's checkpoint, if any; then the task may run. */
  async restore(): Promise<void> {
    this.applyMemoryBudget();
    const spec = this.deployment.restore;
    if (spec) {
      const range = this.deployment.keyGroupRange ?? { start: 0, end: this.deployment.plan.maxParallelism - 1 };
      const reusable: Record<string, KeyedStateHandle> = {};
      let rescaled = false;
      const fills: StateFill[] = [];
      for (const [uid, backend] of this.chain.keyedState) {
        const handles = spec.keyed[uid] ?? [];
        const restored = await this.host.loadState(uid, spec, range);
        if ("backing" in restored) {
          backend.attach(restored.backing);
          if (restored.fill) fills.push(restored.fill);
          if (restored.fill?.keys) backend.countRestoredLater(restored.fill.keys);
        } else backend.load(restored.entries);
        const own = ownHandle(handles, range);
        if (own) reusable[uid] = own;
        else if (handles.length > 0) rescaled = true;
      }
      if (fills.length > 0) {
        this.filling = fills;
        this.restoreFills = fills;
        const done = Promise.all(fills.map((f) => f.done));
        this.fillDone = done;
        done.then(
          () => {
            if (this.fillDone === done) this.filling = undefined;
          },
          // Once running (a task that fails before it runs is never started); a canceled task does not fail.
          (e) => {
            this.fillFailure = e;
            if (this.status === "running") void this.fail(e);
          },
        );
      }
      if (rescaled) this.snapshotter.requireFull();
      else this.snapshotter.restoredFrom(reusable);
      this.snapshotter.restoredAt(spec.checkpointId);
      this.host.snapshots.markImage(
        spec.checkpointId,
        // Not an operator whose restored keys are still being counted: a local restore to this checkpoint reads R2.
        Object.fromEntries([...this.chain.keyedState].filter(([, backend]) => !backend.uncountedRestoredKeys).map(([uid, backend]) => [uid, backend.size()])),
        Object.fromEntries([...this.chain.keyedState].map(([uid, backend]) => [uid, backend.timerCounts()])),
      );
      if (this.reader && this.sourceUid) this.reader.seek(spec.sources[this.sourceUid] ?? {});
      for (const [uid, store] of this.chain.broadcastState) store.restore(spec.broadcast?.[uid] ?? {});
      this.checkpointer.restoredFrom(spec.checkpointId);
      if (spec.channelState) {
        // Restored input batches are values only, as on the wire: the consumer loop computes their keys.
        const file = decodeChannelState(await this.host.getChannelState(spec.channelState));
        const attempt = this.deployment.attempt;
        for (const [channel, batches] of Object.entries(file.inputs)) {
          this.gate.prepend(
            channel,
            batches.map((text): ChannelMessage => {
              const entry = fromInFlight(text);
              return entry.kind === "watermark"
                ? { kind: "watermark", attempt, channel, seq: 0, watermarkMs: entry.watermarkMs, idle: entry.idle }
                : { kind: "batch", attempt, channel, seq: 0, count: 0, records: entry.records, ...(entry.timestamps === undefined ? {} : { timestamps: entry.timestamps }) };
            }),
          );
        }
        for (const [target, records] of Object.entries(file.outputs)) this.writer.preload(target, records, file.outputTimestamps?.[target]);
        this.replayPending = true;
      }
    }
    // Sealed transactions of completed checkpoints are published; later ones are replayed instead.
    await this.sinks.recover(spec?.checkpointId ?? 0);
    await this.chain.open({ jobName: this.job.name, parallelism: this.vertex.parallelism, attempt: this.deployment.attempt, env: this.host.env });
    // Records in flight at the checkpoint are requested again (once the function is open), ahead of any new input.
    if (this.asyncStage && spec?.inFlight?.[this.asyncStage.uid]) this.asyncStage.restore(spec.inFlight[this.asyncStage.uid]);
    this.status = "running";
    if (this.fillFailure !== undefined) void this.fail(this.fillFailure);
  }

  /** Each broadcast process function's broadcast state as JSON text, when not empty (taken in the snapshot's turn). */
  private captureBroadcast(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [uid, store] of this.chain.broadcastState) {
      const text = store.snapshot();
      if (text !== undefined) out[uid] = text;
    }
    return out;
  }

  /**
   * Starts a restored task's work: replays in-flight data of an unaligned
   * checkpoint right away, and runs the input loop of a task with
   * processing-time timers (restored ones fire without any input).
   */
  start(): void {
    const hasWork = this.chain.nextProcessingTimerMs() !== undefined || (this.asyncStage !== undefined && !this.asyncStage.isEmpty());
    if (this.status === "running" && !this.isSource && this.loop === undefined && hasWork) this.loop = this.runInputLoop();
    if (!this.replayPending || this.status !== "running") return;
    this.replayPending = false;
    // Restored output in-flight data goes out first, whether or not any input follows.
    void this.writer.flush().catch((e) => this.fail(e));
    if (!this.isSource && this.loop === undefined) this.loop = this.runInputLoop();
  }

  /** Hands an incoming channel message to the input gate. */
  offer(message: ChannelMessage): DeliveryResult | Promise<DeliveryResult> {
    if (this.status !== "running") return "closed";
    if (message.attempt !== this.deployment.attempt) {
      return message.attempt < this.deployment.attempt ? "stale-attempt" : "not-deployed";
    }
    const result = this.gate.offer(message);
    if (this.loop === undefined && !this.isSource) this.loop = this.runInputLoop();
    return result;
  }

  /** A source's part of checkpoint N starts at the next batch boundary. */
  triggerCheckpoint(checkpointId: number, triggerMs: number, isSavepoint: boolean, stopAfter = false, drain = false): boolean {
    if (this.sinks.endedAfter !== undefined && (this.status === "running" || this.status === "finished")) {
      this.checkpointAtEnd({ checkpointId, triggerMs, isSavepoint, stopAfter });
      return true;
    }
    // A failed task says yes: its failure report, already on its way, fails the job over with the
    // cause. A "no" fails the checkpoint first, and the job over with only "could not start checkpoint".
    if (this.status === "failed") return true;
    if (!this.isSource || this.status !== "running" || this.stopped) return false;
    const t: Trigger = { checkpointId, triggerMs, isSavepoint, stopAfter, drain };
    if (this.sourceFlushing && this.triggers.length === 0 && this.deployment.checkpoint.unaligned && this.alignTimeoutMs === 0 && !isSavepoint && !stopAfter) {
      // Unaligned, and the source waits for credits: its state and positions are those after the batch
      // it emitted, so the barrier goes now, ahead of that batch (which becomes in-flight data), as
      // Flink's sources send unaligned barriers as priority events.
      this.checkpointer.checkpoint(t, this.host.now(), 0).catch((e: unknown) => this.fail(e));
      return true;
    }
    this.triggers.push(t);
    return true;
  }

  /** Checkpoint N completed everywhere: exactly-once sinks publish what it sealed. */
  async notifyCheckpointComplete(checkpointId: number): Promise<void> {
    if ((this.status !== "running" && this.status !== "finished") || !this.checkpointing) return;
    const positions = this.checkpointer.positionsCompleted(checkpointId);
    if (positions && this.reader?.checkpointComplete) {
      // Reporting only (e.g. offsets to a Kafka consumer group): a failure here never fails the job.
      void this.reader.checkpointComplete(positions).catch(() => undefined);
    }
    try {
      await this.sinks.commitCompleted(checkpointId);
    } catch (e) {
      await this.fail(e);
      return;
    }
    // A checkpoint taken after the end of input completed and committed: all of this subtask's output is out.
    if (this.status === "running" && this.sinks.isFinal(checkpointId)) {
      this.status = "finished";
      await this.sinks.finish(checkpointId);
      await this.toCoordinator(() => this.host.reportFinished());
    }
  }

  /** Checkpoint N was aborted: an alignment waiting for it is given up. */
  notifyCheckpointAborted(checkpointId: number): void {
    this.actions.applyNow(this.barriers.notifyAborted(checkpointId));
  }

  /** Runs the source loop until `deadlineMs`; resolves whether the source should be polled again. */
  async runSource(deadlineMs: number): Promise<boolean> {
    const reader = this.reader!;
    if (!this.sourceStarted && this.status === "running") {
      this.sourceStarted = true;
      try {
        // The watermark it restored goes out ahead of its first batch, as it went out after the batch before.
        await this.time.emitSourceWatermark();
      } catch (e) {
        await this.fail(e);
        return false;
      }
    }
    while (this.status === "running" && this.host.now() < deadlineMs) {
      try {
        const trigger = this.triggers.shift();
        if (trigger) {
          // Drained: the end of time goes ahead of the barrier, in-band, so downstream every event-time
          // timer fires (and its output is sent) before the savepoint's barrier arrives.
          if (trigger.drain) await this.time.drain();
          await this.checkpointer.checkpoint(trigger, this.host.now(), 0);
          if (trigger.stopAfter) {
            // Nothing after the final savepoint's barrier: the coordinator ends the job once it completed.
            this.stopped = true;
            return false;
          }
          continue;
        }
        const batch = await reader.poll(this.deployment.plan.batchSize);
        if (this.status !== "running") break;
        if (batch === "end") {
          await this.time.onSourceEnd();
          await this.endOfData();
          return false;
        }
        if (batch === null) {
          // A partition may have turned idle meanwhile.
          await this.time.emitSourceWatermark();
          await this.sinks.flushIfDue();
          if (this.triggers.length === 0) await this.host.sleep(SOURCE_IDLE_POLL_MS);
          continue;
        }
        const { records } = batch;
        // Timestamps are read before user code runs, which could change the records.
        const timestamps = this.time.onSourceBatch(batch.partition, records);
        this.chain.pushSourceBatch(batch.partition, batch.firstOffset, records, timestamps);
        this.sourceFlushing = true;
        try {
          await this.writer.flush();
        } finally {
          this.sourceFlushing = false;
        }
        await this.time.emitSourceWatermark();
        await this.sinks.flushIfDue();
        // A source whose reads need no I/O (a generator) would otherwise hold the thread for the whole
        // slice: checkpoint triggers, heartbeats and requests to other objects would wait for it.
        await this.host.sleep(0);
      } catch (e) {
        await this.fail(e);
        return false;
      }
    }
    return this.status === "running";
  }

  /** Milliseconds the loop waited in {@link stallForState}. */
  private stateStalledMs = 0;
  /** Keyed state a lazy restore is still reading (undefined once it is all in). */
  private filling: StateFill[] | undefined;
  private fillDone: Promise<unknown> | undefined;
  /** The fills of this task's restore, done or not (for metrics). */
  private restoreFills: readonly StateFill[] = [];
  private fillFailure: unknown;
  private restoreWaitMs = 0;

  /** Some keyed operator is over its budget with every entry in memory changed since the last capture (nothing to evict). */
  private stateWantsFlush(): boolean {
    for (const backend of this.chain.keyedState.values()) if (backend.wantsFlush) return true;
    return false;
  }

  /**
   * Keyed state over its budget with every entry changed since the last
   * checkpoint: its changes are sealed into the image now, as runs of the
   * next checkpoint, so that they can be evicted (in the background; a
   * failure fails the next checkpoints, as a failed write-back does).
   */
  private flushStateIfWanted(): void {
    if (this.snapshotter.mayFlush && this.stateWantsFlush()) this.snapshotter.flush(this.chain.keyedState).catch(() => undefined);
  }

  /**
   * Keyed state still over its budget with nothing it may evict while
   * changes are being sealed into the image: the loop takes no input until
   * the seal ends (RocksDB's write stall), since every record now would add
   * to memory what the budget has no room for. On one thread the seal's
   * turns run instead of records, so the stall costs little throughput.
   */
  private async stallForState(): Promise<void> {
    const sealing = this.snapshotter.sealing;
    if (!sealing || !this.stateWantsFlush()) return;
    const from = this.host.now();
    await sealing;
    this.stateStalledMs += this.host.now() - from;
  }

  /** The next batch's records, parsed by {@link restoreWait} (the loop takes them instead of parsing again). */
  private peeked: { message: ChannelMessage; values: unknown[] } | undefined;

  /**
   * A lazy restore is under way: what the next message must wait for before
   * it is taken, so that nothing reads state still in R2. A batch waits for
   * the blocks of its records' keys (read on demand); what may touch every key
   * waits for the whole restore: broadcast elements (non-keyed input into
   * keyed state), a watermark or end of input with an event timer that may
   * come due, a savepoint barrier (a checkpoint references the restored
   * files instead). Undefined: take it now.
   */
  private restoreWait(): Promise<void> | undefined {
    const message = this.gate.peek();
    if (message === undefined) return undefined;
    const nextEventTimer = () => this.chain.nextTimerMs("event");
    switch (message.kind) {
      case "batch": {
        if (this.asyncStage) return undefined;
        const keyOf = this.inputKeys.get(message.channel);
        if (keyOf === undefined) return this.awaitRestoredState();
        const values = decodeBatch(message.records);
        this.peeked = { message, values };
        const max = this.deployment.plan.maxParallelism;
        const range = this.deployment.keyGroupRange ?? { start: 0, end: max - 1 };
        const keys: FillKey[] = [];
        for (const v of values) {
          const hash = hashKey(this.keyOf(keyOf, v));
          const key = { keyGroup: hash % max, hash };
          // A key this subtask does not own is the loop's error to report (checkReceivedKey, the checkpoint's check).
          if (inRange(range, key.keyGroup) && this.filling!.some((f) => !f.fill.has(key))) keys.push(key);
        }
        return keys.length === 0 ? undefined : this.awaitRestoredKeys(keys);
      }
      case "watermark": {
        // The combined watermark moves to at most this one, or anywhere when a channel goes idle.
        const next = this.asyncStage ? undefined : nextEventTimer();
        return next !== undefined && (message.idle || (message.watermarkMs !== null && next <= message.watermarkMs)) ? this.awaitRestoredState() : undefined;
      }
      case "end":
        return nextEventTimer() !== undefined ? this.awaitRestoredState() : undefined;
      case "barrier":
        return message.isSavepoint ? this.awaitRestoredState() : undefined;
    }
  }

  /** Reads the state of `keys` (on demand, ahead of the background fill). */
  private async awaitRestoredKeys(keys: readonly FillKey[]): Promise<void> {
    const from = this.host.now();
    await Promise.all(this.filling!.map((f) => f.fill.ensure(keys)));
    this.restoreWaitMs += this.host.now() - from;
  }

  /** A lazy restore is under way: waits until all of it is in (what needs every key: timers due, broadcast elements, savepoints). */
  private async awaitRestoredState(): Promise<void> {
    if (!this.filling) return;
    const from = this.host.now();
    await this.fillDone;
    this.restoreWaitMs += this.host.now() - from;
  }

  /** What this task's restore read lazily: its blocks, and the reads records waited for (0 and 0: it was not lazy). */
  lazyRestore(): { blocks: number; demandReads: number } {
    let blocks = 0;
    let demandReads = 0;
    for (const f of this.restoreFills) {
      const p = f.fill.progress();
      blocks += p.blocks;
      demandReads += p.demandReads;
    }
    return { blocks, demandReads };
  }

  /**
   * Idle, with keyed state over its budget that may be evicted now (a seal
   * made it clean after the last record): one step of eviction. Answers
   * whether it took one (the loop then yields and looks again).
   */
  private evictIdle(): boolean {
    let evicted = false;
    for (const backend of this.chain.keyedState.values()) {
      if (!backend.wantsEviction) continue;
      backend.evictSome();
      evicted = true;
    }
    return evicted;
  }

  /** Stops processing; waiting senders are released. */
  cancel(): void {
    if (this.status === "running" || this.status === "created") this.status = "canceled";
    this.snapshotter.cancel();
    for (const backend of this.chain.keyedState.values()) backend.releaseTimers();
    this.gate.close();
    this.closeConnectors();
  }

  /**
   * Gives the keyed operators the job's memory budget, split evenly among
   * them (a subtask runs one keyed operator unless chained ones share a key).
   */
  private applyMemoryBudget(): void {
    const budget = this.host.memoryBudgetBytes ?? resolveStateConfig(this.job.options.state, this.deployment.checkpoint.localRecovery).memoryBudgetBytes;
    const image = this.host.imageBacking;
    if (budget === undefined || !image || this.chain.keyedState.size === 0) return;
    const each = Math.floor(budget / this.chain.keyedState.size);
    for (const [uid, backend] of this.chain.keyedState) backend.useBudget(each, image.call(this.host, uid));
  }

  metrics(): TaskMetrics {
    let stateKeys = 0;
    let stateBytesInMemory = 0;
    let stateEntriesEvicted = 0;
    let stateReadbacks = 0;
    for (const s of this.chain.keyedState.values()) {
      stateKeys += s.size();
      stateBytesInMemory += s.bytesInMemory;
      stateEntriesEvicted += s.entriesEvicted;
      stateReadbacks += s.readbacks;
    }
    let pendingSinkBytes = 0;
    const sinks: Record<string, SinkMetrics> = {};
    for (const [uid, s] of this.chain.sinks) {
      pendingSinkBytes += s.pendingBytes();
      sinks[uid] = s.metrics();
    }
    const lazy = this.lazyRestore();
    return {
      vertex: this.vertex.id,
      index: this.deployment.index,
      attempt: this.deployment.attempt,
      status: this.status,
      recordsIn: this.chain.recordsIn,
      recordsOut: this.writer.emitted,
      queuedBatches: this.gate.queued(),
      backpressuredMs: this.writer.backpressuredMs,
      positions: this.reader?.positions() ?? null,
      sourceLag: this.reader?.lag?.() ?? null,
      inputChannels: this.gate.size,
      stateKeys,
      stateBytesInMemory,
      stateEntriesEvicted,
      stateReadbacks,
      stateStalledMs: Math.round(this.stateStalledMs),
      stateRestoreBlocksMissing: this.filling?.reduce((n, f) => n + f.fill.progress().missing, 0) ?? 0,
      stateRestoreBlocks: lazy.blocks,
      stateRestoreDemandReads: lazy.demandReads,
      stateRestoreWaitMs: Math.round(this.restoreWaitMs),
      pendingSinkBytes,
      sinks,
      lastCheckpointId: this.checkpointer.lastCheckpointId,
      deadLetters: this.chain.deadLetters,
      ...this.time.metrics(),
      // Not while restoring: an operator may count its gauge from the state on the first read.
      // Nor while a lazy restore reads the state: the count reads every key.
      openWindows: this.status === "created" || this.filling ? null : (this.chain.gauges().openWindows ?? null),
      asyncIo: this.asyncStage?.metrics() ?? null,
    };
  }

  /** The object's alarm rang: a processing-time timer may be due, and the input loop fires it. */
  onAlarm(): void {
    this.time.onAlarm();
    if (this.status === "running" && !this.isSource && this.loop === undefined && this.time.hasProcessingTimers()) this.loop = this.runInputLoop();
  }

  private async runInputLoop(): Promise<void> {
    try {
      while (this.status === "running") {
        const commit = this.sinks.takeCommitBeforeNext();
        if (commit) {
          await commit;
          continue;
        }
        if (await this.time.fireProcessingTimers()) continue;
        if (this.asyncStage && (await this.pumpAsync(this.asyncStage))) continue;
        if (this.filling) {
          // Waits with the message still queued: a barrier arriving meanwhile captures it as in-flight data.
          const wait = this.restoreWait();
          if (wait) {
            await wait;
            continue;
          }
        }
        const message = this.gate.poll();
        if (message === undefined) {
          if (this.evictIdle()) {
            await this.host.sleep(0);
            continue;
          }
          const timer = this.time.nextTimerDue();
          // An async operator's completions wake the loop as input does; so does the end of a seal (what it sealed may be evicted).
          const sealing = this.snapshotter.sealing;
          const progress = [...(this.asyncStage && !this.asyncStage.isEmpty() ? [this.asyncStage.whenProgress()] : []), ...(sealing ? [sealing] : [])];
          if (!this.checkpointing && this.sinks.pending()) {
            const due = this.sinks.flushDueInMs();
            if (due <= 0) await this.sinks.flush();
            else await Promise.race([this.gate.waitForInput(), this.host.sleep(due), ...(timer ? [timer] : []), ...progress]);
          } else {
            await (timer || progress.length > 0 ? Promise.race([this.gate.waitForInput(), ...(timer ? [timer] : []), ...progress]) : this.gate.waitForInput());
          }
          continue;
        }
        switch (message.kind) {
          case "batch": {
            const values = this.peeked?.message === message ? this.peeked.values : decodeBatch(message.records);
            this.peeked = undefined;
            const timestamps = message.timestamps === undefined ? undefined : (JSON.parse(message.timestamps) as BatchTimestamps);
            const keyOf = this.inputKeys.get(message.channel);
            const input = this.coInputs?.get(message.channel);
            const origins = message.origins === undefined ? undefined : decodeOrigins(message.origins);
            if (this.asyncStage) {
              this.chain.recordsIn += values.length;
              // On a keyed stream, each record's key goes with it (its failure names it).
              if (keyOf !== undefined && values.length > 0) this.checkBatchKey(keyOf, values[0], input);
              const keys = keyOf === undefined ? undefined : values.map((v) => this.keyOf(keyOf, v));
              this.asyncStage.takeBatch(values, timestamps, origins, keys);
            } else if (origins !== undefined) {
              if (keyOf !== undefined && values.length > 0) this.checkBatchKey(keyOf, values[0], input);
              this.pushCarried(keyOf, values, timestamps, input, origins);
            } else if (keyOf === undefined) {
              for (let i = 0; i < values.length; i++) this.chain.push(null, values[i], timestamps?.[i] ?? undefined, input);
            } else if (values.length > 0) {
              this.checkBatchKey(keyOf, values[0], input);
              if (this.prefetching()) this.pushPrefetched(keyOf, values, timestamps, input);
              else for (let i = 0; i < values.length; i++) this.chain.push(this.keyOf(keyOf, values[i]), values[i], timestamps?.[i] ?? undefined, input);
            }
            await this.writer.flush();
            await this.sinks.flushIfDue();
            this.flushStateIfWanted();
            await this.stallForState();
            break;
          }
          case "barrier":
            await this.actions.applyInLoop(this.barriers.onBarrier(message));
            break;
          case "watermark":
            if (this.asyncStage) this.asyncStage.holdWatermark(message.channel, message.watermarkMs, message.idle);
            else await this.time.onWatermark(message.channel, message.watermarkMs, message.idle);
            break;
          case "end": {
            // An ended input moves its watermark to the end of time: every result goes out before it.
            if (this.asyncStage) await this.asyncStage.drain();
            await this.actions.applyInLoop(this.barriers.onEndOfInput(message.channel));
            // An ended channel is at the end of time: when all have ended, so is this subtask, before its own end.
            await this.time.onChannelEnded(message.channel);
            if (this.gate.allEnded()) {
              await this.endOfData();
              return;
            }
            break;
          }
        }
      }
    } catch (e) {
      await this.fail(e);
    }
  }

  /**
   * Emits what the async operator has ready; answers true when records of
   * the last batch still wait for room, after waiting for a completion (the
   * loop takes no input until they are in: they came before it).
   */
  private async pumpAsync(stage: AsyncStage): Promise<boolean> {
    await stage.emitReady();
    if (!stage.backlogged) return false;
    await stage.whenProgress();
    return true;
  }

  /** The async I/O operator of a vertex it heads, over this task's writer, clock and time. */
  private createAsyncStage(head: LogicalNode): AsyncStage {
    const fn = this.chain.asyncFunction;
    if (!fn) throw new Error(`async operator "${nodeLabel(head)}" has no function instance`);
    return new AsyncStage({
      node: head,
      fn,
      sleep: (ms) => this.host.sleep(ms),
      emit: (v, ts) => this.writer.emit(v, ts),
      emitSide: (tag, v, ts) => this.writer.emitSide(tag, v, ts),
      setOrigin: (origin) => void (this.chain.carriedOrigin = origin),
      flush: () => this.writer.flush(),
      onWatermark: (channel, watermarkMs, idle) => this.time.onWatermark(channel, watermarkMs, idle),
      countDeadLetter: () => void this.chain.deadLetters++,
    });
  }

  /** Whether a keyed backend of the chain reads state ahead from its image (one is attached). */
  private prefetching(): boolean {
    for (const backend of this.chain.keyedState.values()) if (backend.prefetches) return true;
    return false;
  }

  /**
   * Pushes a keyed batch a chunk at a time, each chunk's keys read ahead
   * from the image first (KeyedStateBackend.prefetch): one query per run
   * for the entries its records would otherwise read one query each.
   */
  private pushPrefetched(keyOf: KeySelector, values: readonly unknown[], timestamps: readonly (number | null)[] | undefined, input: 1 | 2 | undefined): void {
    const keys = values.map((v) => this.keyOf(keyOf, v));
    for (let start = 0; start < values.length; start += PREFETCH_RECORDS) {
      const end = Math.min(start + PREFETCH_RECORDS, values.length);
      for (const backend of this.chain.keyedState.values()) backend.prefetch(keys, start, end);
      for (let i = start; i < end; i++) this.chain.push(keys[i], values[i], timestamps?.[i] ?? undefined, input);
    }
  }

  /**
   * The sender partitioned by the key its selector gave for the value
   * before the JSON round trip. A spot check that it is still a key this
   * subtask owns: one hash per batch (one per record would cost 10–20% of
   * a keyed count). Checkpoints check every key whose state they capture.
   */
  private checkBatchKey(keyOf: KeySelector, first: unknown, input: 1 | 2 | undefined): void {
    const range = this.deployment.keyGroupRange;
    if (range) {
      const subtask = { index: this.deployment.index, parallelism: this.vertex.parallelism };
      checkReceivedKey(this.job.nodes[this.vertex.nodes[0]], subtask, first, this.keyOf(keyOf, first), range, this.deployment.plan.maxParallelism);
    }
    if (this.coKeyTypes && input !== undefined) this.coKeyTypes.check(input, first, this.keyOf(keyOf, first));
  }

  /**
   * Pushes a batch that carried where its records were read (a vertex
   * feeding an async operator): what each record emits carries its
   * origin on, and its error names it, as in a source's chain.
   */
  private pushCarried(keyOf: KeySelector | undefined, values: readonly unknown[], timestamps: BatchTimestamps | undefined, input: 1 | 2 | undefined, origins: BatchOrigins): void {
    let i = 0;
    try {
      for (; i < values.length; i++) {
        this.chain.carriedOrigin = origins[i] ?? null;
        this.chain.push(keyOf === undefined ? null : this.keyOf(keyOf, values[i]), values[i], timestamps?.[i] ?? undefined, input);
      }
    } catch (e) {
      const at = origins[i];
      if (at && e instanceof UserCodeError) throw new Error(`${e.message} at ${at.partition} offset ${at.offset}`);
      if (at && e instanceof KeySelectorError) throw e.at(`${at.partition} offset ${at.offset}`);
      throw e;
    } finally {
      this.chain.carriedOrigin = null;
    }
  }

  /**
   * The key of a received record. The sender's selector gave a key for this
   * value before its JSON round trip; one that throws now or gives no key
   * (a `Date` field became a string, say) is the job's error, reported as such.
   */
  private keyOf(keySelector: KeySelector, value: unknown): Key {
    let key: unknown;
    try {
      key = keySelector(value);
    } catch (e) {
      throw selectorThrewError(keyedOperatorName(this.job.nodes[this.vertex.nodes[0]]), value, e, true);
    }
    if (!isKey(key)) throw receivedKeyError(keyedOperatorName(this.job.nodes[this.vertex.nodes[0]]), value, key);
    return key;
  }

  /** A barrier arriving with unaligned checkpoints on: handled at once, or (answering false) queued in order. */
  private onBarrierArrived(b: BarrierMessage): boolean {
    // Savepoints stay aligned; a task that stopped takes no barrier.
    if (b.isSavepoint) return false;
    if (this.status !== "running") return true;
    const { consumed, actions } = this.barriers.onBarrierArrived(b);
    this.actions.applyNow(actions);
    return consumed;
  }

  /**
   * End of input (Flink's FLIP-147). Everything is sent downstream, followed
   * by end-of-input. With checkpointing on, sinks keep their transaction
   * open: the next checkpoint seals it, its completion commits it, and only
   * then does the subtask finish — nothing is published outside the
   * protocol, so a failover at any point replays without duplicates. Without
   * checkpointing, sinks publish at once.
   */
  private async endOfData(): Promise<void> {
    await this.writer.endOfInput();
    if (this.status !== "running") return;
    if (!this.checkpointing) {
      await this.sinks.flush();
      this.status = "finished";
      await this.toCoordinator(() => this.host.reportFinished());
      return;
    }
    // From now on the coordinator triggers this subtask directly, and the first later checkpoint to complete finishes it.
    this.sinks.inputEnded(this.checkpointer.lastCheckpointId);
    // Triggers that came while the last records went out.
    for (const t of this.triggers.splice(0)) this.checkpointAtEnd(t);
    await this.toCoordinator(() => this.host.reportEndOfData());
  }

  /**
   * A checkpoint of a subtask whose input ended: its state is final and its
   * outputs have ended, so it snapshots at once and forwards no barrier.
   * Ignored when it took that checkpoint already (its barrier came before the
   * end of input).
   */
  private checkpointAtEnd(t: Trigger): void {
    if (t.checkpointId <= this.checkpointer.lastCheckpointId) return;
    if (t.checkpointId <= this.barriers.maxBarrierId) {
      // Its barrier (or a newer one) came before the end and was not taken (an aborted alignment made it
      // obsolete): a snapshot now would hold records that followed it. That checkpoint cannot complete.
      this.decline(t.checkpointId, `passed barrier ${t.checkpointId} without taking it before its input ended`);
      return;
    }
    this.checkpointer.checkpointAtEnd(t);
    this.sinks.commitAtBarrier(t.checkpointId).catch((e: unknown) => this.fail(e));
  }

  /** Declines checkpoint N without waiting for the coordinator's answer. */
  private decline(checkpointId: number, reason: string): void {
    void this.declineNow(checkpointId, reason);
  }

  /** Tells the coordinator that this subtask cannot take checkpoint N, and why. */
  private declineNow(checkpointId: number, reason: string): Promise<void> {
    // A decline that does not arrive costs only time: the coordinator's checkpoint timeout aborts the checkpoint.
    return this.host.decline(checkpointId, `subtask ${this.describe()} ${reason}`).catch(() => undefined);
  }

  /**
   * A report the coordinator must get (an ack, an end of input, a finish):
   * a coordinator reset fails the calls in flight to it, and a lost ack
   * would hold its checkpoint until the timeout. Retried a few times while
   * this task lives; a repeat is answered as a duplicate.
   */
  private toCoordinator(call: () => Promise<void>): Promise<void> {
    return retry(call, {
      attempts: COORDINATOR_ATTEMPTS,
      delayMs: 50,
      sleep: (ms) => this.host.sleep(ms),
      stillWanted: () => this.status === "running" || this.status === "finished",
    });
  }

  /** Sources stop reading and sinks stop publishing: a newer task of this subtask may take over at once. */
  private closeConnectors(): void {
    // The task is over: a reader that fails to close leaves nothing to undo (its positions are in the checkpoints).
    void this.reader?.close?.().catch(() => undefined);
    this.asyncStage?.close();
    this.sinks.close();
    void this.chain.close();
  }

  private describe(): string {
    return `${this.vertex.name} (subtask ${this.deployment.index + 1}/${this.vertex.parallelism})`;
  }

  private async fail(e: unknown): Promise<void> {
    if (this.status !== "running") return;
    this.status = "failed";
    this.gate.close();
    this.closeConnectors();
    const message = e instanceof Error ? e.message : String(e);
    // Best effort: a failed task answers "closed" to its senders (whose tasks fail and report in turn) and
    // acknowledges no checkpoint (which times out), so the failure comes to light without this report.
    await this.host.reportFailure(`${this.describe()}: ${message}`).catch(() => undefined);
  }
}
