import { describe, expect, it } from "vitest";
import { FloeError } from "../errors.js";
import { type CheckpointOptions, DEFAULT_CHECKPOINT_CONFIG, resolveCheckpointConfig } from "./checkpoint-options.js";

/** Expects resolving `layer` to fail with an invalid_config FloeError whose message contains `text`. */
const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function expectInvalid(layer: Record<string, unknown>, text: string): void {
  let caught: unknown;
  try {
    resolveCheckpointConfig(layer as CheckpointOptions);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FloeError);
  expect((caught as FloeError).code).toBe("invalid_config");
  expect((caught as FloeError).status).toBe(400);
  expect((caught as FloeError).message).toBe(text);
}

describe("resolveCheckpointConfig defaults", () => {
  it("fills Flink's defaults when nothing is set", () => {
    expect(resolveCheckpointConfig()).toEqual({
      intervalMs: 0,
      mode: "exactly_once",
      timeoutMs: 600_000,
      minPauseMs: 0,
      maxConcurrent: 1,
      tolerableFailures: 0,
      retained: 1,
      externalized: "retain_on_cancellation",
      incremental: false,
      fullEvery: 10,
      unaligned: false,
      alignedCheckpointTimeoutMs: 0,
      storagePrefix: "",
      localRecovery: true,
    });
    expect(resolveCheckpointConfig({}, undefined)).toEqual(DEFAULT_CHECKPOINT_CONFIG);
  });

  it("returns a fresh object, leaving the defaults untouched", () => {
    const c = resolveCheckpointConfig({ intervalMs: 5 });
    c.retained = 99;
    expect(DEFAULT_CHECKPOINT_CONFIG.intervalMs).toBe(0);
    expect(DEFAULT_CHECKPOINT_CONFIG.retained).toBe(1);
    expect(resolveCheckpointConfig()).not.toBe(resolveCheckpointConfig());
  });
});

describe("resolveCheckpointConfig layering", () => {
  it("lets later layers win, option by option", () => {
    const job: CheckpointOptions = { intervalMs: 1000, retained: 3, incremental: true };
    const start: CheckpointOptions = { intervalMs: 250, timeoutMs: 5000 };
    expect(resolveCheckpointConfig(job, start)).toEqual({
      ...DEFAULT_CHECKPOINT_CONFIG,
      intervalMs: 250,
      retained: 3,
      incremental: true,
      timeoutMs: 5000,
    });
  });

  it("skips options set to undefined and layers that are absent", () => {
    const c = resolveCheckpointConfig({ intervalMs: 1000, mode: "at_least_once" }, undefined, { intervalMs: undefined, mode: undefined });
    expect(c.intervalMs).toBe(1000);
    expect(c.mode).toBe("at_least_once");
  });

  it("validates the merged result, so a later layer can fix an earlier one", () => {
    expect(resolveCheckpointConfig({ unaligned: true, mode: "at_least_once" }, { mode: "exactly_once" }).unaligned).toBe(true);
    expect(() => resolveCheckpointConfig({ unaligned: true }, { mode: "at_least_once" })).toThrow(FloeError);
  });

  it("accepts every valid value at the edge of its range", () => {
    const c = resolveCheckpointConfig({
      intervalMs: 0,
      timeoutMs: 1,
      minPauseMs: 0,
      maxConcurrent: 1,
      tolerableFailures: 0,
      retained: 1,
      fullEvery: 1,
      alignedCheckpointTimeoutMs: 0,
      mode: "at_least_once",
      externalized: "delete_on_cancellation",
      incremental: true,
      unaligned: false,
      storagePrefix: "floe/checkpoints/",
    });
    expect(c).toMatchObject({ timeoutMs: 1, externalized: "delete_on_cancellation", storagePrefix: "floe/checkpoints/" });
  });
});

describe("resolveCheckpointConfig validation", () => {
  const integers: [keyof CheckpointOptions, number][] = [
    ["intervalMs", 0],
    ["timeoutMs", 1],
    ["minPauseMs", 0],
    ["maxConcurrent", 1],
    ["tolerableFailures", 0],
    ["retained", 1],
    ["fullEvery", 1],
    ["alignedCheckpointTimeoutMs", 0],
  ];

  for (const [option, min] of integers) {
    it(`refuses ${option} below ${min}, fractional or not a number`, () => {
      expectInvalid({ [option]: min - 1 }, `checkpoint.${snake(option) === option ? option : `${snake(option)} (${option})`} must be an integer ≥ ${min}, got ${min - 1}`);
      expectInvalid({ [option]: min + 0.5 }, `checkpoint.${snake(option) === option ? option : `${snake(option)} (${option})`} must be an integer ≥ ${min}, got ${min + 0.5}`);
      expectInvalid({ [option]: "10" }, `checkpoint.${snake(option) === option ? option : `${snake(option)} (${option})`} must be an integer ≥ ${min}, got "10"`);
      expectInvalid({ [option]: Number.NaN }, `checkpoint.${snake(option) === option ? option : `${snake(option)} (${option})`} must be an integer ≥ ${min}, got null`);
      expectInvalid({ [option]: null }, `checkpoint.${snake(option) === option ? option : `${snake(option)} (${option})`} must be an integer ≥ ${min}, got null`);
      // The alignment timeout only means something with unaligned checkpoints.
      const extra = option === "alignedCheckpointTimeoutMs" ? { unaligned: true } : {};
      expect(resolveCheckpointConfig({ [option]: min + 7, ...extra })[option]).toBe(min + 7);
    });
  }

  it("refuses an unknown mode", () => {
    expectInvalid({ mode: "exactly-once" }, 'checkpoint.mode must be "exactly_once" or "at_least_once", got "exactly-once"');
  });

  it("refuses an unknown externalized cleanup", () => {
    expectInvalid({ externalized: "retain" }, 'checkpoint.externalized must be "retain_on_cancellation" or "delete_on_cancellation", got "retain"');
  });

  it("refuses non-boolean flags", () => {
    expectInvalid({ incremental: "true" }, 'checkpoint.incremental must be a boolean, got "true"');
    expectInvalid({ unaligned: 1 }, "checkpoint.unaligned must be a boolean, got 1");
  });

  it("refuses a storage prefix that is absolute, climbs out, or is not text", () => {
    expectInvalid({ storagePrefix: "/abs" }, 'checkpoint.storage_prefix (storagePrefix) must be a relative key prefix, got "/abs"');
    expectInvalid({ storagePrefix: "a/../b" }, 'checkpoint.storage_prefix (storagePrefix) must be a relative key prefix, got "a/../b"');
    expectInvalid({ storagePrefix: ".." }, 'checkpoint.storage_prefix (storagePrefix) must be a relative key prefix, got ".."');
    expectInvalid({ storagePrefix: 5 }, "checkpoint.storage_prefix (storagePrefix) must be a relative key prefix, got 5");
  });

  it("refuses unaligned checkpoints in at-least-once mode", () => {
    expectInvalid({ unaligned: true, mode: "at_least_once" }, "checkpoint.unaligned needs mode exactly_once (at-least-once never aligns)");
  });

  it("reports the first bad option in a fixed order", () => {
    expectInvalid({ retained: 0, intervalMs: -1 }, "checkpoint.interval_ms (intervalMs) must be an integer ≥ 0, got -1");
  });
});
