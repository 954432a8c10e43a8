/**
 * The simulator's window branch (in some runs, drawn from its own random
 * stream): a source of its own (`in-w`, one partition: an HTTP stream, or a
 * generator in bounded runs) with a bounded out-of-orderness watermark
 * strategy, keyed by `key` into a window built with floe's real window API
 * — tumbling, sliding or session windows on event time, with reduce,
 * aggregate or process functions, sometimes allowed lateness — into its own
 * log sink (the table `window-log`, one row per key and window: a re-fired
 * window updates its row, as a table sink would).
 *
 * Each result names the records it counted (their offsets), so the oracle
 * (window-oracle.ts) can say of every record whether it was counted in the
 * one final result of each window it belongs to, or dropped as late.
 *
 * The input is drawn so that what is late does not depend on timing (see
 * {@link drawWindowInput}): most records are within the bound; some come
 * later than the bound but within the allowed lateness (they are always
 * counted, and re-fire their window when it already fired); some are so
 * late that a watermark already sent before them, on the only channel,
 * passed their windows' cleanup (they are dropped; only with `--known W`,
 * since a restore in between voids that watermark). One partition and one
 * source subtask make that watermark exact: a record at offset j is
 * preceded by the watermark of every batch before its own, and a batch
 * holds at most `readSpan` records (a generator reads `batchSize`; the
 * HTTP source reads whole appends, at least one). No idleness: an idle
 * partition would let another's watermark decide.
 */
import type { DataStream } from "../../src/api/job.js";
import { EventTimeSessionWindows, SlidingEventTimeWindows, TumblingEventTimeWindows, type WindowAssigner } from "../../src/window/assigners.js";
import { type TimeWindow, type Window, windowStart } from "../../src/window/time-window.js";
import type { AggregateFunction, ProcessWindowFunction } from "../../src/window/window-functions.js";
import type { Rng } from "./prng.js";
import { windowReference } from "./window-oracle.js";

/** A record of the window branch's source: `ts` is its event time. */
export interface WRecord {
  key: string;
  v: number;
  off: number;
  ts: number;
}

/** The windows of a run. */
export type WindowKind =
  | { readonly kind: "tumbling"; readonly sizeMs: number }
  | { readonly kind: "sliding"; readonly sizeMs: number; readonly slideMs: number }
  | { readonly kind: "session"; readonly gapMs: number };

/** The window function: incremental (reduce, aggregate) with or without a process function, or a process function over all elements. */
export type WindowFn = "reduce" | "reduce+process" | "aggregate" | "aggregate+process" | "process";

/** The window branch of one run. */
export interface WindowShape {
  readonly windows: WindowKind;
  readonly fn: WindowFn;
  readonly allowedLatenessMs: number;
  /** The source's out-of-orderness bound. */
  readonly boundMs: number;
  readonly parallelism: number;
  readonly keys: number;
  /**
   * The most records one read of the source takes: the batch size for the
   * generator; for the HTTP source, a read takes whole appends (at least
   * one), so also the largest append ({@link APPEND_MAX}).
   */
  readonly readSpan: number;
  /** The source's records, in offset order (unbounded runs end with {@link FLUSH_KEY}'s record). */
  readonly input: readonly WRecord[];
}

/** The key of the last record of an unbounded run's input: its event time moves the watermark past every window. */
export const FLUSH_KEY = "~flush";
/** The most records the run appends to `in-w` at once. */
export const APPEND_MAX = 6;
/** The event time of {@link FLUSH_KEY}'s records. */
export const FLUSH_TS = 1e12;

/** A window's result: its key and window, and what it counted. */
export interface WindowRow {
  key: string;
  start: number;
  end: number;
  count: number;
  sum: number;
  /** Offsets of the records counted, ascending. */
  offs: number[];
  minTs: number;
  maxTs: number;
}

/** The incremental state of reduce and aggregate. */
export interface Part {
  key: string;
  count: number;
  sum: number;
  offs: number[];
  minTs: number;
  maxTs: number;
}

export function assignerOf(w: WindowKind): WindowAssigner {
  if (w.kind === "tumbling") return TumblingEventTimeWindows.of(w.sizeMs);
  if (w.kind === "sliding") return SlidingEventTimeWindows.of(w.sizeMs, w.slideMs);
  return EventTimeSessionWindows.withGap(w.gapMs);
}

