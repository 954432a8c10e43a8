import { describe, expect, it } from "vitest";
import { FloeError } from "../errors.js";
import {
  CHECKPOINT_OPTION_NAMES,
  type CheckpointOptions,
  DEFAULT_CHECKPOINT_CONFIG,
  checkpointOptionKeys,
  checkpointSchema,
  resolveCheckpointConfig,
} from "./checkpoint-options.js";

const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Expects resolving `layer` (then the `later` layers) to fail with an invalid_config FloeError whose message is `text`. */
function expectInvalid(layer: unknown, text: string, ...later: unknown[]): void {
  let caught: unknown;
  try {
    resolveCheckpointConfig(layer as CheckpointOptions, ...(later as CheckpointOptions[]));
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FloeError);
  expect((caught as FloeError).code).toBe("invalid_config");
  expect((caught as FloeError).status).toBe(400);
  expect((caught as FloeError).message).toBe(text);
}

describe("resolveCheckpointConfig defaults", () => {
  it("fills the defaults when nothing is set (Flink's, but incremental: the image's runs go up as they are)", () => {
    expect(resolveCheckpointConfig()).toEqual({
      intervalMs: 0,
      mode: "exactly_once",
      timeoutMs: 600_000,
      minPauseMs: 0,
      maxConcurrent: 1,
      tolerableFailures: 0,
      retained: 1,
      externalized: "retain_on_cancellation",
      incremental: true,
      fullEvery: 10,
      unaligned: false,
      alignedCheckpointTimeoutMs: 0,
      storagePrefix: "",
      localRecovery: true,
    });
    expect(resolveCheckpointConfig({}, undefined)).toEqual(DEFAULT_CHECKPOINT_CONFIG);
  });

  it("takes the defaults and the option names from the one schema", () => {
    expect(checkpointSchema.parse({})).toEqual(DEFAULT_CHECKPOINT_CONFIG);
    expect([...CHECKPOINT_OPTION_NAMES].sort()).toEqual(Object.keys(DEFAULT_CHECKPOINT_CONFIG).sort());
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
    it(`refuses ${option} below ${min}, fractional, too big or not a number`, () => {
      const name = `checkpoint.${snake(option) === option ? option : `${snake(option)} (${option})`}`;
      expectInvalid({ [option]: min - 1 }, `${name} must be an integer ≥ ${min}, got ${min - 1}`);
      expectInvalid({ [option]: min + 0.5 }, `${name} must be an integer ≥ ${min}, got ${min + 0.5}`);
      expectInvalid({ [option]: "10" }, `${name} must be an integer ≥ ${min}, got "10"`);
      expectInvalid({ [option]: Number.NaN }, `${name} must be an integer ≥ ${min}, got NaN`);
      expectInvalid({ [option]: Number.POSITIVE_INFINITY }, `${name} must be an integer ≥ ${min}, got Infinity`);
      expectInvalid({ [option]: null }, `${name} must be an integer ≥ ${min}, got null`);
      expectInvalid({ [option]: true }, `${name} must be an integer ≥ ${min}, got true`);
      expectInvalid({ [option]: 2 ** 60 }, `${name} must be an integer from ${min} to 9007199254740991, got ${2 ** 60}`);
      // The alignment timeout only means something with unaligned checkpoints.
      const extra = option === "alignedCheckpointTimeoutMs" ? { unaligned: true } : {};
      expect(resolveCheckpointConfig({ [option]: min, ...extra })[option]).toBe(min);
      expect(resolveCheckpointConfig({ [option]: min + 7, ...extra })[option]).toBe(min + 7);
      expect(resolveCheckpointConfig({ [option]: Number.MAX_SAFE_INTEGER, ...extra })[option]).toBe(Number.MAX_SAFE_INTEGER);
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
    expectInvalid({ localRecovery: null }, "checkpoint.local_recovery (localRecovery) must be a boolean, got null");
  });

  it("refuses a storage prefix that is absolute, climbs out, or is not text", () => {
    const rule = 'checkpoint.storage_prefix (storagePrefix) must be a relative key prefix (not starting with "/", without "..")';
    expectInvalid({ storagePrefix: "/abs" }, `${rule}, got "/abs"`);
    expectInvalid({ storagePrefix: "a/../b" }, `${rule}, got "a/../b"`);
    expectInvalid({ storagePrefix: ".." }, `${rule}, got ".."`);
    expectInvalid({ storagePrefix: 5 }, "checkpoint.storage_prefix (storagePrefix) must be a relative key prefix, got 5");
  });

  it("ends a storage prefix with a slash", () => {
    expect(resolveCheckpointConfig({ storagePrefix: "tenant-a" }).storagePrefix).toBe("tenant-a/");
    expect(resolveCheckpointConfig({ storagePrefix: "tenant-a/" }).storagePrefix).toBe("tenant-a/");
    expect(resolveCheckpointConfig({ storagePrefix: "" }).storagePrefix).toBe("");
    expect(resolveCheckpointConfig({ storagePrefix: "a" }, { storagePrefix: "b/c" }).storagePrefix).toBe("b/c/");
  });

  it("refuses unaligned checkpoints in at-least-once mode", () => {
    expectInvalid({ unaligned: true, mode: "at_least_once" }, "checkpoint.unaligned needs mode exactly_once (at-least-once never aligns)");
  });

  it("refuses an aligned-checkpoint timeout without unaligned checkpoints", () => {
    expectInvalid(
      { alignedCheckpointTimeoutMs: 1 },
      "checkpoint.aligned_checkpoint_timeout_ms (alignedCheckpointTimeoutMs) needs unaligned: true: it is how long a checkpoint stays aligned before it turns unaligned",
    );
  });

  it("refuses unaligned checkpoints with more than one at a time", () => {
    expectInvalid(
      { unaligned: true, maxConcurrent: 2 },
      "checkpoint.unaligned allows one checkpoint at a time: max_concurrent (maxConcurrent) must be 1, got 2 (a newer barrier overtaking an unfinished one would abort it)",
    );
  });

  it("reports the first bad option in a fixed order", () => {
    expectInvalid({ retained: 0, intervalMs: -1 }, "checkpoint.interval_ms (intervalMs) must be an integer ≥ 0, got -1");
  });

  it("reports a bad option before a rule between options", () => {
    expectInvalid({ unaligned: true, mode: "at_least_once", retained: 0 }, "checkpoint.retained must be an integer ≥ 1, got 0");
  });
});

describe("resolveCheckpointConfig: unknown options", () => {
  const known = `known: ${CHECKPOINT_OPTION_NAMES.join(", ")}`;

  it("refuses an option the schema does not know, naming it and the known ones", () => {
    expectInvalid({ interval: 1_000 }, `unknown checkpoint option "interval" (${known})`);
    expectInvalid({ interval_ms: 1_000, maxParallelism: 4 }, `unknown checkpoint options "interval_ms", "maxParallelism" (${known})`);
  });

  it("refuses it in any layer, before looking at values", () => {
    expectInvalid({ intervalMs: -1 }, `unknown checkpoint option "interval" (${known})`, { interval: 1_000 });
  });

  it("refuses a layer that is not an object", () => {
    expectInvalid("interval=1000", 'checkpoint options must be an object, got "interval=1000"');
    expectInvalid(null, "checkpoint options must be an object, got null");
    expectInvalid([1], "checkpoint options must be an object, got [1]");
  });
});

describe("checkpointOptionKeys", () => {
  it("takes the HTTP API's snake_case names and answers in camelCase, values untouched", () => {
    const keys = checkpointOptionKeys("snake_case", "config.checkpoint");
    expect(keys.parse({ interval_ms: -5, aligned_checkpoint_timeout_ms: "x", mode: "m" })).toEqual({ intervalMs: -5, alignedCheckpointTimeoutMs: "x", mode: "m" });
    expect(keys.parse({})).toEqual({});
  });

  it("names unknown keys and the known ones in snake_case", () => {
    const keys = checkpointOptionKeys("snake_case", "config.checkpoint");
    expect(keys.safeParse({ intervalMs: 5 }).error?.issues[0].message).toBe(`unknown checkpoint option "intervalMs" (known: ${CHECKPOINT_OPTION_NAMES.map(snake).join(", ")})`);
    expect(keys.safeParse(7).error?.issues[0].message).toBe("config.checkpoint must be an object, got 7");
  });
});
