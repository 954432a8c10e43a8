/**
 * One running subtask: its operator chain, its input gate and record
 * writer, and the loop that moves records through them. The Durable Object
 * around it (subtask.ts) only does I/O; everything here reaches the outside
 * through {@link TaskHost}, which keeps the loop testable in plain Node.
 *
 * One consumer loop per subtask: incoming batches wait in the input gate,
 * and each batch is processed in one synchronous turn (keyed state updated,
 * sink output staged) before anything is awaited.
 */
import type { JobDefinition, LogicalNode } from "../api/job.js";
import type { SinkWriter, SourceReader } from "../api/types.js";
import type { KeyGroupRange } from "../graph/key-groups.js";
import type { ExecutionPlan, PlanVertex } from "../graph/plan.js";
import { upstreamSenders } from "../graph/partitioners.js";
import type { StateEntry } from "../state/keyed-state.js";
import { InputGate } from "./input-gate.js";
import { type ChannelMessage, type DeliveryResult, type KeyedRecord, channelId } from "./messages.js";
import { OperatorChain, UserCodeError } from "./operator-chain.js";
import { RecordWriter, type SendFn } from "./record-writer.js";

/** What the Coordinator tells a subtask when it deploys it. */
export interface SubtaskDeployment {
  readonly job: string;
  readonly vertex: string;
  readonly index: number;
  readonly attempt: number;
  readonly plan: ExecutionPlan;
  /** Key groups this subtask owns, when its input is keyed. */
  readonly keyGroupRange: KeyGroupRange | null;
}

/** Where a task's I/O goes. */
export interface TaskHost {
  readonly env: unknown;
  readonly send: SendFn;
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Writes changed keyed state and source positions, synchronously (one atomic turn). */
  persist(state: Map<string, StateEntry[]>, positions: Record<string, number> | null): void;
  reportFailure(message: string): Promise<void>;
  reportFinished(): Promise<void>;
}

/** Counters reported as metrics. */
export interface TaskMetrics {
  readonly vertex: string;
  readonly index: number;
  readonly attempt: number;
  readonly status: TaskStatus;
  readonly recordsIn: number;
  readonly recordsOut: number;
  readonly queuedBatches: number;
  /** Time spent waiting for downstream credits. */
  readonly backpressuredMs: number;
  readonly positions: Record<string, number> | null;
  readonly stateKeys: number;
  readonly pendingSinkBytes: number;
}

export type TaskStatus = "running" | "finished" | "failed" | "canceled";

/** How often a subtask writes its keyed state back and publishes its sinks. */
export const PERSIST_INTERVAL_MS = 200;
/** How long an idle source waits before polling again. */
export const SOURCE_IDLE_POLL_MS = 20;

/** A deployed subtask of one attempt. */
export class Task {
  readonly chain: OperatorChain;
  readonly gate: InputGate;
  readonly writer: RecordWriter;
  readonly vertex: PlanVertex;
  private readonly reader: SourceReader | undefined;
  private status: TaskStatus = "running";
  private lastPersistMs: number;
  private loop: Promise<void> | undefined;

  constructor(
    readonly deployment: SubtaskDeployment,
    job: JobDefinition,
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
    this.chain = new OperatorChain(job, vertex, {
      subtaskIndex: index,
      maxParallelism: plan.maxParallelism,
      emit: (v) => this.writer.emit(v),
      createSinkWriter: (node: LogicalNode): SinkWriter =>
        node.sink!.createWriter({ jobName: job.name, uid: node.options.uid!, subtaskIndex: index, parallelism: vertex.parallelism, env: host.env }),
    });
    const channels: string[] = [];
    for (const input of vertex.inputs) {
      for (const i of upstreamSenders(input.partitioner, input.parallelism, index)) channels.push(channelId(input.vertex, i));
    }
    this.gate = new InputGate(channels);
    const head = job.nodes[vertex.nodes[0]];
    this.reader = head.source?.createReader({ jobName: job.name, subtaskIndex: index, parallelism: vertex.parallelism, env: host.env });
    this.lastPersistMs = host.now();
  }

  get isSource(): boolean {
    return this.reader !== undefined;
  }

  get state(): TaskStatus {
    return this.status;
  }

