/**
 * What `createFloe` takes, and the parts of a floe Worker that do not
 * depend on the runtime: the job registry and the Hono app. Shared by the
 * "floe" entry in workerd (src/index.ts) and in Node (src/index.node.ts).
 */
import type { JobDefinition } from "./api/job.js";
import { createApp } from "./http/app.js";
import type { FloeEnv } from "./runtime/env.js";
import { JobRegistry } from "./runtime/registry.js";

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

/** The registry, the app and the Worker's default export of a config. */
export function floeParts(config: FloeConfig) {
  const registry = new JobRegistry(config.jobs);
  const app = createApp(registry, { basePath: config.basePath, dashboard: config.dashboard });
  return {
    registry,
    /**
     * floe's Hono app, routes under the base path: mount it in an app of
     * your own (`yours.route("/", floe.app)`) or call `floe.app.fetch(request, env, ctx)`
     * from your own `fetch`.
     */
    app,
    /** The Worker's default export: `export default floe.worker`. */
    worker: { fetch: app.fetch } satisfies ExportedHandler<FloeEnv>,
  };
}
