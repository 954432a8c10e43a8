/**
 * Drives the test Worker's "chaos" job (two sources, a union into a keyed
 * sum, a table sink) while injecting faults, and computes the exact
 * expected table from the input.
 */
import { subtaskName, coordinatorName } from "../../src/runtime/names.js";
import { crashEngine } from "./crash.js";
import { type Engine, readTable, startEngine, waitFor } from "./engine.js";
import type { Random } from "./random.js";

export type Fault = "user-exception" | "subtask-reset" | "coordinator-reset" | "process-kill";

export interface Totals {
  count: number;
  sum: number;
  a: number;
  b: number;
}

/** The chaos job's subtasks, as the plan names them. */
export const CHAOS_SUBTASKS = [
  ["in-a", 0],
  ["in-a", 1],
  ["in-b", 0],
  ["sum-per-key", 0],
  ["sum-per-key", 1],
] as const;

export interface ChaosRun {
  engine: Engine;
  faults: Record<Fault, number>;
  expected: Map<string, Totals>;
}

/** Resets one subtask object through Miniflare's binding (as the platform might). */
export async function resetSubtask(engine: Engine, vertex: string, index: number): Promise<void> {
  const ns = await engine.mf.getDurableObjectNamespace("SUBTASK");
  const stub = ns.get(ns.idFromName(subtaskName("chaos", vertex, index))) as unknown as { reset(): Promise<void> };
  await stub.reset().catch(() => undefined);
}

export async function resetCoordinator(engine: Engine): Promise<void> {
  const ns = await engine.mf.getDurableObjectNamespace("COORDINATOR");
  const stub = ns.get(ns.idFromName(coordinatorName("chaos"))) as unknown as { reset(): Promise<void> };
  await stub.reset().catch(() => undefined);
}

/**
 * Ingests `events` events in requests of about `perRequest`, injecting a
 * fault with probability `faultRate` after each request; returns the engine
 * (a new one if the process was killed) and what it injected.
 */
export async function runChaos(options: {
  random: Random;
  events: number;
  keys: number;
  perRequest: number;
  faultRate: number;
  faults: readonly Fault[];
  config?: Record<string, unknown>;
}): Promise<ChaosRun> {
  const { random } = options;
  let engine = await startEngine({ testJobs: true });
  const start = await engine.api("/v1/jobs/chaos/start", { method: "POST", json: { config: options.config ?? {} } });
  if (start.status !== 200) throw new Error(`start failed: ${start.status} ${await start.text()}`);
  const faults: Record<Fault, number> = { "user-exception": 0, "subtask-reset": 0, "coordinator-reset": 0, "process-kill": 0 };
  const expected = new Map<string, Totals>();
  let sent = 0;
  let failId = 0;
  while (sent < options.events) {
    const n = Math.min(options.perRequest, options.events - sent);
    const branch = random.chance(0.6) ? "a" : "b";
    const lines: string[] = [];
    let injectUser = options.faults.includes("user-exception") && random.chance(options.faultRate);
    for (let i = 0; i < n; i++) {
      const key = `k${random.int(options.keys)}`;
      const value = random.int(1000);
      const t = expected.get(key) ?? { count: 0, sum: 0, a: 0, b: 0 };
      expected.set(key, { count: t.count + 1, sum: t.sum + value, a: t.a + (branch === "a" ? 1 : 0), b: t.b + (branch === "b" ? 1 : 0) });
      const event: Record<string, unknown> = { key, value };
      if (injectUser && random.chance(0.05)) {
        event.failOnce = `f${random.seed}-${failId++}`;
        faults["user-exception"]++;
        injectUser = false;
      }
      lines.push(JSON.stringify(event));
    }
    const res = await engine.api(`/v1/ingest/chaos-${branch}`, { method: "POST", body: lines.join("\n"), headers: { "content-type": "application/x-ndjson" } });
    if (res.status !== 200) throw new Error(`ingest failed: ${res.status} ${await res.text()}`);
    sent += n;
    if (random.chance(options.faultRate)) {
      const kinds = options.faults.filter((f) => f !== "user-exception");
      if (kinds.length === 0) continue;
      // Let some processing and checkpoints happen before the fault lands.
      await new Promise((r) => setTimeout(r, random.int(300)));
      const fault = random.pick(kinds);
      faults[fault]++;
      if (fault === "subtask-reset") {
        const [vertex, index] = random.pick(CHAOS_SUBTASKS);
        await resetSubtask(engine, vertex, index);
      } else if (fault === "coordinator-reset") {
        await resetCoordinator(engine);
      } else {
        const dir = engine.persistDir;
        await crashEngine(engine);
        engine = await startEngine({ testJobs: true, persistDir: dir });
      }
    }
  }
  return { engine, faults, expected };
}

/** Reads the chaos job's table. */
export async function chaosTable(engine: Engine): Promise<Map<string, Totals>> {
  return readTable<Totals>(engine, "chaos-out");
}

/** Waits until the table equals the expected totals exactly; returns the differences if it never does. */
export async function waitForExactTable(engine: Engine, expected: Map<string, Totals>, timeoutMs: number): Promise<string[]> {
  let diff: string[] = [];
  try {
    await waitFor(async () => {
      const rows = await chaosTable(engine);
      diff = [];
      for (const [k, v] of expected) {
        const got = rows.get(k);
        if (!got || got.count !== v.count || got.sum !== v.sum || got.a !== v.a || got.b !== v.b) diff.push(`${k}: expected ${JSON.stringify(v)}, got ${JSON.stringify(got)}`);
      }
      for (const k of rows.keys()) if (!expected.has(k)) diff.push(`${k}: unexpected row`);
      return diff.length === 0;
    }, timeoutMs, "the exact expected table");
  } catch {
    return diff.length > 0 ? diff : ["timed out"];
  }
  return [];
}
