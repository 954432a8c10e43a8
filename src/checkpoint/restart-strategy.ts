/**
 * Restart strategies, with Flink's names and meanings: whether a failed job
 * restarts, and after how long. Pure: the failure history comes in, a
 * decision comes out. The strategies and their options are one zod schema,
 * which gives their type, their bounds, the known options and the messages;
 * what an absent option means is decided in {@link decideRestart}.
 */
import { z } from "zod";
import { integer, number, objectError, optionKeys, optionLabel, parseConfig, show, type Spelling } from "../api/config-schema.js";

const label = (type: string, name: string) => optionLabel(`restart strategy ${type}: `, name);

/** The options of each strategy, with their bounds; an absent option takes the default {@link decideRestart} gives it. */
const strategies = {
  none: {},
  "fixed-delay": {
    /** Total restarts allowed; unlimited when absent. */
    attempts: integer(label("fixed-delay", "attempts"), 0).optional(),
    /** Wait before each restart; 1000 ms when absent. */
    delayMs: number(label("fixed-delay", "delayMs"), 0).optional(),
  },
  "exponential-delay": {
    /** The first restart's delay; 1000 ms when absent. */
    initialDelayMs: number(label("exponential-delay", "initialDelayMs"), 0).optional(),
    /** The longest delay; 300000 ms when absent. */
    maxDelayMs: number(label("exponential-delay", "maxDelayMs"), 0).optional(),
    /** Growth of the delay from one restart to the next; 2 when absent. */
    multiplier: number(label("exponential-delay", "multiplier"), 1).optional(),
    /** A run this long without failure resets the backoff; 3600000 ms when absent. */
    resetBackoffThresholdMs: number(label("exponential-delay", "resetBackoffThresholdMs"), 0).optional(),
    /** Total restarts allowed; unlimited when absent. */
    attempts: integer(label("exponential-delay", "attempts"), 0).optional(),
  },
  "failure-rate": {
    /** Failures allowed within `intervalMs`; 1 when absent. */
    maxFailuresPerInterval: integer(label("failure-rate", "maxFailuresPerInterval"), 1).optional(),
    /** The sliding window failures are counted in; 60000 ms when absent. */
    intervalMs: number(label("failure-rate", "intervalMs"), 0).optional(),
    /** Wait before each restart; 1000 ms when absent. */
    delayMs: number(label("failure-rate", "delayMs"), 0).optional(),
  },
} as const;

type StrategyType = keyof typeof strategies;
const TYPES = Object.keys(strategies) as StrategyType[];

/** The error of a union of strategies at `where`: anything but an object, or a type that is missing or not one of {@link TYPES}. */
function unknownType(where: string) {
  const known = `known: ${TYPES.join(", ")}`;
  return (issue: { input?: unknown }): string => {
    const input = issue.input;
    if (input === null || typeof input !== "object" || Array.isArray(input)) return `${where} must be an object with a type (${known}), got ${show(input)}`;
    const type = (input as { type?: unknown }).type;
    return type === undefined ? `${where} needs a type (${known})` : `unknown restart strategy ${show(type)} (${known})`;
  };
}

/** One strategy's schema: its type and its options, nothing else. */
function strategy<T extends StrategyType>(type: T) {
  const options = strategies[type];
  return z.strictObject(
    { type: z.literal(type), ...options },
    { error: objectError("restart strategy", "option", Object.keys(options), `restart strategy ${type}: `) },
  );
}

/** Every restart strategy, its options and their bounds; unknown options are refused. */
export const restartStrategySchema = z.discriminatedUnion(
  "type",
  [strategy("none"), strategy("fixed-delay"), strategy("exponential-delay"), strategy("failure-rate")],
  { error: unknownType("restart strategy") },
);

/** A restart strategy as configured. */
export type RestartStrategyOptions = z.input<typeof restartStrategySchema>;

/**
 * The keys of a restart strategy in a layer's spelling (the HTTP API's is
 * snake_case), answered in camelCase for {@link validateRestartStrategy}.
 */
export function restartStrategyKeys(spelling: Spelling, where: string) {
  const byType = (type: StrategyType) =>
    optionKeys(Object.keys(strategies[type]), spelling, { where, noun: "option", prefix: `restart strategy ${type}: ` }, { type: z.literal(type) });
  return z.discriminatedUnion("type", [byType("none"), byType("fixed-delay"), byType("exponential-delay"), byType("failure-rate")], { error: unknownType(where) });
}

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

/**
 * Checks options when they are set, so that a bad one fails the start, not
 * the failover; returns them unchanged, or throws FloeError("invalid_config")
 * naming the option and its value.
 */
export function validateRestartStrategy(o: RestartStrategyOptions): RestartStrategyOptions {
  parseConfig(restartStrategySchema, o);
  return o;
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
