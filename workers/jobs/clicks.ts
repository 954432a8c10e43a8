/**
 * The example job: clicks arrive over HTTP on the stream "clicks", are
 * counted per user with keyed state, and the counts are written to the
 * table "clicks-per-user".
 */
import { type KeyedProcessFunction, type TableRecord, httpSource, job, tableSink, valueState } from "floe";

/** A click as ingested. */
export interface Click {
  user: string;
  url?: string;
  ts?: number;
}

/** Checks a record at ingestion, so that a bad one is refused with a 400. */
export function checkClick(record: unknown): string | undefined {
  if (typeof record !== "object" || record === null || Array.isArray(record)) return "a click must be a JSON object";
  const r = record as Record<string, unknown>;
  if (typeof r.user !== "string" || r.user.length === 0) return 'a click needs "user": a non-empty string';
  if (r.url !== undefined && typeof r.url !== "string") return '"url" must be a string';
  if (r.ts !== undefined && typeof r.ts !== "number") return '"ts" must be a number';
  return undefined;
}

const count = valueState<number>("count");

/** Keyed count: one ValueState per user. */
export const countPerUser: KeyedProcessFunction<string, Click, TableRecord<number>> = {
  state: [count],
  processElement(_click, ctx, out) {
    const state = ctx.getState(count);
    const n = (state.value() ?? 0) + 1;
    state.update(n);
    out.collect({ key: ctx.currentKey, value: n });
  },
};

export const clicks = job("clicks", { maxParallelism: 128, checkpoint: { intervalMs: 1000 } });
clicks
  .source(httpSource<Click>("clicks", { partitions: 4, validate: checkClick }), { uid: "clicks-in" })
  .keyBy((c) => c.user)
  .process(countPerUser, { uid: "count-per-user", parallelism: 4 })
  .sink(tableSink<number>("clicks-per-user"), { uid: "counts-out" });
