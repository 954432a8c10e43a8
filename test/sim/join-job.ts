/**
 * The simulator's join branch (in some runs, drawn from its own random
 * stream): two sources of its own (`in-l` and `in-r`, one partition each:
 * HTTP streams, or generators in bounded runs), each with a bounded
 * out-of-orderness watermark, into one two-input operator built with
 * floe's real API — one of
 *
 * - a keyed co-process function (`a.connect(b).keyBy(fa, fb).process(fn)`),
 *   the enrichment of docs/joins.md: the left side sets the key's profile
 *   (value state; at most one per key of the right side, among profiles of
 *   a key the right side never has, which move its watermark on), the right side reads it and emits
 *   its record enriched, or waits in list state for the profile until an
 *   event-time timer `waitMs` after its time emits it without one — the
 *   input is drawn so that no right record's path is left to timing: a
 *   profile comes at most `waitMs` after each record of its key (so its
 *   timer cannot have fired before the profile came), and keys without a
 *   profile wait for the timer;
 * - or a keyed co-process function where each side puts its records into the key's map state under their bucket
 *   (event time in buckets of `bucketMs`) and asks for an event-time timer
 *   at the bucket's end; the timer reads what both sides left there, emits
 *   one row with both sides' records and clears it;
 * - an interval join (`a.keyBy(fa).intervalJoin(b.keyBy(fb)).between(lo, hi)`),
 *   bounds inclusive or exclusive: one row per joined pair;
 * - a window join (`a.join(b).where(fa).equalTo(fb).window(assigner)`),
 *   tumbling, sliding or session windows: one row per pair and window;
 * - broadcast state (`b.keyBy(f).connect(a.broadcast(rules)).process(fn)`):
 *   the left side's records are rules, broadcast to every subtask and kept
 *   in broadcast state under their key and offset; a right record waits in
 *   keyed state until an event-time timer `waitMs` after its time, which
 *   emits it with every rule of its key at or before that time, read from
 *   the broadcast state (rules later than that may have come already, and
 *   are left out: so the row does not depend on timing);
 *
 * into its own log sink (the table `join-log`, one row per output: its id).
 *
 * **No record is late.** Each side's event times follow a clock that
 * advances 1–12 ms a record, and a record is at most `boundMs` behind it:
 * so its time is above (newest time before it on its side) − bound − 1,
 * which is the highest watermark its side can have sent before it, and the
 * operator's watermark (the minimum of both sides, restored from a
 * checkpoint or not) is never higher. Hence every record joins, every
 * co-process bucket is still open when its records come (its timer fires
 * only once the watermark reached the bucket's end), an interval join has
 * not dropped a partner a record could meet (a left element is cleaned up
 * once the watermark is past ts + upper, and a partner at s ≤ ts + upper
 * is not behind the watermark), and a session window that fired can no
 * longer merge with a record. The exact committed output is the offline
 * join of the input (join-oracle.ts), whatever the timing and the faults.
 */
import type { DataStream } from "../../src/api/job.js";
import { listState, mapState, valueState } from "../../src/api/state.js";
import type { KeyedBroadcastProcessFunction, KeyedCoProcessFunction } from "../../src/api/types.js";
import type { TimeWindow } from "../../src/window/time-window.js";
import type { Rng } from "./prng.js";
import { type WindowKind, assignerOf } from "./window-job.js";

/** A record of one side of the join branch: `ts` is its event time. */
export interface JRecord {
  key: string;
  v: number;
  side: "l" | "r";
  off: number;
  ts: number;
}

/** The two-input operator of a run. */
export type JoinKind =
  | { readonly kind: "coprocess"; readonly bucketMs: number }
  | { readonly kind: "enrich"; readonly waitMs: number }
  | { readonly kind: "interval"; readonly lowerMs: number; readonly upperMs: number; readonly lowerExclusive: boolean; readonly upperExclusive: boolean }
  | { readonly kind: "window"; readonly windows: WindowKind }
  | { readonly kind: "broadcast"; readonly waitMs: number };

/** The join branch of one run. */
export interface JoinShape {
  readonly join: JoinKind;
  /** Both sources' out-of-orderness bound. */
  readonly boundMs: number;
  readonly parallelism: number;
  readonly keys: number;
  /** Each side's records, in offset order (without the flush records of unbounded runs: run.ts appends those). */
  readonly left: readonly JRecord[];
  readonly right: readonly JRecord[];
}

