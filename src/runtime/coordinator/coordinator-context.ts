/**
 * What every part of the coordinator shares: its host (the I/O the shell or
 * the simulator wires), its storage, and the few facts each part asks of
 * the job — its definition, its subtasks, its checkpoint storage, the
 * retained checkpoints of the current run.
 */
import { FloeError } from "../../errors.js";
import { retry } from "../../retry.js";
import type { ExecutionPlan, PlanVertex } from "../../graph/plan.js";
import { CheckpointStore } from "../../storage/checkpoint-store.js";
import { channelId, type SubtaskApi } from "../messages.js";
import type { JobRegistry } from "../registry.js";
import type { CoordinatorStorage, JobRecord } from "./coordinator-store.js";
import type { SharedAlarm } from "./shared-alarm.js";
import type { StreamPartitionApi } from "./stream-pins.js";

/** Where the coordinator's I/O goes. */
export interface CoordinatorHost {
  readonly registry: JobRegistry;
  readonly store: CoordinatorStorage;
  /** Checkpoint storage (R2). */
  readonly bucket: R2Bucket;
  subtask(job: string, vertex: string, index: number): SubtaskApi;
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Sets the object's one alarm (null deletes it). */
  setAlarm(atMs: number | null): Promise<void>;
  /** The Worker's variables and secrets, which sinks check at start (absent: not checked). */
  readonly vars?: Readonly<Record<string, unknown>>;
  /** A partition of an HTTP stream, told where runs start and what they checkpointed (absent: streams are not pinned). */
  streamPartition?(stream: string, partition: number): StreamPartitionApi;
}

/** Tries of a call to a subtask that must arrive (cancel, completion), the first included. */
export const SUBTASK_CALL_TRIES = 3;

/** One subtask of the plan, with a stub to call it. */
export interface SubtaskRef {
  /** `vertex/index` ({@link channelId}): how acks, ends and checkpoints name it. */
  readonly id: string;
  readonly vertex: PlanVertex;
  readonly index: number;
  readonly stub: SubtaskApi;
}

/** Every subtask of `plan`, in plan order: the one list the coordinator deploys, triggers and expects acks from. */
export function planSubtasks(plan: ExecutionPlan): { id: string; vertex: PlanVertex; index: number }[] {
  const out: { id: string; vertex: PlanVertex; index: number }[] = [];
  for (const v of plan.vertices) for (let i = 0; i < v.parallelism; i++) out.push({ id: channelId(v.id, i), vertex: v, index: i });
  return out;
}

/** The host, the storage and the facts about the job that the coordinator's parts share. */
export class CoordinatorContext {
  readonly registry: JobRegistry;
  readonly store: CoordinatorStorage;

  constructor(
    readonly host: CoordinatorHost,
    /** Sets the one alarm to the earliest time any part of the coordinator is due (see {@link SharedAlarm}). */
    readonly schedule: () => Promise<void>,
  ) {
    this.registry = host.registry;
    this.store = host.store;
  }

  now(): number {
    return this.host.now();
  }

  /** The job's definition; a client error when the Worker has no such job. */
  definition(job: string) {
    const d = this.registry.job(job);
    if (!d) throw new FloeError("job_not_found", `no job named "${job}"; jobs are: ${this.registry.jobNames().join(", ")}`, 404);
    return d;
  }

  /** Every subtask of `plan` with a fresh stub (workerd hands out a new stub per lookup). */
  subtasks(plan: ExecutionPlan): SubtaskRef[] {
    return planSubtasks(plan).map((t) => ({ ...t, stub: this.host.subtask(plan.job, t.vertex.id, t.index) }));
  }

  /**
   * Calls subtask `t` of `job`, trying again (up to {@link SUBTASK_CALL_TRIES})
   * when the failure may be transient; each later try gets a fresh stub, as a
   * failed call breaks its stub. For calls that are safe to repeat.
   */
  callSubtask<T>(job: string, t: SubtaskRef, call: (stub: SubtaskApi) => Promise<T>, stillWanted?: () => boolean): Promise<T> {
    return retry((n) => call(n === 1 ? t.stub : this.host.subtask(job, t.vertex.id, t.index)), {
      attempts: SUBTASK_CALL_TRIES,
      delayMs: 100,
      stillWanted,
      sleep: (ms) => this.host.sleep(ms),
    });
  }

  /** Stops every subtask of `s`'s attempt. */
  async cancelSubtasks(s: JobRecord): Promise<void> {
    const plan = s.plan;
    if (!plan) return;
    const missed = await Promise.all(
      // A subtask that missed every try runs a fenced attempt: nothing it sends is accepted and nothing it
      // stages is committed; the next deploy replaces its task. Its error is logged, not thrown.
      this.subtasks(plan).map((t) => this.callSubtask(plan.job, t, (stub) => stub.cancel(s.attempt)).then(() => null, (e: unknown) => `${t.id}: ${(e as Error)?.message ?? e}`)),
    );
    const failed = missed.filter((m): m is string => m !== null);
    if (failed.length > 0) console.error(`canceling attempt ${s.attempt} did not reach ${failed.length} subtask(s): ${failed.join("; ")}`);
  }

  checkpointStore(s: JobRecord): CheckpointStore {
    return new CheckpointStore(this.host.bucket, s.config?.checkpoint.storagePrefix ?? "", s.plan!.job);
  }

  /** Retained checkpoints of the current run, newest first: a fresh start never falls back to an earlier run's state. */
  runRetained(s: JobRecord) {
    return this.store.retained().filter((r) => r.id >= s.runFirstCheckpointId);
  }

  /** `p`, or a rejection with `message` once `ms` passed on the host's clock. */
  withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
    return Promise.race([p, this.host.sleep(ms).then(() => Promise.reject(new Error(message)))]);
  }
}
