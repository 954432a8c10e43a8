/**
 * Checkpointing, Flink's CheckpointCoordinator: triggers checkpoint N at the
 * sources (periodically, on request, for a savepoint), collects the acks
 * through a {@link PendingCheckpoint} built from the stored row, writes
 * `_metadata` to R2 last (the commit point), notifies completion, fails,
 * aborts and retains checkpoints. Its state is the checkpoint rows and the
 * job record in the coordinator's SQLite; it keeps none in memory, so a
 * coordinator that restarts goes on where it was.
 */
import { expiresAtMs, exceedsTolerableFailures, nextTriggerMs, periodicTriggerMark, type SchedulerState } from "../../checkpoint/checkpoint-scheduler.js";
import { buildMetadata } from "../../checkpoint/completed-checkpoint.js";
import { type CheckpointFailureReason, countsAsFailure } from "../../checkpoint/failure-reason.js";
import { type AckResult, PendingCheckpoint } from "../../checkpoint/pending-checkpoint.js";
import type { CheckpointMetadata, SubtaskAck } from "../../checkpoint/types.js";
import { retry } from "../../retry.js";
import type { SubtaskApi } from "../messages.js";
import type { AlarmConcern } from "./shared-alarm.js";
import type { CoordinatorContext } from "./coordinator-context.js";
import type { JobRecord } from "./coordinator-store.js";
import type { SavepointAction, SavepointFormat } from "../messages.js";

/** What checkpointing asks of the rest of the coordinator. */
export interface CheckpointingDeps {
  /** Fails the current attempt over (tolerable failures exceeded, stop-with-savepoint failed). */
  failover(cause: string): Promise<void>;
  /** Ends the job after its final savepoint. */
  cancelSubtasks(s: JobRecord): Promise<void>;
  /** A checkpoint completed and is recorded (the streams the job reads learn its offsets). */
  completed?(s: JobRecord, metadata: CheckpointMetadata): void;
}

/** Triggers, collects, completes, fails and retains the job's checkpoints. */
export class CheckpointCoordinator {
  constructor(
    private readonly ctx: CoordinatorContext,
    private readonly deps: CheckpointingDeps,
  ) {}

  /** Fails each pending checkpoint once its timeout passed. */
  readonly timeouts: AlarmConcern = {
    nextAlarmMs: () => {
      const s = this.ctx.store.job();
      if (s.status !== "RUNNING" || !s.config) return null;
      const due = this.ctx.store.pendingIds().map((p) => expiresAtMs(s.config!.checkpoint, p.triggerMs));
      return due.length === 0 ? null : Math.min(...due);
    },
    onAlarm: async (now) => {
      const s = this.ctx.store.job();
      if (s.status !== "RUNNING" || !s.config) return;
      for (const p of this.ctx.store.pendingIds()) {
        if (now >= expiresAtMs(s.config.checkpoint, p.triggerMs)) await this.failExpired(p.id, s);
      }
    },
  };

  /** Triggers the periodic checkpoint when the scheduler says it is due. */
  readonly periodicTrigger: AlarmConcern = {
    nextAlarmMs: () => {
      const s = this.ctx.store.job();
      return s.status === "RUNNING" && s.config ? nextTriggerMs(s.config.checkpoint, this.schedulerState(s)) : null;
    },
    onAlarm: async (now) => {
      const at = this.periodicTrigger.nextAlarmMs(now);
      if (at !== null && now >= at) await this.trigger(false, "keep", "canonical", false, at);
    },
  };

  /** What the scheduler decides from: pending trigger times, the last trigger and end. */
  schedulerState(s: JobRecord): SchedulerState {
    return {
      pendingTriggerMs: this.ctx.store.pendingIds().map((p) => p.triggerMs),
      lastTriggerMs: s.lastTriggerMs,
      lastEndMs: s.lastEndMs,
      runningSinceMs: s.runningSinceMs,
    };
  }

