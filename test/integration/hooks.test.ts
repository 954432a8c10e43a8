/**
 * The Durable Object classes extended as a user would (issue 22): the test
 * Worker exports its own `Coordinator extends floe.Coordinator`, whose
 * `beforeStart` hook refuses to start the `hooked` job while the variable
 * HOOK_READY is missing, and its own `Subtask extends floe.Subtask`, whose
 * `beforeDeploy` hook refuses the job's tasks at any attempt while it is
 * missing. The engine is started again over the same state with and
 * without the variable, as a Worker deployed again with a changed
 * configuration: refused, then running with its output, then failing over
 * while the variable is gone, then running again with every record once.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type Engine, startEngine, tempDir, waitFor } from "../support/engine.js";

interface Hooked {
  id: string;
}

let engine: Engine | undefined;
afterEach(async () => {
  await engine?.dispose().catch(() => undefined);
  engine = undefined;
});

/** The engine over `persistDir`, with HOOK_READY set or not (the one before it shut down). */
async function restart(persistDir: string, ready: boolean): Promise<Engine> {
  await engine?.dispose();
  engine = await startEngine({ testJobs: true, persistDir, bindings: ready ? { HOOK_READY: "1" } : {} });
  return engine;
}

async function status(e: Engine): Promise<{ status: string; attempt: number; restarts: number; last_error: string | null }> {
  return (await (await e.api("/v1/jobs/hooked")).json()) as { status: string; attempt: number; restarts: number; last_error: string | null };
}

/** Sends records `from`..`to - 1`; resolves their ids. */
async function send(e: Engine, from: number, to: number): Promise<string[]> {
  const ids = Array.from({ length: to - from }, (_, i) => `r${from + i}`);
  const answer = await e.ingest("hooked-in", ids.map((id) => ({ id })));
  expect(answer.count).toBe(ids.length);
  return ids;
}

async function output(e: Engine): Promise<string[]> {
  return [...(await e.readTable<Hooked>("hooked-out")).keys()].sort();
}

describe("Durable Object classes extended with hooks", () => {
  it("Coordinator.beforeStart refuses the start while a variable is missing; Subtask.beforeDeploy refuses every attempt; with it set the job runs", async () => {
    const dir = tempDir("floe-hooks-");

    // Without the variable: the start hook's error reaches the API caller as floe's own checks do.
    let e = await restart(dir, false);
    const refused = await e.api("/v1/jobs/hooked/start", { method: "POST", json: {} });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toEqual({
      error: { code: "missing_binding", message: `job "hooked" needs the variable HOOK_READY (a check of this Worker's own Coordinator)` },
    });
    expect((await status(e)).status).toBe("CREATED");
    // The subclass starts other jobs as before.
    expect((await e.api("/v1/jobs/self-connect/start", { method: "POST", json: {} })).status).toBe(200);
    await e.api("/v1/jobs/self-connect/cancel", { method: "POST" });

    // With it set: the job starts and writes its output.
    e = await restart(dir, true);
    expect(await e.startJob("hooked")).toMatchObject({ status: "RUNNING", restarts: 0 });
    const first = await send(e, 0, 40);
    await e.caughtUp("hooked", ["hooked-in"]);
    await waitFor(async () => (await output(e)).length === first.length, 30_000, "the first records in hooked-out");
    expect(await output(e)).toEqual([...first].sort());

    // The Worker again without the variable: the job restores by itself, and the deploy hook refuses each attempt.
    e = await restart(dir, false);
    const failing = await waitFor(
      async () => {
        const s = await status(e);
        return s.restarts >= 2 && s.last_error?.includes("HOOK_READY") ? s : undefined;
      },
      30_000,
      "the hooked job's restarts refused by the Subtask hook",
    );
    expect(failing.status).not.toBe("RUNNING");
    expect(failing.last_error).toMatch(/subtask (in|out)\/0: job "hooked" needs the variable HOOK_READY \(a check of this Worker's own Subtask\)/);
    const second = await send(e, 40, 70);
    expect(await output(e), "no task runs: nothing new is written").toEqual([...first].sort());

    // The variable back: the next restart runs, and every record is in the output once.
    e = await restart(dir, true);
    await waitFor(async () => (await status(e)).status === "RUNNING", 30_000, "the hooked job running again");
    await e.caughtUp("hooked", ["hooked-in"]);
    const all = [...first, ...second].sort();
    await waitFor(async () => (await output(e)).length === all.length, 30_000, "every record in hooked-out");
    expect(await output(e)).toEqual(all);
    const rows = await e.readTable<Hooked>("hooked-out");
    expect([...rows].every(([key, value]) => value.id === key)).toBe(true);
  }, 120_000);
});
