/**
 * The Subtask object: the shell around one running {@link Task}. It keeps
 * the deployment, the keyed-state image and the source positions in its
 * SQLite storage, receives channel messages over RPC, and drives source
 * subtasks from its alarm.
 */
import { DurableObject } from "cloudflare:workers";
import type { FloeEnv } from "./env.js";
import type { ChannelMessage, DeliveryResult } from "./messages.js";
import { coordinatorName, subtaskName } from "./names.js";
import type { JobRegistry } from "./registry.js";
import { type SubtaskDeployment, Task, type TaskHost, type TaskMetrics } from "./task.js";

/** How long one alarm invocation runs a source before yielding to a fresh alarm. */
const SOURCE_SLICE_MS = 5_000;

/** Base class; `createFloe` subclasses it with the Worker's job registry. */
export abstract class Subtask extends DurableObject<FloeEnv> {
  protected abstract readonly registry: JobRegistry;
  private task: Task | undefined;
  private readonly sql: SqlStorage;
  private sourceRunning = false;

  constructor(ctx: DurableObjectState, env: FloeEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS keyed_state (
      op TEXT NOT NULL, state TEXT NOT NULL, key TEXT NOT NULL, key_group INTEGER NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
      PRIMARY KEY (op, state, key))`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS positions (partition TEXT PRIMARY KEY, offset INTEGER NOT NULL)`);
  }

  /** Starts (or restarts) this subtask for an attempt; `fresh` discards its state first. */
  deploy(deployment: SubtaskDeployment, fresh: boolean): void {
    this.task?.cancel();
    this.task = undefined;
    if (fresh) {
      this.sql.exec(`DELETE FROM keyed_state`);
      this.sql.exec(`DELETE FROM positions`);
    }
    this.sql.exec(`INSERT INTO meta (k, v) VALUES ('deployment', ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v`, JSON.stringify(deployment));
    this.sql.exec(`INSERT INTO meta (k, v) VALUES ('canceled', '0') ON CONFLICT(k) DO UPDATE SET v = '0'`);
    const task = this.ensureTask();
    if (task?.isSource) void this.ctx.storage.setAlarm(Date.now());
  }

  /** Receives a batch or signal on one input channel. */
  push(message: ChannelMessage): DeliveryResult | Promise<DeliveryResult> {
    const task = this.ensureTask();
    if (!task) return "not-deployed";
    return task.offer(message);
  }

  /** Stops the subtask of `attempt` (or of any attempt when omitted). */
  cancel(attempt?: number): void {
    const d = this.storedDeployment();
    if (d && attempt !== undefined && d.attempt !== attempt) return;
    this.sql.exec(`INSERT INTO meta (k, v) VALUES ('canceled', '1') ON CONFLICT(k) DO UPDATE SET v = '1'`);
    this.task?.cancel();
    this.task = undefined;
    void this.ctx.storage.deleteAlarm();
  }

  /** Counters of the running task, if any. */
  metrics(): TaskMetrics | null {
    return this.ensureTask()?.metrics() ?? null;
  }

  override async alarm(): Promise<void> {
    const task = this.ensureTask();
    if (!task?.isSource || this.sourceRunning) return;
    this.sourceRunning = true;
    try {
      const again = await task.runSource(Date.now() + SOURCE_SLICE_MS);
      if (again && this.task === task) await this.ctx.storage.setAlarm(Date.now());
    } finally {
      this.sourceRunning = false;
    }
  }

  private storedDeployment(): SubtaskDeployment | undefined {
    const row = this.sql.exec<{ v: string }>(`SELECT v FROM meta WHERE k = 'deployment'`).toArray()[0];
    return row ? (JSON.parse(row.v) as SubtaskDeployment) : undefined;
  }

  /** The running task, rebuilt from storage after the object restarted. */
  private ensureTask(): Task | undefined {
    if (this.task) return this.task.state === "running" ? this.task : undefined;
    const canceled = this.sql.exec<{ v: string }>(`SELECT v FROM meta WHERE k = 'canceled'`).toArray()[0];
    if (canceled?.v === "1") return undefined;
    const deployment = this.storedDeployment();
    if (!deployment) return undefined;
    const job = this.registry.job(deployment.job);
    if (!job) return undefined;
    const task = new Task(deployment, job, this.host(deployment));
    task.restore(this.loadState(), this.loadPositions());
    this.task = task;
    return task;
  }

  private loadState() {
    const byOp = new Map<string, { state: string; key: string; kind: "value" | "map" | "list"; value: unknown }[]>();
    const rows = this.sql.exec<{ op: string; state: string; key: string; kind: "value" | "map" | "list"; value: string }>(
      `SELECT op, state, key, kind, value FROM keyed_state`,
    );
    for (const r of rows) {
      let list = byOp.get(r.op);
      if (!list) byOp.set(r.op, (list = []));
      list.push({ state: r.state, key: r.key, kind: r.kind, value: JSON.parse(r.value) });
    }
    return byOp;
  }

  private loadPositions(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.sql.exec<{ partition: string; offset: number }>(`SELECT partition, offset FROM positions`)) out[r.partition] = r.offset;
    return out;
  }

  private host(d: SubtaskDeployment): TaskHost {
    const env = this.env;
    const stubs = new Map<string, DurableObjectStub<Subtask>>();
    const stub = (vertex: string, index: number) => {
      const name = subtaskName(d.job, vertex, index);
      let s = stubs.get(name);
      if (!s) stubs.set(name, (s = env.SUBTASK.get(env.SUBTASK.idFromName(name))));
      return s;
    };
    const coordinator = () => env.COORDINATOR.get(env.COORDINATOR.idFromName(coordinatorName(d.job)));
    return {
      env,
      send: (vertex, index, message) => stub(vertex, index).push(message) as Promise<DeliveryResult>,
      now: () => Date.now(),
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      persist: (state, positions) => {
        for (const [op, entries] of state) {
          for (const e of entries) {
            if (e.value === undefined) this.sql.exec(`DELETE FROM keyed_state WHERE op = ? AND state = ? AND key = ?`, op, e.state, e.key);
            else
              this.sql.exec(
                `INSERT INTO keyed_state (op, state, key, key_group, kind, value) VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT(op, state, key) DO UPDATE SET value = excluded.value`,
                op,
                e.state,
                e.key,
                e.keyGroup,
                e.kind,
                JSON.stringify(e.value),
              );
          }
        }
        if (positions) {
          for (const [partition, offset] of Object.entries(positions)) {
            this.sql.exec(`INSERT INTO positions (partition, offset) VALUES (?, ?) ON CONFLICT(partition) DO UPDATE SET offset = excluded.offset`, partition, offset);
          }
        }
      },
      reportFailure: async (message) => {
        await coordinator().reportFailure(d.attempt, message);
      },
      reportFinished: async () => {
        await coordinator().reportFinished(d.attempt, d.vertex, d.index);
      },
    };
  }
}