  /** Loads persisted keyed state and source positions. */
  restore(state: Map<string, { state: string; key: string; kind: "value" | "map" | "list"; value: unknown }[]>, positions: Record<string, number>): void {
    for (const [uid, entries] of state) this.chain.keyedState.get(uid)?.load(entries);
    this.reader?.seek(positions);
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

  /** Runs the source loop until `deadlineMs`; resolves whether the source should be polled again. */
  async runSource(deadlineMs: number): Promise<boolean> {
    const reader = this.reader!;
    while (this.status === "running" && this.host.now() < deadlineMs) {
      let batch;
      try {
        batch = await reader.poll(this.deployment.plan.batchSize);
        if (this.status !== "running") break;
        if (batch === "end") {
          await this.writer.endOfInput();
          await this.flushSinks();
          this.persistNow();
          this.status = "finished";
          await this.host.reportFinished();
          return false;
        }
        if (batch === null) {
          await this.persistIfDue();
          await this.host.sleep(SOURCE_IDLE_POLL_MS);
          continue;
        }
        const { records } = batch;
        let i = 0;
        try {
          for (; i < records.length; i++) this.chain.push(null, records[i]);
        } catch (e) {
          if (e instanceof UserCodeError) {
            throw new Error(`${e.message} at ${batch.partition} offset ${batch.firstOffset + i}`);
          }
          throw e;
        }
        await this.writer.flush();
        await this.persistIfDue();
      } catch (e) {
        await this.fail(e);
        return false;
      }
    }
    return this.status === "running";
  }

  /** Stops processing; waiting senders are released. */
  cancel(): void {
    if (this.status === "running") this.status = "canceled";
    this.gate.close();
  }

  metrics(): TaskMetrics {
    let stateKeys = 0;
    for (const s of this.chain.keyedState.values()) stateKeys += s.size();
    let pendingSinkBytes = 0;
    for (const s of this.chain.sinks.values()) pendingSinkBytes += s.pendingBytes();
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
      stateKeys,
      pendingSinkBytes,
    };
  }

  private async runInputLoop(): Promise<void> {
    try {
      while (this.status === "running") {
        const message = this.gate.poll();
        if (message === undefined) {
          if (this.isDirty()) {
            const due = this.lastPersistMs + PERSIST_INTERVAL_MS - this.host.now();
            if (due <= 0) await this.persist();
            else await Promise.race([this.gate.waitForInput(), this.host.sleep(due)]);
          } else {
            await this.gate.waitForInput();
          }
          continue;
        }
        if (message.kind === "batch") {
          const records = JSON.parse(message.records) as KeyedRecord[];
          for (let i = 0; i < records.length; i++) this.chain.push(records[i][0], records[i][1]);
          await this.writer.flush();
          await this.persistIfDue();
        } else if (message.kind === "end" && this.gate.allEnded()) {
          await this.writer.endOfInput();
          await this.persist();
          this.status = "finished";
          await this.host.reportFinished();
        }
      }
    } catch (e) {
      await this.fail(e);
    }
  }

  private isDirty(): boolean {
    for (const s of this.chain.keyedState.values()) if (s.hasDirty()) return true;
    for (const s of this.chain.sinks.values()) if (s.pendingBytes() > 0) return true;
    return false;
  }

  private async persistIfDue(): Promise<void> {
    if (this.host.now() - this.lastPersistMs >= PERSIST_INTERVAL_MS) await this.persist();
  }

  private async persist(): Promise<void> {
    this.persistNow();
    await this.flushSinks();
  }

  private persistNow(): void {
    const state = new Map<string, StateEntry[]>();
    for (const [uid, backend] of this.chain.keyedState) if (backend.hasDirty()) state.set(uid, backend.takeDirty());
    this.host.persist(state, this.reader?.positions() ?? null);
    this.lastPersistMs = this.host.now();
  }

  private async flushSinks(): Promise<void> {
    for (const [uid, sink] of this.chain.sinks) {
      try {
        await sink.flush();
      } catch (e) {
        throw new Error(`sink "${uid}" failed to publish: ${(e as Error)?.message ?? e}`);
      }
    }
  }

  private async fail(e: unknown): Promise<void> {
    if (this.status !== "running") return;
    this.status = "failed";
    this.gate.close();
    const where = `${this.vertex.name} (subtask ${this.deployment.index + 1}/${this.vertex.parallelism})`;
    const message = e instanceof Error ? e.message : String(e);
    await this.host.reportFailure(`${where}: ${message}`).catch(() => undefined);
  }
}

