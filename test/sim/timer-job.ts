/**
 * The simulator's timer branch (in half the runs, drawn from its own random
 * stream): the sources' union, keyed by `key` again, into a keyed process
 * function with event-time and processing-time timers, into its own log
 * sink (the table `timer-log`). Per record it emits an `in` row saying
 * which timers that record asked for; each timer emits one row when it
 * fires. The oracle (timer-oracle.ts) checks those rows against each other.
 *
 * - Event time: a record with an event time asks for a timer at the end of
 *   its 100 ms window, unless that key already fired a timer at or past it
 *   (kept in state: after a restore the watermark starts afresh, and a
 *   replayed late record must not fire its window twice).
 * - Processing time: every third record (by offset) puts its id on the
 *   key's list and asks for a timer 30–40 ms ahead (rounded, so several
 *   share one); the timer emits the list and clears it.
 */
import { listState, valueState } from "../../src/api/state.js";
import type { KeyedProcessFunction } from "../../src/api/types.js";
import type { InRecord } from "./jobs.js";

/** Event-time windows of the timer branch. */
export const WINDOW_MS = 100;

/** The end (inclusive) of the window holding `ts`. */
export function windowEnd(ts: number): number {
  return Math.floor(ts / WINDOW_MS) * WINDOW_MS + WINDOW_MS - 1;
}

/** A row of the timer log. */
export type TimerRow =
  /** One input record: the event-time timer it asked for (null: none) and whether it asked for a processing-time one. */
  | { kind: "in"; key: string; id: string; et: number | null; pt: boolean }
  /** An event-time timer fired: the watermark then, and the event time its output carried. */
  | { kind: "et"; key: string; ts: number; wm: number; ctxTs: number | undefined }
  /** A processing-time timer fired with the ids waiting on the key. */
  | { kind: "pt"; key: string; ts: number; ids: string[] };

const firedUntil = valueState<number>("fired-until");
const waiting = listState<string>("pt-waiting");

/** The timer branch's keyed process function. */
export const timersPerKey: KeyedProcessFunction<string, InRecord, TimerRow> = {
  state: [firedUntil, waiting],
  processElement(r, ctx, out) {
    const id = `${r.src}/${r.part}/${r.off}`;
    let et: number | null = null;
    const ts = ctx.timestamp;
    if (ts !== undefined) {
      const end = windowEnd(ts);
      const fired = ctx.getState(firedUntil).value();
      if (fired === undefined || end > fired) {
        ctx.timerService().registerEventTimeTimer(end);
        et = end;
      }
    }
    const pt = r.off % 3 === 0;
    if (pt) {
      ctx.getListState(waiting).add(id);
      ctx.timerService().registerProcessingTimeTimer(Math.ceil((ctx.timerService().currentProcessingTime() + 30) / 10) * 10);
    }
    out.collect({ kind: "in", key: r.key, id, et, pt });
  },
  onTimer(ts, ctx, out) {
    if (ctx.timeDomain() === "event") {
      const fired = ctx.getState(firedUntil);
      if ((fired.value() ?? Number.NEGATIVE_INFINITY) < ts) fired.update(ts);
      out.collect({ kind: "et", key: ctx.currentKey, ts, wm: ctx.timerService().currentWatermark(), ctxTs: ctx.timestamp });
      return;
    }
    const ids = ctx.getListState(waiting).get();
    ctx.getListState(waiting).clear();
    out.collect({ kind: "pt", key: ctx.currentKey, ts, ids });
  },
};
