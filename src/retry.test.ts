import { describe, expect, it } from "vitest";
import { FloeError } from "./errors.js";
import { isRetryable, retry } from "./retry.js";

/** A sleep that records its waits and returns at once. */
function recordingSleep() {
  const waits: number[] = [];
  return { waits, sleep: async (ms: number) => void waits.push(ms) };
}

describe("retry", () => {
  it("tries again with growing waits until the call succeeds", async () => {
    const { waits, sleep } = recordingSleep();
    let calls = 0;
    const v = await retry(
      async (attempt) => {
        calls++;
        if (attempt < 4) throw new Error("reset");
        return attempt;
      },
      { attempts: 5, delayMs: 50, sleep },
    );
    expect(v).toBe(4);
    expect(calls).toBe(4);
    expect(waits).toEqual([50, 100, 200]);
  });

  it("throws the last error once the tries are used up", async () => {
    const { waits, sleep } = recordingSleep();
    let n = 0;
    await expect(retry(async () => Promise.reject(new Error(`fail ${++n}`)), { attempts: 3, delayMs: 10, multiplier: 1, sleep })).rejects.toThrow("fail 3");
    expect(waits).toEqual([10, 10]);
  });

  it("caps the wait at maxDelayMs", async () => {
    const { waits, sleep } = recordingSleep();
    await expect(retry(async () => Promise.reject(new Error("x")), { attempts: 5, delayMs: 100, multiplier: 3, maxDelayMs: 500, sleep })).rejects.toThrow();
    expect(waits).toEqual([100, 300, 500, 500]);
  });

  it("stops at a failure that is not retryable, and when the caller no longer wants the result", async () => {
    const { sleep } = recordingSleep();
    let calls = 0;
    const notFound = new FloeError("job_not_found", "no such job", 404);
    await expect(retry(async () => Promise.reject((calls++, notFound)), { attempts: 5, delayMs: 1, sleep })).rejects.toBe(notFound);
    expect(calls).toBe(1);
    let wanted = true;
    calls = 0;
    await expect(
      retry(
        async () => {
          calls++;
          wanted = false;
          throw new Error("reset");
        },
        { attempts: 5, delayMs: 1, sleep, stillWanted: () => wanted },
      ),
    ).rejects.toThrow("reset");
    expect(calls).toBe(1);
  });

  it("refuses options that cannot mean anything", async () => {
    const { sleep } = recordingSleep();
    await expect(retry(async () => 1, { attempts: 0, delayMs: 1, sleep })).rejects.toThrow(RangeError);
    await expect(retry(async () => 1, { attempts: 2, delayMs: -1, sleep })).rejects.toThrow(RangeError);
  });
});

describe("isRetryable", () => {
  it("reads the Durable Object RPC error's flags", () => {
    expect(isRetryable(Object.assign(new Error("Network connection lost."), { retryable: true }))).toBe(true);
    expect(isRetryable(Object.assign(new Error("code updated"), { retryable: false }))).toBe(false);
    expect(isRetryable(Object.assign(new Error("Durable Object is overloaded"), { retryable: true, overloaded: true }))).toBe(false);
  });

  it("retries the server's floe errors and rate limits, not the caller's", () => {
    expect(isRetryable(new FloeError("internal", "x", 500))).toBe(true);
    expect(isRetryable(new FloeError("stream_full", "x", 429))).toBe(true);
    expect(isRetryable(new FloeError("invalid_request", "x", 400))).toBe(false);
  });

  it("takes an error that says nothing as transient", () => {
    expect(isRetryable(new Error("broken stub"))).toBe(true);
    expect(isRetryable("string thrown")).toBe(true);
  });
});
