/**
 * The example job `clicks` tested the way a user tests a job of their own:
 * through floe/testing's public API only (no test/support). The harness
 * builds the project's Worker from ./wrangler.toml as `wrangler deploy`
 * would, runs it in Miniflare with persisted state, and injects faults:
 * a SIGKILL of the runtime and restart, a subtask reset, a coordinator
 * reset. Each fault is seen to take effect before the next (the job fails
 * over after the crash and after the subtask reset, naming the lost
 * subtask; the harness confirms each reset with the object itself and
 * refuses a subtask the job does not have), and every click must be counted
 * exactly once.
 */
import { type JobStatus, type LocalEngine, startEngine, waitFor } from "floe/testing";
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

    /** The job's status once it runs again after `before` (a later attempt, one more restart), with a checkpoint after that. */
    const failedOver = async (before: JobStatus, what: string) => {
      const after = await waitFor(
        async () => {
          const s = await engine!.jobStatus("clicks");
          return s.status === "RUNNING" && s.restarts > before.restarts && s.attempt > before.attempt ? s : undefined;
        },
        { what: `clicks running again after ${what}`, timeoutMs: 30_000 },
      );
      await engine!.waitForCheckpoint("clicks");
      return after;
    };

    const started = await engine.jobStatus("clicks");
    expect(started).toMatchObject({ restarts: 0, last_error: null });
    await engine.crash();
    const crashed = await failedOver(started, "the crash");
    expect(crashed.last_error, "the job restored after the runtime lost its tasks").toMatch(/lost its running task/);
    await round(1);
    expect((await round(1)).duplicate, "a retried request is stored once").toBe(true);

    expect(crashed.vertices.map((v) => v.id)).toEqual(["clicks-in", "count-per-user"]);
    await expect(engine.resetSubtask("clicks", "count-per-user", 4), "a subtask the job does not have").rejects.toThrow(
      /cannot reset subtask count-per-user\/4 of job "clicks": vertex "count-per-user" runs 4 subtask\(s\), indexes 0 to 3/,
    );
    await expect(engine.resetSubtask("clicks", "count-per-users", 1)).rejects.toThrow(/the job has no vertex "count-per-users" \(its vertices: clicks-in, count-per-user\)/);
    await expect(engine.resetCoordinator("click")).rejects.toThrow(/cannot reset the coordinator of job "click": .*job_not_found/);

    await engine.resetSubtask("clicks", "count-per-user", 1);
    const reset = await failedOver(crashed, "the subtask reset");
    expect(reset.restarts).toBe(crashed.restarts + 1);
    expect(reset.last_error, "the coordinator saw that subtask lose its task").toMatch(/count-per-user\/1/);
    await round(2);

    // The coordinator's memory goes, its storage stays: the job runs on in the same attempt, and checkpoints again.
    await engine.resetCoordinator("clicks");
    const checkpointed = await engine.waitForCheckpoint("clicks");
    expect(await engine.jobStatus("clicks")).toMatchObject({ status: "RUNNING", attempt: reset.attempt, restarts: reset.restarts });
    expect(checkpointed).toBeGreaterThan(first);
    await round(3);

    await engine.caughtUp("clicks", ["clicks"]);
    await waitFor(
      async () => {
        const table = await engine!.readTable<number>("clicks-per-user");
        return table.size === expected.size && [...expected].every(([user, n]) => table.get(user) === n);
      },
      { what: "every user's count in clicks-per-user", timeoutMs: 30_000 },
    );
    const table = await engine.readTable<number>("clicks-per-user");
    expect(Object.fromEntries(table)).toEqual(Object.fromEntries(expected));
    expect(await engine.jobStatus("clicks")).toMatchObject({ status: "RUNNING", attempt: reset.attempt, restarts: reset.restarts });
  });
});
