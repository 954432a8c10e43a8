/**
 * The Worker's Hono app: ingestion, the control API and tables under
 * <base>/v1, and the dashboard at <base> (the base path is "/" unless
 * createFloe is given another).
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

/** Where and what floe serves. */
export interface AppOptions {
  /** The path floe's routes live under: "/" (the default) or e.g. "/floe". */
  readonly basePath?: string;
  /** Serve the dashboard at the base path (default true). */
  readonly dashboard?: boolean;
}

/** A base path as routes use it: "" for the root, else "/a/b" (plain segments, no trailing slash). Throws on anything else. */
export function normalizeBasePath(basePath = "/"): string {
  if (!/^\/([A-Za-z0-9._~-]+\/?)*$/.test(basePath) || basePath.includes("//")) {
    throw new TypeError(`basePath must be "/" or a path of plain segments like "/floe", got ${JSON.stringify(basePath)}`);
  }
  return basePath.replace(/\/+$/, "");
}

/** Builds the app for the jobs of a registry. */
export function createApp(registry: JobRegistry, options: AppOptions = {}) {
  const base = normalizeBasePath(options.basePath);
  const root = new Hono<{ Bindings: FloeEnv }>();
  root.onError(onError);
  root.notFound((c) => errorResponse(c, 404, "not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`));
  const app = base === "" ? root : root.basePath(base);

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

  // The dashboard's shell, script and style: no data, so no token (the page sends it to <base>/v1).
  if (options.dashboard ?? true) {
    app.route("/", dashboardRoutes(base));
    // Under a base path, "/floe/" as well as "/floe".
    if (base !== "") root.get(`${base}/`, (c) => c.redirect(base, 308));
  }
  return root;
}
