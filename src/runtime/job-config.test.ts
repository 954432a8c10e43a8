import { describe, expect, it } from "vitest";
import { CHECKPOINT_OPTION_NAMES, type CheckpointOptions, DEFAULT_CHECKPOINT_CONFIG } from "../api/checkpoint-options.js";
import { type JobOptions, job } from "../api/job.js";
import { DEFAULT_RESTART_STRATEGY, type RestartStrategyOptions } from "../checkpoint/restart-strategy.js";
import { FloeError } from "../errors.js";
import { generatorSource } from "../connectors/sources/generator-source.js";
import { kafkaSink } from "../connectors/kafka/kafka-sink.js";
import { webhookSink } from "../connectors/sinks/webhook-sink.js";
import { checkSinkVars, resolveRunConfig } from "./job-config.js";
import { DEFAULT_MEMORY_BUDGET_BYTES, MIN_MEMORY_BUDGET_BYTES } from "../state/memory-budget.js";

/** The options are all resolveRunConfig reads; the graph does not matter here. */
const declared = (options: JobOptions = {}) => job("config-test", options);

function invalid(fn: () => unknown, ...patterns: RegExp[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FloeError);
  expect((caught as FloeError).code).toBe("invalid_config");
  expect((caught as FloeError).status).toBe(400);
  for (const p of patterns) expect((caught as FloeError).message).toMatch(p);
}

describe("resolveRunConfig: checkpoint options", () => {
  it("uses the defaults when neither the job nor the config sets anything", () => {
    expect(resolveRunConfig(declared(), undefined)).toEqual({ checkpoint: DEFAULT_CHECKPOINT_CONFIG, state: { memoryBudgetBytes: DEFAULT_MEMORY_BUDGET_BYTES }, restartStrategy: DEFAULT_RESTART_STRATEGY });
    expect(resolveRunConfig(declared(), {})).toEqual({ checkpoint: DEFAULT_CHECKPOINT_CONFIG, state: { memoryBudgetBytes: DEFAULT_MEMORY_BUDGET_BYTES }, restartStrategy: DEFAULT_RESTART_STRATEGY });
    expect(resolveRunConfig(declared(), { checkpoint: {} }).checkpoint).toEqual(DEFAULT_CHECKPOINT_CONFIG);
  });

  it("takes what the job declares", () => {
    const { checkpoint } = resolveRunConfig(declared({ checkpoint: { intervalMs: 2_000, incremental: true, retained: 3 } }), undefined);
    expect(checkpoint).toEqual({ ...DEFAULT_CHECKPOINT_CONFIG, intervalMs: 2_000, incremental: true, retained: 3 });
  });

  it("layers snake_case overrides over the job's options, option by option", () => {
    const j = declared({ checkpoint: { intervalMs: 2_000, incremental: true, mode: "exactly_once", retained: 3 } });
    const { checkpoint } = resolveRunConfig(j, {
      checkpoint: { interval_ms: 500, mode: "at_least_once", min_pause_ms: 100, max_concurrent: 2, tolerable_failures: 4, timeout_ms: 9_000 },
    });
    expect(checkpoint).toEqual({
      ...DEFAULT_CHECKPOINT_CONFIG,
      intervalMs: 500,
      mode: "at_least_once",
      minPauseMs: 100,
      maxConcurrent: 2,
      tolerableFailures: 4,
      timeoutMs: 9_000,
      // Kept from the job.
      incremental: true,
      retained: 3,
    });
    // The job's own options are left alone.
    expect(j.options.checkpoint).toEqual({ intervalMs: 2_000, incremental: true, mode: "exactly_once", retained: 3 });
  });

  it("accepts every documented checkpoint option in snake_case", () => {
    const { checkpoint } = resolveRunConfig(declared(), {
      checkpoint: {
        interval_ms: 1,
        mode: "exactly_once",
        timeout_ms: 2,
        min_pause_ms: 3,
        max_concurrent: 4,
        tolerable_failures: 5,
        retained: 6,
        externalized: "delete_on_cancellation",
        incremental: true,
        full_every: 7,
        unaligned: false,
        aligned_checkpoint_timeout_ms: 0,
        storage_prefix: "tenant-a",
      },
    });
    expect(checkpoint).toEqual({
      intervalMs: 1,
      mode: "exactly_once",
      timeoutMs: 2,
      minPauseMs: 3,
      maxConcurrent: 4,
      tolerableFailures: 5,
      retained: 6,
      externalized: "delete_on_cancellation",
      incremental: true,
      fullEvery: 7,
      unaligned: false,
      alignedCheckpointTimeoutMs: 0,
      storagePrefix: "tenant-a/",
      localRecovery: true,
    });
  });

  it("validates the merged values and names the bad option", () => {
    invalid(() => resolveRunConfig(declared(), { checkpoint: { interval_ms: -1 } }), /checkpoint\.interval_ms \(intervalMs\) must be an integer ≥ 0, got -1/);
    invalid(() => resolveRunConfig(declared(), { checkpoint: { interval_ms: "1000" } }), /checkpoint\.interval_ms/);
    invalid(() => resolveRunConfig(declared(), { checkpoint: { interval_ms: null } }), /checkpoint\.interval_ms/);
    invalid(() => resolveRunConfig(declared(), { checkpoint: { max_concurrent: 0 } }), /checkpoint\.max_concurrent/);
    invalid(() => resolveRunConfig(declared(), { checkpoint: { mode: "twice" } }), /checkpoint\.mode/);
    invalid(() => resolveRunConfig(declared(), { checkpoint: { externalized: "keep" } }), /checkpoint\.externalized/);
    invalid(() => resolveRunConfig(declared(), { checkpoint: { incremental: "yes" } }), /checkpoint\.incremental must be a boolean/);
    invalid(() => resolveRunConfig(declared(), { checkpoint: { storage_prefix: "../escape" } }), /checkpoint\.storage_prefix/);
    // A bad value the job declared fails too.
    invalid(() => resolveRunConfig(declared({ checkpoint: { timeoutMs: 0 } }), undefined), /checkpoint\.timeout_ms \(timeoutMs\)/);
  });

  it("an override can repair a bad value the job declared", () => {
    expect(resolveRunConfig(declared({ checkpoint: { timeoutMs: 0 } }), { checkpoint: { timeout_ms: 10 } }).checkpoint.timeoutMs).toBe(10);
  });
});

