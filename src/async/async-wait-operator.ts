/**
 * Drives an async function over records (Flink's AsyncWaitOperator), pure
 * logic on an injected clock:
 *
 * - records are taken into a backlog, and from it into the queue while
 *   the queue has room (`capacity`); each record in the queue runs its
 *   request as soon as one of `maxConcurrentRequests` connection permits
 *   is free;
 * - a record's timeout counts from the start of its first attempt (not
 *   while it waits for a connection permit) and covers every attempt and
 *   the waits between them (as Flink's); when it
 *   passes, the attempt in flight is aborted (its signal) and the timeout
 *   handler gives the record's outcome;
 * - after each attempt the retry strategy says whether to try again, and
 *   after how long;
 * - the outcome (results, or the error that failed the record) completes
 *   the record's slot; {@link poll} hands out what may leave, in the
 *   queue's order, with the watermarks between.
 *
 * What a checkpoint keeps is {@link pendingInputs}: every record taken
 * and not handed out yet, backlog included, in arrival order.
 */
import type { AsyncFunction } from "../api/async-function.js";
import { AsyncRetryStrategies, type AsyncRetryStrategy, type AttemptOutcome } from "./retry-strategy.js";
import { createQueue, type QueueOutput, type StreamElementQueue } from "./stream-element-queue.js";

/** The operator's clock. */
export interface AsyncClock {
  sleep(ms: number): Promise<void>;
}

/** How the operator runs. */
export interface AsyncWaitOptions<O> {
  readonly mode: "ordered" | "unordered";
  readonly capacity: number;
  readonly timeoutMs: number;
  readonly maxConcurrentRequests: number;
  readonly retry?: AsyncRetryStrategy<O>;
}

/** A record's request timed out and it has no timeout handler (Flink's TimeoutException). */
export class AsyncTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`async request timed out after ${timeoutMs} ms`);
    this.name = "AsyncTimeoutError";
  }
}

/** What leaves the operator: a record's outcome, or a watermark. */
export type AsyncOutput<I, O, W> = QueueOutput<I, AttemptOutcome<O>, W>;

/** One async operator instance. */
export class AsyncWaitOperator<I, O, W> {
  private readonly queue: StreamElementQueue<I, AttemptOutcome<O>, W>;
  /** Taken, not yet in the queue: records, and watermarks behind them. */
  private readonly backlog: ({ readonly input: I } | { readonly mark: W })[] = [];
  private readonly retry: AsyncRetryStrategy<O>;
  /** Requests open now. */
  private active = 0;
  /** Records waiting for a connection permit. */
  private readonly waitingForPermit: (() => void)[] = [];
  /** Waiting for any record to complete. */
  private progress: { promise: Promise<void>; resolve: () => void } | undefined;
  /** A record completed since the last poll. */
  private completedSincePoll = false;
  /** The attempts in flight: aborted on close. */
  private readonly controllers = new Set<AbortController>();
  private closed = false;
  /** Requests started, retries included. */
  requests = 0;
  /** Retries started. */
  retries = 0;
  /** Records whose timeout passed. */
  timeouts = 0;

  constructor(
    private readonly fn: AsyncFunction<I, O>,
    private readonly options: AsyncWaitOptions<O>,
    private readonly clock: AsyncClock,
  ) {
    this.queue = createQueue(options.mode, options.capacity);
    this.retry = options.retry ?? AsyncRetryStrategies.noRetry<O>();
  }

  /** Takes a record: its request starts once the queue has room and a permit is free. */
  add(input: I): void {
    this.backlog.push({ input });
    this.admit();
  }

  /** Takes a watermark: it leaves after the records taken before it (see the queue's orders). */
  addWatermark(mark: W): void {
    this.backlog.push({ mark });
    this.admit();
  }

  /** Hands out what may leave now, and takes records from the backlog into the room that made. */
  poll(): AsyncOutput<I, O, W>[] {
    this.completedSincePoll = false;
    const out = this.queue.poll();
    if (out.length > 0) this.admit();
    return out;
  }

