/**
 * The Coordinator object: the Durable Object shell around
 * {@link CoordinatorCore}, one per job. It gives the core its SQLite
 * storage, the R2 bucket, stubs of the job's subtasks, the clock and the
 * object's one alarm.
 */
import { DurableObject } from "cloudflare:workers";
import { CoordinatorCore } from "./coordinator-core.js";
import type { SubtaskApi } from "../messages.js";
import { CoordinatorStore } from "./coordinator-store.js";
import type { FloeEnv } from "../env.js";
import { streamPartitionName, subtaskName } from "../names.js";
import type { JobRegistry } from "../registry.js";
import type { StreamPartitionApi } from "./stream-pins.js";
import { RESET_REASON, type StartRequest } from "../messages.js";
import { attempt } from "../../errors.js";

export { DEPLOY_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS, HEARTBEAT_TIMEOUT_MS } from "./coordinator-core.js";
export type { JobStatus, JobStatusName, SavepointAction, SavepointFormat, SavepointStatus, StartRequest } from "../messages.js";

/** Base class; `createFloe` subclasses it with the Worker's job registry. */
export abstract class Coordinator extends DurableObject<FloeEnv> {
  /** Set by the class `createFloe` makes (a subclass of it, a user's own, inherits it). */
  protected declare readonly registry: JobRegistry;
  private coreValue: CoordinatorCore | undefined;

  constructor(ctx: DurableObjectState, env: FloeEnv) {
    super(ctx, env);
    // A live job always has an alarm; make sure of it after any restart of this object.
    void ctx.blockConcurrencyWhile(async () => {
      await this.core.afterRestart((await ctx.storage.getAlarm()) !== null);
    });
  }

  /** The core, built on first use (the registry is set by the subclass after this constructor). */
  private get core(): CoordinatorCore {
    this.coreValue ??= new CoordinatorCore({
      registry: this.registry,
      store: new CoordinatorStore(this.ctx.storage.sql),
      bucket: this.env.CHECKPOINTS,
      subtask: (job, vertex, index) => this.env.SUBTASK.get(this.env.SUBTASK.idFromName(subtaskName(job, vertex, index))) as unknown as SubtaskApi,
      now: () => Date.now(),
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      setAlarm: async (atMs) => {
        if (atMs === null) await this.ctx.storage.deleteAlarm();
        else await this.ctx.storage.setAlarm(atMs);
      },
      vars: this.env as unknown as Record<string, unknown>,
      streamPartition: (stream, partition) => this.env.STREAM_PARTITION.get(this.env.STREAM_PARTITION.idFromName(streamPartitionName(stream, partition))) as unknown as StreamPartitionApi,
    });
    return this.coreValue;
  }

  async start(...a: Parameters<CoordinatorCore["start"]>): ReturnType<CoordinatorCore["start"]> {
    const refused = await attempt(() => this.beforeStart(...a));
    if (!refused.ok) return refused;
    return this.core.start(...a);
  }

  /**
   * A hook for a subclass (`class Coordinator extends floe.Coordinator`):
   * runs before job `job` starts, with the Worker's bindings in `this.env`.
   * Throw a {@link FloeError} to refuse the start with that error (its
   * status and code reach the caller of the API, as for floe's own checks),
   * e.g. when a binding the job's functions need is missing.
   */
  protected beforeStart(_job: string, _request?: StartRequest): void | Promise<void> {}
  status(...a: Parameters<CoordinatorCore["status"]>) {
    return this.core.status(...a);
  }
  cancel(...a: Parameters<CoordinatorCore["cancel"]>) {
    return this.core.cancel(...a);
  }
  triggerCheckpointNow(...a: Parameters<CoordinatorCore["triggerCheckpointNow"]>) {
    return this.core.triggerCheckpointNow(...a);
  }
  checkpointOverview(...a: Parameters<CoordinatorCore["checkpointOverview"]>) {
    return this.core.checkpointOverview(...a);
  }
  checkpointDetail(...a: Parameters<CoordinatorCore["checkpointDetail"]>) {
    return this.core.checkpointDetail(...a);
  }
  triggerSavepoint(...a: Parameters<CoordinatorCore["triggerSavepoint"]>) {
    return this.core.triggerSavepoint(...a);
  }
  savepointStatus(...a: Parameters<CoordinatorCore["savepointStatus"]>) {
    return this.core.savepointStatus(...a);
  }
  metrics(...a: Parameters<CoordinatorCore["metrics"]>) {
    return this.core.metrics(...a);
  }
  acknowledgeCheckpoint(...a: Parameters<CoordinatorCore["acknowledgeCheckpoint"]>) {
    return this.core.acknowledgeCheckpoint(...a);
  }
  declineCheckpoint(...a: Parameters<CoordinatorCore["declineCheckpoint"]>) {
    return this.core.declineCheckpoint(...a);
  }
  reportFailure(...a: Parameters<CoordinatorCore["reportFailure"]>) {
    return this.core.reportFailure(...a);
  }
  reportEndOfData(...a: Parameters<CoordinatorCore["reportEndOfData"]>) {
    return this.core.reportEndOfData(...a);
  }

  reportFinished(...a: Parameters<CoordinatorCore["reportFinished"]>) {
    return this.core.reportFinished(...a);
  }

  /** Heartbeat of every subtask now (tests call it instead of waiting for the alarm). */
  heartbeat(): Promise<void> {
    return this.core.heartbeatNow();
  }

  /**
   * Resets the object (memory lost, storage kept), as the platform may: for
   * fault-injection tests. The call fails, and so does every later call on
   * the same stub, with {@link RESET_REASON}.
   */
  reset(): void {
    this.ctx.abort(RESET_REASON);
  }

  override async alarm(): Promise<void> {
    await this.core.alarm();
  }
}


