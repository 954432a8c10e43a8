/**
 * A job harness: the project's Worker (the bundle `wrangler deploy` would
 * upload) running in Miniflare, real workerd, with its Durable Object and
 * R2 storage persisted to a folder, driven over floe's HTTP API. A test
 * starts a job, ingests, waits for checkpoints, reads tables, and injects
 * the faults floe proves itself against: a SIGKILL of the runtime (a
 * machine crash) and a restart over the same state, a reset of one
 * subtask or of the coordinator (the platform may evict an object at any
 * moment: memory lost, storage kept).
 *
 * Needs `miniflare` 4 and `wrangler` in the project (devDependencies), and
 * Node 22.
 *
 * @example
 * const engine = await startEngine();           // builds ./wrangler.toml's Worker
 * await engine.startJob("clicks");
 * await engine.ingest("clicks", [{ user: "ada" }]);
 * await engine.crash();                         // SIGKILL, then the same state again
 * await waitFor(async () => (await engine.readTable("clicks-per-user")).get("ada") === 1);
 * await engine.dispose();
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { Miniflare, MiniflareOptions } from "miniflare";
import { RESET_REASON } from "../runtime/messages.js";
import { coordinatorName, subtaskName } from "../runtime/names.js";
import { killProcesses, workerdChildren } from "./processes.js";
import { type BuiltWorker, buildWorker, loadBuiltWorker } from "./worker-build.js";
import { waitFor } from "./wait.js";

/** The admin token a harness engine uses unless told otherwise. */
export const TEST_ADMIN_TOKEN = "test-admin-token";

/** Options of {@link startEngine}. */
export interface EngineOptions {
  /**
   * The Worker: a build ({@link buildWorker}), the folder a build was
   * written to, or nothing to build the current project's (./wrangler.toml;
   * once per process).
   */
  readonly worker?: BuiltWorker | string;
  /** Where Durable Object and R2 state is kept (default: a new temporary folder); start again over it to restart. */
  readonly persistDir?: string;
  /** The Worker's FLOE_ADMIN_TOKEN (default {@link TEST_ADMIN_TOKEN}); requests of {@link LocalEngine.api} carry it. */
  readonly adminToken?: string;
  /** More variables and secrets (e.g. a stream's ingest token, a webhook's URL), over the config's `[vars]`. */
  readonly bindings?: Readonly<Record<string, string>>;
  /** Miniflare options merged over the harness's own (more bindings, module rules…). */
  readonly miniflare?: Partial<MiniflareOptions>;
  /** Show workerd's output (console.log of the Worker) on stderr; also with FLOE_RUNTIME_STDIO=1. */
  readonly stdio?: boolean;
}

/** A job's status, as `GET /v1/jobs/:job` answers it (the fields tests read most; more are there). */
export interface JobStatus {
  readonly name: string;
  readonly status: "CREATED" | "RUNNING" | "RESTARTING" | "FAILING" | "FAILED" | "CANCELED" | "FINISHED";
  readonly attempt: number;
  readonly parallelism: Readonly<Record<string, number>>;
  readonly vertices: readonly { readonly id: string; readonly name: string; readonly parallelism: number }[];
  readonly restarts: number;
  readonly last_error: string | null;
  readonly latest_completed_checkpoint: number | null;
  readonly [field: string]: unknown;
}

/** What `POST /v1/ingest/:stream` answers. */
export interface IngestAnswer {
  readonly stream: string;
  readonly count: number;
  readonly duplicate: boolean;
  readonly offsets: readonly { readonly partition: number; readonly first_offset: number; readonly last_offset: number }[];
}

/** An answer of the engine that was not a success: its status and the error's code and message. */
export class EngineError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "EngineError";
  }
}

/** Starts the engine of a build before another one starts, so that each knows its own workerd process. */
let starting: Promise<unknown> = Promise.resolve();

/** Builds of the current project, by folder, made by engines started without a `worker`. */
const builds = new Map<string, Promise<BuiltWorker>>();

/**
 * Starts the Worker in Miniflare over `persistDir`.
 *
 * @example const engine = await startEngine({ persistDir, bindings: { CLICKS_INGEST_TOKEN: "t" } });
 */
export async function startEngine(options: EngineOptions = {}): Promise<LocalEngine> {
  const worker = await workerOf(options.worker);
  const persistDir = resolve(options.persistDir ?? mkdtempSync(join(tmpdir(), "floe-engine-")));
  const engine = new LocalEngine(worker, persistDir, options);
  await engine.restart();
  return engine;
}

