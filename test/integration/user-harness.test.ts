/**
 * The example job `clicks` tested the way a user tests a job of their own:
 * through floe/testing's public API only (no test/support). The harness
 * builds the project's Worker from ./wrangler.toml as `wrangler deploy`
 * would, runs it in Miniflare with persisted state, and injects faults:
 * a SIGKILL of the runtime and restart, a subtask reset, a coordinator
 * reset. Every click must be counted exactly once.
 */
import { type LocalEngine, startEngine, waitFor } from "floe/testing";
import { afterEach, describe, expect, it } from "vitest";

describe("the clicks job through floe/testing's job harness", () => {
  let engine: LocalEngine | undefined;
  afterEach(async () => {
    await engine?.dispose();
  });

  it("counts every click exactly once across a SIGKILL, a subtask reset, a coordinator reset and a retried request", async () => {
    engine = await startEngine();
    expect(await engine.startJob("clicks")).toMatchObject({ name: "clicks", status: "RUNNING" });

    const expected = new Map<string, number>();
    const round = async (r: number) => {
      const clicks = Array.from({ length: 150 }, (_, i) => ({ user: `user-${(r * 150 + i) % 23}`, url: `/r${r}/${i}` }));
      const answer = await engine!.ingest("clicks", clicks, { idempotencyKey: `round-${r}` });
      expect(answer.count).toBe(clicks.length);
      if (!answer.duplicate) for (const c of clicks) expected.set(c.user, (expected.get(c.user) ?? 0) + 1);
      return answer;
    };

    await round(0);
    const first = await engine.waitForCheckpoint("clicks");
    expect(first).toBeGreaterThan(0);

    await engine.crash();
    await round(1);
    expect((await round(1)).duplicate, "a retried request is stored once").toBe(true);

    const { vertices } = await engine.jobStatus("clicks");
    expect(vertices.map((v) => v.id)).toContain("count-per-user");
    await engine.resetSubtask("clicks", "count-per-user", 1);
    await round(2);
    await engine.resetCoordinator("clicks");
    await round(3);

    await engine.caughtUp("clicks", ["clicks"]);
    await waitFor(
      async () => {
        const table = await engine!.readTable<number>("clicks-per-user");
        return table.size === expected.size && [...expected].every(([user, n]) => table.get(user) === n);
      },
      { what: "every user's count in clicks-per-user", timeoutMs: 30_000 },
    );
    const status = await engine.jobStatus("clicks");
    expect(status.status).toBe("RUNNING");
    expect(status.restarts).toBeGreaterThan(0);
  });
});
