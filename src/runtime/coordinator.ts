/**
 * The Coordinator object: one per job, its job master. It plans the job,
 * deploys its subtasks for an attempt, tracks status, and takes the
 * subtasks' reports of failure and completion.
 */
import { DurableObject } from "cloudflare:workers";
import { FloeError, type Result, attempt as attemptResult } from "../errors.js";
import { keyGroupRange } from "../graph/key-groups.js";
import { type ExecutionPlan, type ParallelismOverride, buildPlan } from "../graph/plan.js";
import type { FloeEnv } from "./env.js";
import { subtaskName } from "./names.js";
import type { JobRegistry } from "./registry.js";
import type { Subtask } from "./subtask.js";
import type { SubtaskDeployment, TaskMetrics } from "./task.js";

/** Flink's job statuses. */
export type JobStatusName = "CREATED" | "RUNNING" | "RESTARTING" | "FAILING" | "FAILED" | "CANCELED" | "FINISHED";

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
}

/** What `POST /v1/jobs/:job/start` takes. */
export interface StartRequest {
  readonly parallelism?: ParallelismOverride;
}

interface Stored {
  status: JobStatusName;
  attempt: number;
  plan: ExecutionPlan | null;
  restarts: number;
  lastError: string | null;
  startTime: number | null;
  endTime: number | null;
  finished: string[];
}

const INITIAL: Stored = { status: "CREATED", attempt: 0, plan: null, restarts: 0, lastError: null, startTime: null, endTime: null, finished: [] };

/** Base class; `createFloe` subclasses it with the Worker's job registry. */
export abstract class Coordinator extends DurableObject<FloeEnv> {
  protected abstract readonly registry: JobRegistry;
  private readonly sql: SqlStorage;
  private job = "";

