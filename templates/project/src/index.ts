/**
 * The Worker: floe's HTTP API (ingestion, jobs, tables) and dashboard, and
 * its Durable Object classes, bound to this project's jobs. To put floe
 * beside routes of your own, give it a base path, e.g.
 * `createFloe({ jobs, basePath: "/floe" })`, and mount `floe.app` in your
 * Hono app or call `floe.app.fetch(request, env, ctx)` from your `fetch`.
 */
import { createFloe } from "floe";
import { clicks } from "./jobs/clicks.js";

const floe = createFloe({ jobs: [clicks] });

export const { Coordinator, Subtask, StreamPartition, TablePartition } = floe;
export default floe.worker;
