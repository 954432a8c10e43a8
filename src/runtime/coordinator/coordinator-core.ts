/**
 * The coordinator's logic, free of Cloudflare imports: the Coordinator
 * object (coordinator.ts) is a shell around it, and the simulator runs it
 * against simulated objects, storage and time. One per job: its job master
 * and checkpoint coordinator. It deploys the job's subtasks for an attempt, sequences
 * checkpoints with its alarm (interval, min pause, max concurrent,
 * timeout), collects acknowledgements, writes `_metadata` to R2 last (the
 * commit point), notifies completion, retains the last N, watches
 * heartbeats, and fails over to the last completed checkpoint under the
 * job's restart strategy.
 *
 * Every decision is fenced by the attempt number: anything a subtask of an
 * older attempt says is ignored.
 */
import { checkpointDetail, checkpointOverview } from "../../checkpoint/checkpoint-stats.js";
import { expiresAtMs, exceedsTolerableFailures, mayTriggerNow, nextTriggerMs } from "../../checkpoint/checkpoint-scheduler.js";
import { type CheckpointFailureReason, countsAsFailure } from "../../checkpoint/failure-reason.js";
import type { AckResult } from "../../checkpoint/pending-checkpoint.js";
import { decideRestart } from "../../checkpoint/restart-strategy.js";
import type { ChannelStateHandle, CheckpointMetadata, KeyedStateHandle, OperatorState, SubtaskAck } from "../../checkpoint/types.js";
import { FloeError, type Result, attempt as attemptResult } from "../../errors.js";
import { keyGroupRange } from "../../graph/key-groups.js";
import { type ExecutionPlan, type ParallelismOverride, buildPlan } from "../../graph/plan.js";
import { CheckpointStore, CheckpointUnreadableError } from "../../storage/checkpoint-store.js";
import { checkpointIdOfSavepoint, savepointId } from "../../storage/layout.js";
import { checkRestore } from "../../checkpoint/restore-check.js";
import { type CoordinatorStorage, INITIAL_JOB, type JobRecord, type JobStatusName } from "./coordinator-store.js";
import { checkSinkVars, resolveRunConfig } from "../job-config.js";
import type { JobRegistry } from "../registry.js";
import type { RestoreSpec, SubtaskApi, SubtaskDeployment, TaskMetrics } from "../messages.js";

export type { JobStatusName };

/** What `GET /v1/jobs/:job` answers. */
export interface JobStatus {
  readonly name: string;
  readonly status: JobStatusName;
  readonly attempt: number;
  /** Parallelism per operator uid. */
  readonly parallelism: Record<string, number>;
  readonly vertices: { id: string; name: string; parallelism: number }[];
  readonly restarts: number;
  readonly last_error: string | null;
  readonly start_time: number | null;
  readonly end_time: number | null;
  readonly latest_completed_checkpoint: number | null;
}

/** What `POST /v1/jobs/:job/start` takes. */
export interface StartRequest {
  readonly parallelism?: ParallelismOverride;
  readonly config?: Record<string, unknown>;
  /** A savepoint id (`savepoint-<n>`) to start from. */
  readonly fromSavepoint?: string;
  /** A retained checkpoint id to start from. */
  readonly fromCheckpoint?: number;
  /** Drop state of operators the job no longer has, instead of refusing. */
  readonly allowNonRestoredState?: boolean;
}

/** What a savepoint trigger is for. */
export type SavepointAction = "keep" | "stop" | "cancel";

/**
 * How a savepoint's state is written: canonical (every subtask writes its
 * whole state in the portable format) or native (subtasks take an ordinary,
 * possibly incremental, snapshot — a shorter barrier — and the coordinator
 * copies the files it references into the savepoint's folder).
 */
export type SavepointFormat = "canonical" | "native";

/** The state of a savepoint, as `GET /v1/jobs/:job/savepoints/:trigger_id` answers it. */
export interface SavepointStatus {
  readonly trigger_id: string;
  readonly status: "IN_PROGRESS" | "COMPLETED" | "FAILED";
  readonly id: string | null;
  readonly location: string | null;
  readonly failure_message: string | null;
}

/** How often the coordinator checks that every subtask is alive. */
export const HEARTBEAT_INTERVAL_MS = 1_000;
/** A heartbeat not answered within this long counts as a lost subtask. */
export const HEARTBEAT_TIMEOUT_MS = 10_000;
/** A subtask that has not restored its state within this long fails the restart. */
export const DEPLOY_TIMEOUT_MS = 120_000;

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
}

export class CoordinatorCore {
  private readonly registry: JobRegistry;
  private readonly store: CoordinatorStorage;
  private nextHeartbeatMs = 0;
  private heartbeatRunning = false;

  constructor(private readonly host: CoordinatorHost) {
    this.registry = host.registry;
    this.store = host.store;
  }

