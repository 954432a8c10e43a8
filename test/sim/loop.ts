/**
 * The virtual clock and the event loop. Time moves only from one event to
 * the next; after each event every microtask it caused runs to completion
 * (one `setImmediate` turn, which Node runs only once the microtask queue is
 * empty), so an event is one atomic turn of whatever object it touched, as
 * a Durable Object's turn is. Nothing here reads the wall clock: the same
 * seed runs the same events in the same order.
 */

interface Event {
  readonly at: number;
  readonly seq: number;
  fn: (() => void) | null;
}

/** A scheduled event that can be cancelled. */
export interface Timer {
  cancel(): void;
}

export class SimLoop {
  private nowMs = 0;
  private seq = 0;
  private readonly heap: Event[] = [];
  /** Events run so far. */
  events = 0;
  /** Errors thrown by event callbacks (bugs of the simulator itself). */
  readonly errors: unknown[] = [];

  now(): number {
    return this.nowMs;
  }

  /** Runs `fn` at virtual time `atMs` (never before now); events at one time run in scheduling order. */
  at(atMs: number, fn: () => void): Timer {
    const e: Event = { at: Math.max(atMs, this.nowMs), seq: this.seq++, fn };
    this.push(e);
    return { cancel: () => void (e.fn = null) };
  }

  after(ms: number, fn: () => void): Timer {
    return this.at(this.nowMs + Math.max(0, ms), fn);
  }

  /** Resolves after `ms` of virtual time. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.after(ms, resolve));
  }

  /** Time of the next event, if any. */
  peek(): number | undefined {
    return this.heap[0]?.at;
  }

  /**
   * Runs events until `stop()` holds (checked after each event), virtual
   * time passes `untilMs`, or `maxEvents` ran.
   */
  async run(untilMs: number, stop: () => boolean = () => false, maxEvents = Number.POSITIVE_INFINITY): Promise<"stopped" | "time" | "events" | "idle"> {
    let ran = 0;
    for (;;) {
      if (stop()) return "stopped";
      const e = this.heap[0];
      if (!e) {
        if (Number.isFinite(untilMs)) this.nowMs = Math.max(this.nowMs, untilMs);
        return "idle";
      }
      if (e.at > untilMs) {
        this.nowMs = untilMs;
        return "time";
      }
      if (ran >= maxEvents) return "events";
      this.pop();
      if (!e.fn) continue;
      this.nowMs = e.at;
      this.events++;
      ran++;
      try {
        e.fn();
      } catch (err) {
        this.errors.push(err);
      }
      // Let the turn finish: every promise continuation it queued runs now.
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  private push(e: Event): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l], h[m])) m = l;
      if (r < h.length && before(h[r], h[m])) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m], h[i]];
      i = m;
    }
  }
}

function before(a: Event, b: Event): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * One incarnation of a simulated object: its memory lives as long as this
 * does. Every promise handed to code of the incarnation goes through
 * {@link Life.gate}, so that once the object is reset its code never runs
 * again (as when workerd discards an object's isolate state).
 */
export class Life {
  alive = true;

  constructor(
    readonly name: string,
    readonly incarnation: number,
  ) {}

  /** `p`, settled only while this incarnation lives; never settled after it died. */
  gate<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      p.then(
        (v) => {
          if (this.alive) resolve(v);
        },
        (e: unknown) => {
          if (this.alive) reject(e);
        },
      );
    });
  }
}
