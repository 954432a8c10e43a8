import { describe, expect, it } from "vitest";
import { FloeError } from "../errors.js";
import {
  DEFAULT_RESTART_STRATEGY,
  type FailureHistory,
  type RestartDecision,
  type RestartStrategyOptions,
  decideRestart,
  restartStrategyKeys,
  validateRestartStrategy,
} from "./restart-strategy.js";

const fresh: FailureHistory = { failureTimesMs: [], restarts: 0, backoffRestarts: 0, lastRunningSinceMs: null };

const history = (failureTimesMs: number[], backoffRestarts = failureTimesMs.length, lastRunningSinceMs: number | null = null): FailureHistory => ({
  failureTimesMs,
  restarts: failureTimesMs.length,
  backoffRestarts,
  lastRunningSinceMs,
});

function restarts(d: RestartDecision): { delayMs: number; backoffRestarts: number } {
  if (!d.restart) throw new Error(`expected a restart, got: ${d.reason}`);
  return { delayMs: d.delayMs, backoffRestarts: d.backoffRestarts };
}

function refuses(d: RestartDecision): string {
  if (d.restart) throw new Error(`expected no restart, got a restart after ${d.delayMs} ms`);
  return d.reason;
}

/**
 * Replays failures the way the coordinator feeds them: each decision's
 * backoffRestarts and the failure time go into the next history; the job is
 * running again `delayMs` after each decision.
 */
function replay(o: RestartStrategyOptions, failureAtMs: number[]): RestartDecision[] {
  let h: FailureHistory = fresh;
  const out: RestartDecision[] = [];
  for (const t of failureAtMs) {
    const d = decideRestart(o, h, t);
    out.push(d);
    h = {
      failureTimesMs: [...h.failureTimesMs, t],
      restarts: h.restarts + (d.restart ? 1 : 0),
      backoffRestarts: d.restart ? d.backoffRestarts : h.backoffRestarts,
      lastRunningSinceMs: d.restart ? t + d.delayMs : h.lastRunningSinceMs,
    };
  }
  return out;
}

describe("decideRestart: none", () => {
  it("never restarts and says why", () => {
    expect(refuses(decideRestart({ type: "none" }, fresh, 0))).toMatch(/none/);
    expect(decideRestart({ type: "none" }, history([1, 2, 3]), 10).restart).toBe(false);
  });
});

describe("decideRestart: fixed-delay", () => {
  it("restarts up to `attempts` times with the configured delay, then gives up", () => {
    const o: RestartStrategyOptions = { type: "fixed-delay", attempts: 3, delayMs: 250 };
    expect(restarts(decideRestart(o, fresh, 0))).toEqual({ delayMs: 250, backoffRestarts: 1 });
    expect(restarts(decideRestart(o, history([0]), 1_000))).toEqual({ delayMs: 250, backoffRestarts: 2 });
    expect(restarts(decideRestart(o, history([0, 1_000]), 2_000))).toEqual({ delayMs: 250, backoffRestarts: 3 });
    expect(refuses(decideRestart(o, history([0, 1_000, 2_000]), 3_000))).toMatch(/fixed-delay.*exhausted after 3 restarts/);
  });

  it("counts failures no matter how far apart they are", () => {
    const o: RestartStrategyOptions = { type: "fixed-delay", attempts: 2, delayMs: 10 };
    expect(decideRestart(o, history([0, 86_400_000]), 10 * 86_400_000).restart).toBe(false);
  });

  it("with attempts 0, never restarts", () => {
    expect(refuses(decideRestart({ type: "fixed-delay", attempts: 0, delayMs: 10 }, fresh, 0))).toMatch(/exhausted after 0/);
  });

  it("defaults to unlimited attempts and a 1 s delay", () => {
    const many = Array.from({ length: 1_000 }, (_, i) => i * 10);
    expect(restarts(decideRestart({ type: "fixed-delay" }, history(many), 20_000))).toEqual({ delayMs: 1_000, backoffRestarts: 1_001 });
  });

  it("allows a zero delay", () => {
    expect(restarts(decideRestart({ type: "fixed-delay", delayMs: 0 }, fresh, 5)).delayMs).toBe(0);
  });
});

