/**
 * The Worker entry: floe's HTTP API and Durable Object classes, bound to
 * the jobs compiled into this Worker.
 */
import { createFloe } from "floe";
import { clicks } from "./jobs/clicks.js";
import { pageViews } from "./jobs/page-views.js";

const floe = createFloe({ jobs: [clicks, pageViews] });

export const { Coordinator, Subtask, StreamPartition, TablePartition } = floe;
export default floe.worker;
