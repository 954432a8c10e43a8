/**
 * One way to try a call again. Durable Object RPC errors say whether a
 * retry can help (`retryable`, and `overloaded` when it would only make
 * things worse); {@link isRetryable} reads that, and {@link retry} is the
 * loop every caller uses instead of writing its own.
 */
import { FloeError } from "./errors.js";

/** How to try again. */
export interface RetryOptions {
  /** Tries in all, the first included (≥ 1). */
  readonly attempts: number;
  /** Wait before the second try; each later wait is `multiplier` times the one before. */
  readonly delayMs: number;
  /** Growth of the wait per try (1: fixed delay). Default 2. */
  readonly multiplier?: number;
  /** The longest wait. Default: unbounded. */
  readonly maxDelayMs?: number;
  /** Whether a failure may be tried again. Default {@link isRetryable}. */
  readonly isRetryable?: (e: unknown) => boolean;
  /** Whether the caller still wants the result (a canceled task does not). Checked before each retry. */
  readonly stillWanted?: () => boolean;
  /** The clock's sleep: injected, so that the simulator's virtual time drives it. */
  readonly sleep: (ms: number) => Promise<void>;
}

/**
 * Runs `call` until it succeeds, a failure is not retryable, the caller no
 * longer wants it, or the tries are used up; then throws the last error.
 *
 * @example
 * await retry(() => coordinator.acknowledgeCheckpoint(ack), { attempts: 6, delayMs: 50, sleep });
 */
export async function retry<T>(call: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const { attempts, delayMs, multiplier = 2, maxDelayMs = Number.POSITIVE_INFINITY, sleep } = options;
  if (!Number.isInteger(attempts) || attempts < 1) throw new RangeError(`retry: attempts must be an integer ≥ 1, got ${attempts}`);
  if (!(delayMs >= 0) || !(multiplier >= 1)) throw new RangeError(`retry: delayMs must be ≥ 0 and multiplier ≥ 1`);
  const retryable = options.isRetryable ?? isRetryable;
  let wait = delayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call(attempt);
    } catch (e) {
      if (attempt >= attempts || !retryable(e) || options.stillWanted?.() === false) throw e;
    }
    await sleep(Math.min(wait, maxDelayMs));
    wait *= multiplier;
  }
}

/**
 * Whether trying the same call again may succeed. A Durable Object RPC
 * error says so itself (`retryable`; `overloaded` means no: more requests
 * make it worse). A {@link FloeError} is retryable when it is the server's
 * (5xx) or a rate limit (429), not the caller's (other 4xx). Anything else
 * (a reset object, a broken stub, a dropped connection) is transient as far
 * as the caller can tell, and floe's calls are safe to repeat.
 */
export function isRetryable(e: unknown): boolean {
  if (typeof e === "object" && e !== null) {
    const flags = e as { retryable?: unknown; overloaded?: unknown };
    if (flags.overloaded === true) return false;
    if (typeof flags.retryable === "boolean") return flags.retryable;
  }
  if (e instanceof FloeError) return e.status >= 500 || e.status === 429;
  return true;
}
