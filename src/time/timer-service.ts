/**
 * The timer service of one keyed process function in one subtask (Flink's
 * InternalTimerServiceImpl): what `ctx.timerService()` hands user code —
 * the two clocks, and timers of the current key — and the firing of due
 * timers, over the operator's keyed-state backend, whose timer queues hold
 * the timers as keyed state (src/state/timer-queue.ts).
 *
 * Firing goes one timestamp at a time: every timer at the earliest due
 * timestamp is polled, then fired key by key with the backend set to that
 * key. A timer fired may register or delete timers of its own key only, so
 * nothing it does can touch a timer polled with it; one it registers at or
 * below the time being fired fires in the same pass (as in Flink).
 */
import type { TimeDomain, TimerService } from "../api/types.js";
import { type KeyedStateBackend, keyFromText } from "../state/keyed-state.js";
import { checkTimerTimestamp } from "../state/timer-queue.js";

/** The clocks of a subtask, as a timer service reads them. */
export interface TimerClocks {
  /** The subtask's input watermark (NO_WATERMARK before the first). */
  currentWatermarkMs(): number;
  /** The subtask's clock. */
  now(): number;
  /** A processing-time timer was registered: the subtask may need to wake up earlier. */
  processingTimerRegistered?(timestampMs: number): void;
}

/** The timers of one keyed operator: the user's service, and firing. */
export class KeyedTimerService {
  /** What `ctx.timerService()` returns: scoped to the backend's current key when called. */
  readonly service: TimerService;

  constructor(
    private readonly state: KeyedStateBackend,
    /** Names the operator in errors. */
    private readonly operator: string,
    clocks: TimerClocks,
  ) {
    const event = () => state.timers("event");
    const processing = () => state.timers("processing");
    this.service = {
      currentWatermark: () => clocks.currentWatermarkMs(),
      currentProcessingTime: () => clocks.now(),
      registerEventTimeTimer: (ts) => void event().register(state.currentKeyText, this.check(ts, "event")),
      registerProcessingTimeTimer: (ts) => {
        if (processing().register(state.currentKeyText, this.check(ts, "processing"))) clocks.processingTimerRegistered?.(ts);
      },
      deleteEventTimeTimer: (ts) => void event().delete(state.currentKeyText, this.check(ts, "event")),
      deleteProcessingTimeTimer: (ts) => void processing().delete(state.currentKeyText, this.check(ts, "processing")),
    };
  }

  /**
   * Fires every timer of `domain` at or below `upToMs` (the first `max` of
   * them, when given), in timestamp order: for each, the backend's current
   * key is set to the timer's key and `fire(timestampMs)` runs. Returns how
   * many fired.
   */
  fireDue(domain: TimeDomain, upToMs: number, fire: (timestampMs: number) => void, max = Number.POSITIVE_INFINITY): number {
    const queue = this.state.timers(domain);
    let fired = 0;
    for (let ts = queue.peek(); ts !== undefined && ts <= upToMs && fired < max; ts = queue.peek()) {
      for (const t of queue.poll(ts, max - fired)) {
        this.state.setCurrentKey(keyFromText(t.key));
        fire(t.timestampMs);
        fired++;
      }
    }
    return fired;
  }

  /** The earliest timer of `domain`, or undefined. */
  next(domain: TimeDomain): number | undefined {
    return this.state.timers(domain).peek();
  }

  /** Timers pending in both domains. */
  pending(): number {
    return this.state.timerCount();
  }

  private check(timestampMs: number, domain: TimeDomain): number {
    return checkTimerTimestamp(timestampMs, this.operator, domain);
  }
}
