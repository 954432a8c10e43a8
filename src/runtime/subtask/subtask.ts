/**
 * The Subtask object: the Durable Object shell around {@link SubtaskCore},
 * one per operator subtask. It gives the core the object's SQLite storage
 * and alarm, the checkpoint bucket, stubs of other subtasks and of the
 * job's coordinator, the clock and timers, and forwards its RPC methods.
 */
import { DurableObject } from "cloudflare:workers";
import type { FloeEnv } from "../env.js";
import { type ChannelMessage, type CoordinatorReports, type DeliveryResult, type DeployResult, RESET_REASON, type SubtaskDeployment, type SubtaskHealth, type TaskMetrics } from "../messages.js";
import type { JobRegistry } from "../registry.js";
import type { ObjectStore, SubtaskPush } from "./ports.js";
import { SubtaskCore } from "./subtask-core.js";

/** Base class; `createFloe` subclasses it with the Worker's job registry. */
export abstract class Subtask extends DurableObject<FloeEnv> {
  /** Set by the class `createFloe` makes (a subclass of it, a user's own, inherits it). */
  protected declare readonly registry: JobRegistry;
  private coreValue: SubtaskCore | undefined;

  /** The core, built on first use (the registry is set by the subclass after this constructor). */
  private get core(): SubtaskCore {
    const { ctx, env } = this;
    this.coreValue ??= new SubtaskCore({
      registry: this.registry,
      sql: ctx.storage.sql,
      alarm: {
        set: (atMs) => ctx.storage.setAlarm(atMs),
        delete: () => ctx.storage.deleteAlarm(),
      },
      timers: {
        now: () => Date.now(),
        sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        setTimeout: (fn, ms) => {
          const handle = setTimeout(fn, ms);
          return { cancel: () => clearTimeout(handle) };
        },
      },
      bucket: env.CHECKPOINTS as unknown as ObjectStore,
      stubs: {
        subtask: (name) => env.SUBTASK.get(env.SUBTASK.idFromName(name)) as unknown as SubtaskPush,
        coordinator: (name) => env.COORDINATOR.get(env.COORDINATOR.idFromName(name)) as unknown as CoordinatorReports,
      },
      env,
      beforeDeploy: (deployment) => this.beforeDeploy(deployment),
    });
    return this.coreValue;
  }

  /**
   * Prepares this subtask for an attempt, restoring its checkpointed state
   * ({@link beforeDeploy} first). Sources start with {@link start}.
   */
  deploy(deployment: SubtaskDeployment): Promise<DeployResult> {
    return this.core.deploy(deployment);
  }

  /**
   * A hook for a subclass (`class Subtask extends floe.Subtask`): runs
   * before this subtask deploys a task, with the deployment (`job`,
   * `vertex`, `index`, `attempt`, `restore`: null at a fresh start) and the
   * Worker's bindings in `this.env`. It runs at every attempt: the job's
   * start, each restart after a failure, each restore after the Worker was
   * deployed again; the Coordinator's `beforeStart` runs only when the API
   * starts the job. Throw to refuse the deployment: the attempt fails as
   * when a function's `open` throws, the job's restart strategy decides on
   * the next one, and the job's `last_error` carries
   * `subtask <vertex>/<index>: <the error's message>`.
   */
  protected beforeDeploy(_deployment: SubtaskDeployment): void | Promise<void> {}

  /** Starts reading, for source subtasks of `attempt`. */
  start(attempt: number): Promise<void> {
    return this.core.start(attempt);
  }

  /** Receives a batch, barrier or end-of-input on one input channel. */
  push(message: ChannelMessage): DeliveryResult | Promise<DeliveryResult> {
    return this.core.push(message);
  }

  /** Starts checkpoint N at this source subtask. */
  triggerCheckpoint(attempt: number, checkpointId: number, triggerMs: number, isSavepoint: boolean, stopAfter = false, drain = false): boolean {
    return this.core.triggerCheckpoint(attempt, checkpointId, triggerMs, isSavepoint, stopAfter, drain);
  }

  notifyCheckpointComplete(attempt: number, checkpointId: number): Promise<void> {
    return this.core.notifyCheckpointComplete(attempt, checkpointId);
  }

  notifyCheckpointAborted(attempt: number, checkpointId: number): void {
    this.core.notifyCheckpointAborted(attempt, checkpointId);
  }

  /** Heartbeat: whether this object still runs the task of `attempt`. */
  ping(attempt: number): SubtaskHealth {
    return this.core.ping(attempt);
  }

  /** Stops the subtask of `attempt` (or of any attempt when omitted). */
  cancel(attempt?: number): Promise<void> {
    return this.core.cancel(attempt);
  }

  /**
   * Resets the object as the platform may at any moment: memory is lost,
   * storage kept. For operators and fault-injection tests. The call fails,
   * and so does every later call on the same stub, with {@link RESET_REASON}.
   */
  reset(): void {
    this.ctx.abort(RESET_REASON);
  }

  /** Counters of the running task, if any. */
  metrics(): TaskMetrics | null {
    return this.core.metrics();
  }

  override alarm(): Promise<void> {
    return this.core.alarm();
  }
}
