/**
 * One Durable Object alarm: one slot (a new setAlarm replaces the old), kept
 * in storage across resets, fired at least once. An invocation that throws,
 * or dies with its object, is retried after a backoff unless a new alarm was
 * set meanwhile. Invocations of one object run one at a time (a firing due
 * while the handler runs waits for it); the "alarm-twice" fault delivers a
 * firing once more right after its handler finished, as an at-least-once
 * alarm may.
 */
import type { Faults } from "./faults.js";
import type { Life, SimLoop, Timer } from "./loop.js";
import type { Rng } from "./prng.js";
import type { Trace } from "./trace.js";

export class AlarmSlot {
  private atMs: number | null = null;
  private timer: Timer | undefined;
  private running = 0;
  private deferred = false;
  /** Firings so far. */
  fired = 0;

  constructor(
    private readonly name: string,
    private readonly loop: SimLoop,
    private readonly rng: Rng,
    private readonly faults: Faults,
    private readonly trace: Trace,
    /** Runs the handler on the object's current incarnation. */
    private readonly handler: () => { life: Life; run: () => Promise<void> },
  ) {}

  /** Whether an alarm is set (getAlarm() !== null). */
  get scheduled(): boolean {
    return this.atMs !== null;
  }

  /** setAlarm(atMs), or deleteAlarm() with null. */
  set(atMs: number | null): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.atMs = atMs;
    if (atMs !== null) this.timer = this.loop.at(Math.max(atMs, this.loop.now()) + this.rng.int(2), () => this.due());
  }

  private due(): void {
    this.timer = undefined;
    if (this.running > 0) {
      this.deferred = true;
      return;
    }
    this.atMs = null;
    this.fired++;
    this.invoke(this.faults.rollAlarmTwice());
  }

  /** Runs the handler; `again`: the runtime delivers this firing once more after it (at-least-once). */
  private invoke(again = false): void {
    const { life, run } = this.handler();
    this.running++;
    const done = (ok: boolean, e?: unknown) => {
      if (!life.alive) return; // onReset took care of it
      this.running--;
      if (!ok) {
        this.trace.log("alarm", `alarm of ${this.name} threw: ${(e as Error)?.message ?? e}`);
        if (this.atMs === null) this.retry();
      }
      if (again && this.running === 0) {
        this.faults.count("alarm-twice");
        this.trace.log("fault", `alarm of ${this.name} is delivered again`);
        this.loop.after(this.rng.int(4), () => {
          if (this.running === 0) this.invoke();
        });
      }
      this.rearmDeferred();
    };
    let p: Promise<void>;
    try {
      p = run();
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      () => done(true),
      (e: unknown) => done(false, e),
    );
  }

  private rearmDeferred(): void {
    if (this.running === 0 && this.deferred) {
      this.deferred = false;
      if (this.atMs !== null) this.set(this.atMs);
    }
  }

  private retry(): void {
    const at = this.loop.now() + this.rng.range(100, 1000);
    this.trace.log("alarm", `alarm of ${this.name} will be retried at ${at}`);
    this.set(at);
  }

  /** The object was reset: invocations in flight died with it; the runtime retries them. */
  onReset(): void {
    if (this.running === 0) return;
    this.running = 0;
    if (this.atMs === null) this.retry();
    this.rearmDeferred();
  }
}
