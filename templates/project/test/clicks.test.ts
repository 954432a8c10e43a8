/**
 * The job's keyed count alone, in floe/testing's operator harness: no
 * runtime, microseconds per test. The harness runs floe's own operator
 * code, keyed state and checkpoint format.
 */
import { OperatorHarness } from "floe/testing";
import { describe, expect, it } from "vitest";
import { type Click, checkClick, clicks } from "../src/jobs/clicks.js";

describe("count-per-user", () => {
  it("counts clicks per user", () => {
    const h = OperatorHarness.forOperator<Click>(clicks, "count-per-user");
    h.processElement({ user: "ada" }).processElement({ user: "bob" }).processElement({ user: "ada" });
    expect(h.output()).toEqual([
      { key: "ada", value: 1 },
      { key: "bob", value: 1 },
      { key: "ada", value: 2 },
    ]);
  });

  it("goes on from a snapshot, also rescaled to another parallelism", () => {
    const h = OperatorHarness.forOperator<Click>(clicks, "count-per-user");
    h.processElement({ user: "ada" }).processElement({ user: "bob" });
    const snapshot = h.snapshot();
    const restored = [0, 1].map((subtaskIndex) => OperatorHarness.forOperator<Click>(clicks, "count-per-user", { parallelism: 2, subtaskIndex }).restore(snapshot));
    for (const user of ["ada", "bob"]) restored.find((r) => r.owns(user))!.processElement({ user });
    expect(restored.flatMap((r) => r.output()).sort((a, b) => a.key.localeCompare(b.key))).toEqual([
      { key: "ada", value: 2 },
      { key: "bob", value: 2 },
    ]);
  });
});

describe("checkClick", () => {
  it("names what is wrong with a record", () => {
    expect(checkClick({ user: "ada", url: "/" })).toBeUndefined();
    expect(checkClick({ url: "/" })).toMatch(/needs "user"/);
  });
});
