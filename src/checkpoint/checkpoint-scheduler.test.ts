import { describe, expect, it } from "vitest";
import { type CheckpointConfig, DEFAULT_CHECKPOINT_CONFIG, resolveCheckpointConfig } from "../api/checkpoint-options.js";
import { type SchedulerState, exceedsTolerableFailures, expiresAtMs, mayTriggerNow, nextTriggerMs, periodicTriggerMark } from "./checkpoint-scheduler.js";

const config = (o: Partial<CheckpointConfig> = {}): CheckpointConfig => ({ ...DEFAULT_CHECKPOINT_CONFIG, intervalMs: 1_000, ...o });

const state = (o: Partial<SchedulerState> = {}): SchedulerState => ({
  pendingTriggerMs: [],
  lastTriggerMs: null,
  lastEndMs: null,
  runningSinceMs: 50_000,
  ...o,
});

describe("periodicTriggerMark: a fixed rate", () => {
  it("counts the next interval from when the checkpoint was due, not from a late alarm", () => {
    // Due at 1,000, the alarm fired 35 ms late: the next is due at 1,100, not 1,135.
    expect(periodicTriggerMark(1_000, 1_035, 100)).toBe(1_000);
    expect(nextTriggerMs(config({ intervalMs: 100 }), state({ lastTriggerMs: periodicTriggerMark(1_000, 1_035, 100) }))).toBe(1_100);
  });

  it("does not burst to catch up after an alarm later than a whole interval", () => {
    expect(periodicTriggerMark(1_000, 1_250, 100)).toBe(1_250);
  });

  it("never counts from a time after the trigger", () => {
    expect(periodicTriggerMark(1_000, 990, 100)).toBe(990);
  });
});

describe("nextTriggerMs: the interval", () => {
  it("counts the first interval from when the job started running", () => {
    expect(nextTriggerMs(config(), state())).toBe(51_000);
    expect(nextTriggerMs(config({ intervalMs: 250 }), state({ runningSinceMs: 0 }))).toBe(250);
  });

  it("counts from the last trigger once there was one", () => {
    expect(nextTriggerMs(config(), state({ lastTriggerMs: 60_000, lastEndMs: 60_400 }))).toBe(61_000);
  });

  it("ignores the last end when there is no min pause", () => {
    // The previous checkpoint ended long after the interval: trigger as soon as allowed (a past time).
    expect(nextTriggerMs(config(), state({ lastTriggerMs: 60_000, lastEndMs: 65_000 }))).toBe(61_000);
  });

  it("is disabled (null) when the interval is 0", () => {
    expect(nextTriggerMs(config({ intervalMs: 0 }), state())).toBeNull();
    expect(nextTriggerMs(config({ intervalMs: 0 }), state({ lastTriggerMs: 1, lastEndMs: 2 }))).toBeNull();
    expect(nextTriggerMs(resolveCheckpointConfig(), state())).toBeNull();
  });
});

describe("nextTriggerMs: max concurrent checkpoints", () => {
  it("with the default of one, waits (null) while a checkpoint is pending", () => {
    expect(nextTriggerMs(config(), state({ pendingTriggerMs: [60_000], lastTriggerMs: 60_000 }))).toBeNull();
  });

  it("allows triggers while fewer than maxConcurrent are pending, and none at the limit", () => {
    const c = config({ maxConcurrent: 3 });
    expect(nextTriggerMs(c, state({ pendingTriggerMs: [60_000], lastTriggerMs: 60_000 }))).toBe(61_000);
    expect(nextTriggerMs(c, state({ pendingTriggerMs: [60_000, 61_000], lastTriggerMs: 61_000 }))).toBe(62_000);
    expect(nextTriggerMs(c, state({ pendingTriggerMs: [60_000, 61_000, 62_000], lastTriggerMs: 62_000 }))).toBeNull();
    expect(nextTriggerMs(c, state({ pendingTriggerMs: [60_000, 61_000, 62_000, 63_000], lastTriggerMs: 63_000 }))).toBeNull();
  });

  it("the same pending count is allowed or refused depending on maxConcurrent alone", () => {
    const s = state({ pendingTriggerMs: [60_000, 61_000], lastTriggerMs: 61_000 });
    expect(nextTriggerMs(config({ maxConcurrent: 2 }), s)).toBeNull();
    expect(nextTriggerMs(config({ maxConcurrent: 3 }), s)).toBe(62_000);
  });
});

describe("nextTriggerMs: min pause between checkpoints", () => {
  it("counts the min pause from the end of the last checkpoint", () => {
    const c = config({ minPauseMs: 2_000 });
    // The interval would allow 61_000, but the last one ended at 60_500: wait until 62_500.
    expect(nextTriggerMs(c, state({ lastTriggerMs: 60_000, lastEndMs: 60_500 }))).toBe(62_500);
  });

  it("keeps the interval when it is later than the pause", () => {
    const c = config({ intervalMs: 10_000, minPauseMs: 2_000 });
    expect(nextTriggerMs(c, state({ lastTriggerMs: 60_000, lastEndMs: 60_500 }))).toBe(70_000);
  });

  it("applies no pause before the first checkpoint ends", () => {
    expect(nextTriggerMs(config({ minPauseMs: 5_000 }), state())).toBe(51_000);
  });

  it("blocks while one is pending even if maxConcurrent would allow more", () => {
    const c = config({ minPauseMs: 100, maxConcurrent: 5 });
    expect(nextTriggerMs(c, state({ pendingTriggerMs: [60_000], lastTriggerMs: 60_000, lastEndMs: 59_000 }))).toBeNull();
    // Without the pause, the same state allows a concurrent trigger.
    expect(nextTriggerMs(config({ maxConcurrent: 5 }), state({ pendingTriggerMs: [60_000], lastTriggerMs: 60_000, lastEndMs: 59_000 }))).toBe(61_000);
  });
});

describe("mayTriggerNow", () => {
  it("allows a manual trigger while fewer than maxConcurrent are pending", () => {
    expect(mayTriggerNow(config(), state())).toBe(true);
    expect(mayTriggerNow(config(), state({ pendingTriggerMs: [1] }))).toBe(false);
    expect(mayTriggerNow(config({ maxConcurrent: 2 }), state({ pendingTriggerMs: [1] }))).toBe(true);
    expect(mayTriggerNow(config({ maxConcurrent: 2 }), state({ pendingTriggerMs: [1, 2] }))).toBe(false);
  });

  it("does not depend on periodic checkpoints being enabled, the interval or the min pause", () => {
    expect(mayTriggerNow(config({ intervalMs: 0 }), state())).toBe(true);
    expect(mayTriggerNow(config({ minPauseMs: 60_000 }), state({ lastEndMs: 49_999, lastTriggerMs: 49_000 }))).toBe(true);
  });
});

describe("expiresAtMs", () => {
  it("is the trigger time plus the checkpoint timeout", () => {
    expect(expiresAtMs(config({ timeoutMs: 30_000 }), 1_000)).toBe(31_000);
    expect(expiresAtMs(config(), 0)).toBe(600_000);
  });
});

describe("exceedsTolerableFailures", () => {
  it("with the default of 0 tolerated, the first failure fails the job over", () => {
    expect(exceedsTolerableFailures(config(), 1)).toBe(true);
  });

  it("tolerates exactly `tolerableFailures` consecutive failures", () => {
    const c = config({ tolerableFailures: 2 });
    expect(exceedsTolerableFailures(c, 1)).toBe(false);
    expect(exceedsTolerableFailures(c, 2)).toBe(false);
    expect(exceedsTolerableFailures(c, 3)).toBe(true);
  });
});