  /** Whether records are waiting to enter the queue (the task reads no more input until they are in). */
  get backlogged(): boolean {
    return this.backlog.length > 0;
  }

  /** Whether nothing is in the operator. */
  isEmpty(): boolean {
    return this.backlog.length === 0 && this.queue.isEmpty();
  }

  /** Records in the queue. */
  get size(): number {
    return this.queue.size;
  }

  /** Resolves when a record completes (at once when one did since the last poll). */
  whenProgress(): Promise<void> {
    if (this.completedSincePoll) return Promise.resolve();
    this.progress ??= promiseWithResolve();
    return this.progress.promise;
  }

  /** Every record taken and not handed out yet, in arrival order: what a checkpoint keeps. */
  pendingInputs(): I[] {
    const backlog = this.backlog.flatMap((e) => ("input" in e ? [e.input] : []));
    return [...this.queue.pendingInputs(), ...backlog];
  }

  /** The task ended: attempts in flight are aborted, nothing more starts, and a wait for progress ends. */
  close(): void {
    this.closed = true;
    for (const c of this.controllers) c.abort(new Error("async operator closed"));
    this.controllers.clear();
    // A loop waiting for progress wakes up and sees that its task ended.
    const p = this.progress;
    this.progress = undefined;
    p?.resolve();
  }

  private admit(): void {
    while (this.backlog.length > 0) {
      const e = this.backlog[0];
      if ("mark" in e) this.queue.addWatermark(e.mark);
      else if (this.queue.hasCapacity()) void this.run(e.input);
      else return;
      this.backlog.shift();
    }
  }

  /** One record: attempts, waits and the timeout, until its slot completes. */
  private async run(input: I): Promise<void> {
    const slot = this.queue.addRecord(input);
    const finish = (outcome: AttemptOutcome<O>) => {
      if (slot.done) return;
      slot.complete(outcome);
      this.completedSincePoll = true;
      const p = this.progress;
      this.progress = undefined;
      p?.resolve();
    };
    let current: AbortController | undefined;
    const { timeoutMs } = this.options;
    for (let attempt = 1; !slot.done && !this.closed; attempt++) {
      await this.acquire();
      if (slot.done || this.closed) {
        this.release();
        return;
      }
      if (attempt === 1) {
        // From the first attempt on: a wait for a connection permit is this operator's own queueing, not the service's slowness.
        void this.clock.sleep(timeoutMs).then(async () => {
          if (slot.done || this.closed) return;
          this.timeouts++;
          current?.abort(new AsyncTimeoutError(timeoutMs));
          finish(await this.onTimeout(input));
        });
      }
      const controller = new AbortController();
      current = controller;
      this.controllers.add(controller);
      this.requests++;
      if (attempt > 1) this.retries++;
      let outcome: AttemptOutcome<O>;
      try {
        outcome = { ok: true, results: [...(await this.fn.asyncInvoke(input, { signal: controller.signal, attempt }))] };
      } catch (error) {
        outcome = { ok: false, error };
      } finally {
        this.controllers.delete(controller);
        this.release();
      }
      if (slot.done || this.closed) return;
      const delayMs = this.retry.nextDelayMs(attempt, outcome);
      if (delayMs === undefined) return finish(outcome);
      if (delayMs > 0) await this.clock.sleep(delayMs);
    }
  }

  private async onTimeout(input: I): Promise<AttemptOutcome<O>> {
    if (typeof this.fn.timeout !== "function") return { ok: false, error: new AsyncTimeoutError(this.options.timeoutMs) };
    try {
      return { ok: true, results: [...(await this.fn.timeout(input))] };
    } catch (error) {
      return { ok: false, error };
    }
  }

  private acquire(): Promise<void> {
    if (this.active < this.options.maxConcurrentRequests) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waitingForPermit.push(resolve));
  }

  private release(): void {
    const next = this.waitingForPermit.shift();
    // The permit passes straight to the next waiter.
    if (next) next();
    else this.active--;
  }
}

function promiseWithResolve(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