/** The windows a record with event time `ts` is assigned to (before sessions merge). */
export function assignedWindows(w: WindowKind, ts: number): TimeWindow[] {
  return assignerOf(w).assign(ts, 0) as TimeWindow[];
}

export function rowKey(r: { key: string; start: number; end: number }): string {
  return `${r.key}|${r.start}|${r.end}`;
}

function partOf(r: WRecord): Part {
  return { key: r.key, count: 1, sum: r.v, offs: [r.off], minTs: r.ts, maxTs: r.ts };
}

/** Combines two parts into a new one (never changes either: the state backend may hold them). */
function combine(a: Part, b: Part): Part {
  return { key: a.key, count: a.count + b.count, sum: a.sum + b.sum, offs: [...a.offs, ...b.offs].sort((x, y) => x - y), minTs: Math.min(a.minTs, b.minTs), maxTs: Math.max(a.maxTs, b.maxTs) };
}

function rowOf(p: Part, window: Window): WindowRow {
  const w = window as TimeWindow;
  return { key: p.key, start: w.startMs, end: w.endMs, count: p.count, sum: p.sum, offs: p.offs, minTs: p.minTs, maxTs: p.maxTs };
}

/** Without a process function the result does not know its window: tumbling and session windows follow from its records' times. */
function rowWithoutWindow(kind: WindowKind): (p: Part) => WindowRow {
  return (p) => {
    if (kind.kind === "tumbling") {
      const start = windowStart(p.minTs, 0, kind.sizeMs);
      return rowOf(p, { kind: "time", startMs: start, endMs: start + kind.sizeMs });
    }
    if (kind.kind === "session") return rowOf(p, { kind: "time", startMs: p.minTs, endMs: p.maxTs + kind.gapMs });
    throw new Error("a sliding window's result needs a process function to know its window");
  };
}

const countParts: AggregateFunction<WRecord, Part | null, Part> = {
  createAccumulator: () => null,
  add: (r, acc) => (acc === null ? partOf(r) : combine(acc, partOf(r))),
  merge: (a, b) => (a === null ? b : b === null ? a : combine(a, b)),
  getResult: (acc) => acc!,
};

const partToRow: ProcessWindowFunction<Part, WindowRow, string> = {
  process(_key, ctx, elements, out) {
    for (const p of elements) out.collect(rowOf(p, ctx.window));
  },
};

const recordsToRow: ProcessWindowFunction<WRecord, WindowRow, string> = {
  process(key, ctx, elements, out) {
    let p: Part | undefined;
    for (const r of elements) p = p ? combine(p, partOf(r)) : partOf(r);
    // A window fires only with contents: an empty one is an engine bug the oracle reports.
    if (!p) p = { key, count: 0, sum: 0, offs: [], minTs: Number.NaN, maxTs: Number.NaN };
    out.collect(rowOf(p, ctx.window));
  },
};

/** The window branch over the source's stream, with floe's window API. */
export function windowed(input: DataStream<WRecord>, shape: WindowShape): DataStream<WindowRow> {
  const opts = { uid: "window", parallelism: shape.parallelism };
  const keyed = shape.fn.startsWith("reduce") ? input.map(partOf).keyBy((p) => p.key) : undefined;
  const win = <T>(k: { window(a: WindowAssigner): { allowedLateness(ms: number): T } }) => k.window(assignerOf(shape.windows)).allowedLateness(shape.allowedLatenessMs);
  switch (shape.fn) {
    case "reduce":
      return win(keyed!).reduce(combine, undefined, opts).map(rowWithoutWindow(shape.windows));
    case "reduce+process":
      return win(keyed!).reduce(combine, partToRow, opts);
    case "aggregate":
      return win(input.keyBy((r) => r.key)).aggregate(countParts, undefined, opts).map(rowWithoutWindow(shape.windows));
    case "aggregate+process":
      return win(input.keyBy((r) => r.key)).aggregate(countParts, partToRow, opts);
    case "process":
      return win(input.keyBy((r) => r.key)).process(recordsToRow, opts);
  }
}

