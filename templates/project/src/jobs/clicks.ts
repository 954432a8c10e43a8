/**
 * A sample job: clicks arrive over HTTP on the stream "clicks", are counted
 * per user with keyed state, and the counts are written to the table
 * "clicks-per-user" (GET /v1/tables/clicks-per-user/:user). The table's
 * rows appear when the checkpoint that covers them completes (every
 * second), exactly once.
 */
import { type KeyedProcessFunction, type TableRecord, httpSource, job, tableSink, valueState } from "floe";

/** A click as ingested. */
export interface Click {
  user: string;
  url?: string;
}

/** Checks a record at ingestion: a bad one is refused with a 400 naming the problem, and nothing is stored. */
export function checkClick(record: unknown): string | undefined {
  if (typeof record !== "object" || record === null || Array.isArray(record)) return "a click must be a JSON object";
  const r = record as Record<string, unknown>;
  if (typeof r.user !== "string" || r.user.length === 0) return 'a click needs "user": a non-empty string';
  if (r.url !== undefined && typeof r.url !== "string") return '"url" must be a string';
  return undefined;
}

const count = valueState<number>("count");

/** Keyed count: one ValueState per user, its new value emitted as the user's row. */
export const countPerUser: KeyedProcessFunction<string, Click, TableRecord<number>> = {
  state: [count],
  processElement(_click, ctx, out) {
    const n = (ctx.getState(count).value() ?? 0) + 1;
    ctx.getState(count).update(n);
    out.collect({ key: ctx.currentKey, value: n });
  },
};

export const clicks = job("clicks", { checkpoint: { intervalMs: 1000 } });
clicks
  .source(httpSource<Click>("clicks", { partitions: 2, validate: checkClick }), { uid: "clicks-in" })
  .keyBy((c) => c.user)
  .process(countPerUser, { uid: "count-per-user", parallelism: 2 })
  .sink(tableSink<number>("clicks-per-user"), { uid: "counts-out" });