describe("decideRestart: exponential-delay", () => {
  const o: RestartStrategyOptions = {
    type: "exponential-delay",
    initialDelayMs: 100,
    maxDelayMs: 1_000,
    multiplier: 2,
    resetBackoffThresholdMs: 60_000,
  };

  it("grows the delay by the multiplier from the initial delay", () => {
    const delays = [0, 1, 2, 3].map((n) => restarts(decideRestart(o, history([], n, 0), 10)));
    expect(delays).toEqual([
      { delayMs: 100, backoffRestarts: 1 },
      { delayMs: 200, backoffRestarts: 2 },
      { delayMs: 400, backoffRestarts: 3 },
      { delayMs: 800, backoffRestarts: 4 },
    ]);
  });

  it("caps the delay at maxDelayMs", () => {
    expect(restarts(decideRestart(o, history([], 4, 0), 10))).toEqual({ delayMs: 1_000, backoffRestarts: 5 });
    expect(restarts(decideRestart(o, history([], 60, 0), 10)).delayMs).toBe(1_000);
    // Even when multiplier ** n overflows to Infinity.
    expect(restarts(decideRestart(o, history([], 5_000, 0), 10)).delayMs).toBe(1_000);
  });

  it("uses the configured multiplier", () => {
    const o3: RestartStrategyOptions = { type: "exponential-delay", initialDelayMs: 10, maxDelayMs: 1_000_000, multiplier: 3 };
    expect([0, 1, 2, 3].map((n) => restarts(decideRestart(o3, history([], n, 0), 1)).delayMs)).toEqual([10, 30, 90, 270]);
    const flat: RestartStrategyOptions = { type: "exponential-delay", initialDelayMs: 50, multiplier: 1 };
    expect(restarts(decideRestart(flat, history([], 9, 0), 1)).delayMs).toBe(50);
  });

  it("a series of quick failures backs off exponentially", () => {
    const ds = replay(o, [0, 150, 400, 900, 1_800, 3_000]).map((d) => restarts(d).delayMs);
    expect(ds).toEqual([100, 200, 400, 800, 1_000, 1_000]);
  });

  it("resets the backoff after resetBackoffThresholdMs of running without failure", () => {
    // Four restarts so far; the job has been running since t=10_000.
    const h = history([1, 2, 3, 4], 4, 10_000);
    // Just short of the threshold: keep backing off.
    expect(restarts(decideRestart(o, h, 10_000 + 59_999))).toEqual({ delayMs: 1_000, backoffRestarts: 5 });
    // At the threshold: start over from the initial delay.
    expect(restarts(decideRestart(o, h, 10_000 + 60_000))).toEqual({ delayMs: 100, backoffRestarts: 1 });
    expect(restarts(decideRestart(o, h, 10_000 + 3_600_000))).toEqual({ delayMs: 100, backoffRestarts: 1 });
  });

  it("does not reset when the job never ran since the last restart", () => {
    expect(restarts(decideRestart(o, history([1], 3, null), 10_000_000)).delayMs).toBe(800);
  });

  it("after a reset, backs off again from the initial delay", () => {
    const ds = replay(o, [0, 200, 500, 500 + 400 + 60_000, 500 + 400 + 60_000 + 150]).map((d) => restarts(d).delayMs);
    expect(ds).toEqual([100, 200, 400, 100, 200]);
  });

  it("gives up after `attempts` restarts in total", () => {
    const limited: RestartStrategyOptions = { ...o, attempts: 2 } as RestartStrategyOptions;
    const ds = replay(limited, [0, 1_000, 2_000]);
    expect(ds.slice(0, 2).map((d) => d.restart)).toEqual([true, true]);
    expect(refuses(ds[2])).toMatch(/exponential-delay.*exhausted after 2 restarts/);
  });

  it("defaults: 1 s initial delay, ×2, 5 min cap, unlimited attempts", () => {
    const bare: RestartStrategyOptions = { type: "exponential-delay" };
    expect(restarts(decideRestart(bare, fresh, 0)).delayMs).toBe(1_000);
    expect(restarts(decideRestart(bare, history([], 1, 0), 1)).delayMs).toBe(2_000);
    expect(restarts(decideRestart(bare, history([], 20, 0), 1)).delayMs).toBe(300_000);
    const many = Array.from({ length: 500 }, (_, i) => i);
    expect(decideRestart(bare, history(many, 500, 0), 1_000).restart).toBe(true);
  });

  it("the default strategy is a fast, unlimited exponential backoff", () => {
    expect(validateRestartStrategy(DEFAULT_RESTART_STRATEGY)).toBe(DEFAULT_RESTART_STRATEGY);
    const ds = replay(DEFAULT_RESTART_STRATEGY, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).map((d) => restarts(d).delayMs);
    expect(ds.slice(0, 4)).toEqual([100, 200, 400, 800]);
    expect(Math.max(...ds)).toBe(10_000);
  });
});

