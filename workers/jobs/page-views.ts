/**
 * The second example job: page views arrive over HTTP on the stream
 * "page-views" with their event time, are counted per URL in tumbling
 * one-minute event-time windows, and each window's count is written to the
 * table "page-views-per-minute" when the watermark passes its end. Views
 * that arrive after their window fired go to a side output, counted per
 * window in the table "page-views-late": for every URL and minute, the two
 * tables add up to the views ingested, exactly once. (DESIGN.md, "Names
 * other programs rely on".)
 */
import {
  type AggregateFunction,
  type KeyedProcessFunction,
  OutputTag,
  type ProcessWindowFunction,
  type TableRecord,
  type TimeWindow,
  TumblingEventTimeWindows,
  WatermarkStrategy,
  httpSource,
  job,
  tableSink,
  valueState,
} from "floe";

/** A page view as ingested; `ts` is its event time in epoch ms. */
export interface PageView {
  url: string;
  ts: number;
  user?: string;
}

/** One window's row of "page-views-per-minute". */
export interface PageViewCount {
  url: string;
  window_start: string;
  window_end: string;
  count: number;
}

const MINUTE_MS = 60_000;
/** How far (in event time) a view may arrive behind the newest one of its partition and still be counted. */
export const OUT_OF_ORDERNESS_MS = 5_000;
/** A partition quiet this long (processing time) stops holding the watermark back, so the last windows fire. */
export const IDLENESS_MS = 5_000;

/** Checks a record at ingestion, so that a bad one is refused with a 400. */
export function checkPageView(record: unknown): string | undefined {
  if (typeof record !== "object" || record === null || Array.isArray(record)) return "a page view must be a JSON object";
  const r = record as Record<string, unknown>;
  if (typeof r.url !== "string" || r.url.length === 0) return 'a page view needs "url": a non-empty string';
  if (typeof r.ts !== "number" || !Number.isFinite(r.ts) || r.ts < 0) return 'a page view needs "ts": its event time as a number of epoch milliseconds';
  if (r.user !== undefined && typeof r.user !== "string") return '"user" must be a string';
  return undefined;
}

/** The row key of a URL's window: `<url>|<window start as ISO 8601 UTC>`. */
export function windowRowKey(url: string, windowStartMs: number): string {
  return `${url}|${new Date(windowStartMs).toISOString()}`;
}

/** The start of the one-minute window (aligned to the epoch) that holds `ts`. */
export function minuteOf(ts: number): number {
  return Math.floor(ts / MINUTE_MS) * MINUTE_MS;
}

const countViews: AggregateFunction<PageView, number, number> = {
  createAccumulator: () => 0,
  add: (_view, n) => n + 1,
  merge: (a, b) => a + b,
  getResult: (n) => n,
};

/** Turns a window's count into its table row. */
const toRow: ProcessWindowFunction<number, TableRecord<PageViewCount>, string> = {
  process(url, ctx, [count], out) {
    const w = ctx.window as TimeWindow;
    out.collect({
      key: windowRowKey(url, w.startMs),
      value: { url, window_start: new Date(w.startMs).toISOString(), window_end: new Date(w.endMs).toISOString(), count },
    });
  },
};

const lateCount = valueState<number>("late-count");

/** Counts late views per row key (URL and window). */
const countLate: KeyedProcessFunction<string, PageView, TableRecord<number>> = {
  state: [lateCount],
  processElement(_view, ctx, out) {
    const state = ctx.getState(lateCount);
    const n = (state.value() ?? 0) + 1;
    state.update(n);
    out.collect({ key: ctx.currentKey, value: n });
  },
};

/** Views whose window already fired. */
export const lateViews = new OutputTag<PageView>("late-page-views");

export const pageViews = job("page-views", { maxParallelism: 128, checkpoint: { intervalMs: 1000 } });
const perMinute = pageViews
  .source(httpSource<PageView>("page-views", { partitions: 4, validate: checkPageView, partitionKey: "url" }), {
    uid: "page-views-in",
    watermarks: WatermarkStrategy.forBoundedOutOfOrderness<PageView>(OUT_OF_ORDERNESS_MS)
      .withTimestampAssigner((v) => Math.floor(v.ts))
      .withIdleness(IDLENESS_MS),
  })
  .keyBy((v) => v.url)
  .window(TumblingEventTimeWindows.of(MINUTE_MS))
  .sideOutputLateData(lateViews)
  .aggregate(countViews, toRow, { uid: "views-per-minute", parallelism: 4 });
perMinute.sink(tableSink<PageViewCount>("page-views-per-minute"), { uid: "per-minute-out" });
perMinute
  .getSideOutput(lateViews)
  .keyBy((v) => windowRowKey(v.url, minuteOf(v.ts)))
  .process(countLate, { uid: "late-per-minute", parallelism: 2 })
  .sink(tableSink<number>("page-views-late"), { uid: "late-out" });