  /** Triggers checkpoint N at every source subtask; returns N, or null if the job cannot checkpoint now. */
  async trigger(isSavepoint: boolean, action: SavepointAction = "keep", format: SavepointFormat = "canonical", drain = false, periodicDueMs?: number): Promise<number | null> {
    const s = this.ctx.store.job();
    if (s.status !== "RUNNING" || !s.plan) return null;
    const now = this.ctx.now();
    const id = s.lastCheckpointId + 1;
    s.lastCheckpointId = id;
    // A periodic checkpoint counts from when it was due (a fixed rate); any other from now.
    s.lastTriggerMs = periodicDueMs === undefined ? now : periodicTriggerMark(periodicDueMs, now, s.config?.checkpoint.intervalMs ?? 0);
    if (isSavepoint) s.pendingSavepoint = drain ? { id, action, format, drain } : { id, action, format };
    this.ctx.store.saveJob(s);
    const all = this.ctx.subtasks(s.plan);
    this.ctx.store.insertPending(id, s.attempt, now, all.map((t) => t.id), isSavepoint);
    const ended = new Set(s.ended);
    const triggered = await Promise.all(
      // Barriers start at the sources; subtasks whose input ended take part directly.
      all.filter((t) => t.vertex.isSource || ended.has(t.id)).map((t) => this.triggerSubtask(s, t.stub, id, now, isSavepoint)),
    );
    if (triggered.some((ok) => !ok)) await this.fail(id, "TRIGGER_FAILED", `a subtask could not start checkpoint ${id}`);
    await this.ctx.schedule();
    return id;
  }

  /**
   * Starts checkpoint `id` at one subtask (a source, or one whose input
   * ended); resolves false when it could not. A canonical savepoint is
   * taken as such; a native one is an ordinary snapshot at the subtasks.
   */
  triggerSubtask(s: JobRecord, stub: SubtaskApi, id: number, triggerMs: number, isSavepoint: boolean): Promise<boolean> {
    const savepoint = isSavepoint && s.pendingSavepoint?.id === id ? s.pendingSavepoint : null;
    // A trigger that did not arrive fails the checkpoint (TRIGGER_FAILED): the error is that outcome.
    return stub.triggerCheckpoint(s.attempt, id, triggerMs, savepoint?.format === "canonical", savepoint?.action === "stop", savepoint?.drain === true).catch(() => false);
  }

  /**
   * Checkpoint `id` as a {@link PendingCheckpoint}: its stored row, the
   * subtasks that acknowledged it (their acks are read once, when it
   * completes), its deadline under `s`'s options.
   */
  pending(id: number, s: JobRecord): PendingCheckpoint | undefined {
    const row = this.ctx.store.pending(id);
    if (!row) return undefined;
    const expires = s.config ? expiresAtMs(s.config.checkpoint, row.triggerMs) : undefined;
    return new PendingCheckpoint(
      { checkpointId: id, attempt: row.attempt, triggerMs: row.triggerMs, expected: row.expected, isSavepoint: row.isSavepoint, expiresAtMs: expires, discarded: row.status !== "IN_PROGRESS" },
      [],
      this.ctx.store.ackedSubtasks(id),
    );
  }

  /** A subtask's part of a checkpoint is durable: stored if the pending checkpoint takes it; the last completes it. */
  async acknowledge(ack: SubtaskAck & { checkpointId: number }): Promise<AckResult> {
    const s = this.ctx.store.job();
    const { checkpointId, ...rest } = ack;
    const p = this.pending(checkpointId, s);
    if (!p) return "UNKNOWN";
    if (ack.attempt !== s.attempt) return "DISCARDED";
    const result = p.acknowledge(rest, this.ctx.now());
    // The alarm may not have run yet: an ack past the deadline cannot save the checkpoint.
    if (p.isExpired) {
      await this.failExpired(checkpointId, s);
      return "DISCARDED";
    }
    if (result !== "SUCCESS") return result;
    this.ctx.store.addAck(checkpointId, rest);
    if (p.isFullyAcknowledged) await this.complete(checkpointId);
    return "SUCCESS";
  }

