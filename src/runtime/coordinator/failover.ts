/**
 * Failover and restart: a failure fences the current attempt off and asks
 * the job's restart strategy whether and when to restart; the restart,
 * when its time comes on the alarm, deploys a new attempt of every subtask
 * from the latest completed checkpoint of the run, then starts them.
 *
 * Every decision is fenced by the attempt number: anything a subtask of an
 * older attempt says is ignored.
 */
import { restoreSpecFor } from "../../checkpoint/completed-checkpoint.js";
import type { CheckpointFailureReason } from "../../checkpoint/failure-reason.js";
import { decideRestart } from "../../checkpoint/restart-strategy.js";
import type { CheckpointMetadata } from "../../checkpoint/types.js";
import { keyGroupRange } from "../../graph/key-groups.js";
import { buildPlan } from "../../graph/plan.js";
import type { SubtaskDeployment } from "../messages.js";
import type { AlarmConcern } from "./shared-alarm.js";
import type { CoordinatorContext, SubtaskRef } from "./coordinator-context.js";
import type { JobRecord } from "./coordinator-store.js";

/** A subtask that has not restored its state within this long fails the restart. */
export const DEPLOY_TIMEOUT_MS = 120_000;

/** What failover asks of the rest of the coordinator. */
export interface FailoverDeps {
  /** Fails every pending checkpoint: the attempt that would complete them is over. */
  abortPending(reason: CheckpointFailureReason, message: string): void;
  /** Subtasks of a new attempt were deployed at `nowMs` (heartbeats start from there). */
  deployedAt(nowMs: number): void;
}

/** Fails an attempt over and restarts the job when the restart strategy says so; its alarm concern is the restart time. */
export class Failover implements AlarmConcern {
  constructor(
    private readonly ctx: CoordinatorContext,
    private readonly deps: FailoverDeps,
  ) {}

  nextAlarmMs(): number | null {
    const s = this.ctx.store.job();
    return s.status === "RESTARTING" && s.restartAtMs !== null ? s.restartAtMs : null;
  }

  async onAlarm(nowMs: number): Promise<void> {
    const at = this.nextAlarmMs();
    if (at !== null && nowMs >= at) await this.restart();
  }

  /** A subtask of `attempt` failed: the job fails over. */
  async reportFailure(attempt: number, message: string): Promise<void> {
    const s = this.ctx.store.job();
    if (attempt !== s.attempt || s.status !== "RUNNING") return;
    await this.failover(message);
  }

  /** Fails the current attempt; restarts after the strategy's delay, or fails the job. */
  async failover(cause: string): Promise<void> {
    const s = this.ctx.store.job();
    if (s.status !== "RUNNING" && s.status !== "RESTARTING") return;
    const now = this.ctx.now();
    this.deps.abortPending("JOB_FAILOVER", cause);
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
    this.ctx.store.saveJob(s);
    await this.ctx.cancelSubtasks(old);
    await this.ctx.schedule();
  }