  constructor(ctx: DurableObjectState, env: FloeEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)`);
  }

  /** Plans and deploys the job for a new attempt. */
  async start(job: string, request: StartRequest = {}): Promise<Result<JobStatus>> {
    return attemptResult(async () => {
      const definition = this.definition(job);
      const s = this.load();
      if (s.status === "RUNNING" || s.status === "RESTARTING" || s.status === "FAILING") {
        throw new FloeError("job_running", `job "${job}" is ${s.status}; stop or cancel it first`, 409);
      }
      const plan = buildPlan(definition, request.parallelism);
      const next: Stored = { ...INITIAL, status: "RUNNING", attempt: s.attempt + 1, plan, startTime: Date.now(), restarts: 0 };
      this.save(next);
      await this.deployAll(plan, next.attempt, true);
      return this.statusOf(next);
    });
  }

  /** The job's status. */
  async status(job: string): Promise<Result<JobStatus>> {
    return attemptResult(() => {
      this.definition(job);
      return this.statusOf(this.load());
    });
  }

  /** Cancels the job: every subtask stops. */
  async cancel(job: string): Promise<Result<JobStatus>> {
    return attemptResult(async () => {
      this.definition(job);
      const s = this.load();
      if (s.status !== "RUNNING" && s.status !== "RESTARTING") {
        throw new FloeError("job_not_running", `job "${job}" is ${s.status}, not running`, 409);
      }
      await this.cancelAll(s);
      const next = { ...s, status: "CANCELED" as const, endTime: Date.now() };
      this.save(next);
      return this.statusOf(next);
    });
  }

  /** A subtask of `attempt` failed; the job fails. */
  async reportFailure(attempt: number, message: string): Promise<void> {
    const s = this.load();
    if (attempt !== s.attempt || s.status !== "RUNNING") return;
    const next = { ...s, status: "FAILED" as const, lastError: message, endTime: Date.now() };
    this.save(next);
    await this.cancelAll(next);
  }

  /** A subtask of `attempt` reached the end of its input. */
  async reportFinished(attempt: number, vertex: string, index: number): Promise<void> {
    const s = this.load();
    if (attempt !== s.attempt || s.status !== "RUNNING" || !s.plan) return;
    const id = `${vertex}/${index}`;
    if (!s.finished.includes(id)) s.finished.push(id);
    const total = s.plan.vertices.reduce((n, v) => n + v.parallelism, 0);
    if (s.finished.length >= total) {
      s.status = "FINISHED";
      s.endTime = Date.now();
    }
    this.save(s);
  }

  /** Counters of every subtask of the running attempt. */
  async metrics(job: string): Promise<Result<{ subtasks: TaskMetrics[] }>> {
    return attemptResult(async () => {
      this.definition(job);
      const s = this.load();
      if (!s.plan) return { subtasks: [] };
      const all = await Promise.all(
        this.subtasks(s.plan).map(({ stub }) => (stub.metrics() as Promise<TaskMetrics | null>).catch(() => null)),
      );
      return { subtasks: all.filter((m): m is TaskMetrics => m !== null) };
    });
  }

  private definition(job: string) {
    const d = this.registry.job(job);
    if (!d) throw new FloeError("job_not_found", `no job named "${job}"; jobs are: ${this.registry.jobNames().join(", ")}`, 404);
    this.job = job;
    return d;
  }

  private subtasks(plan: ExecutionPlan) {
    const out: { vertex: string; index: number; isSource: boolean; stub: DurableObjectStub<Subtask> }[] = [];
    for (const v of plan.vertices) {
      for (let i = 0; i < v.parallelism; i++) {
        out.push({ vertex: v.id, index: i, isSource: v.isSource, stub: this.env.SUBTASK.get(this.env.SUBTASK.idFromName(subtaskName(plan.job, v.id, i))) });
      }
    }
    return out;
  }

  private async deployAll(plan: ExecutionPlan, attempt: number, fresh: boolean): Promise<void> {
    const all = this.subtasks(plan);
    const deploy = (t: (typeof all)[number]) => {
      const v = plan.vertices.find((x) => x.id === t.vertex)!;
      const d: SubtaskDeployment = {
        job: plan.job,
        vertex: t.vertex,
        index: t.index,
        attempt,
        plan,
        keyGroupRange: v.keyed ? keyGroupRange(plan.maxParallelism, v.parallelism, t.index) : null,
      };
      return t.stub.deploy(d, fresh);
    };
    // Receivers first, so that no source sends to a subtask of an older attempt.
    await Promise.all(all.filter((t) => !t.isSource).map(deploy));
    await Promise.all(all.filter((t) => t.isSource).map(deploy));
  }

  private async cancelAll(s: Stored): Promise<void> {
    if (!s.plan) return;
    await Promise.all(this.subtasks(s.plan).map(({ stub }) => stub.cancel(s.attempt).catch(() => undefined)));
  }

  private load(): Stored {
    const row = this.sql.exec<{ v: string }>(`SELECT v FROM meta WHERE k = 'job'`).toArray()[0];
    return row ? (JSON.parse(row.v) as Stored) : { ...INITIAL, finished: [] };
  }

  private save(s: Stored): void {
    this.sql.exec(`INSERT INTO meta (k, v) VALUES ('job', ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v`, JSON.stringify(s));
  }

  private statusOf(s: Stored): JobStatus {
    const parallelism: Record<string, number> = {};
    const definition = this.registry.job(this.job);
    if (s.plan && definition) {
      for (const v of s.plan.vertices) for (const id of v.nodes) {
        const uid = definition.nodes[id].options.uid;
        if (uid) parallelism[uid] = v.parallelism;
      }
    }
    return {
      name: this.job,
      status: s.status,
      attempt: s.attempt,
      parallelism,
      vertices: s.plan?.vertices.map((v) => ({ id: v.id, name: v.name, parallelism: v.parallelism })) ?? [],
      restarts: s.restarts,
      last_error: s.lastError,
      start_time: s.startTime,
      end_time: s.endTime,
    };
  }
}
