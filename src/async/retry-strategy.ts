/**
 * When an async I/O request is tried again (Flink's AsyncRetryStrategies):
 * a fixed delay or an exponential backoff, with a maximum number of
 * attempts, and predicates on the result (retry an empty answer, say) and
 * on the error (retry a 503, not a 404). Pure: the operator asks
 * {@link AsyncRetryStrategy.nextDelayMs} after each attempt and does the
 * waiting itself on its injected clock.
 *
 * @example
 * AsyncRetryStrategies.exponentialBackoff({ maxAttempts: 5, initialDelayMs: 20, maxDelayMs: 500 })
 *   .ifException((e) => e instanceof Error && /503/.test(e.message))
 */
import { JobDefinitionError } from "../errors.js";

/** What an attempt gave: results, or an error. */
export type AttemptOutcome<O> = { readonly ok: true; readonly results: readonly O[] } | { readonly ok: false; readonly error: unknown };

/** Options of a fixed-delay strategy. */
export interface FixedDelayOptions {
  /** Attempts in all, the first included (≥ 1). */
  readonly maxAttempts: number;
  /** Wait before each retry (≥ 0). */
  readonly delayMs: number;
}

/** Options of an exponential-backoff strategy. */
export interface ExponentialBackoffOptions {
  /** Attempts in all, the first included (≥ 1). */
  readonly maxAttempts: number;
  /** Wait before the first retry (> 0). */
  readonly initialDelayMs: number;
  /** The longest wait (≥ initialDelayMs). */
  readonly maxDelayMs: number;
  /** Growth of the wait per retry (≥ 1). Default 2. */
  readonly multiplier?: number;
}

/** A retry strategy: how many attempts, how long between them, and which outcomes are retried. */
export class AsyncRetryStrategy<O = unknown> {
  /** @internal */
  constructor(
    /** Attempts in all, the first included. */
    readonly maxAttempts: number,
    private readonly delayOf: (retry: number) => number,
    private readonly resultPredicate: ((results: readonly O[]) => boolean) | undefined,
    private readonly errorPredicate: ((error: unknown) => boolean) | undefined,
  ) {}

  /** Retries when `predicate` holds for an attempt's results (Flink's `ifResult`; e.g. {@link RetryPredicates.EMPTY_RESULT}). */
  ifResult(predicate: (results: readonly O[]) => boolean): AsyncRetryStrategy<O> {
    return new AsyncRetryStrategy<O>(this.maxAttempts, this.delayOf, predicate, this.errorPredicate);
  }

  /** Retries when `predicate` holds for an attempt's error (Flink's `ifException`). Without one, no error is retried. */
  ifException(predicate: (error: unknown) => boolean): AsyncRetryStrategy<O> {
    return new AsyncRetryStrategy<O>(this.maxAttempts, this.delayOf, this.resultPredicate, predicate);
  }

  /**
   * After attempt `attempt` (1 for the first) ended with `outcome`: the wait
   * before the next attempt, or undefined when the outcome stands (it is
   * not to be retried, or the attempts are used up).
   */
  nextDelayMs(attempt: number, outcome: AttemptOutcome<O>): number | undefined {
    if (attempt >= this.maxAttempts) return undefined;
    const retry = outcome.ok ? (this.resultPredicate?.(outcome.results) ?? false) : (this.errorPredicate?.(outcome.error) ?? false);
    return retry ? this.delayOf(attempt) : undefined;
  }
}

/** Flink's AsyncRetryStrategies: the ways to build a {@link AsyncRetryStrategy}. */
export const AsyncRetryStrategies = {
  /** One attempt, never retried (the default). */
  noRetry<O = unknown>(): AsyncRetryStrategy<O> {
    return new AsyncRetryStrategy<O>(1, () => 0, undefined, undefined);
  },

  /** Up to `maxAttempts` attempts, `delayMs` apart. */
  fixedDelay<O = unknown>(options: FixedDelayOptions): AsyncRetryStrategy<O> {
    const { maxAttempts, delayMs } = options;
    checkAttempts(maxAttempts);
    if (!(Number.isFinite(delayMs) && delayMs >= 0)) throw new JobDefinitionError(`retry strategy: delayMs must be a number ≥ 0, got ${delayMs}`);
    return new AsyncRetryStrategy<O>(maxAttempts, () => delayMs, undefined, undefined);
  },

  /** Up to `maxAttempts` attempts, waiting `initialDelayMs`, then `multiplier` times longer each time, at most `maxDelayMs`. */
  exponentialBackoff<O = unknown>(options: ExponentialBackoffOptions): AsyncRetryStrategy<O> {
    const { maxAttempts, initialDelayMs, maxDelayMs, multiplier = 2 } = options;
    checkAttempts(maxAttempts);
    if (!(Number.isFinite(initialDelayMs) && initialDelayMs > 0)) throw new JobDefinitionError(`retry strategy: initialDelayMs must be a number > 0, got ${initialDelayMs}`);
    if (!(Number.isFinite(maxDelayMs) && maxDelayMs >= initialDelayMs)) throw new JobDefinitionError(`retry strategy: maxDelayMs must be ≥ initialDelayMs, got ${maxDelayMs}`);
    if (!(Number.isFinite(multiplier) && multiplier >= 1)) throw new JobDefinitionError(`retry strategy: multiplier must be ≥ 1, got ${multiplier}`);
    return new AsyncRetryStrategy<O>(maxAttempts, (retry) => Math.min(maxDelayMs, initialDelayMs * multiplier ** (retry - 1)), undefined, undefined);
  },
};

/** Flink's RetryPredicates. */
export const RetryPredicates = {
  /** An attempt that gave no result. */
  EMPTY_RESULT: (results: readonly unknown[]): boolean => results.length === 0,
  /** Any error. */
  HAS_EXCEPTION: (_error: unknown): boolean => true,
};

function checkAttempts(maxAttempts: number): void {
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new JobDefinitionError(`retry strategy: maxAttempts must be an integer ≥ 1, got ${maxAttempts}`);
}
