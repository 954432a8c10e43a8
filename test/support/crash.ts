/**
 * Crashing the local runtime the way a machine dies, and resetting
 * objects as the platform may: floe/testing's LocalEngine does both
 * (kill, resetSubtask, resetCoordinator); these keep the tests' names.
 */
import type { Engine } from "./engine.js";

export { workerdChildren } from "../../src/testing/processes.js";

/** Kills the engine's runtime with SIGKILL and releases it; start a new engine over its `persistDir` to go on. */
export async function crashEngine(engine: Engine): Promise<void> {
  await engine.kill();
}

/** Resets a job's Subtask object (its memory is gone, its storage kept), as the runtime may at any time. */
export async function resetSubtask(engine: Engine, job: string, vertex: string, index: number): Promise<void> {
  await engine.resetSubtask(job, vertex, index);
}

/** Resets a job's Coordinator object. */
export async function resetCoordinator(engine: Engine, job: string): Promise<void> {
  await engine.resetCoordinator(job);
}
