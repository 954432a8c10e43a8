/**
 * One running subtask: its operator chain, its input gate and record
 * writer, barrier alignment and snapshots, and the loop that moves records
 * through them. The Durable Object around it (subtask.ts) only does I/O;
 * everything here reaches the outside through {@link TaskHost}, which keeps
 * the loop testable in plain Node and in the simulator.
 *
 * One consumer loop per subtask: incoming batches wait in the input gate,
 * and each batch is processed in one synchronous turn (keyed state updated,
 * sink output staged) before anything is awaited.
 */
import type { JobDefinition, LogicalNode } from "../../api/job.js";
import type { SinkMetrics, SinkTransactionHandle, SinkWriter, SourceReader, StagingStore } from "../../api/types.js";
import { BarrierAligner } from "../../checkpoint/barrier-aligner.js";
import { type ChannelStateHandle, type KeyedStateHandle, type SubtaskAck, ownHandle } from "../../checkpoint/types.js";
import type { Key, KeyGroupRange } from "../../graph/key-groups.js";
import type { PlanVertex } from "../../graph/plan.js";
import type { StateBacking, StateEntry } from "../../state/keyed-state.js";
import { KeyedSnapshotter, type SnapshotStore } from "../../state/snapshotter.js";
import { decodeChannelState, encodeChannelState, type InputKeys, inputKeys, type KeySelector } from "../batch-encoding.js";
import { InputGate } from "../input-gate.js";
import type { BarrierMessage, ChannelMessage, DeliveryResult, RestoreSpec, SubtaskDeployment, TaskMetrics, TaskStatus } from "../messages.js";
import { OperatorChain, UserCodeError } from "../operator-chain.js";
import { RecordWriter, type SendFn } from "../record-writer.js";
import { retry } from "../../retry.js";

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
  loadState(uid: string, spec: RestoreSpec, range: KeyGroupRange): Promise<{ backing: StateBacking } | { entries: StateEntry[] }>;
  acknowledge(ack: SubtaskAck & { checkpointId: number }): Promise<void>;
  decline(checkpointId: number, reason: string): Promise<void>;
  reportFailure(message: string): Promise<void>;
  /** End of input reached with checkpointing on: the coordinator triggers this subtask directly from now on. */
  reportEndOfData(): Promise<void>;
  reportFinished(): Promise<void>;
}

/** How often a report to the coordinator is tried (again after 50 ms, doubling: 1.55 s in all). */
const COORDINATOR_ATTEMPTS = 6;

/** Without checkpoints, how often sinks publish. */
export const SINK_FLUSH_INTERVAL_MS = 200;
/** How long an idle source waits before polling again. */
export const SOURCE_IDLE_POLL_MS = 20;

/** An unaligned checkpoint between its first barrier and the last one. */
interface UnalignedSnapshot {
  readonly trigger: Trigger;
  /** Channels whose barrier has not arrived: what they deliver until it does is in-flight data. */
  readonly pending: Set<string>;
  readonly inputs: Map<string, string[]>;
  readonly outputs: Record<string, unknown[]>;
  readonly finish: () => void;
}

interface Trigger {
  readonly checkpointId: number;
  readonly triggerMs: number;
  readonly isSavepoint: boolean;
  /** A source stops reading once it has emitted this barrier (stop-with-savepoint). */
  readonly stopAfter?: boolean;
}

/** A deployed subtask of one attempt. */
export class Task {
  readonly chain: OperatorChain;
  readonly gate: InputGate;
  readonly writer: RecordWriter;
  readonly vertex: PlanVertex;
  /** The key selector of each input channel: batches carry values, and keys are computed again here. */
  private readonly inputKeys: InputKeys;
  private readonly aligner: BarrierAligner;
  private readonly snapshotter: KeyedSnapshotter;
  private readonly reader: SourceReader | undefined;
  private readonly sourceUid: string | undefined;
  private status: TaskStatus = "created";
  private lastSinkFlushMs: number;
  private loop: Promise<void> | undefined;
  private readonly triggers: Trigger[] = [];
  private firstBarrierMs = 0;
  private lastCheckpointId = 0;
  /** The unaligned checkpoint whose in-flight data is being collected. */
  private unaligned: UnalignedSnapshot | undefined;
  /** A sink commit started by an unaligned barrier, which the consumer loop awaits before going on. */
  private commitBeforeNext: Promise<void> | undefined;
  /** Aligned checkpoints turn unaligned after this long from their trigger (0: unaligned from the start, or never). */
  private readonly alignTimeoutMs: number;

