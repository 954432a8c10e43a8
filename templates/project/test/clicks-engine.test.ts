/**
 * The whole job in the Worker as it would be deployed: floe/testing's job
 * harness bundles it (wrangler deploy --dry-run), runs it in Miniflare with
 * persisted state, and kills the runtime in the middle. Every click must
 * be counted exactly once.
 */
import { type LocalEngine, startEngine, waitFor } from "floe/testing";
import { afterEach, describe, expect, it } from "vitest";

describe("the clicks job", () => {
  let engine: LocalEngine | undefined;
  afterEach(async () => {
    await engine?.dispose();
  });

  it("counts every click once across a crash of the runtime", async () => {
    engine = await startEngine();
    await engine.startJob("clicks");
    const expected = new Map<string, number>();
    const send = async (round: number) => {
      const batch = Array.from({ length: 50 }, (_, i) => ({ user: `user-${(round * 50 + i) % 7}`, url: `/page/${i}` }));
      await engine!.ingest("clicks", batch, { idempotencyKey: `round-${round}` });
      for (const c of batch) expected.set(c.user, (expected.get(c.user) ?? 0) + 1);
    };

    await send(0);
    await engine.waitForCheckpoint("clicks");
    await engine.crash(); // SIGKILL of workerd, then the engine again over the same state
    await send(1);

    await waitFor(
      async () => {
        const table = await engine!.readTable<number>("clicks-per-user");
        return table.size === expected.size && [...expected].every(([user, n]) => table.get(user) === n);
      },
      { what: "every user's count", timeoutMs: 30_000 },
    );
    expect((await engine.jobStatus("clicks")).status).toBe("RUNNING");
  });
});