  /**
   * Called when the object starts. Checkpoints pending from before are
   * failed: the triggers of the object that died may not all have been
   * sent, and a checkpoint no subtask heard of would wait for its timeout
   * (a bounded job's final checkpoint with it). The next one is triggered
   * as usual. A live job always has an alarm, in case one was lost.
   */
  async afterRestart(hasAlarm: boolean): Promise<void> {
    let s = this.store.job();
    if (s.status === "RUNNING") {
      for (const p of this.store.pendingIds()) {
        await this.failCheckpoint(p.id, "COORDINATOR_RESTARTED", `checkpoint ${p.id} was pending when the coordinator restarted`);
        hasAlarm = true; // failCheckpoint schedules the alarm
      }
      s = this.store.job();
    }
    if ((s.status === "RUNNING" || s.status === "RESTARTING") && !hasAlarm) await this.host.setAlarm(this.host.now());
  }

  private withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
    return Promise.race([p, this.host.sleep(ms).then(() => Promise.reject(new Error(message)))]);
  }

  // ---- control ---------------------------------------------------------

  /** Plans the job and deploys it from empty state. */
  async start(job: string, request: StartRequest = {}): Promise<Result<JobStatus>> {
    return attemptResult(async () => {
      const definition = this.definition(job);
      const s = this.store.job();
      if (s.status === "RUNNING" || s.status === "RESTARTING" || s.status === "FAILING") {
        throw new FloeError("job_running", `job "${job}" is ${s.status}; cancel it first`, 409);
      }
      const plan = buildPlan(definition, request.parallelism);
      const config = resolveRunConfig(definition, request.config);
      if (this.host.vars) checkSinkVars(definition, this.host.vars);
      let from: CheckpointMetadata | null = null;
      let restoredFrom: JobRecord["runRestoredFrom"] = null;
      if (request.fromSavepoint !== undefined || request.fromCheckpoint !== undefined) {
        if (request.fromSavepoint !== undefined && request.fromCheckpoint !== undefined) {
          throw new FloeError("invalid_request", "give fromSavepoint or fromCheckpoint, not both");
        }
        const savepoint = request.fromSavepoint !== undefined;
        const id = savepoint ? checkpointIdOfSavepoint(request.fromSavepoint!) : request.fromCheckpoint!;
        if (id === null || !Number.isInteger(id) || id < 1) {
          throw new FloeError("invalid_request", `${JSON.stringify(request.fromSavepoint)} is not a savepoint id (savepoint-<number>)`);
        }
        from = await this.readSnapshot(new CheckpointStore(this.host.bucket, config.checkpoint.storagePrefix, job), id, savepoint);
        const uids = new Set(definition.nodes.map((n) => n.options.uid).filter((u): u is string => u !== undefined));
        const parallelismOf = new Map<string, number>();
        for (const v of plan.vertices) for (const id of v.nodes) {
          const uid = definition.nodes[id]?.options.uid;
          if (uid) parallelismOf.set(uid, v.parallelism);
        }
        checkRestore(from, uids, plan.maxParallelism, request.allowNonRestoredState ?? false, (uid) => parallelismOf.get(uid));
        restoredFrom = { checkpointId: id, savepoint };
      }
      const now = this.host.now();
      const next: JobRecord = {
        ...INITIAL_JOB,
        status: "RUNNING",
        attempt: s.attempt + 1,
        plan,
        config,
        startTime: now,
        runningSinceMs: now,
        lastCheckpointId: s.lastCheckpointId,
        runFirstCheckpointId: s.lastCheckpointId + 1,
        ended: [],
        finished: [],
        failureTimesMs: [],
        restores: [],
        runId: s.runId + 1,
        runRestoredFrom: restoredFrom,
        startParallelism: request.parallelism ?? null,
      };
      this.store.saveJob(next);
      try {
        await this.deployAndStart(next, from);
      } catch (e) {
        // The job is RUNNING on record: a failed deploy must not leave it idle with no alarm.
        if (this.store.job().attempt === next.attempt) await this.failover(`starting the job failed: ${(e as Error)?.message ?? e}`);
      }
      return this.statusOf(this.store.job(), job);
    });
  }

  /** Reads a snapshot to start from, turning what is wrong with it into a client error. */
  private async readSnapshot(store: CheckpointStore, id: number, savepoint: boolean): Promise<CheckpointMetadata> {
    try {
      return await store.read(id, savepoint);
    } catch (e) {
      if (!(e instanceof CheckpointUnreadableError)) throw e;
      const what = savepoint ? "savepoint" : "checkpoint";
      if (e.reason === "not_found") throw new FloeError(`${what}_not_found`, `${e.message}: no such ${what}`, 404);
      const code = { corrupt: `${what}_corrupt`, unsupported_version: "unsupported_format_version", other_job: `${what}_of_other_job`, missing_files: `${what}_incomplete` }[e.reason];
      throw new FloeError(code, e.message, 400);
    }
  }

  /**
   * Triggers a savepoint: full, self-contained, never deleted by the engine.
   * `stop` ends the job once it completed and sinks committed (sources read
   * nothing after its barrier); `cancel` cancels the job after it.
   */
  async triggerSavepoint(job: string, action: SavepointAction, format: SavepointFormat = "canonical"): Promise<Result<{ trigger_id: string }>> {
    return attemptResult(async () => {
      this.definition(job);
      const s = this.store.job();
      if (s.status !== "RUNNING") throw new FloeError("job_not_running", `job "${job}" is ${s.status}, not running`, 409);
      if (s.pendingSavepoint) {
        const p = this.store.pending(s.pendingSavepoint.id);
        if (p && (p.status === "IN_PROGRESS" || p.status === "COMPLETING")) {
          throw new FloeError("savepoint_in_progress", `job "${job}" already takes savepoint ${s.pendingSavepoint.id}`, 409);
        }
      }
      const id = await this.trigger(true, action, format);
      if (id === null) throw new FloeError("savepoint_not_triggered", `job "${job}" cannot take a savepoint now`, 409);
      return { trigger_id: String(id) };
    });
  }

  /** Where a savepoint trigger stands. */
  async savepointStatus(job: string, triggerId: string): Promise<Result<SavepointStatus>> {
    return attemptResult(() => {
      this.definition(job);
      const id = Number(triggerId);
      const r = Number.isInteger(id) ? this.store.record(id) : undefined;
      if (!r || !r.isSavepoint) throw new FloeError("savepoint_not_found", `job "${job}" has no savepoint trigger ${JSON.stringify(triggerId)}`, 404);
      return {
        trigger_id: triggerId,
        status: r.status,
        id: r.status === "COMPLETED" ? savepointId(id) : null,
        location: r.status === "COMPLETED" ? r.externalPath : null,
        failure_message: r.failure,
      };
    });
  }

  async status(job: string): Promise<Result<JobStatus>> {
    return attemptResult(() => this.statusOf(this.store.job(), this.definition(job).name));
  }

  /** Cancels the job: every subtask stops; checkpoints are kept or deleted as configured. */
  async cancel(job: string): Promise<Result<JobStatus>> {
    return attemptResult(async () => {
      this.definition(job);
      const s = this.store.job();
      if (s.status !== "RUNNING" && s.status !== "RESTARTING") {
        throw new FloeError("job_not_running", `job "${job}" is ${s.status}, not running`, 409);
      }
      this.abortPending(s, "JOB_STOPPED", "the job was canceled");
      const next: JobRecord = { ...s, status: "CANCELED", endTime: this.host.now(), restartAtMs: null };
      this.store.saveJob(next);
      await this.cancelSubtasks(next);
      if (next.config?.checkpoint.externalized === "delete_on_cancellation") {
        await this.checkpointStore(next).deleteAll();
        this.store.discard(this.store.retained().map((r) => r.id));
      }
      await this.schedule();
      return this.statusOf(next, job);
    });
  }

  /** Triggers a checkpoint now (REST). */
  async triggerCheckpointNow(job: string): Promise<Result<{ id: number }>> {
    return attemptResult(async () => {
      this.definition(job);
      const s = this.store.job();
      if (s.status !== "RUNNING") throw new FloeError("job_not_running", `job "${job}" is ${s.status}, not running`, 409);
      if (s.config!.checkpoint.intervalMs <= 0) {
        throw new FloeError(
          "checkpointing_disabled",
          `job "${job}" runs without checkpoints (checkpoint.interval_ms 0): start it with an interval to take checkpoints`,
          409,
        );
      }
      if (!mayTriggerNow(s.config!.checkpoint, this.schedulerState(s))) {
        throw new FloeError("too_many_checkpoints", `job "${job}" already has ${s.config!.checkpoint.maxConcurrent} checkpoint(s) in progress`, 409);
      }
      const id = await this.trigger(false);
      if (id === null) throw new FloeError("checkpoint_not_triggered", `job "${job}" could not trigger a checkpoint now`, 409);
      return { id };
    });
  }

  async checkpointOverview(job: string): Promise<Result<ReturnType<typeof checkpointOverview>>> {
    return attemptResult(() => {
      this.definition(job);
      return checkpointOverview(this.store.records(), this.store.job().restores);
    });
  }

  async checkpointDetail(job: string, id: number): Promise<Result<ReturnType<typeof checkpointDetail>>> {
    return attemptResult(() => {
      this.definition(job);
      const r = this.store.record(id);
      if (!r) throw new FloeError("checkpoint_not_found", `job "${job}" has no checkpoint ${id}`, 404);
      return checkpointDetail(r);
    });
  }

  async metrics(job: string): Promise<Result<{ subtasks: TaskMetrics[]; runningSinceMs: number | null }>> {
    return attemptResult(async () => {
      this.definition(job);
      const s = this.store.job();
      if (!s.plan) return { subtasks: [], runningSinceMs: null };
      const all = await Promise.all(this.subtasks(s.plan).map(({ stub }) => stub.metrics().catch(() => null)));
      return {
        subtasks: all.filter((m): m is TaskMetrics => m !== null && m.attempt === s.attempt),
        runningSinceMs: s.status === "RUNNING" ? s.runningSinceMs : null,
      };
    });
  }

  // ---- reports from subtasks -------------------------------------------

  async acknowledgeCheckpoint(ack: SubtaskAck & { checkpointId: number }): Promise<AckResult> {
    const s = this.store.job();
    const p = this.store.pending(ack.checkpointId);
    if (!p) return "UNKNOWN";
    if (ack.attempt !== s.attempt || p.attempt !== ack.attempt || p.status !== "IN_PROGRESS") return "DISCARDED";
    if (!p.expected.includes(ack.subtask)) return "UNKNOWN";
    // The alarm may not have run yet: an ack past the deadline cannot save the checkpoint.
    if (s.config && this.host.now() >= expiresAtMs(s.config.checkpoint, p.triggerMs)) {
      await this.failCheckpoint(ack.checkpointId, "CHECKPOINT_EXPIRED", `checkpoint ${ack.checkpointId} expired before completing (timeout ${s.config.checkpoint.timeoutMs} ms)`);
      return "DISCARDED";
    }
    const { checkpointId, ...rest } = ack;
    if (!this.store.addAck(checkpointId, rest)) return "DUPLICATE";
    if (this.store.acks(checkpointId).length === p.expected.length) await this.complete(checkpointId);
    return "SUCCESS";
  }

  async declineCheckpoint(attempt: number, checkpointId: number, reason: string): Promise<void> {
    const s = this.store.job();
    if (attempt !== s.attempt) return;
    await this.failCheckpoint(checkpointId, "CHECKPOINT_DECLINED", reason);
  }

  /** A subtask of `attempt` failed: the job fails over. */
  async reportFailure(attempt: number, message: string): Promise<void> {
    const s = this.store.job();
    if (attempt !== s.attempt || s.status !== "RUNNING") return;
    await this.failover(message);
  }

  /**
   * A subtask's input ended (checkpointing on). From now on checkpoints
   * trigger it directly — no barrier will reach it — and a checkpoint
   * already running that it has not taken is triggered there now. Once every
   * subtask ended, the final checkpoint is triggered at once; its completion
   * commits the sinks and finishes the subtasks (Flink's FLIP-147).
   */
  async reportEndOfData(attempt: number, vertex: string, index: number): Promise<void> {
    const s = this.store.job();
    if (attempt !== s.attempt || s.status !== "RUNNING" || !s.plan) return;
    const id = `${vertex}/${index}`;
    if (s.ended.includes(id)) return;
    s.ended = [...s.ended, id];
    this.store.saveJob(s);
    const stub = this.host.subtask(s.plan.job, vertex, index);
    let running = 0;
    for (const { id: checkpointId } of this.store.pendingIds()) {
      const p = this.store.pending(checkpointId);
      if (p?.status !== "IN_PROGRESS") continue;
      running++;
      if (p.attempt !== attempt || this.store.acks(checkpointId).some((a) => a.subtask === id)) continue;
      void this.triggerSubtask(s, stub, checkpointId, p.triggerMs, p.isSavepoint);
    }
    if (running === 0 && s.ended.length >= this.subtaskCount(s)) await this.trigger(false);
    await this.schedule();
  }

  async reportFinished(attempt: number, vertex: string, index: number): Promise<void> {
    const s = this.store.job();
    if (attempt !== s.attempt || s.status !== "RUNNING" || !s.plan) return;
    const id = `${vertex}/${index}`;
    if (!s.finished.includes(id)) s.finished = [...s.finished, id];
    if (s.finished.length >= this.subtaskCount(s)) {
      s.status = "FINISHED";
      s.endTime = this.host.now();
      this.abortPending(s, "JOB_STOPPED", "the job finished");
    }
    this.store.saveJob(s);
    await this.schedule();
  }

  // ---- the alarm: checkpoints, timeouts, heartbeats, restarts ------------

  async alarm(): Promise<void> {
    const now = this.host.now();
    let s = this.store.job();
    if (s.status === "RESTARTING" && s.restartAtMs !== null && now >= s.restartAtMs) {
      await this.restart();
      s = this.store.job();
    }
    if (s.status === "RUNNING" && s.config) {
      for (const p of this.store.pendingIds()) {
        if (now >= expiresAtMs(s.config.checkpoint, p.triggerMs)) {
          await this.failCheckpoint(p.id, "CHECKPOINT_EXPIRED", `checkpoint ${p.id} expired before completing (timeout ${s.config.checkpoint.timeoutMs} ms)`);
        }
      }
      s = this.store.job();
      if (s.status === "RUNNING" && now >= this.nextHeartbeatMs) await this.heartbeat();
      s = this.store.job();
      const at = s.status === "RUNNING" ? nextTriggerMs(s.config!.checkpoint, this.schedulerState(s)) : null;
      if (at !== null && now >= at) await this.trigger(false);
    }
    await this.schedule();
  }

  /** Sets the one alarm to the earliest thing due. */
  private async schedule(): Promise<void> {
    const s = this.store.job();
    const due: number[] = [];
    if (s.status === "RESTARTING" && s.restartAtMs !== null) due.push(s.restartAtMs);
    if (s.status === "RUNNING" && s.config) {
      due.push(Math.max(this.nextHeartbeatMs, this.host.now() + 50));
      for (const p of this.store.pendingIds()) due.push(expiresAtMs(s.config.checkpoint, p.triggerMs));
      const at = nextTriggerMs(s.config.checkpoint, this.schedulerState(s));
      if (at !== null) due.push(at);
    }
    await this.host.setAlarm(due.length === 0 ? null : Math.min(...due));
  }

  private schedulerState(s: JobRecord) {
    return {
      pendingTriggerMs: this.store.pendingIds().map((p) => p.triggerMs),
      lastTriggerMs: s.lastTriggerMs,
      lastEndMs: s.lastEndMs,
      runningSinceMs: s.runningSinceMs,
    };
  }

  /** Checks every subtask now. */
  heartbeatNow(): Promise<void> {
    return this.heartbeat();
  }

  private async heartbeat(): Promise<void> {
    if (this.heartbeatRunning) return;
    this.heartbeatRunning = true;
    this.nextHeartbeatMs = this.host.now() + HEARTBEAT_INTERVAL_MS;
    try {
      const s = this.store.job();
      if (!s.plan) return;
      const timeout = this.host.sleep(HEARTBEAT_TIMEOUT_MS).then(() => "timeout" as const);
      const results = await Promise.all(
        this.subtasks(s.plan).map(async (t) => ({ t, health: await Promise.race([t.stub.ping(s.attempt).catch(() => "lost" as const), timeout]) })),
      );
      const now = this.store.job();
      if (now.attempt !== s.attempt || now.status !== "RUNNING") return;
      const bad = results.find((r) => r.health === "lost" || r.health === "timeout");
      if (bad) {
        const why = bad.health === "timeout" ? "did not answer its heartbeat" : "lost its running task (the object restarted)";
        await this.failover(`subtask ${bad.t.vertex}/${bad.t.index} ${why}`);
        return;
      }
      // A subtask finished whose report was lost (or is on its way): the heartbeat is as good a witness.
      for (const r of results) {
        if (r.health === "finished" && !this.store.job().finished.includes(`${r.t.vertex}/${r.t.index}`)) await this.reportFinished(s.attempt, r.t.vertex, r.t.index);
      }
    } finally {
      this.heartbeatRunning = false;
    }
  }

  // ---- checkpoints ------------------------------------------------------

  /** Triggers checkpoint N at every source subtask; returns N, or null if the job cannot checkpoint now. */
  private async trigger(isSavepoint: boolean, action: SavepointAction = "keep", format: SavepointFormat = "canonical"): Promise<number | null> {
    const s = this.store.job();
    if (s.status !== "RUNNING" || !s.plan) return null;
    const now = this.host.now();
    const id = s.lastCheckpointId + 1;
    s.lastCheckpointId = id;
    s.lastTriggerMs = now;
    if (isSavepoint) s.pendingSavepoint = { id, action, format };
    this.store.saveJob(s);
    const all = this.subtasks(s.plan);
    this.store.insertPending(id, s.attempt, now, all.map((t) => `${t.vertex}/${t.index}`), isSavepoint);
    const ended = new Set(s.ended);
    const triggered = await Promise.all(
      // Barriers start at the sources; subtasks whose input ended take part directly.
      all.filter((t) => t.isSource || ended.has(`${t.vertex}/${t.index}`)).map((t) => this.triggerSubtask(s, t.stub, id, now, isSavepoint)),
    );
    if (triggered.some((ok) => !ok)) await this.failCheckpoint(id, "TRIGGER_FAILED", `a subtask could not start checkpoint ${id}`);
    await this.schedule();
    return id;
  }

  private async complete(id: number): Promise<void> {
    const p = this.store.pending(id);
    if (!p || p.status !== "IN_PROGRESS") return;
    this.store.setStatus(id, "COMPLETING");
    const s = this.store.job();
    const acks = this.store.acks(id);
    let metadata = this.buildMetadata(s, id, p.triggerMs, p.isSavepoint, acks);
    const store = this.checkpointStore(s);
    try {
      if (p.isSavepoint && s.pendingSavepoint?.id === id && s.pendingSavepoint.format === "native") metadata = await store.copyIntoSavepoint(metadata);
      await store.writeMetadata(metadata);
    } catch (e) {
      await this.failCheckpoint(id, "IO_EXCEPTION", `writing _metadata of checkpoint ${id} failed: ${(e as Error)?.message ?? e}`);
      return;
    }
    const now = this.host.now();
    // A failover while the metadata was written failed this checkpoint: the new attempt
    // restored an older one and replays from there, so this cut must never be restored.
    if (this.store.job().attempt !== p.attempt || !this.store.complete(id, now, store.externalPath(id, p.isSavepoint), metadata)) {
      this.store.fail(id, now, `JOB_FAILOVER: the job failed over while checkpoint ${id} was completing`);
      await store.deleteMetadata(id, p.isSavepoint).catch(() => undefined);
      return;
    }
    const after = this.store.job();
    after.consecutiveFailures = 0;
    after.lastEndMs = now;
    this.store.saveJob(after);
    for (const older of this.store.pendingIds()) {
      if (older.id < id) await this.failCheckpoint(older.id, "CHECKPOINT_SUBSUMED", `checkpoint ${id} completed first`);
    }
    const ending = after.pendingSavepoint?.id === id && after.pendingSavepoint.action !== "keep" ? after.pendingSavepoint.action : null;
    if (after.attempt === p.attempt && after.plan) {
      const notified = this.subtasks(after.plan).map((t) => t.stub.notifyCheckpointComplete(p.attempt, id).catch(() => undefined));
      // Ending the job: sinks commit the final savepoint's transactions before the subtasks stop.
      if (ending) await Promise.all(notified);
    }
    if (ending) {
      const s2 = this.store.job();
      if (s2.attempt === p.attempt && s2.status === "RUNNING") {
        this.abortPending(s2, "JOB_STOPPED", ending === "stop" ? "the job stopped with a savepoint" : "the job was canceled with a savepoint");
        const done: JobRecord = { ...s2, status: ending === "stop" ? "FINISHED" : "CANCELED", endTime: this.host.now(), pendingSavepoint: null };
        this.store.saveJob(done);
        await this.cancelSubtasks(done);
        await this.schedule();
        return;
      }
    }
    await this.retain(after);
    await this.schedule();
  }

  private buildMetadata(s: JobRecord, id: number, triggerMs: number, isSavepoint: boolean, acks: SubtaskAck[]): CheckpointMetadata {
    const operators: Record<string, { parallelism: number; keyed: Record<string, KeyedStateHandle>; sources: Record<string, Record<string, number>>; sinks: Record<string, unknown> }> = {};
    const parallelismOf = new Map<string, number>();
    const definition = this.registry.job(s.plan!.job)!;
    for (const v of s.plan!.vertices) for (const n of v.nodes) {
      const uid = definition.nodes[n]?.options.uid;
      if (uid) parallelismOf.set(uid, v.parallelism);
    }
    const op = (uid: string) => (operators[uid] ??= { parallelism: parallelismOf.get(uid) ?? 1, keyed: {}, sources: {}, sinks: {} });
    const channels: Record<string, ChannelStateHandle> = {};
    for (const a of acks) {
      if (a.channelState) channels[a.subtask] = a.channelState;
      for (const [uid, h] of Object.entries(a.keyed)) op(uid).keyed[a.subtask] = h;
      for (const [uid, positions] of Object.entries(a.sources)) op(uid).sources[a.subtask] = positions;
      for (const [uid, txn] of Object.entries(a.sinks)) op(uid).sinks[a.subtask] = txn;
    }
    return {
      version: 1,
      job: s.plan!.job,
      checkpointId: id,
      kind: isSavepoint ? "SAVEPOINT" : "CHECKPOINT",
      triggerTimestamp: triggerMs,
      completedTimestamp: this.host.now(),
      attempt: s.attempt,
      maxParallelism: s.plan!.maxParallelism,
      operators: operators as Record<string, OperatorState>,
      ...(Object.keys(channels).length > 0 ? { channels } : {}),
    };
  }

  private async failCheckpoint(id: number, reason: CheckpointFailureReason, message: string): Promise<void> {
    const p = this.store.pending(id);
    if (!p || !this.store.fail(id, this.host.now(), `${reason}: ${message}`)) return;
    const s = this.store.job();
    s.lastEndMs = this.host.now();
    if (countsAsFailure(reason) && p.attempt === s.attempt) s.consecutiveFailures++;
    this.store.saveJob(s);
    if (s.plan && p.attempt === s.attempt) {
      for (const t of this.subtasks(s.plan)) void t.stub.notifyCheckpointAborted(p.attempt, id).catch(() => undefined);
    }
    if (s.pendingSavepoint?.id === id) {
      const action = s.pendingSavepoint.action;
      s.pendingSavepoint = null;
      this.store.saveJob(s);
      // Its sources stopped after the barrier: resume from the last checkpoint.
      if (action === "stop" && s.status === "RUNNING" && p.attempt === s.attempt) {
        await this.failover(`stop-with-savepoint failed, the job resumes: ${message}`);
        return;
      }
    }
    if (s.status === "RUNNING" && s.config && countsAsFailure(reason) && exceedsTolerableFailures(s.config.checkpoint, s.consecutiveFailures)) {
      await this.failover(`${s.consecutiveFailures} checkpoint failure(s) in a row exceed the tolerable ${s.config.checkpoint.tolerableFailures}; last: ${message}`);
    }
    await this.schedule();
  }

  private abortPending(s: JobRecord, reason: CheckpointFailureReason, message: string): void {
    for (const p of this.store.pendingIds()) this.store.fail(p.id, this.host.now(), `${reason}: ${message}`);
    void s;
  }

  /** Keeps the last N completed checkpoints; deletes the rest and the files only they referenced. */
  private async retain(s: JobRecord): Promise<void> {
    if (!s.config) return;
    const run = this.runRetained(s);
    if (run.length === 0) return;
    const drop = run.slice(s.config.checkpoint.retained).map((r) => r.id);
    this.store.discard(drop);
    // Checkpoints kept from earlier runs (retained on cancellation) keep their files too.
    const keep = this.store.retained();
    try {
      await this.checkpointStore(s).collectGarbage(keep.map((k) => k.metadata), drop, run[0].id);
    } catch (e) {
      console.error(`checkpoint garbage collection failed: ${(e as Error)?.message ?? e}`);
    }
  }

  // ---- failover ---------------------------------------------------------

  /** Fails the current attempt; restarts after the strategy's delay, or fails the job. */
  private async failover(cause: string): Promise<void> {
    const s = this.store.job();
    if (s.status !== "RUNNING" && s.status !== "RESTARTING") return;
    const now = this.host.now();
    this.abortPending(s, "JOB_FAILOVER", cause);
    const decision = decideRestart(s.config!.restartStrategy, { failureTimesMs: s.failureTimesMs, restarts: s.restarts, backoffRestarts: s.backoffRestarts, lastRunningSinceMs: s.runningSinceMs }, now);
    const old = { ...s };
    s.pendingSavepoint = null;
    s.attempt += 1; // fence: from here on, the old attempt's messages are ignored
    s.lastError = cause;
    s.failureTimesMs = [...s.failureTimesMs, now].slice(-100);
    if (decision.restart) {
      s.status = "RESTARTING";
      s.restarts += 1;
      s.backoffRestarts = decision.backoffRestarts;
      s.restartAtMs = now + decision.delayMs;
    } else {
      s.status = "FAILED";
      s.lastError = `${cause} (${decision.reason})`;
      s.endTime = now;
      s.restartAtMs = null;
    }
    this.store.saveJob(s);
    await this.cancelSubtasks(old);
    await this.schedule();
  }

  /** Deploys the current attempt from the latest readable completed checkpoint. */
  private async restart(): Promise<void> {
    // restartAtMs stays set until the restart succeeds: if this object dies
    // midway, the next alarm simply restarts again (deploying is idempotent).
    const s = this.store.job();
    if (s.status !== "RESTARTING") return;
    // The Worker may run newer code than the plan was made from: its operators would not match.
    if (!this.planMatchesCode(s)) {
      const failed: JobRecord = {
        ...s,
        status: "FAILED",
        restartAtMs: null,
        endTime: this.host.now(),
        lastError: `the job's code changed while it ran (${s.lastError ?? "restart"}); stop a job with a savepoint before deploying a new version, then start the new version from it`,
      };
      this.store.saveJob(failed);
      await this.schedule();
      return;
    }
    // Every try of a restart is a new attempt: a try interrupted midway (this object reset) may
    // have started subtasks, and a second try must fence them off, not share their attempt.
    s.attempt += 1;
    this.store.saveJob(s);
    const attempt = s.attempt;
    const store = this.checkpointStore(s);
    let from: CheckpointMetadata | null = null;
    try {
      // Only the latest completed checkpoint: falling back to an older one would replay output
      // that sinks already committed. If it cannot be read now, the restart fails and is retried.
      const latest = this.runRetained(s)[0];
      if (latest) from = await store.read(latest.id);
      // No checkpoint of this run yet: the snapshot the run started from, if any.
      else if (s.runRestoredFrom) from = await store.read(s.runRestoredFrom.checkpointId, s.runRestoredFrom.savepoint);
      await this.deployAndStart(s, from);
    } catch (e) {
      const now = this.store.job();
      if (now.attempt === attempt) {
        now.status = "RUNNING"; // so that failover applies the restart strategy
        this.store.saveJob(now);
        await this.failover(`restart failed: ${(e as Error)?.message ?? e}`);
      }
    }
  }

  /** Deploys every subtask for the job's attempt (restoring `from`), then starts the sources. */
  private async deployAndStart(s: JobRecord, from: CheckpointMetadata | null): Promise<void> {
    const plan = s.plan!;
    const attempt = s.attempt;
    const all = this.subtasks(plan);
    const deploy = async (t: (typeof all)[number]) => {
      const v = plan.vertices.find((x) => x.id === t.vertex)!;
      const range = v.keyed ? keyGroupRange(plan.maxParallelism, v.parallelism, t.index) : null;
      const d: SubtaskDeployment = {
        job: plan.job,
        vertex: t.vertex,
        index: t.index,
        attempt,
        plan,
        checkpoint: s.config!.checkpoint,
        runId: s.runId,
        keyGroupRange: range,
        restore: from ? restoreSpecFor(from, v.uids, range ?? { start: 0, end: plan.maxParallelism - 1 }, `${t.vertex}/${t.index}`) : null,
      };
      const r = await this.withTimeout(t.stub.deploy(d), DEPLOY_TIMEOUT_MS, `deploying subtask ${t.vertex}/${t.index} timed out`);
      if (!r.ok) throw new Error(r.message);
    };
    await Promise.all(all.map(deploy));
    const now = this.store.job();
    if (now.attempt !== attempt) return; // superseded while deploying
    const ts = this.host.now();
    now.status = "RUNNING";
    now.restartAtMs = null;
    now.runningSinceMs = ts;
    now.lastTriggerMs = null;
    // The restored subtasks run their input again from the checkpoint: none has ended yet.
    now.ended = [];
    now.finished = [];
    if (from) {
      const savepoint = from.kind === "SAVEPOINT";
      now.restores = [...now.restores, { id: from.checkpointId, restoreMs: ts, isSavepoint: savepoint, externalPath: this.checkpointStore(now).externalPath(from.checkpointId, savepoint) }].slice(-20);
    }
    this.store.saveJob(now);
    this.nextHeartbeatMs = ts + HEARTBEAT_INTERVAL_MS;
    // Every subtask starts: sources read, restored subtasks replay in-flight data of an unaligned checkpoint.
    await this.schedule();
    try {
      await Promise.all(all.map((t) => t.stub.start(attempt)));
    } catch (e) {
      // A subtask that did not start would leave the job RUNNING and idle: fail over instead.
      if (this.store.job().attempt === attempt) await this.failover(`starting the subtasks failed: ${(e as Error)?.message ?? e}`);
    }
  }

  /**
   * Starts checkpoint `id` at one subtask (a source, or one whose input
   * ended); resolves false when it could not. A canonical savepoint is
   * taken as such; a native one is an ordinary snapshot at the subtasks.
   */
  private triggerSubtask(s: JobRecord, stub: SubtaskApi, id: number, triggerMs: number, isSavepoint: boolean): Promise<boolean> {
    const savepoint = isSavepoint && s.pendingSavepoint?.id === id ? s.pendingSavepoint : null;
    return stub.triggerCheckpoint(s.attempt, id, triggerMs, savepoint?.format === "canonical", savepoint?.action === "stop").catch(() => false);
  }

  private subtaskCount(s: JobRecord): number {
    return s.plan ? s.plan.vertices.reduce((n, v) => n + v.parallelism, 0) : 0;
  }

  private async cancelSubtasks(s: JobRecord): Promise<void> {
    if (!s.plan) return;
    await Promise.all(this.subtasks(s.plan).map(({ stub }) => stub.cancel(s.attempt).catch(() => undefined)));
  }

  // ---- helpers ----------------------------------------------------------

  /** Whether the stored plan is what the Worker's current code plans at the same parallelism. */
  private planMatchesCode(s: JobRecord): boolean {
    if (!s.plan) return true;
    const definition = this.registry.job(s.plan.job);
    if (!definition) return false;
    try {
      return JSON.stringify(buildPlan(definition, s.startParallelism ?? undefined)) === JSON.stringify(s.plan);
    } catch {
      return false;
    }
  }

  /** Retained checkpoints of the current run, newest first: a fresh start never falls back to an earlier run's state. */
  private runRetained(s: JobRecord) {
    return this.store.retained().filter((r) => r.id >= s.runFirstCheckpointId);
  }

  private definition(job: string) {
    const d = this.registry.job(job);
    if (!d) throw new FloeError("job_not_found", `no job named "${job}"; jobs are: ${this.registry.jobNames().join(", ")}`, 404);
    return d;
  }

  private checkpointStore(s: JobRecord): CheckpointStore {
    return new CheckpointStore(this.host.bucket, s.config?.checkpoint.storagePrefix ?? "", s.plan!.job);
  }

  private subtasks(plan: ExecutionPlan) {
    const out: { vertex: string; index: number; isSource: boolean; stub: SubtaskApi }[] = [];
    for (const v of plan.vertices) {
      for (let i = 0; i < v.parallelism; i++) out.push({ vertex: v.id, index: i, isSource: v.isSource, stub: this.host.subtask(plan.job, v.id, i) });
    }
    return out;
  }

  private statusOf(s: JobRecord, name: string): JobStatus {
    const parallelism: Record<string, number> = {};
    const definition = this.registry.job(name);
    if (s.plan && definition) {
      for (const v of s.plan.vertices) for (const id of v.nodes) {
        const uid = definition.nodes[id]?.options.uid;
        if (uid) parallelism[uid] = v.parallelism;
      }
    }
    return {
      name,
      status: s.status,
      attempt: s.attempt,
      parallelism,
      vertices: s.plan?.vertices.map((v) => ({ id: v.id, name: v.name, parallelism: v.parallelism })) ?? [],
      restarts: s.restarts,
      last_error: s.lastError,
      start_time: s.startTime,
      end_time: s.endTime,
      latest_completed_checkpoint: this.runRetained(s)[0]?.id ?? null,
    };
  }
}

/** The part of checkpoint `m` that a subtask owning `range` of a vertex with operators `uids` restores. */
export function restoreSpecFor(m: CheckpointMetadata, uids: readonly string[], range: { start: number; end: number }, subtask?: string): RestoreSpec {
  const keyed: Record<string, KeyedStateHandle[]> = {};
  const sources: Record<string, Record<string, number>> = {};
  for (const uid of uids) {
    const op = m.operators[uid];
    if (!op) continue;
    keyed[uid] = Object.values(op.keyed).filter((h) => h.keyGroups.end >= range.start && h.keyGroups.start <= range.end);
    const positions: Record<string, number> = {};
    for (const p of Object.values(op.sources)) Object.assign(positions, p);
    sources[uid] = positions;
  }
  return { checkpointId: m.checkpointId, keyed, sources, channelState: (subtask && m.channels?.[subtask]) || null };
}