/** Draws a run's window branch (its input too: what is late depends on the batch size). */
export function drawWindowShape(rng: Rng, o: { bounded: boolean; batchSize: number; dropLate: boolean }): WindowShape {
  const windows = rng.pick<WindowKind>([
    { kind: "tumbling", sizeMs: 40 },
    { kind: "tumbling", sizeMs: 100 },
    { kind: "sliding", sizeMs: 60, slideMs: 20 },
    { kind: "sliding", sizeMs: 100, slideMs: 50 },
    { kind: "session", gapMs: 10 },
    { kind: "session", gapMs: 25 },
  ]);
  const fns: WindowFn[] = windows.kind === "sliding" ? ["reduce+process", "aggregate+process", "process"] : ["reduce", "reduce+process", "aggregate", "aggregate+process", "process"];
  const base = {
    windows,
    fn: rng.pick(fns),
    allowedLatenessMs: rng.pick([0, 15, 50]),
    boundMs: rng.pick([0, 5, 20]),
    parallelism: rng.range(1, 3),
    keys: rng.range(1, 6),
    readSpan: o.bounded ? o.batchSize : Math.max(o.batchSize, APPEND_MAX),
  };
  const count = o.bounded ? rng.range(30, 120) : rng.range(30, 150);
  return { ...base, input: drawWindowInput(rng, { ...base, input: [] }, count, { flush: !o.bounded, dropLate: o.dropLate }) };
}

/**
 * The source's records. Event times follow a clock that advances 1–12 ms a
 * record; a record within the bound is up to `boundMs` behind the clock.
 * About one in seven (with lateness) is later than the bound but within
 * the allowed lateness of the newest record before it: the watermark can
 * never have passed its windows' cleanup, so it is always counted (and
 * re-fires a window that already fired). With `dropLate` (bug W's trigger),
 * about one in fourteen is late by more than the lateness, against the
 * records at least a read before it: its windows' cleanup is behind a
 * watermark already sent, so it is dropped — unless a restore came in
 * between (W). Without it, no record's fate rests on the watermark's lower
 * bound. A draw whose fate the watermark's timing would decide (a session
 * it could merge with, cleaned up or not) becomes an ordinary record, and
 * an ordinary record whose fate is not settled takes the clock's time
 * (above every earlier one: always counted).
 */
export function drawWindowInput(rng: Rng, shape: WindowShape, count: number, o: { flush: boolean; dropLate: boolean }): WRecord[] {
  const out: WRecord[] = [];
  let clock = 1000 + rng.int(50);
  let maxTs = Number.NEGATIVE_INFINITY;
  const maxUpTo: number[] = [];
  const L = shape.allowedLatenessMs;
  const extent = shape.windows.kind === "session" ? shape.windows.gapMs : shape.windows.sizeMs;
  const settled = (r: WRecord) => {
    const ref = windowReference([...out, r], shape);
    return !ref.ambiguous.has(r.off) && (o.dropLate || !ref.reliesOnLower.has(r.off));
  };
  for (let off = 0; off < count; off++) {
    clock += rng.range(1, 12);
    const key = `w${rng.int(shape.keys)}`;
    const v = rng.int(100);
    const r: WRecord = { key, v, off, ts: clock - rng.int(shape.boundMs + 1) };
    const roll = rng.next();
    if (L > 0 && roll < 0.15 && off > 0) {
      const late = { ...r, ts: maxTs - shape.boundMs - 1 - rng.int(L) };
      if (settled(late)) r.ts = late.ts;
    } else if (o.dropLate && roll >= 0.15 && roll < 0.22 && off >= shape.readSpan) {
      const watermarkBefore = maxUpTo[off - shape.readSpan] - shape.boundMs - 1;
      const dropped = { ...r, ts: watermarkBefore - L - extent - rng.int(60) };
      if (dropped.ts >= 0 && settled(dropped)) r.ts = dropped.ts;
    }
    // An ordinary record can be ambiguous too (touching a session that may or may not be cleaned up): the newest time never is.
    if (!settled(r)) r.ts = clock;
    out.push(r);
    maxTs = Math.max(maxTs, r.ts);
    maxUpTo.push(maxTs);
  }
  if (o.flush) out.push({ key: FLUSH_KEY, v: 0, off: count, ts: FLUSH_TS });
  return out;
}

/** One line about the branch, for reports. */
export function describeWindows(s: WindowShape): string {
  const w = s.windows;
  const kind = w.kind === "tumbling" ? `tumbling ${w.sizeMs}` : w.kind === "sliding" ? `sliding ${w.sizeMs}/${w.slideMs}` : `session gap ${w.gapMs}`;
  return `windows(${kind} ${s.fn} lateness=${s.allowedLatenessMs} bound=${s.boundMs} p=${s.parallelism} keys=${s.keys} n=${s.input.length})`;
}
