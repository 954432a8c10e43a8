/**
 * Issue 7 in numbers, in virtual time: under backpressure aligned
 * checkpoints take as long as the queued data takes to drain, unaligned
 * ones stay close to their idle duration and persist the data they
 * overtake, and with an alignment timeout the stuck ones turn unaligned.
 * Every mode must also commit its input exactly once, with and without a
 * failover (or the figures prove nothing). Deterministic: no wall clock, so
 * no timing flakes.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { type CheckpointMode, DEFAULT_BACKPRESSURE, MODES, type ModeRun, type ModeSummary, RESTORE_CHECK, phaseOf, runBackpressure, summarize } from "./bench-scenario.js";
import { Cpu } from "./cost.js";
import { SimLoop } from "./loop.js";

describe("the processing-cost model", () => {
  it("holds calls to a busy object and runs them, in order, before what waited for the thread", async () => {
    const loop = new SimLoop();
    const cpu = new Cpu(loop);
    const seen: string[] = [];
    loop.at(0, () => {
      cpu.charge(10);
      void cpu.idle().then(() => seen.push(`loop at ${loop.now()}`));
    });
    loop.at(3, () => cpu.whenIdle(() => seen.push(`call 1 at ${loop.now()}`)));
    loop.at(7, () => cpu.whenIdle(() => seen.push(`call 2 at ${loop.now()}`)));
    loop.at(12, () => cpu.whenIdle(() => seen.push(`call 3 at ${loop.now()}`)));
    await loop.run(100);
    expect(seen).toEqual(["call 1 at 10", "call 2 at 10", "loop at 10", "call 3 at 12"]);
    expect(cpu.busyMsTotal).toBe(10);
  });
});

describe("checkpoints under backpressure (issue 7)", () => {
  const runs = new Map<CheckpointMode, ModeRun>();
  const failedOver = new Map<CheckpointMode, ModeRun>();
  const summary = (mode: CheckpointMode): ModeSummary => summarize(runs.get(mode)!);

  beforeAll(async () => {
    for (const mode of MODES) {
      runs.set(mode, await runBackpressure(mode));
      failedOver.set(mode, await runBackpressure(mode, RESTORE_CHECK));
    }
  }, 180_000);

  it("commits every input record exactly once in every mode, with no failed checkpoint", () => {
    for (const mode of MODES) {
      const run = runs.get(mode)!;
      expect(run.failures, `${mode}:\n${run.failures.join("\n")}`).toEqual([]);
      expect(summary(mode).failed, mode).toBe(0);
      expect(summary(mode).completed, mode).toBeGreaterThan(40);
    }
  });

  it("stays exactly once through a failover under backpressure, replaying the restored in-flight data", () => {
    for (const mode of MODES) {
      const run = failedOver.get(mode)!;
      expect(run.failures, `${mode}:\n${run.failures.join("\n")}`).toEqual([]);
      expect(run.restored, mode).not.toBeNull();
      if (mode === "aligned") expect(run.restored!.persistedBytes).toBe(0);
      else expect(run.restored!.persistedBytes, mode).toBeGreaterThan(0);
    }
  });

  it("builds a backlog that grows over the run, while the data in flight stays within the credit window", () => {
    const cs = runs.get("aligned")!.checkpoints.filter((c) => phaseOf(c) === "late");
    const last = summary("aligned").backlogAtLast;
    expect(last.records).toBeGreaterThan(2_000);
    // 2 fast channels × (4 credits + 1 buffered batch) × 25 records, and the slow channel's few.
    expect(Math.max(...cs.map((c) => c.backlog.inFlight))).toBeLessThanOrEqual(400);
  });

  it("aligned: late checkpoints take several times as long as early ones, and persist nothing", () => {
    const a = summary("aligned");
    expect(a.lateMsP50).toBeGreaterThanOrEqual(6 * a.earlyMsP50);
    expect(a.alignmentMsMax).toBeGreaterThan(100);
    expect(a.persistedBytesTotal).toBe(0);
    expect(a.unaligned).toBe(0);
  });

  it("unaligned: late checkpoints stay within a small factor of early ones, and persist in-flight data", () => {
    const u = summary("unaligned");
    const a = summary("aligned");
    expect(u.lateMsP50).toBeLessThanOrEqual(5 * u.earlyMsP50);
    expect(3 * u.lateMsP50).toBeLessThanOrEqual(a.lateMsP50);
    expect(u.alignmentMsMax).toBe(0);
    const late = runs.get("unaligned")!.checkpoints.filter((c) => phaseOf(c) === "late");
    expect(late.length).toBeGreaterThan(10);
    for (const c of late) expect(c.persistedBytes, `checkpoint ${c.id}`).toBeGreaterThan(0);
  });

  it("alignment timeout: checkpoints stay aligned until backpressure, then turn unaligned", () => {
    const run = runs.get("alignment-timeout")!;
    const early = run.checkpoints.filter((c) => phaseOf(c) === "early");
    const late = run.checkpoints.filter((c) => phaseOf(c) === "late");
    expect(early.length).toBeGreaterThan(5);
    for (const c of early) {
      expect(c.type, `checkpoint ${c.id}`).toBe("CHECKPOINT");
      expect(c.persistedBytes).toBe(0);
    }
    expect(late.length).toBeGreaterThan(10);
    for (const c of late) {
      expect(c.type, `checkpoint ${c.id}`).toBe("UNALIGNED_CHECKPOINT");
      expect(c.persistedBytes).toBeGreaterThan(0);
      // It waited aligned up to its deadline, and not much longer.
      expect(c.durationMs).toBeGreaterThanOrEqual(DEFAULT_BACKPRESSURE.alignmentTimeoutMs);
    }
    const t = summary("alignment-timeout");
    expect(t.alignmentMsMax).toBeLessThanOrEqual(DEFAULT_BACKPRESSURE.alignmentTimeoutMs);
    expect(3 * t.lateMsP50).toBeLessThanOrEqual(summary("aligned").lateMsP50);
  });
});