  /** A subtask of `attempt` could not take its part of checkpoint `checkpointId`. */
  async decline(attempt: number, checkpointId: number, reason: string): Promise<void> {
    if (attempt !== this.ctx.store.job().attempt) return;
    await this.fail(checkpointId, "CHECKPOINT_DECLINED", reason);
  }

  private async complete(id: number): Promise<void> {
    const p = this.ctx.store.pending(id);
    if (!p || p.status !== "IN_PROGRESS") return;
    this.ctx.store.setStatus(id, "COMPLETING");
    const s = this.ctx.store.job();
    const acks = this.ctx.store.acks(id);
    let metadata = buildMetadata({ plan: s.plan!, checkpointId: id, attempt: s.attempt, isSavepoint: p.isSavepoint, triggerMs: p.triggerMs, completedMs: this.ctx.now(), acks });
    const store = this.ctx.checkpointStore(s);
    try {
      if (p.isSavepoint && s.pendingSavepoint?.id === id && s.pendingSavepoint.format === "native") metadata = await store.copyIntoSavepoint(metadata);
      await store.writeMetadata(metadata);
    } catch (e) {
      await this.fail(id, "IO_EXCEPTION", `writing _metadata of checkpoint ${id} failed: ${(e as Error)?.message ?? e}`);
      return;
    }
    const now = this.ctx.now();
    // A failover while the metadata was written failed this checkpoint: the new attempt
    // restored an older one and replays from there, so this cut must never be restored.
    if (this.ctx.store.job().attempt !== p.attempt || !this.ctx.store.complete(id, now, store.externalPath(id, p.isSavepoint), metadata)) {
      this.ctx.store.fail(id, now, `JOB_FAILOVER: the job failed over while checkpoint ${id} was completing`);
      try {
        await retry(() => store.deleteMetadata(id, p.isSavepoint), { attempts: 3, delayMs: 100, sleep: (ms) => this.ctx.host.sleep(ms) });
      } catch (e) {
        // Restarts restore only checkpoints recorded as completed here, never this one; a start named at it by hand would.
        console.error(`deleting _metadata of failed checkpoint ${id} failed: ${(e as Error)?.message ?? e}`);
      }
      return;
    }
    const after = this.ctx.store.job();
    after.consecutiveFailures = 0;
    after.lastEndMs = now;
    this.ctx.store.saveJob(after);
    this.deps.completed?.(after, metadata);
    for (const older of this.ctx.store.pendingIds()) {
      if (older.id < id) await this.fail(older.id, "CHECKPOINT_SUBSUMED", `checkpoint ${id} completed first`);
    }
    const ending = after.pendingSavepoint?.id === id && after.pendingSavepoint.action !== "keep" ? after.pendingSavepoint.action : null;
    if (after.attempt === p.attempt && after.plan) {
      const job = after.plan.job;
      const notified = this.ctx.subtasks(after.plan).map((t) =>
        // Safe to lose after every try: a sink commits every sealed transaction up to the checkpoint it
        // hears of, so the next completion (or a restore from this checkpoint) commits this one's too.
        this.ctx.callSubtask(job, t, (stub) => stub.notifyCheckpointComplete(p.attempt, id), () => this.ctx.store.job().attempt === p.attempt).catch(() => undefined),
      );
      // Ending the job: sinks commit the final savepoint's transactions before the subtasks stop.
      if (ending) await Promise.all(notified);
    }
    if (ending && (await this.endWithSavepoint(p.attempt, ending))) return;
    // The next checkpoint is scheduled before garbage collection, whose R2 listing may be slow: it only
    // deletes files of checkpoints up to this one that no retained checkpoint references, which a
    // checkpoint triggered meanwhile cannot need (an alarm during the collection could trigger it anyway).
    await this.ctx.schedule();
    await this.retain(after);
  }

