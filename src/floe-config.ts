/**
 * What `createFloe` takes, and the parts of a floe Worker that do not
 * depend on the runtime: the job registry and the Hono app. Shared by the
 * "floe" entry in workerd (src/index.ts) and in Node (src/index.node.ts).
 */
import type { Hono } from "hono";
import { JobDefinition } from "./api/job.js";
import { JobDefinitionError } from "./errors.js";
import { createApp, normalizeBasePath } from "./http/app.js";
import type { Coordinator } from "./runtime/coordinator/coordinator.js";
import type { FloeEnv } from "./runtime/env.js";
import { JobRegistry } from "./runtime/registry.js";
import type { StreamPartition } from "./runtime/stream-partition.js";
import type { Subtask } from "./runtime/subtask/subtask.js";
import type { TablePartition } from "./runtime/table-partition.js";

/** What `createFloe` takes. */
export interface FloeConfig {
  /** The jobs this Worker runs. */
  jobs: readonly JobDefinition[];
  /**
   * The path floe's API and dashboard live under: "/" (the default), or
   * e.g. "/floe" to sit beside an app of your own (`/floe/v1/jobs`, the
   * dashboard at `/floe`).
   */
  basePath?: string;
  /** Serve the dashboard (default true). */
  dashboard?: boolean;
}

/** A Durable Object class the Worker exports. */
export type DurableObjectClass<T> = new (ctx: DurableObjectState, env: FloeEnv) => T;

/** What `createFloe` returns: the Worker's default export, its app, and the Durable Object classes to export. */
export interface Floe {
  /** The jobs by name, with their streams and tables. */
  readonly registry: JobRegistry;
  /**
   * floe's Hono app, routes under the base path: mount it in an app of
   * your own (`yours.route("/", floe.app)`) or call `floe.app.fetch(request, env, ctx)`
   * from your own `fetch`.
   */
  readonly app: Hono<{ Bindings: FloeEnv }>;
  /** The Worker's default export: `export default floe.worker`. */
  readonly worker: ExportedHandler<FloeEnv>;
  readonly Coordinator: DurableObjectClass<Coordinator>;
  readonly Subtask: DurableObjectClass<Subtask>;
  readonly StreamPartition: DurableObjectClass<StreamPartition>;
  readonly TablePartition: DurableObjectClass<TablePartition>;
}

/**
 * Refuses a config that cannot work, when the Worker's module is loaded
 * (not at the first request or job start), naming the problem: jobs that
 * are not job definitions, two jobs of one name (they name the job's
 * objects and checkpoints), a job without a source, a base path that is
 * not an absolute path.
 */
export function checkFloeConfig(config: FloeConfig): void {
  if (config === null || typeof config !== "object") throw new TypeError("createFloe needs a config: createFloe({ jobs: [myJob] })");
  const { jobs } = config;
  if (!Array.isArray(jobs)) throw new TypeError('createFloe: "jobs" must be an array of jobs, e.g. createFloe({ jobs: [clicks] }) with clicks = job("clicks")…');
  const names = new Set<string>();
  jobs.forEach((j, i) => {
    if (!(j instanceof JobDefinition)) {
      throw new TypeError(`createFloe: jobs[${i}] is not a job (made with job("name") from "floe"), got ${j === null ? "null" : typeof j}`);
    }
    if (names.has(j.name)) {
      throw new JobDefinitionError(`createFloe: two jobs are named "${j.name}": a job's name names its objects, checkpoints and savepoints, so it must be unique in a Worker`);
    }
    names.add(j.name);
    if (!j.nodes.some((n) => n.kind === "source")) {
      throw new JobDefinitionError(`createFloe: job "${j.name}" has no source: give it one, e.g. job("${j.name}").source(httpSource("events", { partitions: 4 }), { uid: "events-in" })`);
    }
  });
  if (config.basePath !== undefined) {
    if (typeof config.basePath !== "string" || !config.basePath.startsWith("/")) {
      throw new TypeError(`createFloe: basePath must start with "/", e.g. "/floe"; got ${JSON.stringify(config.basePath)}`);
    }
    normalizeBasePath(config.basePath);
  }
}

/** The registry, the app and the Worker's default export of a config (checked first, see {@link checkFloeConfig}). */
export function floeParts(config: FloeConfig): Pick<Floe, "registry" | "app" | "worker"> {
  checkFloeConfig(config);
  const registry = new JobRegistry(config.jobs);
  const app = createApp(registry, { basePath: config.basePath, dashboard: config.dashboard });
  return { registry, app, worker: { fetch: app.fetch } };
}
