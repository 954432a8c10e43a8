/**
 * A Durable Object has one alarm; the coordinator's concerns (restarts,
 * checkpoint timeouts, heartbeats, periodic triggers) share it by
 * composition: each offers when it is next due and what to run then, and
 * the alarm runs them in order and is set again to the earliest time any
 * of them offers (as cloudflare/agents composes its capabilities).
 */

/** One concern that shares the object's alarm. */
export interface AlarmConcern {
  /** When it next wants the alarm, seen at `nowMs` (null: not at all). */
  nextAlarmMs(nowMs: number): number | null;
  /** Runs what is due at `nowMs`; nothing when nothing is. */
  onAlarm(nowMs: number): Promise<void>;
}

/** The one alarm, shared by `concerns` (run in the order given). */
export class SharedAlarm {
  constructor(
    private readonly concerns: readonly AlarmConcern[],
    private readonly clock: { now(): number; setAlarm(atMs: number | null): Promise<void> },
  ) {}

  /** The alarm fired: every concern runs what is due at this moment, then the alarm is set again. */
  async run(): Promise<void> {
    const now = this.clock.now();
    for (const c of this.concerns) await c.onAlarm(now);
    await this.schedule();
  }

  /** Sets the alarm to the earliest time a concern is due (deletes it when none is). */
  async schedule(): Promise<void> {
    const now = this.clock.now();
    const due = this.concerns.map((c) => c.nextAlarmMs(now)).filter((t): t is number => t !== null);
    await this.clock.setAlarm(due.length === 0 ? null : Math.min(...due));
  }
}