describe("decideRestart: failure-rate", () => {
  const o: RestartStrategyOptions = { type: "failure-rate", maxFailuresPerInterval: 3, intervalMs: 10_000, delayMs: 500 };

  it("restarts while failures within the interval stay within the maximum", () => {
    expect(restarts(decideRestart(o, fresh, 0))).toEqual({ delayMs: 500, backoffRestarts: 1 });
    expect(restarts(decideRestart(o, history([0]), 1_000)).delayMs).toBe(500);
    expect(restarts(decideRestart(o, history([0, 1_000]), 2_000)).delayMs).toBe(500);
    expect(refuses(decideRestart(o, history([0, 1_000, 2_000]), 3_000))).toMatch(/4 failures within 10000 ms exceed 3/);
  });

  it("only counts failures inside the sliding window", () => {
    // The failure at 0 is exactly one interval old at 10_000: outside the window.
    expect(decideRestart(o, history([0, 1_000, 2_000]), 10_000).restart).toBe(true);
    expect(decideRestart(o, history([0, 1_000, 2_000]), 9_999).restart).toBe(false);
    // Many old failures do not matter.
    const old = Array.from({ length: 50 }, (_, i) => i);
    expect(decideRestart(o, history([...old, 20_000, 21_000]), 25_000).restart).toBe(true);
    expect(decideRestart(o, history([...old, 20_000, 21_000, 22_000]), 25_000).restart).toBe(false);
  });

  it("defaults: one failure per minute, 1 s delay", () => {
    const bare: RestartStrategyOptions = { type: "failure-rate" };
    expect(restarts(decideRestart(bare, fresh, 0)).delayMs).toBe(1_000);
    expect(decideRestart(bare, history([0]), 59_999).restart).toBe(false);
    expect(decideRestart(bare, history([0]), 60_000).restart).toBe(true);
  });
});

