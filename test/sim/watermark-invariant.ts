/**
 * The simulator's watermark invariant: within an attempt, no subtask's
 * watermark ever goes backwards (docs/time.md). Every task a Subtask object
 * creates is watched: each watermark it sends downstream (its own, for a
 * source; its input watermark, for the others) must be at or above the one
 * it sent before. A restore starts watermarks afresh with a new task of a
 * new attempt, so the check is per task.
 */
import type { Task } from "../../src/runtime/subtask/task.js";
import type { Failure } from "./oracle.js";

/** What went backwards in one world, per world. */
const found = new WeakMap<object, Failure[]>();

/** Watches `task` of the Subtask object `name` in `world`. */
export function watchWatermarks(world: object, task: Task, name: string, nowMs: () => number): void {
  const writer = task.writer;
  const send = writer.broadcastWatermark.bind(writer);
  let lastMs = Number.NEGATIVE_INFINITY;
  writer.broadcastWatermark = (watermarkMs, idle) => {
    const ms = watermarkMs ?? Number.NEGATIVE_INFINITY;
    if (ms < lastMs) {
      let list = found.get(world);
      if (!list) found.set(world, (list = []));
      list.push({ text: `${name} attempt ${task.deployment.attempt} sent watermark ${watermarkMs} after ${lastMs}`, atMs: nowMs() });
    }
    lastMs = Math.max(lastMs, ms);
    return send(watermarkMs, idle);
  };
}

/** The watermarks that went backwards in `world`. */
export function watermarksBackwards(world: object): readonly Failure[] {
  return found.get(world) ?? [];
}