/** One output row: its id (the row key in `join-log`), key, and the records it joins (offsets of each side, ascending). */
export interface JoinRow {
  id: string;
  key: string;
  l: number[];
  r: number[];
  /** The pair's event time (interval join), the window's bounds (window join), the bucket's end (co-process). */
  ts?: number;
  start?: number;
  end?: number;
  sum: number;
}

/** The key of the records that end an unbounded run's input on both sides: their time moves the watermark past everything. */
export const JOIN_FLUSH_KEY = "~flush";
export const JOIN_FLUSH_TS = 1e12;
/** The most records the run appends to one side at once. */
export const JOIN_APPEND_MAX = 6;

export function bucketEnd(ts: number, bucketMs: number): number {
  return Math.floor(ts / bucketMs) * bucketMs + bucketMs - 1;
}

/** The row of a co-process bucket: what both sides left in it. */
export function bucketRow(key: string, end: number, left: readonly JRecord[], right: readonly JRecord[]): JoinRow {
  const offs = (rs: readonly JRecord[]) => rs.map((r) => r.off).sort((a, b) => a - b);
  const sum = [...left, ...right].reduce((s, r) => s + r.v, 0);
  return { id: `c|${key}|${end}`, key, l: offs(left), r: offs(right), end, sum };
}

/** The row of one interval-joined pair. */
export function pairRow(l: JRecord, r: JRecord, ts: number): JoinRow {
  return { id: `i|${l.off}|${r.off}`, key: l.key, l: [l.off], r: [r.off], ts, sum: l.v + r.v };
}

/** The row of one window-joined pair. */
export function windowPairRow(l: JRecord, r: JRecord, w: TimeWindow): JoinRow {
  return { id: `w|${l.off}|${r.off}|${w.startMs}|${w.endMs}`, key: l.key, l: [l.off], r: [r.off], start: w.startMs, end: w.endMs, sum: l.v + r.v };
}

/** The row of one right record with the rules of its key up to its timer (offsets ascending). */
export function ruledRow(r: JRecord, rules: readonly JRecord[]): JoinRow {
  const offs = rules.map((l) => l.off).sort((a, b) => a - b);
  return { id: `b|${r.off}`, key: r.key, l: offs, r: [r.off], sum: rules.reduce((n, l) => n + l.v, r.v) };
}

/** The row of one right record: enriched with its key's profile (the left record), or emitted by its timer without one. */
export function enrichedRow(r: JRecord, profile: JRecord | undefined): JoinRow {
  return { id: `e|${r.off}`, key: r.key, l: profile ? [profile.off] : [], r: [r.off], sum: r.v + (profile?.v ?? 0) };
}

const profileOf = valueState<JRecord>("profile");
const waiting = listState<JRecord>("waiting");

/** The enrichment (docs/joins.md's pattern): left records are profiles, right records wait for theirs until a timer gives up. */
export function enrich(waitMs: number): KeyedCoProcessFunction<string, JRecord, JRecord, JoinRow> {
  return {
    state: [profileOf, waiting],
    processElement1(p, ctx, out) {
      if (p.key === JOIN_FLUSH_KEY) return;
      ctx.getState(profileOf).update(p);
      for (const r of ctx.getListState(waiting).get()) out.collect(enrichedRow(r, p));
      ctx.getListState(waiting).clear();
    },
    processElement2(r, ctx, out) {
      if (r.key === JOIN_FLUSH_KEY) return;
      const p = ctx.getState(profileOf).value();
      if (p !== undefined) return out.collect(enrichedRow(r, p));
      ctx.getListState(waiting).add(r);
      const ts = ctx.timestamp;
      if (ts === undefined) throw new Error(`join branch: record r/${r.off} has no event time`);
      ctx.timerService().registerEventTimeTimer(ts + waitMs);
    },
    onTimer(ts, ctx, out) {
      // Give up on the records whose wait is over; the others keep waiting (their own timers come later).
      const list = ctx.getListState(waiting);
      const all = list.get();
      const keep = all.filter((r) => r.ts + waitMs > ts);
      for (const r of all) if (r.ts + waitMs <= ts) out.collect(enrichedRow(r, undefined));
      if (keep.length !== all.length) list.update(keep);
    },
  };
}

const rules = mapState<JRecord>("rules");
const pending = listState<JRecord>("pending");