  constructor(
    readonly deployment: SubtaskDeployment,
    private readonly job: JobDefinition,
    private readonly host: TaskHost,
  ) {
    const { plan, index, attempt } = deployment;
    const vertex = plan.vertices.find((v) => v.id === deployment.vertex);
    if (!vertex) throw new Error(`job "${job.name}" has no vertex "${deployment.vertex}"`);
    this.vertex = vertex;
    this.writer = new RecordWriter(
      vertex.outputs.map((o) => ({
        vertex: o.vertex,
        parallelism: o.parallelism,
        partitioner: o.partitioner,
        keySelector: job.nodes[o.toNode].inputs[o.inputIndex].keySelector,
      })),
      { vertex: vertex.id, index, attempt },
      plan.maxParallelism,
      host.send,
      plan.batchSize,
      () => host.now(),
    );
    this.writer.onFailure = (e) => void this.fail(e);
    this.chain = new OperatorChain(job, vertex, {
      subtaskIndex: index,
      maxParallelism: plan.maxParallelism,
      emit: (v) => this.writer.emit(v),
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
    const channels = [...this.inputKeys.keys()];
    this.gate = new InputGate(channels);
    this.alignTimeoutMs = deployment.checkpoint.unaligned ? deployment.checkpoint.alignedCheckpointTimeoutMs : 0;
    if (deployment.checkpoint.unaligned) this.gate.priorityBarriers = (b) => this.onPriorityBarrier(b);
    this.aligner = new BarrierAligner(channels, deployment.checkpoint.mode, () => host.now());
    const head = job.nodes[vertex.nodes[0]];
    this.reader = head.source?.createReader({ jobName: job.name, subtaskIndex: index, parallelism: vertex.parallelism, env: host.env, now: () => host.now(), sleep: (ms) => host.sleep(ms) });
    this.sourceUid = head.source ? head.options.uid : undefined;
    this.snapshotter = new KeyedSnapshotter(host.snapshots, deployment.checkpoint, deployment.keyGroupRange ?? { start: 0, end: plan.maxParallelism - 1 });
    this.lastSinkFlushMs = host.now();
  }

  get isSource(): boolean {
    return this.reader !== undefined;
  }

  get state(): TaskStatus {
    return this.status;
  }

  /** Checkpointing is on for the run: sinks commit on completion, not on a timer. */
  private get checkpointing(): boolean {
    return this.deployment.checkpoint.intervalMs > 0;
  }

  /** Restores the deployment's checkpoint, if any; then the task may run. */
  async restore(): Promise<void> {
    const spec = this.deployment.restore;
    if (spec) {
      const range = this.deployment.keyGroupRange ?? { start: 0, end: this.deployment.plan.maxParallelism - 1 };
      const reusable: Record<string, KeyedStateHandle> = {};
      let rescaled = false;
      for (const [uid, backend] of this.chain.keyedState) {
        const handles = spec.keyed[uid] ?? [];
        const restored = await this.host.loadState(uid, spec, range);
        if ("backing" in restored) backend.attach(restored.backing);
        else backend.load(restored.entries);
        const own = ownHandle(handles, range);
        if (own) reusable[uid] = own;
        else if (handles.length > 0) rescaled = true;
      }
      if (rescaled) this.snapshotter.requireFull();
      else this.snapshotter.restoredFrom(reusable);
      this.host.snapshots.markImage(spec.checkpointId, Object.fromEntries([...this.chain.keyedState].map(([uid, backend]) => [uid, backend.size()])));
      if (this.reader && this.sourceUid) this.reader.seek(spec.sources[this.sourceUid] ?? {});
      this.lastCheckpointId = spec.checkpointId;
      if (spec.channelState) {
        // Restored input batches are values only, as on the wire: the consumer loop computes their keys.
        const file = decodeChannelState(await this.host.getChannelState(spec.channelState));
        const attempt = this.deployment.attempt;
        for (const [channel, batches] of Object.entries(file.inputs)) {
          this.gate.prepend(
            channel,
            batches.map((records) => ({ kind: "batch" as const, attempt, channel, seq: 0, count: 0, records })),
          );
        }
        for (const [target, records] of Object.entries(file.outputs)) this.writer.preload(target, records);
        this.replayPending = true;
      }
    }
    // Sealed transactions of completed checkpoints are published; later ones are replayed instead.
    for (const [uid, sink] of this.chain.sinks) {
      try {
        await sink.recover(spec?.checkpointId ?? 0);
      } catch (e) {
        throw new Error(`sink "${uid}" could not commit the transactions of checkpoint ${spec?.checkpointId ?? 0}: ${(e as Error)?.message ?? e}`);
      }
    }
    this.status = "running";
  }

  /** In-flight data restored and waiting to be processed ahead of new input. */
  private replayPending = false;

  /** Starts a restored task's work: replays in-flight data of an unaligned checkpoint right away. */
  start(): void {
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
  triggerCheckpoint(checkpointId: number, triggerMs: number, isSavepoint: boolean, stopAfter = false): boolean {
    if (this.endedAfter !== undefined && (this.status === "running" || this.status === "finished")) {
      this.checkpointAtEnd({ checkpointId, triggerMs, isSavepoint, stopAfter });
      return true;
    }
    if (!this.isSource || this.status !== "running" || this.stopped) return false;
    const t: Trigger = { checkpointId, triggerMs, isSavepoint, stopAfter };
    if (this.sourceFlushing && this.triggers.length === 0 && this.deployment.checkpoint.unaligned && this.alignTimeoutMs === 0 && !isSavepoint && !stopAfter) {
      // Unaligned, and the source waits for credits: its state and positions are those after the batch
      // it emitted, so the barrier goes now, ahead of that batch (which becomes in-flight data), as
      // Flink's sources send unaligned barriers as priority events.
      this.firstBarrierMs = this.host.now();
      this.checkpoint(t, 0).catch((e: unknown) => this.fail(e));
      return true;
    }
    this.triggers.push(t);
    return true;
  }

  /** A source waits for credits to send the batch it read (its state is the one after that batch). */
  private sourceFlushing = false;

  /** Whether a stop-with-savepoint stopped this source (it reads nothing more). */
  private stopped = false;

  /** Checkpoint N completed everywhere: exactly-once sinks publish what it sealed. */
  async notifyCheckpointComplete(checkpointId: number): Promise<void> {
    if ((this.status !== "running" && this.status !== "finished") || !this.checkpointing) return;
    const positions = this.positionsAt.get(checkpointId);
    for (const id of this.positionsAt.keys()) if (id <= checkpointId) this.positionsAt.delete(id);
    if (positions && this.reader?.checkpointComplete) {
      // Reporting only (e.g. offsets to a Kafka consumer group): a failure here never fails the job.
      void this.reader.checkpointComplete(positions).catch(() => undefined);
    }
    try {
      for (const [uid, sink] of this.chain.sinks) {
        if (sink.guarantee === "exactly_once") await this.commitSink(uid, sink, checkpointId);
      }
    } catch (e) {
      await this.fail(e);
      return;
    }
    // A checkpoint taken after the end of input completed and committed: all of this subtask's output is
    // out. Transactions sealed after it are empty (nothing was written after the end): drop them.
    if (this.status === "running" && this.endedAfter !== undefined && checkpointId > this.endedAfter) {
      this.status = "finished";
      try {
        for (const sink of this.chain.sinks.values()) await sink.recover(checkpointId);
      } catch {
        // Only empty transactions are left; a later restore drops them anyway.
      }
      await this.toCoordinator(() => this.host.reportFinished());
    }
  }

  /**
   * The last checkpoint this subtask took before its input ended (checkpointing
   * on); undefined while input remains. From then on the coordinator triggers
   * it directly, and the first later checkpoint to complete finishes it.
   */
  private endedAfter: number | undefined;
  /** The newest checkpoint whose barrier reached this subtask, taken or not. */
  private maxBarrierId = 0;

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
      await this.flushSinks();
      this.status = "finished";
      await this.toCoordinator(() => this.host.reportFinished());
      return;
    }
    this.endedAfter = this.lastCheckpointId;
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
    if (t.checkpointId <= this.lastCheckpointId) return;
    if (t.checkpointId <= this.maxBarrierId) {
      // Its barrier (or a newer one) came before the end and was not taken (an aborted alignment made it
      // obsolete): a snapshot now would hold records that followed it. That checkpoint cannot complete.
      void this.host.decline(t.checkpointId, `subtask ${this.describe()} passed barrier ${t.checkpointId} without taking it before its input ended`).catch(() => undefined);
      return;
    }
    this.firstBarrierMs = this.host.now();
    this.snapshotNow(t, this.firstBarrierMs, 0)(Promise.resolve(null), false);
    this.commitAtLeastOnceSinks(t.checkpointId).catch((e: unknown) => this.fail(e));
  }

  /** Checkpoint N was aborted: an alignment waiting for it is given up. */
  notifyCheckpointAborted(checkpointId: number): void {
    this.dropUnaligned(checkpointId, true);
    const action = this.aligner.abort(checkpointId);
    if (action.unblockAll) this.gate.unblockAll();
  }

  /** Runs the source loop until `deadlineMs`; resolves whether the source should be polled again. */
  async runSource(deadlineMs: number): Promise<boolean> {
    const reader = this.reader!;
    while (this.status === "running" && this.host.now() < deadlineMs) {
      try {
        const trigger = this.triggers.shift();
        if (trigger) {
          this.firstBarrierMs = this.host.now();
          await this.checkpoint(trigger, 0);
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
          await this.endOfData();
          return false;
        }
        if (batch === null) {
          await this.flushSinksIfDue();
          if (this.triggers.length === 0) await this.host.sleep(SOURCE_IDLE_POLL_MS);
          continue;
        }
        const { records } = batch;
        let i = 0;
        try {
          for (; i < records.length; i++) this.chain.push(null, records[i]);
        } catch (e) {
          if (e instanceof UserCodeError) throw new Error(`${e.message} at ${batch.partition} offset ${batch.firstOffset + i}`);
          throw e;
        }
        this.sourceFlushing = true;
        try {
          await this.writer.flush();
        } finally {
          this.sourceFlushing = false;
        }
        await this.flushSinksIfDue();
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

  /** Stops processing; waiting senders are released. */
  cancel(): void {
    if (this.status === "running" || this.status === "created") this.status = "canceled";
    this.snapshotter.cancel();
    this.gate.close();
    this.closeConnectors();
  }

  /** Sources stop reading and sinks stop publishing: a newer task of this subtask may take over at once. */
  private closeConnectors(): void {
    void this.reader?.close?.().catch(() => undefined);
    for (const sink of this.chain.sinks.values()) sink.close?.();
  }

  /** Source positions of checkpoints not completed yet. */
  private readonly positionsAt = new Map<number, Record<string, number>>();

  metrics(): TaskMetrics {
    let stateKeys = 0;
    for (const s of this.chain.keyedState.values()) stateKeys += s.size();
    let pendingSinkBytes = 0;
    const sinks: Record<string, SinkMetrics> = {};
    for (const [uid, s] of this.chain.sinks) {
      pendingSinkBytes += s.pendingBytes();
      sinks[uid] = s.metrics();
    }
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
      pendingSinkBytes,
      sinks,
      lastCheckpointId: this.lastCheckpointId,
    };
  }

  private async runInputLoop(): Promise<void> {
    try {
      while (this.status === "running") {
        if (this.commitBeforeNext) {
          const commit = this.commitBeforeNext;
          this.commitBeforeNext = undefined;
          await commit;
          continue;
        }
        const message = this.gate.poll();
        if (message === undefined) {
          if (!this.checkpointing && this.sinksPending()) {
            const due = this.lastSinkFlushMs + SINK_FLUSH_INTERVAL_MS - this.host.now();
            if (due <= 0) await this.flushSinks();
            else await Promise.race([this.gate.waitForInput(), this.host.sleep(due)]);
          } else {
            await this.gate.waitForInput();
          }
          continue;
        }
        switch (message.kind) {
          case "batch": {
            const values = JSON.parse(message.records) as unknown[];
            const keyOf = this.inputKeys.get(message.channel);
            if (keyOf === undefined) {
              for (let i = 0; i < values.length; i++) this.chain.push(null, values[i]);
            } else {
              // The sender partitioned by the key its selector gave for the value before the JSON round trip.
              for (let i = 0; i < values.length; i++) this.chain.push(this.keyOf(keyOf, values[i]), values[i]);
            }
            await this.writer.flush();
            await this.flushSinksIfDue();
            break;
          }
          case "barrier":
            await this.onBarrier(message);
            break;
          case "end": {
            this.unalignedChannelDone(message.channel);
            const action = this.aligner.onEndOfInput(message.channel);
            if (action.snapshot !== undefined) await this.checkpoint(this.pendingBarrier!, this.aligner.lastAlignmentMs);
            if (action.unblockAll) this.gate.unblockAll();
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
   * The key of a received record. The sender's selector gave a key for this
   * value before its JSON round trip; one that throws now (a `Date` field
   * became a string, say) is the job's error, reported as such.
   */
  private keyOf(keySelector: KeySelector, value: unknown): Key {
    try {
      return keySelector(value);
    } catch (e) {
      throw new UserCodeError(`keyBy into ${this.vertex.name}`, null, e);
    }
  }

  private pendingBarrier: Trigger | undefined;

  private async onBarrier(b: BarrierMessage): Promise<void> {
    this.maxBarrierId = Math.max(this.maxBarrierId, b.checkpointId);
    if (this.aligner.aligning === undefined) this.firstBarrierMs = this.host.now();
    const action = this.aligner.onBarrier(b.channel, b.checkpointId);
    if (this.aligner.aligning === b.checkpointId || action.snapshot === b.checkpointId) {
      this.pendingBarrier = { checkpointId: b.checkpointId, triggerMs: b.triggerMs, isSavepoint: b.isSavepoint };
    }
    // An overtaken alignment reopens its channels before the new barrier's channel closes.
    if (action.unblockAll && action.snapshot === undefined) this.gate.unblockAll();
    if (action.block) this.gate.block(action.block);
    if (action.aborted !== undefined) {
      await this.host.decline(action.aborted, `subtask ${this.describe()} received barrier ${b.checkpointId} before finishing alignment of ${action.aborted}`).catch(() => undefined);
    }
    // Snapshot first: records behind blocked channels belong to the next checkpoint.
    if (action.snapshot !== undefined) {
      await this.checkpoint(this.pendingBarrier!, this.aligner.lastAlignmentMs);
      this.gate.unblockAll();
    }
  }

  /** Takes this subtask's part of a checkpoint: sync copy, barrier forward, async upload and ack. */
  private async checkpoint(t: Trigger, alignmentMs: number): Promise<void> {
    this.dropUnaligned(t.checkpointId);
    const ack = this.snapshotNow(t, this.firstBarrierMs, alignmentMs);
    if (this.deployment.checkpoint.unaligned && !t.isSavepoint && this.alignTimeoutMs > 0) {
      // Aligned with a timeout: the barrier waits its turn behind buffered output, until the checkpoint's deadline.
      const { overtaken, done } = this.writer.broadcastBarrierUntil(t.checkpointId, t.triggerMs, this.host.sleep(this.alignmentDeadlineMs(t.triggerMs)));
      const outputs = await overtaken;
      ack(outputs === null ? Promise.resolve(null) : this.putInFlight(t.checkpointId, {}, outputs), outputs !== null);
      await done;
    } else if (this.deployment.checkpoint.unaligned && !t.isSavepoint) {
      // Unaligned (a source, between batches): the barrier skips the credit queue; anything still buffered is in-flight data.
      const outputs = this.writer.bufferedRecords();
      this.writer.broadcastPriorityBarrier(t.checkpointId, t.triggerMs, t.isSavepoint);
      ack(this.putInFlight(t.checkpointId, {}, outputs), true);
    } else {
      await this.writer.broadcastBarrier(t.checkpointId, t.triggerMs, t.isSavepoint);
      ack(Promise.resolve(null), false);
    }
    await this.commitAtLeastOnceSinks(t.checkpointId);
  }

  /** Persists a subtask's in-flight data of checkpoint N (nothing when there is none). */
  private putInFlight(checkpointId: number, inputs: Record<string, string[]>, outputs: Record<string, unknown[]>): Promise<ChannelStateHandle | null> {
    if (Object.keys(inputs).length === 0 && Object.keys(outputs).length === 0) return Promise.resolve(null);
    return this.host.putChannelState(checkpointId, encodeChannelState({ inputs, outputs }));
  }

  /** Time left until an aligned checkpoint triggered at `triggerMs` turns unaligned. */
  private alignmentDeadlineMs(triggerMs: number): number {
    return Math.max(0, triggerMs + this.alignTimeoutMs - this.host.now());
  }

  /** Checkpoints whose in-order barrier arrived here and whose deadline is armed. */
  private readonly announced = new Set<number>();

  /**
   * A barrier queued in order (aligned with a timeout): when it has not
   * been processed by the checkpoint's deadline, the checkpoint goes on
   * unaligned here (Flink's barrier announcement and alignment timeout).
   */
  private armAlignmentTimeout(b: BarrierMessage): void {
    if (this.announced.has(b.checkpointId)) return;
    this.announced.add(b.checkpointId);
    const t: Trigger = { checkpointId: b.checkpointId, triggerMs: b.triggerMs, isSavepoint: false };
    void this.host.sleep(this.alignmentDeadlineMs(b.triggerMs)).then(() => {
      this.announced.delete(t.checkpointId);
      if (this.status !== "running" || t.checkpointId <= this.lastCheckpointId || this.unaligned?.trigger.checkpointId === t.checkpointId) return;
      // An older alignment still running here: the newer checkpoint waits its turn.
      const aligning = this.aligner.aligning;
      if (aligning !== undefined && aligning !== t.checkpointId) return;
      this.switchToUnaligned(t);
    });
  }

  /**
   * Checkpoint N goes on unaligned here: its alignment timed out, or an
   * unaligned barrier of it arrived on `via`. Snapshot now. Channels whose
   * barrier was already processed keep their later batches for the next
   * checkpoint; of the others, what is queued before their barrier (and,
   * when it has not arrived, what arrives until it does) is in-flight data.
   */
  private switchToUnaligned(t: Trigger, via?: string): void {
    let seen: ReadonlySet<string> = new Set();
    let alignmentMs = 0;
    const sw = this.aligner.aligning === t.checkpointId ? this.aligner.switchToUnaligned() : undefined;
    if (sw) {
      seen = sw.seen;
      alignmentMs = sw.alignmentMs;
    } else {
      // In-order barriers of N that come later are stale for the aligner.
      this.aligner.abort(t.checkpointId);
      this.firstBarrierMs = this.host.now();
    }
    const queued = this.gate.queuedBatches();
    const inputs = new Map<string, string[]>();
    const pending = new Set<string>();
    for (const c of this.gate.liveChannels()) {
      if (seen.has(c)) continue;
      const before = c === via ? (queued.get(c) ?? []) : this.gate.takeBarrier(c, t.checkpointId);
      if (before !== undefined) {
        if (before.length > 0) inputs.set(c, batchTexts(before));
        continue;
      }
      const waiting = queued.get(c);
      if (waiting) inputs.set(c, batchTexts(waiting));
      pending.add(c);
    }
    this.gate.unblockAll();
    this.beginUnaligned(t, this.firstBarrierMs, alignmentMs, inputs, pending);
  }

  /**
   * The synchronous part of this subtask's checkpoint: keyed state captured,
   * source positions read, sinks pre-committed, all in one turn. Returns the
   * function that, given the in-flight data's handle (unaligned), uploads and
   * acknowledges asynchronously.
   */
  private snapshotNow(t: Trigger, firstBarrierMs: number, alignmentMs: number): (channelState: Promise<ChannelStateHandle | null>, unaligned: boolean) => void {
    const t0 = this.host.now();
    const prepared = t.isSavepoint
      ? this.snapshotter.prepareSavepoint(t.checkpointId, this.chain.keyedState)
      : this.snapshotter.prepare(t.checkpointId, this.chain.keyedState);
    const positions = this.reader?.positions();
    if (positions && !t.isSavepoint) {
      this.positionsAt.set(t.checkpointId, positions);
      // Checkpoints that never complete must not pile up.
      if (this.positionsAt.size > 16) this.positionsAt.delete(this.positionsAt.keys().next().value!);
    }
    // Pre-commit: each sink seals its open transaction as transaction N, in the same turn as the snapshot.
    // Without checkpointing (a savepoint of such a run), sinks keep publishing on their timer instead.
    const sinkHandles: Record<string, SinkTransactionHandle> = {};
    // A finished subtask published all it will ever write: nothing to seal.
    if (this.checkpointing && this.status !== "finished") for (const [uid, sink] of this.chain.sinks) sinkHandles[uid] = sink.preCommit(t.checkpointId);
    const syncMs = this.host.now() - t0;
    this.lastCheckpointId = t.checkpointId;
    const startDelayMs = Math.max(0, firstBarrierMs - t.triggerMs);
    const asyncStart = this.host.now();
    const attempt = this.deployment.attempt;
    const upload = this.snapshotter.upload(prepared);
    upload.catch(() => undefined);
    return (channelStatePromise, unaligned) => {
      void Promise.all([upload, channelStatePromise])
        .then(
          ([done, channelState]) => {
            const ack = {
              checkpointId: t.checkpointId,
              subtask: this.subtaskId(),
              attempt,
              keyed: done.handles,
              sources: positions && this.sourceUid ? { [this.sourceUid]: positions } : {},
              sinks: sinkHandles,
              syncMs,
              asyncMs: this.host.now() - asyncStart,
              alignmentMs,
              startDelayMs,
              ackTimestamp: this.host.now(),
              checkpointedBytes: done.checkpointedBytes + (channelState?.bytes ?? 0),
              stateBytes: done.stateBytes,
              channelState,
              unaligned,
            };
            return this.toCoordinator(() => this.host.acknowledge(ack));
          },
          (e: unknown) => this.host.decline(t.checkpointId, `subtask ${this.describe()} could not upload its snapshot: ${(e as Error)?.message ?? e}`),
        )
        .catch(() => undefined);
    };
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


  /** At-least-once sinks publish at the barrier; exactly-once ones wait for the checkpoint to complete. */
  private async commitAtLeastOnceSinks(txn: number): Promise<void> {
    if (!this.checkpointing) return;
    for (const [uid, sink] of this.chain.sinks) {
      if (sink.guarantee === "at_least_once") await this.commitSink(uid, sink, txn);
    }
  }

  /**
   * Unaligned checkpoints: the first barrier N snapshots at once and is
   * forwarded ahead of everything; the batches queued then, and those that
   * arrive on a channel before its own barrier N, are the checkpoint's
   * in-flight data, persisted with it and replayed on restore.
   */
  private onPriorityBarrier(b: BarrierMessage): boolean {
    // Savepoints stay aligned (as Flink's): portable, with no in-flight data.
    if (b.isSavepoint) return false;
    if (this.status !== "running") return true;
    this.maxBarrierId = Math.max(this.maxBarrierId, b.checkpointId);
    const u = this.unaligned;
    if (u && b.checkpointId === u.trigger.checkpointId) {
      this.unalignedChannelDone(b.channel);
      return true;
    }
    if (b.checkpointId <= this.lastCheckpointId) return true;
    if (this.alignTimeoutMs > 0 && !b.priority) {
      // With an alignment timeout, barriers start aligned, in order, unless their sender already switched.
      this.armAlignmentTimeout(b);
      return false;
    }
    this.dropUnaligned(b.checkpointId);
    const aligning = this.aligner.aligning;
    if (aligning !== undefined && aligning > b.checkpointId) {
      void this.host.decline(b.checkpointId, `subtask ${this.describe()} received barrier ${b.checkpointId} while aligning the newer ${aligning}`).catch(() => undefined);
      return true;
    }
    if (aligning !== undefined && aligning < b.checkpointId) {
      const action = this.aligner.abort(aligning);
      if (action.unblockAll) this.gate.unblockAll();
      void this.host.decline(aligning, `subtask ${this.describe()} received barrier ${b.checkpointId} before finishing alignment of ${aligning}`).catch(() => undefined);
    }
    this.switchToUnaligned({ checkpointId: b.checkpointId, triggerMs: b.triggerMs, isSavepoint: false }, b.channel);
    return true;
  }

  /**
   * Snapshots now and forwards barrier N ahead of everything; `inputs` is
   * the in-flight data taken so far, and the batches that arrive on a
   * `pending` channel until its barrier N are recorded too.
   */
  private beginUnaligned(t: Trigger, firstMs: number, alignmentMs: number, inputs: Map<string, string[]>, pending: Set<string>): void {
    this.dropUnaligned(t.checkpointId);
    const outputs = this.writer.bufferedRecords();
    for (const c of pending) this.gate.startRecording(c);
    const snapshot = this.snapshotNow(t, firstMs, alignmentMs);
    this.writer.broadcastPriorityBarrier(t.checkpointId, t.triggerMs, t.isSavepoint);
    const finish = () => snapshot(this.putInFlight(t.checkpointId, Object.fromEntries(inputs), outputs), true);
    this.unaligned = { trigger: t, pending, inputs, outputs, finish };
    if (pending.size === 0) this.finishUnaligned();
    // At-least-once sinks publish now; the consumer loop waits for that before its next message, as at an aligned barrier.
    const commit = this.commitAtLeastOnceSinks(t.checkpointId);
    commit.catch(() => undefined);
    this.commitBeforeNext = this.commitBeforeNext ? this.commitBeforeNext.then(() => commit) : commit;
  }

  /**
   * Gives up an unfinished unaligned checkpoint older than `newer` (or
   * `newer` itself, when it was aborted): its channels stop recording, so
   * that what they received is not taken as in-flight data of a later
   * checkpoint — those records were processed, and are in its state.
   */
  private dropUnaligned(newer: number, aborted = false): void {
    const u = this.unaligned;
    if (!u || u.trigger.checkpointId > newer || (u.trigger.checkpointId === newer && !aborted)) return;
    for (const c of u.pending) this.gate.stopRecording(c);
    this.unaligned = undefined;
    if (aborted) return;
    void this.host.decline(u.trigger.checkpointId, `subtask ${this.describe()} received barrier ${newer} before the last barrier of ${u.trigger.checkpointId}`).catch(() => undefined);
  }

  private unalignedChannelDone(channel: string): void {
    const u = this.unaligned;
    if (!u || !u.pending.delete(channel)) return;
    const recorded = batchTexts(this.gate.stopRecording(channel));
    if (recorded.length > 0) u.inputs.set(channel, [...(u.inputs.get(channel) ?? []), ...recorded]);
    if (u.pending.size === 0) this.finishUnaligned();
  }

  private finishUnaligned(): void {
    const u = this.unaligned;
    this.unaligned = undefined;
    u?.finish();
  }

  private async commitSink(uid: string, sink: SinkWriter, txn: number): Promise<void> {
    try {
      await sink.commit(txn);
    } catch (e) {
      throw new Error(`sink "${uid}" failed to commit transaction ${txn}: ${(e as Error)?.message ?? e}`);
    }
  }

  private subtaskId(): string {
    return `${this.vertex.id}/${this.deployment.index}`;
  }

  private describe(): string {
    return `${this.vertex.name} (subtask ${this.deployment.index + 1}/${this.vertex.parallelism})`;
  }

  private sinksPending(): boolean {
    for (const s of this.chain.sinks.values()) if (s.pendingBytes() > 0) return true;
    return false;
  }

  private async flushSinksIfDue(): Promise<void> {
    if (this.checkpointing) return;
    if (this.host.now() - this.lastSinkFlushMs >= SINK_FLUSH_INTERVAL_MS) await this.flushSinks();
  }

  /** Without checkpoints: seal and publish on a timer, with transaction ids that grow across attempts. */
  private async flushSinks(): Promise<void> {
    this.lastSinkFlushMs = this.host.now();
    const txn = this.deployment.attempt * 1e9 + ++this.localTxn;
    for (const [uid, sink] of this.chain.sinks) {
      sink.preCommit(txn);
      await this.commitSink(uid, sink, txn);
    }
  }

  private localTxn = 0;

  private async fail(e: unknown): Promise<void> {
    if (this.status !== "running") return;
    this.status = "failed";
    this.gate.close();
    this.closeConnectors();
    const message = e instanceof Error ? e.message : String(e);
    await this.host.reportFailure(`${this.describe()}: ${message}`).catch(() => undefined);
  }
}

/** The records' JSON texts of queued batches (in-flight data as it is stored). */
function batchTexts(messages: readonly ChannelMessage[]): string[] {
  return messages.map((m) => (m as { records: string }).records);
}
