import { describe, expect, it } from "vitest";
import { AsyncRetryStrategies, RetryPredicates } from "./retry-strategy.js";
import { JobDefinitionError } from "../errors.js";

const fail = (error: unknown) => ({ ok: false as const, error });
const ok = (results: any[]) => ({ ok: true as const, results });

describe("async retry strategies", () => {
  it("never retries by default", () => {
    const s = AsyncRetryStrategies.noRetry();
    expect(s.nextDelayMs(1, fail(new Error("x")))).toBeUndefined();
    expect(s.nextDelayMs(1, ok([]))).toBeUndefined();
  });

  it("retries errors the predicate accepts, a fixed delay apart, up to maxAttempts", () => {
    const s = AsyncRetryStrategies.fixedDelay({ maxAttempts: 3, delayMs: 40 }).ifException((e) => (e as Error).message === "503");
    expect(s.nextDelayMs(1, fail(new Error("503")))).toBe(40);
    expect(s.nextDelayMs(2, fail(new Error("503")))).toBe(40);
    expect(s.nextDelayMs(3, fail(new Error("503"))), "attempts used up").toBeUndefined();
    expect(s.nextDelayMs(1, fail(new Error("404"))), "not retryable").toBeUndefined();
    expect(s.nextDelayMs(1, ok([])), "results are not retried without ifResult").toBeUndefined();
  });

  it("retries results the predicate accepts", () => {
    const s = AsyncRetryStrategies.fixedDelay<number>({ maxAttempts: 2, delayMs: 5 }).ifResult(RetryPredicates.EMPTY_RESULT);
    expect(s.nextDelayMs(1, ok([]))).toBe(5);
    expect(s.nextDelayMs(1, ok([1]))).toBeUndefined();
    expect(s.nextDelayMs(1, fail(new Error("x"))), "errors are not retried without ifException").toBeUndefined();
  });

  it("backs off exponentially up to maxDelayMs", () => {
    const s = AsyncRetryStrategies.exponentialBackoff({ maxAttempts: 6, initialDelayMs: 10, maxDelayMs: 50 }).ifException(RetryPredicates.HAS_EXCEPTION);
    const waits = [1, 2, 3, 4, 5].map((a) => s.nextDelayMs(a, fail("e")));
    expect(waits).toEqual([10, 20, 40, 50, 50]);
    expect(s.nextDelayMs(6, fail("e"))).toBeUndefined();
  });

  it("refuses bad options with a clear error", () => {
    expect(() => AsyncRetryStrategies.fixedDelay({ maxAttempts: 0, delayMs: 1 })).toThrow(JobDefinitionError);
    expect(() => AsyncRetryStrategies.fixedDelay({ maxAttempts: 2, delayMs: -1 })).toThrow(/delayMs/);
    expect(() => AsyncRetryStrategies.exponentialBackoff({ maxAttempts: 2, initialDelayMs: 0, maxDelayMs: 1 })).toThrow(/initialDelayMs/);
    expect(() => AsyncRetryStrategies.exponentialBackoff({ maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 5 })).toThrow(/maxDelayMs/);
    expect(() => AsyncRetryStrategies.exponentialBackoff({ maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 5, multiplier: 0.5 })).toThrow(/multiplier/);
  });
});