/** The broadcast variant: rules in broadcast state, right records waiting for their timer to read them. */
export function ruleJoin(waitMs: number): KeyedBroadcastProcessFunction<string, JRecord, JRecord, JoinRow> {
  return {
    state: [pending],
    processElement(r, ctx) {
      if (r.key === JOIN_FLUSH_KEY) return;
      const ts = ctx.timestamp;
      if (ts === undefined) throw new Error(`join branch: record r/${r.off} has no event time`);
      ctx.getListState(pending).add(r);
      ctx.timerService().registerEventTimeTimer(ts + waitMs);
    },
    processBroadcastElement(rule, ctx) {
      if (rule.key === JOIN_FLUSH_KEY) return;
      ctx.getBroadcastState(rules).put(`${rule.key}|${rule.off}`, rule);
    },
    onTimer(ts, ctx, out) {
      const list = ctx.getListState(pending);
      const all = list.get();
      const known = ctx.getBroadcastState(rules).values();
      for (const r of all) if (r.ts + waitMs <= ts) out.collect(ruledRow(r, known.filter((l) => l.key === r.key && l.ts <= r.ts + waitMs)));
      const keep = all.filter((r) => r.ts + waitMs > ts);
      if (keep.length !== all.length) list.update(keep);
    },
  };
}

const leftByBucket = mapState<JRecord[]>("left-by-bucket");
const rightByBucket = mapState<JRecord[]>("right-by-bucket");

/** The co-process function: both sides wait in the key's state for the end of their bucket. */
export function bucketJoin(bucketMs: number): KeyedCoProcessFunction<string, JRecord, JRecord, JoinRow> {
  const put = (isLeft: boolean) => (r: JRecord, ctx: Parameters<KeyedCoProcessFunction<string, JRecord, JRecord, JoinRow>["processElement1"]>[1]) => {
    if (r.key === JOIN_FLUSH_KEY) return;
    const ts = ctx.timestamp;
    if (ts === undefined) throw new Error(`join branch: record ${r.side}/${r.off} has no event time`);
    const end = bucketEnd(ts, bucketMs);
    const m = ctx.getMapState(isLeft ? leftByBucket : rightByBucket);
    m.put(String(end), [...(m.get(String(end)) ?? []), r]);
    ctx.timerService().registerEventTimeTimer(end);
  };
  return {
    state: [leftByBucket, rightByBucket],
    processElement1: put(true),
    processElement2: put(false),
    onTimer(ts, ctx, out) {
      const field = String(ts);
      const l = ctx.getMapState(leftByBucket);
      const r = ctx.getMapState(rightByBucket);
      const left = l.get(field) ?? [];
      const right = r.get(field) ?? [];
      l.remove(field);
      r.remove(field);
      // A timer without records is an engine bug (a timer fired twice, or state lost): the oracle reports the row.
      out.collect(bucketRow(ctx.currentKey, ts, left, right));
    },
  };
}

/** The join branch over its two sources' streams, with floe's real two-input APIs. */
export function joined(left: DataStream<JRecord>, right: DataStream<JRecord>, shape: JoinShape): DataStream<JoinRow> {
  const opts = { uid: "join", parallelism: shape.parallelism };
  const key = (r: JRecord) => r.key;
  const j = shape.join;
  let out: DataStream<JoinRow>;
  if (j.kind === "enrich") out = left.connect(right).keyBy(key, key).process(enrich(j.waitMs), opts);
  else if (j.kind === "coprocess") out = left.connect(right).keyBy(key, key).process(bucketJoin(j.bucketMs), opts);
  else if (j.kind === "broadcast") out = right.keyBy(key).connect(left.broadcast(rules)).process(ruleJoin(j.waitMs), opts);
  else if (j.kind === "interval") {
    let between = left.keyBy(key).intervalJoin(right.keyBy(key)).between(j.lowerMs, j.upperMs);
    if (j.lowerExclusive) between = between.lowerBoundExclusive();
    if (j.upperExclusive) between = between.upperBoundExclusive();
    out = between.process<JoinRow>({ processElement: (l, r, ctx, o) => o.collect(pairRow(l, r, ctx.timestamp)) }, opts);
  } else {
    out = left
      .join(right)
      .where(key)
      .equalTo(key)
      .window(assignerOf(j.windows))
      .apply((l, r, ctx) => windowPairRow(l, r, ctx.window as TimeWindow), opts);
  }
  return out.filter((r) => r.key !== JOIN_FLUSH_KEY, { uid: "join-flush-out", parallelism: shape.parallelism });
}

