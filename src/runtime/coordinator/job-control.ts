/**
 * Job control, what the HTTP API asks of a job: start (plan, resolve the
 * configuration, check a snapshot to restore from), cancel, status,
 * checkpoint and savepoint triggers and their status, statistics and
 * metrics. Client errors are {@link FloeError}s inside a {@link Result}.
 */
import { checkpointDetail, checkpointOverview } from "../../checkpoint/checkpoint-stats.js";
import { mayTriggerNow } from "../../checkpoint/checkpoint-scheduler.js";
import { parallelismByUid } from "../../checkpoint/completed-checkpoint.js";
import { checkRestore } from "../../checkpoint/restore-check.js";
import type { CheckpointMetadata } from "../../checkpoint/types.js";
import { FloeError, type Result, attempt as attemptResult } from "../../errors.js";
import { buildPlan } from "../../graph/plan.js";
import { CheckpointStore, CheckpointUnreadableError } from "../../storage/checkpoint-store.js";
import { parseSavepointRef, savepointId } from "../../storage/layout.js";
import { checkSinkVars, resolveRunConfig } from "../job-config.js";
import type { TaskMetrics } from "../messages.js";
import type { CheckpointCoordinator } from "./checkpoint-coordinator.js";
import type { CoordinatorContext } from "./coordinator-context.js";
import { INITIAL_JOB, type JobRecord } from "./coordinator-store.js";
import type { Failover } from "./failover.js";
import type { StreamPins } from "./stream-pins.js";
import type { JobStatus, SavepointAction, SavepointFormat, SavepointStatus, StartRequest } from "../messages.js";

/** The job's controls as the HTTP API calls them, each answering a {@link Result}. */
export class JobControl {
  constructor(
    private readonly ctx: CoordinatorContext,
    private readonly checkpoints: CheckpointCoordinator,
    private readonly failover: Failover,
    private readonly streams?: StreamPins,
  ) {}

