/**
 * Restart strategies, with Flink's names and meanings: whether a failed job
 * restarts, and after how long. Pure: the failure history comes in, a
 * decision comes out.
 */
import { FloeError } from "../errors.js";

/** A restart strategy as configured. */
export type RestartStrategyOptions =
  | { type: "none" }
  | { type: "fixed-delay"; attempts?: number; delayMs?: number }
  | {
      type: "exponential-delay";
      initialDelayMs?: number;
      maxDelayMs?: number;
      multiplier?: number;
      /** A run this long without failure resets the backoff. */
      resetBackoffThresholdMs?: number;
      /** Total restarts allowed; unlimited when absent. */
      attempts?: number;
    }
  | { type: "failure-rate"; maxFailuresPerInterval?: number; intervalMs?: number; delayMs?: number };

/** Failures seen so far, as the coordinator stores them. */
export interface FailureHistory {
  /** Times of recent failures that led to a restart decision, oldest first (may be truncated). */
  readonly failureTimesMs: readonly number[];
  /** Restarts so far in this run: what attempt limits count. */
  readonly restarts: number;
  /** Restarts done under the current backoff (exponential-delay). */
  readonly backoffRestarts: number;
  /** Time the job last started running after a restart. */
  readonly lastRunningSinceMs: number | null;
}

/** The decision. */
export type RestartDecision =
  | { restart: true; delayMs: number; backoffRestarts: number }
  | { restart: false; reason: string };

/** The default: fast exponential backoff, unlimited, as Flink's default with checkpointing. */
export const DEFAULT_RESTART_STRATEGY: RestartStrategyOptions = {
  type: "exponential-delay",
  initialDelayMs: 100,
  maxDelayMs: 10_000,
  multiplier: 2,
  resetBackoffThresholdMs: 60_000,
};

/** Checks options when they are set, so that a bad one fails the start, not the failover. */
const KNOWN_OPTIONS: Record<string, readonly string[]> = {
  none: [],
  "fixed-delay": ["attempts", "delayMs"],
  "exponential-delay": ["initialDelayMs", "maxDelayMs", "multiplier", "resetBackoffThresholdMs", "attempts"],
  "failure-rate": ["maxFailuresPerInterval", "intervalMs", "delayMs"],
};

export function validateRestartStrategy(o: RestartStrategyOptions): RestartStrategyOptions {
  const bad = (m: string) => new FloeError("invalid_config", `restart strategy ${o.type}: ${m}`);
  const known = KNOWN_OPTIONS[o?.type as string];
  if (known) {
    const unknown = Object.keys(o).filter((k) => k !== "type" && !known.includes(k));
    if (unknown.length > 0) {
      throw bad(`unknown option ${unknown.map((k) => JSON.stringify(k)).join(", ")} (known: ${known.join(", ") || "none"})`);
    }
  }
  const nonNeg = (name: string, v: number | undefined) => {
    if (v !== undefined && (!Number.isFinite(v) || v < 0)) throw bad(`${name} must be a number ≥ 0`);
  };
  switch (o.type) {
    case "none":
      return o;
    case "fixed-delay":
      if (o.attempts !== undefined && (!Number.isInteger(o.attempts) || o.attempts < 0)) throw bad("attempts must be an integer ≥ 0");
      nonNeg("delayMs", o.delayMs);
      return o;
    case "exponential-delay":
      nonNeg("initialDelayMs", o.initialDelayMs);
      nonNeg("maxDelayMs", o.maxDelayMs);
      nonNeg("resetBackoffThresholdMs", o.resetBackoffThresholdMs);
      if (o.multiplier !== undefined && (!Number.isFinite(o.multiplier) || o.multiplier < 1)) throw bad("multiplier must be ≥ 1");
      if (o.attempts !== undefined && (!Number.isInteger(o.attempts) || o.attempts < 0)) throw bad("attempts must be an integer ≥ 0");
      return o;
    case "failure-rate":
      if (o.maxFailuresPerInterval !== undefined && (!Number.isInteger(o.maxFailuresPerInterval) || o.maxFailuresPerInterval < 1)) {
        throw bad("maxFailuresPerInterval must be an integer ≥ 1");
      }
      nonNeg("intervalMs", o.intervalMs);
      nonNeg("delayMs", o.delayMs);
      return o;
    default:
      throw new FloeError("invalid_config", `unknown restart strategy ${JSON.stringify((o as { type: unknown }).type)}`);
  }
}

/**
 * Decides on a failure at `nowMs`, given the failures before it
 * (`history.failureTimesMs` does not yet hold this one).
 */
export function decideRestart(o: RestartStrategyOptions, history: FailureHistory, nowMs: number): RestartDecision {
  const failures = history.restarts + 1;
  switch (o.type) {
    case "none":
      return { restart: false, reason: "the restart strategy is none" };
    case "fixed-delay": {
      const attempts = o.attempts ?? Number.POSITIVE_INFINITY;
      if (failures > attempts) return { restart: false, reason: `fixed-delay restart strategy exhausted after ${attempts} restarts` };
      return { restart: true, delayMs: o.delayMs ?? 1000, backoffRestarts: history.backoffRestarts + 1 };
    }
    case "exponential-delay": {
      const attempts = o.attempts ?? Number.POSITIVE_INFINITY;
      if (failures > attempts) return { restart: false, reason: `exponential-delay restart strategy exhausted after ${attempts} restarts` };
      const reset = o.resetBackoffThresholdMs ?? 3_600_000;
      const calm = history.lastRunningSinceMs !== null && nowMs - history.lastRunningSinceMs >= reset;
      const n = calm ? 0 : history.backoffRestarts;
      const delay = Math.min((o.initialDelayMs ?? 1000) * (o.multiplier ?? 2) ** n, o.maxDelayMs ?? 300_000);
      return { restart: true, delayMs: delay, backoffRestarts: n + 1 };
    }
    case "failure-rate": {
      const interval = o.intervalMs ?? 60_000;
      const max = o.maxFailuresPerInterval ?? 1;
      const recent = history.failureTimesMs.filter((t) => nowMs - t < interval).length + 1;
      if (recent > max) {
        return { restart: false, reason: `failure-rate restart strategy: ${recent} failures within ${interval} ms exceed ${max}` };
      }
      return { restart: true, delayMs: o.delayMs ?? 1000, backoffRestarts: history.backoffRestarts + 1 };
    }
  }
}