/** Draws a run's join branch and its input. */
export function drawJoinShape(rng: Rng): JoinShape {
  // Broadcast state from a stream of its own, so that adding it left the other kinds' seeds as they were.
  const broadcast = rng.fork("broadcast");
  const kind = broadcast.chance(0.2) ? "broadcast" : rng.pick(["enrich", "coprocess", "interval", "window"] as const);
  let join: JoinKind;
  if (kind === "broadcast") join = { kind, waitMs: broadcast.pick([0, 20, 60]) };
  else if (kind === "enrich") join = { kind, waitMs: rng.pick([30, 100]) };
  else if (kind === "coprocess") join = { kind, bucketMs: rng.pick([20, 50, 100]) };
  else if (kind === "interval") {
    const [lowerMs, upperMs] = rng.pick([[-20, 20], [0, 30], [-50, 0], [-15, -5], [5, 40], [0, 0]] as const);
    join = { kind, lowerMs, upperMs, lowerExclusive: lowerMs < upperMs && rng.chance(0.3), upperExclusive: lowerMs < upperMs && rng.chance(0.3) };
  } else {
    join = {
      kind,
      windows: rng.pick<WindowKind>([
        { kind: "tumbling", sizeMs: 40 },
        { kind: "tumbling", sizeMs: 100 },
        { kind: "sliding", sizeMs: 60, slideMs: 20 },
        { kind: "session", gapMs: 10 },
        { kind: "session", gapMs: 25 },
      ]),
    };
  }
  const boundMs = rng.pick([0, 5, 20]);
  const keys = rng.range(1, 5);
  const side = (s: "l" | "r", count: number): JRecord[] => {
    const out: JRecord[] = [];
    let clock = 1000 + rng.int(50);
    for (let off = 0; off < count; off++) {
      clock += rng.range(1, 12);
      out.push({ key: `j${rng.int(keys)}`, v: rng.int(100), side: s, off, ts: clock - rng.int(boundMs + 1) });
    }
    return out;
  };
  if (join.kind === "enrich") {
    // The left side: profiles of keys no right record has (their time moves the left watermark on, so that right
    // records' timers fire during the run), and among them at most one profile per key of the right side.
    const left = side("l", rng.range(20, 100)).map((p): JRecord => ({ ...p, key: "j-tick" }));
    for (let k = 0; k < keys; k++) {
      if (!rng.chance(0.7)) continue;
      const at = rng.int(left.length);
      if (left[at].key === "j-tick") left[at].key = `j${k}`;
    }
    const right = side("r", rng.range(20, 100));
    // A record more than waitMs before its key's profile: whether its timer or the profile comes first is the
    // timing's to decide. It goes to a key that never has a profile instead.
    const profileTs = new Map(left.map((p) => [p.key, p.ts]));
    for (const r of right) if (r.ts + join.waitMs < (profileTs.get(r.key) ?? Number.NEGATIVE_INFINITY)) r.key = "j-none";
    return { join, boundMs, parallelism: rng.range(1, 3), keys, left, right };
  }
  const left = side("l", rng.range(20, 100));
  const right = side("r", rng.range(20, 100));
  return { join, boundMs, parallelism: rng.range(1, 3), keys, left, right };
}

/** One line about the branch, for reports. */
export function describeJoin(s: JoinShape): string {
  const j = s.join;
  const what =
    j.kind === "enrich"
      ? `enrich wait=${j.waitMs}`
      : j.kind === "broadcast"
      ? `broadcast wait=${j.waitMs}`
      : j.kind === "coprocess"
      ? `co-process buckets=${j.bucketMs}`
      : j.kind === "interval"
        ? `interval ${j.lowerExclusive ? "(" : "["}${j.lowerMs},${j.upperMs}${j.upperExclusive ? ")" : "]"}`
        : `window ${j.windows.kind === "session" ? `session gap ${j.windows.gapMs}` : j.windows.kind === "sliding" ? `sliding ${j.windows.sizeMs}/${j.windows.slideMs}` : `tumbling ${j.windows.sizeMs}`}`;
  return `join(${what} bound=${s.boundMs} p=${s.parallelism} keys=${s.keys} n=${s.left.length}+${s.right.length})`;
}