describe("resolveRunConfig: unknown names", () => {
  it("refuses an unknown section, naming the known ones", () => {
    invalid(() => resolveRunConfig(declared(), { state_backend: {} }), /^unknown config section "state_backend" \(known: checkpoint, restart_strategy\)$/);
    invalid(() => resolveRunConfig(declared(), { restartStrategy: { type: "none" } }), /^unknown config section "restartStrategy" \(known: checkpoint, restart_strategy\)$/);
  });

  it("refuses an unknown checkpoint option, naming the known ones in snake_case", () => {
    const known = `(known: ${CHECKPOINT_OPTION_NAMES.map((n) => n.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)).join(", ")})`;
    invalid(() => resolveRunConfig(declared(), { checkpoint: { interval: 1_000 } }), /unknown checkpoint option "interval"/);
    invalid(() => resolveRunConfig(declared(), { checkpoint: { interval_ms: 1_000, max_parallelism: 4 } }), /unknown checkpoint option "max_parallelism"/);
    let message = "";
    try {
      resolveRunConfig(declared(), { checkpoint: { intervalMs: 1_000 } });
    } catch (e) {
      message = (e as Error).message;
    }
    // The HTTP API spells options in snake_case only.
    expect(message).toBe(`unknown checkpoint option "intervalMs" ${known}`);
    expect(known).toContain("interval_ms, mode, timeout_ms,");
  });

  it("refuses an unknown key before a bad value", () => {
    invalid(() => resolveRunConfig(declared(), { checkpoint: { interval_ms: -1, intervall_ms: 5 } }), /unknown checkpoint option "intervall_ms"/);
    invalid(() => resolveRunConfig(declared(), { checkpoint: { interval_ms: -1 }, restart_strategy: { type: "fixed-delay", delay: 5 } }), /unknown option "delay"/);
  });

  it("refuses sections that are not objects", () => {
    invalid(() => resolveRunConfig(declared(), { checkpoint: [] }), /^config\.checkpoint must be an object, got \[\]$/);
    invalid(() => resolveRunConfig(declared(), { checkpoint: null }), /^config\.checkpoint must be an object, got null$/);
    invalid(() => resolveRunConfig(declared(), { checkpoint: "interval_ms=1" }), /^config\.checkpoint must be an object, got "interval_ms=1"$/);
    invalid(() => resolveRunConfig(declared(), { restart_strategy: "none" }), /^config\.restart_strategy must be an object with a type \(known: none, fixed-delay, exponential-delay, failure-rate\), got "none"$/);
    invalid(() => resolveRunConfig(declared(), [] as unknown as Record<string, unknown>), /^config must be an object, got \[\]$/);
  });
});