  /** Plans the job and deploys it from empty state, or from a savepoint or retained checkpoint. */
  async start(job: string, request: StartRequest = {}): Promise<Result<JobStatus>> {
    return attemptResult(async () => {
      const definition = this.ctx.definition(job);
      const s = this.ctx.store.job();
      if (s.status === "RUNNING" || s.status === "RESTARTING" || s.status === "FAILING") {
        throw new FloeError("job_running", `job "${job}" is ${s.status}; cancel it first`, 409);
      }
      const plan = buildPlan(definition, request.parallelism);
      const config = resolveRunConfig(definition, request.config);
      if (this.ctx.host.vars) checkSinkVars(definition, this.ctx.host.vars);
      let from: CheckpointMetadata | null = null;
      let restoredFrom: JobRecord["runRestoredFrom"] = null;
      if (request.fromSavepoint !== undefined || request.fromCheckpoint !== undefined) {
        if (request.fromSavepoint !== undefined && request.fromCheckpoint !== undefined) {
          throw new FloeError("invalid_request", "give fromSavepoint or fromCheckpoint, not both");
        }
        const savepoint = request.fromSavepoint !== undefined;
        const id = savepoint ? savepointCheckpointId(request.fromSavepoint!, job, config.checkpoint.storagePrefix) : request.fromCheckpoint!;
        if (id === null || !Number.isInteger(id) || id < 1) {
          throw new FloeError("invalid_request", `${JSON.stringify(request.fromSavepoint)} is not a savepoint id (savepoint-<number>) or location (r2://savepoints/<job>/savepoint-<number>/)`);
        }
        from = await this.readSnapshot(new CheckpointStore(this.ctx.host.bucket, config.checkpoint.storagePrefix, job), id, savepoint);
        const parallelismOf = parallelismByUid(plan);
        checkRestore(from, new Set(parallelismOf.keys()), plan.maxParallelism, request.allowNonRestoredState ?? false, (uid) => parallelismOf.get(uid));
        restoredFrom = { checkpointId: id, savepoint };
      }
      // Where the new run reads each stream from, pinned before it runs (refused when a snapshot's offsets were deleted).
      await this.streams?.startRun(job, definition, s.runId + 1, from, request.starting_offsets);
      const now = this.ctx.now();
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
      this.ctx.store.saveJob(next);
      try {
        await this.failover.deployAndStart(next, from);
      } catch (e) {
        // The job is RUNNING on record: a failed deploy must not leave it idle with no alarm.
        if (this.ctx.store.job().attempt === next.attempt) await this.failover.failover(`starting the job failed: ${(e as Error)?.message ?? e}`);
      }
      return this.statusOf(this.ctx.store.job(), job);
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
   * nothing after its barrier); `cancel` cancels the job after it. `drain`
   * (with `stop` only) first sends the end of time from the sources, so
   * that every event-time timer fires into the savepoint (Flink's --drain).
   */
  async triggerSavepoint(job: string, action: SavepointAction, format: SavepointFormat = "canonical", drain = false): Promise<Result<{ trigger_id: string }>> {
    return attemptResult(async () => {
      this.ctx.definition(job);
      const s = this.ctx.store.job();
      if (s.status !== "RUNNING") throw new FloeError("job_not_running", `job "${job}" is ${s.status}, not running`, 409);
      if (s.pendingSavepoint) {
        const p = this.ctx.store.pending(s.pendingSavepoint.id);
        if (p && (p.status === "IN_PROGRESS" || p.status === "COMPLETING")) {
          throw new FloeError("savepoint_in_progress", `job "${job}" already takes savepoint ${s.pendingSavepoint.id}`, 409);
        }
      }
      const id = await this.checkpoints.trigger(true, action, format, drain && action === "stop");
      if (id === null) throw new FloeError("savepoint_not_triggered", `job "${job}" cannot take a savepoint now`, 409);
      return { trigger_id: String(id) };
    });
  }

  /** Where a savepoint trigger stands. */
  async savepointStatus(job: string, triggerId: string): Promise<Result<SavepointStatus>> {
    return attemptResult(() => {
      this.ctx.definition(job);
      const id = Number(triggerId);
      const r = Number.isInteger(id) ? this.ctx.store.record(id) : undefined;
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
    return attemptResult(() => this.statusOf(this.ctx.store.job(), this.ctx.definition(job).name));
  }

  /** Cancels the job: every subtask stops; checkpoints are kept or deleted as configured. */
  async cancel(job: string): Promise<Result<JobStatus>> {
    return attemptResult(async () => {
      this.ctx.definition(job);
      const s = this.ctx.store.job();
      if (s.status !== "RUNNING" && s.status !== "RESTARTING") {
        throw new FloeError("job_not_running", `job "${job}" is ${s.status}, not running`, 409);
      }
      this.checkpoints.abortPending("JOB_STOPPED", "the job was canceled");
      const next: JobRecord = { ...s, status: "CANCELED", endTime: this.ctx.now(), restartAtMs: null };
      this.ctx.store.saveJob(next);
      await this.ctx.cancelSubtasks(next);
      if (next.config?.checkpoint.externalized === "delete_on_cancellation") {
        await this.ctx.checkpointStore(next).deleteAll();
        this.ctx.store.discard(this.ctx.store.retained().map((r) => r.id));
      }
      await this.ctx.schedule();
      return this.statusOf(next, job);
    });
  }

  /** Triggers a checkpoint now (REST). */
  async triggerCheckpointNow(job: string): Promise<Result<{ id: number }>> {
    return attemptResult(async () => {
      this.ctx.definition(job);
      const s = this.ctx.store.job();
      if (s.status !== "RUNNING") throw new FloeError("job_not_running", `job "${job}" is ${s.status}, not running`, 409);
      if (s.config!.checkpoint.intervalMs <= 0) {
        throw new FloeError(
          "checkpointing_disabled",
          `job "${job}" runs without checkpoints (checkpoint.interval_ms 0): start it with an interval to take checkpoints`,
          409,
        );
      }
      if (!mayTriggerNow(s.config!.checkpoint, this.checkpoints.schedulerState(s))) {
        throw new FloeError("too_many_checkpoints", `job "${job}" already has ${s.config!.checkpoint.maxConcurrent} checkpoint(s) in progress`, 409);
      }
      const id = await this.checkpoints.trigger(false);
      if (id === null) throw new FloeError("checkpoint_not_triggered", `job "${job}" could not trigger a checkpoint now`, 409);
      return { id };
    });
  }

  async checkpointOverview(job: string): Promise<Result<ReturnType<typeof checkpointOverview>>> {
    return attemptResult(() => {
      this.ctx.definition(job);
      return checkpointOverview(this.ctx.store.records(), this.ctx.store.job().restores);
    });
  }

  async checkpointDetail(job: string, id: number): Promise<Result<ReturnType<typeof checkpointDetail>>> {
    return attemptResult(() => {
      this.ctx.definition(job);
      const r = this.ctx.store.record(id);
      if (!r) throw new FloeError("checkpoint_not_found", `job "${job}" has no checkpoint ${id}`, 404);
      return checkpointDetail(r);
    });
  }

  async metrics(job: string): Promise<Result<{ subtasks: TaskMetrics[]; runningSinceMs: number | null }>> {
    return attemptResult(async () => {
      this.ctx.definition(job);
      const s = this.ctx.store.job();
      if (!s.plan) return { subtasks: [], runningSinceMs: null };
      // A subtask that cannot be reached has no metrics to show: it is left out of the answer.
      const all = await Promise.all(this.ctx.subtasks(s.plan).map(({ stub }) => stub.metrics().catch(() => null)));
      return {
        subtasks: all.filter((m): m is TaskMetrics => m !== null && m.attempt === s.attempt),
        runningSinceMs: s.status === "RUNNING" ? s.runningSinceMs : null,
      };
    });
  }

  private statusOf(s: JobRecord, name: string): JobStatus {
    return {
      name,
      status: s.status,
      attempt: s.attempt,
      parallelism: s.plan ? Object.fromEntries(parallelismByUid(s.plan)) : {},
      vertices: s.plan?.vertices.map((v) => ({ id: v.id, name: v.name, parallelism: v.parallelism })) ?? [],
      restarts: s.restarts,
      last_error: s.lastError,
      start_time: s.startTime,
      end_time: s.endTime,
      latest_completed_checkpoint: this.ctx.runRetained(s)[0]?.id ?? null,
    };
  }
}

/**
 * The checkpoint id of the savepoint `ref` names (an id, or a location the
 * engine printed), or null when it names none; a location of another job's
 * or another storage prefix's savepoint is refused, naming both.
 */
function savepointCheckpointId(ref: string, job: string, prefix: string): number | null {
  const parsed = parseSavepointRef(ref);
  if (parsed === null) return null;
  if (parsed.job !== undefined && (parsed.job !== job || parsed.prefix !== prefix)) {
    throw new FloeError("invalid_request", `${JSON.stringify(ref)} is a savepoint of job "${parsed.job}"${parsed.prefix ? ` under "${parsed.prefix}"` : ""}; job "${job}" restores only its own (r2://${prefix}savepoints/${job}/savepoint-<number>/)`);
  }
  return parsed.checkpointId;
}