async function workerOf(worker: EngineOptions["worker"]): Promise<BuiltWorker> {
  if (typeof worker === "string") return loadBuiltWorker(worker);
  if (worker !== undefined) return worker;
  const root = process.cwd();
  let build = builds.get(root);
  if (!build) {
    build = buildWorker({ root });
    builds.set(root, build);
    build.catch(() => builds.delete(root));
  }
  return build;
}

/** A running engine (see the module's header). Its URL changes at each restart. */
export class LocalEngine {
  readonly adminToken: string;
  private running: { mf: Miniflare; url: string; pids: number[] } | undefined;

  /** @internal Use {@link startEngine}. */
  constructor(
    readonly worker: BuiltWorker,
    /** The folder holding the engine's state. */
    readonly persistDir: string,
    private readonly options: EngineOptions,
  ) {
    this.adminToken = options.adminToken ?? TEST_ADMIN_TOKEN;
  }

  /** The engine's base URL, e.g. http://127.0.0.1:41234 (no trailing slash). */
  get url(): string {
    return this.now().url;
  }

  /** The Miniflare instance (its API reaches objects and buckets directly). */
  get mf(): Miniflare {
    return this.now().mf;
  }

  /**
   * A request to the engine; it carries the admin token unless `init`
   * sets an authorization header. `json` is sent as a JSON body.
   */
  api(path: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (!headers.has("authorization")) headers.set("authorization", `Bearer ${this.adminToken}`);
    let body = init.body;
    if (init.json !== undefined) {
      headers.set("content-type", "application/json");
      body = JSON.stringify(init.json);
    }
    const { json: _json, ...rest } = init;
    return fetch(`${this.url}${path}`, { ...rest, headers, body });
  }

  /** Starts job `job` (`POST /v1/jobs/:job/start`; `request` as the API takes it: fromSavepoint, parallelism…). */
  startJob(job: string, request: Record<string, unknown> = {}): Promise<JobStatus> {
    return this.call("POST", `/v1/jobs/${enc(job)}/start`, request);
  }

  /** A job's status. */
  jobStatus(job: string): Promise<JobStatus> {
    return this.call("GET", `/v1/jobs/${enc(job)}`);
  }

  /** Appends records to an HTTP stream; resolves once they are stored. */
  ingest(stream: string, records: readonly unknown[], options: { idempotencyKey?: string; token?: string } = {}): Promise<IngestAnswer> {
    const headers: Record<string, string> = { "content-type": "application/x-ndjson" };
    if (options.idempotencyKey !== undefined) headers["idempotency-key"] = options.idempotencyKey;
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    const body = records.map((r) => JSON.stringify(r)).join("\n");
    return this.call("POST", `/v1/ingest/${enc(stream)}`, undefined, { body, headers });
  }

  /** Triggers a checkpoint now; resolves its id (it completes later: {@link waitForCheckpoint}). */
  async triggerCheckpoint(job: string): Promise<number> {
    return (await this.call<{ id: number }>("POST", `/v1/jobs/${enc(job)}/checkpoints`)).id;
  }

  /** The id of the job's latest completed checkpoint, or null. */
  async latestCheckpoint(job: string): Promise<number | null> {
    const stats = await this.call<{ latest: { completed: { id: number } | null } }>("GET", `/v1/jobs/${enc(job)}/checkpoints`);
    return stats.latest.completed?.id ?? null;
  }

  /**
   * Waits until a checkpoint of the job after `after` (default: the
   * latest completed one now) has completed; resolves its id.
   */
  async waitForCheckpoint(job: string, options: { after?: number; timeoutMs?: number } = {}): Promise<number> {
    const after = options.after ?? (await this.latestCheckpoint(job)) ?? 0;
    return waitFor(
      async () => {
        const id = await this.latestCheckpoint(job);
        return id !== null && id > after ? id : undefined;
      },
      { timeoutMs: options.timeoutMs ?? 30_000, what: `a checkpoint of ${job} after ${after}` },
    );
  }

  /**
   * Waits until the job has checkpointed past every record stored in the
   * streams: everything ingested so far went through it, and its sinks
   * commit it with that checkpoint.
   */
  async caughtUp(job: string, streams: readonly string[], options: { timeoutMs?: number } = {}): Promise<void> {
    for (const stream of streams) {
      await waitFor(
        async () => {
          const s = await this.call<{ partitions: { next_offset: number; jobs: { job: string; lag: number; active: boolean }[] }[] }>("GET", `/v1/streams/${enc(stream)}`);
          return s.partitions.every((p) => p.next_offset === 0 || p.jobs.some((j) => j.job === job && j.active && j.lag === 0));
        },
        { timeoutMs: options.timeoutMs ?? 30_000, what: `${job} checkpointed past every record of ${stream}` },
      );
    }
  }

