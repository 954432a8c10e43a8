/**
 * The Worker's Hono app: ingestion, the control API and tables under /v1,
 * and the dashboard at /.
 */
import { Hono } from "hono";
import type { FloeEnv } from "../runtime/env.js";
import type { JobRegistry } from "../runtime/registry.js";
import { requireToken } from "./auth.js";
import { dashboardRoutes } from "./dashboard/index.js";
import { errorResponse, onError } from "./errors.js";
import { ingestRoutes } from "./ingest.js";
import { jobRoutes } from "./jobs.js";
import { streamRoutes } from "./streams.js";
import { tableRoutes } from "./tables.js";

/** Builds the app for the jobs of a registry. */
export function createApp(registry: JobRegistry) {
  const app = new Hono<{ Bindings: FloeEnv }>();
  app.onError(onError);
  app.notFound((c) => errorResponse(c, 404, "not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`));

  // Ingestion checks its own tokens (admin or the stream's).
  app.route("/v1/ingest", ingestRoutes(registry));

  const control = new Hono<{ Bindings: FloeEnv }>();
  for (const path of ["/jobs", "/jobs/*", "/tables", "/tables/*", "/streams", "/streams/*"]) {
    control.use(path, async (c, next) => {
      requireToken(c.req.header("authorization"), [c.env.FLOE_ADMIN_TOKEN], "the control API");
      await next();
    });
  }
  control.route("/jobs", jobRoutes(registry));
  control.route("/tables", tableRoutes(registry));
  control.route("/streams", streamRoutes(registry));
  app.route("/v1", control);

  // The dashboard's shell, script and style: no data, so no token (the page sends it to /v1).
  app.route("/", dashboardRoutes());
  return app;
}
