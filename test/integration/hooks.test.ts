/**
 * The Durable Object classes extended as a user would (issue 22): the test
 * Worker exports its own `Coordinator extends floe.Coordinator` whose
 * `beforeStart` hook refuses the `hooked` job while a variable is missing.
 * The refusal reaches the API caller as floe's own checks do; other jobs
 * start as before, through the same subclass.
 */
import { describe, expect, it } from "vitest";
import { engineSet } from "../support/engines.js";

const engines = engineSet();

describe("a Coordinator extended with a start hook", () => {
  it("refuses the start with the hook's error, and starts other jobs", async () => {
    const engine = await engines.start();
    const refused = await engine.api("/v1/jobs/hooked/start", { method: "POST", json: {} });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toEqual({
      error: { code: "missing_binding", message: `job "hooked" needs the variable HOOK_READY (a check of this Worker's own Coordinator)` },
    });
    const status = (await (await engine.api("/v1/jobs/hooked")).json()) as { status: string };
    expect(status.status).not.toBe("RUNNING");
    expect((await engine.api("/v1/jobs/self-connect/start", { method: "POST", json: {} })).status).toBe(200);
  }, 60_000);
});