  /** The savepoint of a stop or cancel completed: the job ends; false if it no longer runs that attempt. */
  private async endWithSavepoint(attempt: number, ending: "stop" | "cancel"): Promise<boolean> {
    const s = this.ctx.store.job();
    if (s.attempt !== attempt || s.status !== "RUNNING") return false;
    this.abortPending("JOB_STOPPED", ending === "stop" ? "the job stopped with a savepoint" : "the job was canceled with a savepoint");
    const done: JobRecord = { ...s, status: ending === "stop" ? "FINISHED" : "CANCELED", endTime: this.ctx.now(), pendingSavepoint: null };
    this.ctx.store.saveJob(done);
    await this.deps.cancelSubtasks(done);
    await this.ctx.schedule();
    return true;
  }

  private failExpired(id: number, s: JobRecord): Promise<void> {
    return this.fail(id, "CHECKPOINT_EXPIRED", `checkpoint ${id} expired before completing (timeout ${s.config!.checkpoint.timeoutMs} ms)`);
  }

  /**
   * Fails checkpoint `id` for `reason`: counts it toward the tolerable
   * failures, tells the subtasks, fails over when a stop-with-savepoint
   * failed or too many failed in a row.
   */
  async fail(id: number, reason: CheckpointFailureReason, message: string): Promise<void> {
    const p = this.ctx.store.pending(id);
    if (!p || !this.ctx.store.fail(id, this.ctx.now(), `${reason}: ${message}`)) return;
    const s = this.ctx.store.job();
    s.lastEndMs = this.ctx.now();
    if (countsAsFailure(reason) && p.attempt === s.attempt) s.consecutiveFailures++;
    this.ctx.store.saveJob(s);
    if (s.plan && p.attempt === s.attempt) {
      // Safe to lose: it only ends an alignment still waiting for this checkpoint, which a newer barrier ends too.
      for (const t of this.ctx.subtasks(s.plan)) void t.stub.notifyCheckpointAborted(p.attempt, id).catch(() => undefined);
    }
    if (s.pendingSavepoint?.id === id) {
      const action = s.pendingSavepoint.action;
      s.pendingSavepoint = null;
      this.ctx.store.saveJob(s);
      // Its sources stopped after the barrier: resume from the last checkpoint.
      if (action === "stop" && s.status === "RUNNING" && p.attempt === s.attempt) {
        await this.deps.failover(`stop-with-savepoint failed, the job resumes: ${message}`);
        return;
      }
    }
    if (s.status === "RUNNING" && s.config && countsAsFailure(reason) && exceedsTolerableFailures(s.config.checkpoint, s.consecutiveFailures)) {
      await this.deps.failover(`${s.consecutiveFailures} checkpoint failure(s) in a row exceed the tolerable ${s.config.checkpoint.tolerableFailures}; last: ${message}`);
    }
    await this.ctx.schedule();
  }

  /** Fails every pending checkpoint at once, quietly: the job stops or fails over, its subtasks are canceled. */
  abortPending(reason: CheckpointFailureReason, message: string): void {
    for (const p of this.ctx.store.pendingIds()) this.ctx.store.fail(p.id, this.ctx.now(), `${reason}: ${message}`);
  }

  /** Keeps the last N completed checkpoints; deletes the rest and the files only they referenced. */
  private async retain(s: JobRecord): Promise<void> {
    if (!s.config) return;
    const run = this.ctx.runRetained(s);
    if (run.length === 0) return;
    const drop = run.slice(s.config.checkpoint.retained).map((r) => r.id);
    this.ctx.store.discard(drop);
    // Checkpoints kept from earlier runs (retained on cancellation) keep their files too.
    const keep = this.ctx.store.retained();
    try {
      await this.ctx.checkpointStore(s).collectGarbage(keep.map((k) => k.metadata), drop, run[0].id);
    } catch (e) {
      console.error(`checkpoint garbage collection failed: ${(e as Error)?.message ?? e}`);
    }
  }
}
