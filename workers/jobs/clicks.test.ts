/** The example job's keyed count, run by floe/testing's operator harness as a user would test it. */
import { OperatorHarness } from "floe/testing";
import { describe, expect, it } from "vitest";
import { type Click, checkClick, clicks } from "./clicks.js";

describe("clicks: count-per-user", () => {
  it("counts clicks per user", () => {
    const h = OperatorHarness.forOperator<Click>(clicks, "count-per-user");
    h.processElement({ user: "ada", url: "/home" });
    h.processElement({ user: "bob" });
    h.processElement({ user: "ada", url: "/pricing" });
    expect(h.output()).toEqual([
      { key: "ada", value: 1 },
      { key: "bob", value: 1 },
      { key: "ada", value: 2 },
    ]);
  });

  it("goes on counting from a snapshot, and from two snapshots rescaled to a subtask of another parallelism", () => {
    const users = Array.from({ length: 40 }, (_, i) => `user-${i}`);
    // Two subtasks of parallelism 2, each fed the users whose keys it owns.
    const halves = [0, 1].map((subtaskIndex) => OperatorHarness.forOperator<Click>(clicks, "count-per-user", { parallelism: 2, subtaskIndex }));
    for (const u of users) {
      const h = halves.find((x) => x.owns(u))!;
      h.processElement({ user: u }).processElement({ user: u });
    }
    const snapshots = halves.map((h) => h.snapshot());

    // The same subtask again: counts go on.
    const again = OperatorHarness.forOperator<Click>(clicks, "count-per-user", { parallelism: 2, subtaskIndex: 0 }).restore(snapshots[0]);
    const u0 = users.find((u) => halves[0].owns(u))!;
    again.processElement({ user: u0 });
    expect(again.output()).toEqual([{ key: u0, value: 3 }]);

    // Rescaled to 3 subtasks: each restores its key groups out of both snapshots.
    const thirds = [0, 1, 2].map((subtaskIndex) => OperatorHarness.forOperator<Click>(clicks, "count-per-user", { parallelism: 3, subtaskIndex }).restore(...snapshots));
    for (const u of users) thirds.find((x) => x.owns(u))!.processElement({ user: u });
    const counts = thirds.flatMap((h) => h.output());
    expect(counts).toHaveLength(users.length);
    expect(counts.every((r) => r.value === 3)).toBe(true);
  });

  it("refuses a key the subtask does not own, as the engine would never route it there", () => {
    const h = OperatorHarness.forOperator<Click>(clicks, "count-per-user", { parallelism: 4, subtaskIndex: 0 });
    const other = Array.from({ length: 20 }, (_, i) => `u${i}`).find((u) => !h.owns(u))!;
    expect(() => h.processElement({ user: other })).toThrow(/is not in this harness's key groups 0\.\.31 \(subtask 1 of 4\)/);
  });
});

describe("clicks: checkClick", () => {
  it("accepts a click and names what is wrong with a bad one", () => {
    expect(checkClick({ user: "ada", url: "/", ts: 1 })).toBeUndefined();
    expect(checkClick({ url: "/" })).toMatch(/needs "user"/);
    expect(checkClick([])).toMatch(/JSON object/);
    expect(checkClick({ user: "ada", ts: "soon" })).toMatch(/"ts" must be a number/);
  });
});