  /** Every committed row of a table sink's table, by key (following the pages). */
  async readTable<V = unknown>(table: string): Promise<Map<string, V>> {
    const rows = new Map<string, V>();
    let cursor: string | null = null;
    do {
      const page: { rows: { key: string; value: V }[]; next_cursor: string | null } = await this.call(
        "GET",
        `/v1/tables/${enc(table)}?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      );
      for (const r of page.rows) rows.set(r.key, r.value);
      cursor = page.next_cursor;
    } while (cursor);
    return rows;
  }

  /** Takes a savepoint of a running job; resolves its id (what `startJob(job, { fromSavepoint })` takes) and location. */
  savepoint(job: string): Promise<{ id: string; location: string }> {
    return this.call("POST", `/v1/jobs/${enc(job)}/savepoints`, {});
  }

  /** Stops a job with a final savepoint (`drain`: fire every event-time timer first). */
  stopJob(job: string, options: { drain?: boolean } = {}): Promise<{ id: string; location: string; status: JobStatus }> {
    return this.call("POST", `/v1/jobs/${enc(job)}/stop`, { savepoint: true, drain: options.drain ?? false });
  }

  /** Cancels a job. */
  cancelJob(job: string): Promise<JobStatus> {
    return this.call("POST", `/v1/jobs/${enc(job)}/cancel`);
  }

  /**
   * A machine crash: SIGKILL of the runtime (nothing in memory survives,
   * every acknowledged write does), then the engine again over the same
   * state, as after a reboot. Running jobs restore their last completed
   * checkpoint by themselves.
   */
  async crash(): Promise<void> {
    await this.kill();
    await this.restart();
  }

  /**
   * SIGKILL of the runtime, without starting it again: {@link restart}
   * later, or start another engine over {@link persistDir}.
   */
  async kill(): Promise<void> {
    const running = this.now();
    if (running.pids.length === 0) throw new Error("the runtime's process was not found when the engine started: it cannot be killed");
    this.running = undefined;
    killProcesses(running.pids);
    await running.mf.dispose().catch(() => undefined);
  }

  /** Starts the engine again over its state (after a clean shutdown when it is running). */
  async restart(): Promise<void> {
    if (this.running) await this.stop();
    const run = starting.then(() => this.launch());
    starting = run.catch(() => undefined);
    this.running = await run;
  }

  /**
   * Resets one subtask's object, as the platform may at any time: memory
   * lost, storage kept. Vertex ids are in {@link jobStatus}'s `vertices`.
   * Resolves once the object was reset; throws, naming the subtask, when
   * the job has no such subtask (an unknown job, vertex or index) or the
   * object did not confirm its reset.
   */
  async resetSubtask(job: string, vertex: string, index: number): Promise<void> {
    const what = `subtask ${vertex}/${index} of job "${job}"`;
    const { vertices } = await this.known(job, `reset ${what}`);
    const v = vertices.find((x) => x.id === vertex);
    if (!v) {
      throw new Error(`cannot reset ${what}: the job has no vertex "${vertex}" (its vertices: ${vertices.map((x) => x.id).join(", ") || "none, it never started"})`);
    }
    if (!Number.isInteger(index) || index < 0 || index >= v.parallelism) {
      throw new Error(`cannot reset ${what}: vertex "${vertex}" runs ${v.parallelism} subtask(s), indexes 0 to ${v.parallelism - 1}`);
    }
    await this.resetObject("SUBTASK", subtaskName(job, vertex, index), what);
  }

  /**
   * Resets the job's coordinator object: memory lost, storage kept.
   * Resolves once the object was reset; throws, naming the job, when there
   * is no such job or the object did not confirm its reset.
   */
  async resetCoordinator(job: string): Promise<void> {
    const what = `the coordinator of job "${job}"`;
    await this.known(job, `reset ${what}`);
    await this.resetObject("COORDINATOR", coordinatorName(job), what);
  }

  /** The job's status; an unknown job fails `doing` with the engine's answer (it lists the jobs). */
  private async known(job: string, doing: string): Promise<JobStatus> {
    try {
      return await this.jobStatus(job);
    } catch (e) {
      throw new Error(`cannot ${doing}: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * Calls the object's `reset()` (`ctx.abort(RESET_REASON)`), then asks the
   * same stub for its metrics: a stub whose object was reset fails every
   * call with {@link RESET_REASON}, and only that answer says the object
   * was reset. (Through Miniflare's proxy the reset call's own error comes
   * back without its message, so it cannot be the evidence.)
   */
  private async resetObject(binding: "SUBTASK" | "COORDINATOR", name: string, what: string): Promise<void> {
    const ns = await this.mf.getDurableObjectNamespace(binding);
    const stub = ns.get(ns.idFromName(name)) as unknown as { reset(): Promise<void>; metrics(job?: string): Promise<unknown> };
    // Miniflare's proxy may throw at once (reading the method off a broken stub) or reject: both are answers.
    let reset = "returned";
    try {
      await stub.reset();
    } catch {
      reset = "failed";
    }
    let after: unknown;
    try {
      await stub.metrics(name);
    } catch (e) {
      after = e ?? "an empty error";
    }
    const message = after === undefined ? undefined : ((after as Error)?.message ?? String(after));
    if (message?.includes(RESET_REASON)) return;
    throw new Error(`${what} could not be reset: its reset() ${reset}, and the object then ${message === undefined ? "answered as before" : `failed with: ${message}`}`);
  }

  /** Shuts the engine down (its state stays in {@link persistDir}). */
  async dispose(): Promise<void> {
    await this.stop();
  }

  private async stop(): Promise<void> {
    const running = this.running;
    this.running = undefined;
    await running?.mf.dispose();
  }

  private now() {
    if (!this.running) throw new Error("the engine is not running (disposed, or a restart failed)");
    return this.running;
  }

  /** Starts Miniflare; the workerd processes that appear meanwhile are this engine's. */
  private async launch(): Promise<{ mf: Miniflare; url: string; pids: number[] }> {
    const { Miniflare } = await import("miniflare");
    const c = this.worker.config;
    const showStdio = this.options.stdio ?? process.env.FLOE_RUNTIME_STDIO !== undefined;
    const before = new Set(workerdChildren());
    const mf = new Miniflare({
      modulesRoot: dirname(this.worker.scriptPath),
      modules: [{ type: "ESModule", path: this.worker.scriptPath }, ...this.worker.modules.map((m) => ({ type: m.type, path: m.path }))],
      compatibilityDate: c.compatibilityDate,
      compatibilityFlags: [...c.compatibilityFlags],
      durableObjects: Object.fromEntries(Object.entries(c.durableObjects).map(([name, d]) => [name, { className: d.className, useSQLite: d.useSQLite }])),
      r2Buckets: [...c.r2Buckets],
      kvNamespaces: [...c.kvNamespaces],
      d1Databases: [...c.d1Databases],
      bindings: { ...(c.vars as Record<string, never>), FLOE_ADMIN_TOKEN: this.adminToken, ...this.options.bindings },
      durableObjectsPersist: join(this.persistDir, "do"),
      r2Persist: join(this.persistDir, "r2"),
      kvPersist: join(this.persistDir, "kv"),
      d1Persist: join(this.persistDir, "d1"),
      host: "127.0.0.1",
      port: 0,
      // workerd's output must be read: unread pipes stall it.
      handleRuntimeStdio: (out: NodeJS.ReadableStream, err: NodeJS.ReadableStream) => {
        for (const stream of [out, err]) {
          if (showStdio) stream.pipe(process.stderr);
          else stream.resume();
        }
      },
      ...this.options.miniflare,
    } as MiniflareOptions);
    const url = (await mf.ready).toString().replace(/\/$/, "");
    const pids = workerdChildren().filter((p) => !before.has(p));
    return { mf, url, pids };
  }

  /** One API call: the parsed JSON of a 2xx answer, else an {@link EngineError}. */
  private async call<T>(method: string, path: string, json?: unknown, init: RequestInit = {}): Promise<T> {
    const res = await this.api(path, { method, ...init, ...(json === undefined ? {} : { json }) });
    const text = await res.text();
    if (!res.ok) {
      let code = "http_error";
      let message = text.slice(0, 500);
      try {
        const body = JSON.parse(text) as { error?: { code: string; message: string } };
        if (body.error) ({ code, message } = body.error);
      } catch {
        // not JSON: keep the text
      }
      throw new EngineError(res.status, code, `${method} ${path} answered ${res.status} ${code}: ${message}`);
    }
    return JSON.parse(text) as T;
  }
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}
