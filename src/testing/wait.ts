/** Polling for a condition in tests against a running engine. */

/** Options of {@link waitFor}. */
export interface WaitOptions {
  /** Give up after this long (default 20 s). */
  readonly timeoutMs?: number;
  /** What is waited for, for the error on timeout. */
  readonly what?: string;
  /** Time between two tries (default 50 ms). */
  readonly intervalMs?: number;
}

/**
 * Calls `fn` until it returns a truthy value, which it resolves with; an
 * error thrown by `fn` counts as not yet (the last one is in the timeout's
 * message).
 *
 * @example await waitFor(async () => (await engine.readTable("clicks-per-user")).get("ada") === 2, { what: "ada's count" });
 */
export async function waitFor<T>(fn: () => Promise<T | undefined | false | null | 0 | ""> | T | undefined | false | null | 0 | "", options: WaitOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${options.what ?? "a condition"}${last ? `: ${String(last)}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 50));
  }
}