  /** Deploys the current attempt from the latest readable completed checkpoint. */
  private async restart(): Promise<void> {
    // restartAtMs stays set until the restart succeeds: if this object dies
    // midway, the next alarm simply restarts again (deploying is idempotent).
    const s = this.ctx.store.job();
    if (s.status !== "RESTARTING") return;
    // The Worker may run newer code than the plan was made from: its operators would not match.
    if (!this.planMatchesCode(s)) {
      const failed: JobRecord = {
        ...s,
        status: "FAILED",
        restartAtMs: null,
        endTime: this.ctx.now(),
        lastError: `the job's code changed while it ran (${s.lastError ?? "restart"}); stop a job with a savepoint before deploying a new version, then start the new version from it`,
      };
      this.ctx.store.saveJob(failed);
      await this.ctx.schedule();
      return;
    }
    // Every try of a restart is a new attempt: a try interrupted midway (this object reset) may
    // have started subtasks, and a second try must fence them off, not share their attempt.
    s.attempt += 1;
    this.ctx.store.saveJob(s);
    const attempt = s.attempt;
    const store = this.ctx.checkpointStore(s);
    let from: CheckpointMetadata | null = null;
    try {
      // Only the latest completed checkpoint: falling back to an older one would replay output
      // that sinks already committed. If it cannot be read now, the restart fails and is retried.
      const latest = this.ctx.runRetained(s)[0];
      if (latest) from = await store.read(latest.id);
      // No checkpoint of this run yet: the snapshot the run started from, if any.
      else if (s.runRestoredFrom) from = await store.read(s.runRestoredFrom.checkpointId, s.runRestoredFrom.savepoint);
      await this.deployAndStart(s, from);
    } catch (e) {
      const now = this.ctx.store.job();
      if (now.attempt === attempt) {
        now.status = "RUNNING"; // so that failover applies the restart strategy
        this.ctx.store.saveJob(now);
        await this.failover(`restart failed: ${(e as Error)?.message ?? e}`);
      }
    }
  }

  /** Deploys every subtask for the job's attempt (restoring `from`), then starts the sources. */
  async deployAndStart(s: JobRecord, from: CheckpointMetadata | null): Promise<void> {
    const plan = s.plan!;
    const attempt = s.attempt;
    const all = this.ctx.subtasks(plan);
    const deploy = async (t: SubtaskRef) => {
      const v = t.vertex;
      const range = v.keyed ? keyGroupRange(plan.maxParallelism, v.parallelism, t.index) : null;
      const d: SubtaskDeployment = {
        job: plan.job,
        vertex: v.id,
        index: t.index,
        attempt,
        plan,
        checkpoint: s.config!.checkpoint,
        runId: s.runId,
        keyGroupRange: range,
        restore: from ? restoreSpecFor(from, v.uids, range ?? { start: 0, end: plan.maxParallelism - 1 }, t.id, { index: t.index, parallelism: v.parallelism }) : null,
      };
      const r = await this.ctx.withTimeout(t.stub.deploy(d), DEPLOY_TIMEOUT_MS, `deploying subtask ${t.id} timed out`);
      if (!r.ok) throw new Error(r.message);
    };
    await Promise.all(all.map(deploy));
    const now = this.ctx.store.job();
    if (now.attempt !== attempt) return; // superseded while deploying
    const ts = this.ctx.now();
    now.status = "RUNNING";
    now.restartAtMs = null;
    now.runningSinceMs = ts;
    now.lastTriggerMs = null;
    // The restored subtasks run their input again from the checkpoint: none has ended yet.
    now.ended = [];
    now.finished = [];
    if (from) {
      const savepoint = from.kind === "SAVEPOINT";
      now.restores = [...now.restores, { id: from.checkpointId, restoreMs: ts, isSavepoint: savepoint, externalPath: this.ctx.checkpointStore(now).externalPath(from.checkpointId, savepoint) }].slice(-20);
    }
    this.ctx.store.saveJob(now);
    this.deps.deployedAt(ts);
    // Every subtask starts: sources read, restored subtasks replay in-flight data of an unaligned checkpoint.
    await this.ctx.schedule();
    try {
      await Promise.all(all.map((t) => t.stub.start(attempt)));
    } catch (e) {
      // A subtask that did not start would leave the job RUNNING and idle: fail over instead.
      if (this.ctx.store.job().attempt === attempt) await this.failover(`starting the subtasks failed: ${(e as Error)?.message ?? e}`);
    }
  }

  /** Whether the stored plan is what the Worker's current code plans at the same parallelism. */
  private planMatchesCode(s: JobRecord): boolean {
    if (!s.plan) return true;
    const definition = this.ctx.registry.job(s.plan.job);
    if (!definition) return false;
    try {
      return JSON.stringify(buildPlan(definition, s.startParallelism ?? undefined)) === JSON.stringify(s.plan);
    } catch {
      return false;
    }
  }
}
