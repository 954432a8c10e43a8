/**
 * Crashing the local runtime the way a machine dies: SIGKILL of the
 * workerd process that Miniflare started (a child of this Node process).
 * Every acknowledged write must survive; nothing in memory does.
 */
import { readFileSync, readdirSync } from "node:fs";
import { coordinatorName, subtaskName } from "../../src/runtime/names.js";
import type { Engine } from "./engine.js";

/** Pids of workerd processes whose parent is this process. */
export function workerdChildren(): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const ppid = Number(stat.slice(close + 2).split(" ")[1]);
      if (ppid === process.pid && comm.startsWith("workerd")) out.push(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

/** Kills the engine's runtime with SIGKILL, then releases the Miniflare object. */
export async function crashEngine(engine: Engine): Promise<void> {
  const before = new Set(workerdChildren());
  for (const pid of before) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await engine.dispose().catch(() => undefined);
}

/** Resets a job's Subtask object (its memory is gone, its storage kept), as the runtime may at any time. */
export async function resetSubtask(engine: Engine, job: string, vertex: string, index: number): Promise<void> {
  const ns = await engine.mf.getDurableObjectNamespace("SUBTASK");
  await (ns.get(ns.idFromName(subtaskName(job, vertex, index))) as unknown as { reset(): Promise<void> }).reset().catch(() => undefined);
}

/** Resets a job's Coordinator object. */
export async function resetCoordinator(engine: Engine, job: string): Promise<void> {
  const ns = await engine.mf.getDurableObjectNamespace("COORDINATOR");
  await (ns.get(ns.idFromName(coordinatorName(job))) as unknown as { reset(): Promise<void> }).reset().catch(() => undefined);
}