describe("resolveRunConfig: unaligned checkpoints", () => {
  it("accepts unaligned checkpoints from the config or the job", () => {
    expect(resolveRunConfig(declared(), { checkpoint: { unaligned: true } }).checkpoint.unaligned).toBe(true);
    expect(resolveRunConfig(declared({ checkpoint: { unaligned: true } }), undefined).checkpoint.unaligned).toBe(true);
    expect(resolveRunConfig(declared({ checkpoint: { unaligned: true } }), { checkpoint: { unaligned: false } }).checkpoint.unaligned).toBe(false);
  });

  it("accepts an aligned-checkpoint timeout with unaligned checkpoints, and refuses it without", () => {
    const c = resolveRunConfig(declared(), { checkpoint: { unaligned: true, aligned_checkpoint_timeout_ms: 1_000 } }).checkpoint;
    expect(c).toMatchObject({ unaligned: true, alignedCheckpointTimeoutMs: 1_000 });
    invalid(() => resolveRunConfig(declared(), { checkpoint: { aligned_checkpoint_timeout_ms: 1_000 } }), /aligned_checkpoint_timeout_ms \(alignedCheckpointTimeoutMs\) needs unaligned: true/);
  });

  it("refuses unaligned checkpoints with more than one at a time", () => {
    invalid(() => resolveRunConfig(declared(), { checkpoint: { unaligned: true, max_concurrent: 2 } }), /allows one checkpoint at a time: max_concurrent \(maxConcurrent\) must be 1, got 2/);
  });

  it("reports unaligned with at-least-once as the checkpoint rule it breaks", () => {
    invalid(() => resolveRunConfig(declared(), { checkpoint: { unaligned: true, mode: "at_least_once" } }), /checkpoint\.unaligned needs mode exactly_once/);
  });
});

