import { describe, expect, it } from "vitest";
import type { AsyncFunction } from "../api/async-function.js";
import { AsyncTimeoutError, AsyncWaitOperator, type AsyncOutput } from "./async-wait-operator.js";
import { AsyncRetryStrategies, RetryPredicates } from "./retry-strategy.js";

/** A virtual clock: sleeps resolve when the test advances time past them. */
class VirtualClock {
  nowMs = 0;
  private sleepers: { atMs: number; resolve: () => void }[] = [];
  sleep = (ms: number): Promise<void> => new Promise((resolve) => this.sleepers.push({ atMs: this.nowMs + ms, resolve }));
  async advance(ms: number): Promise<void> {
    const end = this.nowMs + ms;
    for (;;) {
      await flush();
      const next = this.sleepers.filter((s) => s.atMs <= end).sort((a, b) => a.atMs - b.atMs)[0];
      if (!next) break;
      this.nowMs = next.atMs;
      this.sleepers = this.sleepers.filter((s) => s !== next);
      next.resolve();
    }
    this.nowMs = end;
    await flush();
  }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** A service whose answers the test releases by hand. */
class Service {
  calls: { input: string; attempt: number; signal: AbortSignal; answer: (v: string[]) => void; fail: (e: unknown) => void }[] = [];
  open = 0;
  maxOpen = 0;
  fn: AsyncFunction<string, string> = {
    asyncInvoke: (input, ctx) => {
      this.open++;
      this.maxOpen = Math.max(this.maxOpen, this.open);
      return new Promise<string[]>((resolve, reject) => {
        const done = () => this.open--;
        this.calls.push({ input, attempt: ctx.attempt, signal: ctx.signal, answer: (v) => (done(), resolve(v)), fail: (e) => (done(), reject(e)) });
        ctx.signal.addEventListener("abort", () => (done(), reject(ctx.signal.reason)));
      });
    },
  };
  call(input: string, attempt = 1) {
    const c = this.calls.find((x) => x.input === input && x.attempt === attempt);
    if (!c) throw new Error(`no call for ${input} attempt ${attempt}; calls: ${this.calls.map((x) => `${x.input}#${x.attempt}`)}`);
    return c;
  }
}

const show = (outs: AsyncOutput<string, string, number>[]) =>
  outs.map((o) => (o.kind === "watermark" ? `wm${o.mark}` : o.result.ok ? `${o.input}=${o.result.results.join("+")}` : `${o.input}!${(o.result.error as Error).message}`));

describe("AsyncWaitOperator", () => {
  it("keeps at most maxConcurrentRequests open and at most capacity records in the queue", async () => {
    const clock = new VirtualClock();
    const s = new Service();
    const op = new AsyncWaitOperator<string, string, number>(s.fn, { mode: "unordered", capacity: 4, timeoutMs: 10_000, maxConcurrentRequests: 2 }, clock);
    for (const x of ["a", "b", "c", "d", "e", "f"]) op.add(x);
    await flush();
    expect(s.calls.map((c) => c.input)).toEqual(["a", "b"]);
    expect(op.size).toBe(4);
    expect(op.backlogged).toBe(true);
    expect(op.pendingInputs()).toEqual(["a", "b", "c", "d", "e", "f"]);
    s.call("b").answer(["B"]);
    await flush();
    expect(s.calls.map((c) => c.input)).toEqual(["a", "b", "c"]);
    expect(show(op.poll())).toEqual(["b=B"]);
    // b left: e enters the queue (f still waits).
    expect(op.size).toBe(4);
    expect(op.pendingInputs()).toEqual(["a", "c", "d", "e", "f"]);
    for (const x of ["a", "c", "d", "e", "f"]) {
      await flush();
      s.call(x).answer([x.toUpperCase()]);
      await flush();
      op.poll();
    }
    expect(s.maxOpen).toBe(2);
    expect(op.isEmpty()).toBe(true);
  });

  it("ordered: holds results behind a slow request; unordered: does not", async () => {
    for (const mode of ["ordered", "unordered"] as const) {
      const clock = new VirtualClock();
      const s = new Service();
      const op = new AsyncWaitOperator<string, string, number>(s.fn, { mode, capacity: 10, timeoutMs: 10_000, maxConcurrentRequests: 6 }, clock);
      op.add("slow");
      op.add("fast");
      await flush();
      s.call("fast").answer(["F"]);
      await op.whenProgress();
      expect(show(op.poll()), mode).toEqual(mode === "ordered" ? [] : ["fast=F"]);
      s.call("slow").answer(["S"]);
      await op.whenProgress();
      expect(show(op.poll()), mode).toEqual(mode === "ordered" ? ["slow=S", "fast=F"] : ["slow=S"]);
    }
  });

  it("retries per the strategy, after its delay, and gives the last outcome when attempts run out", async () => {
    const clock = new VirtualClock();
    const s = new Service();
    const retry = AsyncRetryStrategies.fixedDelay<string>({ maxAttempts: 3, delayMs: 100 }).ifException(RetryPredicates.HAS_EXCEPTION);
    const op = new AsyncWaitOperator<string, string, number>(s.fn, { mode: "ordered", capacity: 10, timeoutMs: 10_000, maxConcurrentRequests: 6, retry }, clock);
    op.add("a");
    op.add("b");
    await flush();
    s.call("a").fail(new Error("503"));
    s.call("b").fail(new Error("503"));
    await clock.advance(99);
    expect(s.calls.length, "no retry before the delay").toBe(2);
    await clock.advance(1);
    s.call("a", 2).answer(["A"]);
    s.call("b", 2).fail(new Error("503"));
    await clock.advance(100);
    s.call("b", 3).fail(new Error("still 503"));
    await flush();
    expect(show(op.poll())).toEqual(["a=A", "b!still 503"]);
    expect(op.requests).toBe(5);
    expect(op.retries).toBe(3);
  });

  it("times out over all attempts: aborts the one in flight and asks the timeout handler", async () => {
    const clock = new VirtualClock();
    const s = new Service();
    const fn: AsyncFunction<string, string> = { asyncInvoke: s.fn.asyncInvoke, timeout: (x) => [`${x}-default`] };
    const retry = AsyncRetryStrategies.fixedDelay<string>({ maxAttempts: 10, delayMs: 300 }).ifException(RetryPredicates.HAS_EXCEPTION);
    const op = new AsyncWaitOperator<string, string, number>(fn, { mode: "ordered", capacity: 10, timeoutMs: 1000, maxConcurrentRequests: 6, retry }, clock);
    op.add("a");
    await flush();
    s.call("a").fail(new Error("503"));
    await clock.advance(300);
    s.call("a", 2).fail(new Error("503"));
    await clock.advance(300);
    const third = s.call("a", 3);
    await clock.advance(400);
    expect(third.signal.aborted).toBe(true);
    expect(third.signal.reason).toBeInstanceOf(AsyncTimeoutError);
    expect(show(op.poll())).toEqual(["a=a-default"]);
    expect(op.timeouts).toBe(1);
    await clock.advance(5000);
    expect(s.calls.length, "no attempt after the timeout").toBe(3);
  });

  it("counts the timeout from the first attempt, not while a record waits for a connection permit", async () => {
    const clock = new VirtualClock();
    const s = new Service();
    const op = new AsyncWaitOperator<string, string, number>(s.fn, { mode: "ordered", capacity: 2, timeoutMs: 100, maxConcurrentRequests: 1 }, clock);
    op.add("a");
    op.add("b");
    await clock.advance(90);
    s.call("a").answer(["A"]);
    await clock.advance(60);
    expect(op.timeouts, "b started at 90 ms: not timed out at 150").toBe(0);
    s.call("b").answer(["B"]);
    await flush();
    expect(show(op.poll())).toEqual(["a=A", "b=B"]);
  });

  it("fails a record that times out without a handler, and ignores its late answer", async () => {
    const clock = new VirtualClock();
    const s = new Service();
    const fn: AsyncFunction<string, string> = { asyncInvoke: (x, ctx) => s.fn.asyncInvoke(x, { ...ctx, signal: new AbortController().signal }) };
    const op = new AsyncWaitOperator<string, string, number>(fn, { mode: "ordered", capacity: 10, timeoutMs: 50, maxConcurrentRequests: 6 }, clock);
    op.add("a");
    await clock.advance(50);
    s.call("a").answer(["late"]);
    await flush();
    const out = op.poll();
    expect(out).toHaveLength(1);
    expect(out[0].kind === "record" && !out[0].result.ok && out[0].result.error).toBeInstanceOf(AsyncTimeoutError);
  });

  it("keeps watermarks after the records taken before them, backlog included", async () => {
    const clock = new VirtualClock();
    const s = new Service();
    const op = new AsyncWaitOperator<string, string, number>(s.fn, { mode: "unordered", capacity: 1, timeoutMs: 10_000, maxConcurrentRequests: 1 }, clock);
    op.add("a");
    op.add("b");
    op.addWatermark(7);
    op.add("c");
    await flush();
    s.call("a").answer(["A"]);
    await flush();
    expect(show(op.poll())).toEqual(["a=A"]);
    await flush();
    s.call("b").answer(["B"]);
    await flush();
    expect(show(op.poll())).toEqual(["b=B", "wm7"]);
    await flush();
    s.call("c").answer(["C"]);
    await flush();
    expect(show(op.poll())).toEqual(["c=C"]);
  });

  it("resolves whenProgress for a completion that came before it was asked", async () => {
    const clock = new VirtualClock();
    const s = new Service();
    const op = new AsyncWaitOperator<string, string, number>(s.fn, { mode: "ordered", capacity: 2, timeoutMs: 10_000, maxConcurrentRequests: 2 }, clock);
    op.add("a");
    await flush();
    s.call("a").answer(["A"]);
    await flush();
    await op.whenProgress();
    expect(show(op.poll())).toEqual(["a=A"]);
  });

  it("aborts attempts in flight on close and starts none after", async () => {
    const clock = new VirtualClock();
    const s = new Service();
    const op = new AsyncWaitOperator<string, string, number>(s.fn, { mode: "ordered", capacity: 2, timeoutMs: 10_000, maxConcurrentRequests: 1 }, clock);
    op.add("a");
    op.add("b");
    await flush();
    const waiting = op.whenProgress();
    op.close();
    await waiting;
    await flush();
    expect(s.call("a").signal.aborted).toBe(true);
    expect(s.calls).toHaveLength(1);
  });
});
