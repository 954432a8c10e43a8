/**
 * What `createFloe` takes, and the parts of a floe Worker that do not
 * depend on the runtime: the job registry and the Hono app. Shared by the
 * "floe" entry in workerd (src/index.ts) and in Node (src/index.node.ts).
 */
import type { Hono } from "hono";
import type { JobDefinition } from "./api/job.js";
import { createApp } from "./http/app.js";
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

/** The registry, the app and the Worker's default export of a config. */
export function floeParts(config: FloeConfig): Pick<Floe, "registry" | "app" | "worker"> {
  const registry = new JobRegistry(config.jobs);
  const app = createApp(registry, { basePath: config.basePath, dashboard: config.dashboard });
  return { registry, app, worker: { fetch: app.fetch } };
}