describe("resolveRunConfig: restart strategy", () => {
  it("defaults to the fast exponential backoff", () => {
    expect(resolveRunConfig(declared(), undefined).restartStrategy).toEqual(DEFAULT_RESTART_STRATEGY);
  });

  it("takes the job's strategy", () => {
    expect(resolveRunConfig(declared({ restartStrategy: { type: "fixed-delay", attempts: 2, delayMs: 10 } }), undefined).restartStrategy).toEqual({
      type: "fixed-delay",
      attempts: 2,
      delayMs: 10,
    });
  });

  it("replaces the job's strategy with the config's, converting snake_case", () => {
    const j = declared({ restartStrategy: { type: "fixed-delay", attempts: 2 } });
    expect(
      resolveRunConfig(j, {
        restart_strategy: { type: "exponential-delay", initial_delay_ms: 50, max_delay_ms: 5_000, multiplier: 3, reset_backoff_threshold_ms: 1_000, attempts: 9 },
      }).restartStrategy,
    ).toEqual({ type: "exponential-delay", initialDelayMs: 50, maxDelayMs: 5_000, multiplier: 3, resetBackoffThresholdMs: 1_000, attempts: 9 });
    expect(resolveRunConfig(j, { restart_strategy: { type: "failure-rate", max_failures_per_interval: 3, interval_ms: 60_000, delay_ms: 5 } }).restartStrategy).toEqual({
      type: "failure-rate",
      maxFailuresPerInterval: 3,
      intervalMs: 60_000,
      delayMs: 5,
    });
    expect(resolveRunConfig(j, { restart_strategy: { type: "none" } }).restartStrategy).toEqual({ type: "none" });
  });

  it("validates an override", () => {
    invalid(() => resolveRunConfig(declared(), { restart_strategy: { type: "fixed-delay", attempts: -1 } }), /restart strategy fixed-delay: attempts/);
    invalid(() => resolveRunConfig(declared(), { restart_strategy: { type: "exponential-delay", multiplier: 0.5 } }), /multiplier must be a number ≥ 1, got 0\.5/);
    invalid(
      () => resolveRunConfig(declared(), { restart_strategy: { type: "failure-rate", max_failures_per_interval: 0 } }),
      /^restart strategy failure-rate: max_failures_per_interval \(maxFailuresPerInterval\) must be an integer ≥ 1, got 0$/,
    );
    invalid(() => resolveRunConfig(declared(), { restart_strategy: { type: "always" } }), /unknown restart strategy "always" \(known: none, fixed-delay, exponential-delay, failure-rate\)/);
    invalid(() => resolveRunConfig(declared(), { restart_strategy: {} }), /^config\.restart_strategy needs a type \(known: none, fixed-delay, exponential-delay, failure-rate\)$/);
  });

  it("validates the job's own strategy", () => {
    invalid(() => resolveRunConfig(declared({ restartStrategy: { type: "fixed-delay", delayMs: -1 } }), undefined), /delayMs/);
  });

  // A typo such as `delay: 5000` would otherwise run quietly with the 1 s default.
  it("refuses an unknown restart strategy option, naming the known ones in snake_case", () => {
    invalid(() => resolveRunConfig(declared(), { restart_strategy: { type: "fixed-delay", delay: 5_000 } }), /^restart strategy fixed-delay: unknown option "delay" \(known: attempts, delay_ms\)$/);
    invalid(() => resolveRunConfig(declared(), { restart_strategy: { type: "fixed-delay", delayMs: 5_000 } }), /unknown option "delayMs" \(known: attempts, delay_ms\)/);
    invalid(() => resolveRunConfig(declared(), { restart_strategy: { type: "none", attempts: 1 } }), /^restart strategy none: unknown option "attempts" \(it takes no options\)$/);
  });

  it("refuses an unknown option in the job's own strategy, named as the job spells it", () => {
    const j = declared({ restartStrategy: { type: "fixed-delay", delay: 5_000 } as unknown as RestartStrategyOptions });
    invalid(() => resolveRunConfig(j, undefined), /^restart strategy fixed-delay: unknown option "delay" \(known: attempts, delayMs\)$/);
  });

  it("refuses an unknown option in the job's checkpoint options, named as the job spells it", () => {
    const j = declared({ checkpoint: { interval: 5_000 } as unknown as CheckpointOptions });
    invalid(() => resolveRunConfig(j, undefined), /^unknown checkpoint option "interval" \(known: intervalMs, mode, /);
  });
});

describe("checkSinkVars: the Worker variables sinks need", () => {
  const withSinks = () => {
    const j = job("vars-test");
    const gen = j.source(generatorSource({ partitions: 1, count: 1, make: (i) => ({ n: i }) }), { uid: "gen" });
    gen.sink(webhookSink({ urlVar: "HOOK_URL" }), { uid: "hook" });
    gen.sink(webhookSink({ url: "https://example.com/fixed" }), { uid: "fixed" });
    gen.sink(kafkaSink("out", { brokersVar: "BROKERS" }), { uid: "kafka" });
    return j;
  };
  const refusal = (vars: Record<string, unknown>): FloeError | undefined => {
    try {
      checkSinkVars(withSinks(), vars);
      return undefined;
    } catch (e) {
      return e as FloeError;
    }
  };

  it("passes when every variable is set", () => {
    expect(refusal({ HOOK_URL: "http://127.0.0.1:9/x", BROKERS: "127.0.0.1:9092" })).toBeUndefined();
  });

  it("names the sink and the missing variable, as a 409", () => {
    const e = refusal({ BROKERS: "127.0.0.1:9092" });
    expect(e).toBeInstanceOf(FloeError);
    expect(e).toMatchObject({ code: "sink_not_configured", status: 409 });
    expect(e!.message).toMatch(/webhook sink "hook".*HOOK_URL.*not set.*wrangler secret put HOOK_URL/);
    expect(refusal({ HOOK_URL: "http://127.0.0.1:9/x", BROKERS: "  " })!.message).toMatch(/kafka sink "kafka" \(topic out\).*BROKERS.*not set/);
  });

  it("refuses a webhook variable that is not an http(s) URL", () => {
    expect(refusal({ HOOK_URL: "127.0.0.1:9/x", BROKERS: "b:1" })!.message).toMatch(/HOOK_URL must be an http\(s\) URL, got "127.0.0.1:9\/x"/);
  });
});

describe("resolveRunConfig: state options", () => {
  it("takes a budget, and defaults to DEFAULT_MEMORY_BUDGET_BYTES with local recovery", () => {
    expect(resolveRunConfig(declared({ state: { memoryBudgetBytes: 1 << 20 } }), undefined).state).toEqual({ memoryBudgetBytes: 1 << 20 });
    expect(resolveRunConfig(declared({ state: {} }), undefined).state).toEqual({ memoryBudgetBytes: DEFAULT_MEMORY_BUDGET_BYTES });
  });

  it("refuses a budget below the minimum, a bad value or an unknown option, naming it", () => {
    invalid(() => resolveRunConfig(declared({ state: { memoryBudgetBytes: MIN_MEMORY_BUDGET_BYTES - 1 } }), undefined), /state\.memoryBudgetBytes|memory_budget_bytes/, /≥ 65536/);
    invalid(() => resolveRunConfig(declared({ state: { memoryBudgetBytes: "16mb" as unknown as number } }), undefined), /must be an integer/);
    invalid(() => resolveRunConfig(declared({ state: { memoryBytes: 1 } as never }), undefined), /unknown state option.*memoryBytes/);
  });

  it("refuses a budget without local recovery (nothing to evict to), and applies none by default then", () => {
    const noLocal = { checkpoint: { localRecovery: false } };
    invalid(() => resolveRunConfig(declared({ ...noLocal, state: { memoryBudgetBytes: 1 << 20 } }), undefined), /needs checkpoint\.localRecovery/);
    invalid(() => resolveRunConfig(declared({ state: { memoryBudgetBytes: 1 << 20 } }), { checkpoint: { local_recovery: false } }), /needs checkpoint\.localRecovery/);
    expect(resolveRunConfig(declared(noLocal), undefined).state).toEqual({ memoryBudgetBytes: undefined });
  });
});