describe("validateRestartStrategy", () => {
  function invalid(o: unknown, pattern: RegExp): void {
    let caught: unknown;
    try {
      validateRestartStrategy(o as RestartStrategyOptions);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(FloeError);
    expect((caught as FloeError).code).toBe("invalid_config");
    expect((caught as FloeError).status).toBe(400);
    expect((caught as FloeError).message).toMatch(pattern);
  }

  it("returns valid options unchanged", () => {
    const all: RestartStrategyOptions[] = [
      { type: "none" },
      { type: "fixed-delay" },
      { type: "fixed-delay", attempts: 0, delayMs: 0 },
      { type: "exponential-delay", initialDelayMs: 1, maxDelayMs: 2, multiplier: 1, resetBackoffThresholdMs: 0, attempts: 5 },
      { type: "failure-rate", maxFailuresPerInterval: 1, intervalMs: 0, delayMs: 0 },
    ];
    for (const o of all) expect(validateRestartStrategy(o)).toBe(o);
  });

  it("rejects an unknown strategy, naming the known ones", () => {
    const known = "known: none, fixed-delay, exponential-delay, failure-rate";
    invalid({ type: "sometimes" }, new RegExp(`^unknown restart strategy "sometimes" \\(${known}\\)$`));
    invalid({ type: 3 }, /^unknown restart strategy 3 \(known: none, /);
    invalid({}, new RegExp(`^restart strategy needs a type \\(${known}\\)$`));
    invalid("none", /^restart strategy must be an object with a type \(known: none, .*\), got "none"$/);
    invalid(null, /^restart strategy must be an object with a type .*, got null$/);
  });

  it("rejects unknown options, naming them and the strategy's known ones", () => {
    invalid({ type: "fixed-delay", delay: 5_000 }, /^restart strategy fixed-delay: unknown option "delay" \(known: attempts, delayMs\)$/);
    invalid(
      { type: "exponential-delay", initialDelay: 1, factor: 2 },
      /^restart strategy exponential-delay: unknown options "initialDelay", "factor" \(known: initialDelayMs, maxDelayMs, multiplier, resetBackoffThresholdMs, attempts\)$/,
    );
    invalid({ type: "failure-rate", attempts: 3 }, /^restart strategy failure-rate: unknown option "attempts" \(known: maxFailuresPerInterval, intervalMs, delayMs\)$/);
    invalid({ type: "none", attempts: 3 }, /^restart strategy none: unknown option "attempts" \(it takes no options\)$/);
  });

  it("rejects bad fixed-delay options", () => {
    invalid({ type: "fixed-delay", attempts: -1 }, /^restart strategy fixed-delay: attempts must be an integer ≥ 0, got -1$/);
    invalid({ type: "fixed-delay", attempts: 1.5 }, /attempts must be an integer ≥ 0, got 1\.5/);
    invalid({ type: "fixed-delay", attempts: "3" }, /attempts must be an integer ≥ 0, got "3"/);
    invalid({ type: "fixed-delay", delayMs: -5 }, /^restart strategy fixed-delay: delay_ms \(delayMs\) must be a number ≥ 0, got -5$/);
    invalid({ type: "fixed-delay", delayMs: Number.NaN }, /delay_ms \(delayMs\) must be a number ≥ 0, got NaN/);
    invalid({ type: "fixed-delay", delayMs: Number.POSITIVE_INFINITY }, /delay_ms \(delayMs\) must be a number ≥ 0, got Infinity/);
    invalid({ type: "fixed-delay", delayMs: "1000" }, /delay_ms \(delayMs\) must be a number ≥ 0, got "1000"/);
  });

  it("rejects bad exponential-delay options", () => {
    invalid({ type: "exponential-delay", initialDelayMs: -1 }, /^restart strategy exponential-delay: initial_delay_ms \(initialDelayMs\) must be a number ≥ 0, got -1$/);
    invalid({ type: "exponential-delay", maxDelayMs: -1 }, /max_delay_ms \(maxDelayMs\) must be a number ≥ 0, got -1/);
    invalid({ type: "exponential-delay", resetBackoffThresholdMs: Number.NaN }, /reset_backoff_threshold_ms \(resetBackoffThresholdMs\) must be a number ≥ 0, got NaN/);
    invalid({ type: "exponential-delay", multiplier: 0.5 }, /^restart strategy exponential-delay: multiplier must be a number ≥ 1, got 0\.5$/);
    invalid({ type: "exponential-delay", multiplier: Number.POSITIVE_INFINITY }, /multiplier must be a number ≥ 1, got Infinity/);
    invalid({ type: "exponential-delay", attempts: -2 }, /attempts must be an integer ≥ 0, got -2/);
    invalid({ type: "exponential-delay", attempts: 2.5 }, /attempts must be an integer ≥ 0, got 2\.5/);
  });

  it("rejects bad failure-rate options", () => {
    invalid({ type: "failure-rate", maxFailuresPerInterval: 0 }, /^restart strategy failure-rate: max_failures_per_interval \(maxFailuresPerInterval\) must be an integer ≥ 1, got 0$/);
    invalid({ type: "failure-rate", maxFailuresPerInterval: 1.5 }, /max_failures_per_interval \(maxFailuresPerInterval\) must be an integer ≥ 1, got 1\.5/);
    invalid({ type: "failure-rate", intervalMs: -1 }, /interval_ms \(intervalMs\) must be a number ≥ 0, got -1/);
    invalid({ type: "failure-rate", delayMs: -1 }, /failure-rate: delay_ms \(delayMs\) must be a number ≥ 0, got -1/);
  });
});

describe("restartStrategyKeys", () => {
  const keys = restartStrategyKeys("snake_case", "config.restart_strategy");
  const message = (value: unknown) => keys.safeParse(value).error?.issues[0].message;

  it("takes the HTTP API's snake_case names and answers in camelCase, values untouched", () => {
    expect(keys.parse({ type: "exponential-delay", initial_delay_ms: -1, reset_backoff_threshold_ms: 5 })).toEqual({
      type: "exponential-delay",
      initialDelayMs: -1,
      resetBackoffThresholdMs: 5,
    });
    expect(keys.parse({ type: "failure-rate", max_failures_per_interval: 2 })).toEqual({ type: "failure-rate", maxFailuresPerInterval: 2 });
    expect(keys.parse({ type: "none" })).toEqual({ type: "none" });
  });

  it("names unknown keys and the known ones in snake_case", () => {
    expect(message({ type: "fixed-delay", delayMs: 5 })).toBe('restart strategy fixed-delay: unknown option "delayMs" (known: attempts, delay_ms)');
    expect(message({ type: "failure-rate", max_failures: 5 })).toBe(
      'restart strategy failure-rate: unknown option "max_failures" (known: max_failures_per_interval, interval_ms, delay_ms)',
    );
  });

  it("names where the strategy is when it has no known type", () => {
    expect(message({ type: "always" })).toMatch(/^unknown restart strategy "always" \(known: /);
    expect(message({})).toMatch(/^config\.restart_strategy needs a type \(known: /);
    expect(message("none")).toMatch(/^config\.restart_strategy must be an object with a type \(known: .*\), got "none"$/);
  });
});
