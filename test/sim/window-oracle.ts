/**
 * The oracle of the window branch (window-job.ts). {@link windowReference}
 * computes, offline, from the input and the watermark semantics, the exact
 * final result of every key and window, and the fate of every record:
 * counted in the window(s) it belongs to, or dropped as late.
 *
 * What the window operator sees: one source partition read by one source
 * subtask, so its input watermark when the record at offset j arrives is
 * the source's watermark after some batch before j's — at most (newest
 * event time before j) − bound − 1, and at least (newest event time up to
 * offset j − readSpan) − bound − 1, since a read holds at most
 * `readSpan` records and the watermark of each goes out after it.
 * A window whose cleanup time (max timestamp + allowed lateness) is above
 * the upper bound is open for the record: it is counted. One whose cleanup
 * is at or below the lower bound is gone: the record is dropped from it.
 * Session windows merge first, with the sessions the key has: a session
 * certainly still open takes the record in (the merged session is open
 * too); one certainly cleaned up is gone. A record whose fate lies between
 * the bounds is "ambiguous": the input drawer never makes one.
 *
 * {@link checkWindows} then reads the committed rows of `window-log`, in
 * the order the table partitions applied them:
 * - each row is the fold of the records it names, of its key, inside its
 *   window (`window row:`);
 * - a record is counted only in windows the reference counts it in, never
 *   in one it is dropped from (`window late counted:`), and a session's
 *   row lies inside the final session of each record it counts;
 * - the last row of every final window names exactly its records
 *   (`window result:`), rows of one window only grow, and a window fires
 *   at most once plus once per record later than the bound that it counts
 *   (`window fired:`); every final window has a row (`window lost:`).
 * So every record is in exactly one final result per window it belongs to,
 * or dropped as late from it, never both.
 *
 * The upper bound holds in every attempt, the lower one only within an
 * attempt: a restore starts the watermark afresh (docs/time.md), so a
 * record dropped before a failover may be counted after it (open bug W).
 * The oracle reports that as `window late counted:`, with W's signature
 * when a restore of the source explains it. Runs draw such records only
 * with `--known W`; without, no record's fate rests on the lower bound.
 */
import { cover, intersects, type TimeWindow } from "../../src/window/time-window.js";
import type { Failure } from "./oracle.js";
import { FLUSH_KEY, type WRecord, type WindowRow, type WindowShape, assignedWindows, rowKey } from "./window-job.js";
import type { World } from "./world.js";

/** The final result of one key and window. */
export interface FinalWindow {
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly offs: number[];
  /** Records later than the bound it counts: each may fire the window once more. */
  beyond: number;
}

/** What the input must produce. */
export interface WindowReference {
  /** Row key (key|start|end) → final result. */
  readonly finals: Map<string, FinalWindow>;
  /** Offset → the row keys of the final windows that count it. */
  readonly countedIn: Map<number, string[]>;
  /** Offset → the windows (row keys, as assigned) it is dropped from. */
  readonly droppedFrom: Map<number, string[]>;
  /** Offsets whose fate the watermark's timing would decide. */
  readonly ambiguous: Set<number>;
  /**
   * Offsets whose fate rests on the lower bound of the watermark (dropped
   * from a window, or next to a session already cleaned up): a restore
   * between the records that raised the watermark and this one voids it.
   */
  readonly reliesOnLower: Set<number>;
  /** The lower bound used for each offset. */
  readonly lowerAt: number[];
  /** Records later than the bound, and of those, records dropped from every window. */
  beyondBound: number;
  dropped: number;
}

interface Session {
  start: number;
  end: number;
  offs: number[];
  beyond: number;
}

/** The reference outcome of `input` (offset order) under `shape` (its source reads at most `readSpan` records at once). */
export function windowReference(input: readonly WRecord[], shape: WindowShape): WindowReference {
  const batchSize = shape.readSpan;
  const L = shape.allowedLatenessMs;
  const ref: WindowReference = { finals: new Map(), countedIn: new Map(), droppedFrom: new Map(), ambiguous: new Set(), reliesOnLower: new Set(), lowerAt: [], beyondBound: 0, dropped: 0 };
  const maxUpTo: number[] = [];
  const live = new Map<string, Session[]>();
  const closed: { key: string; s: Session }[] = [];
  const finalOf = (key: string, start: number, end: number) => {
    const id = rowKey({ key, start, end });
    let f = ref.finals.get(id);
    if (!f) ref.finals.set(id, (f = { key, start, end, offs: [], beyond: 0 }));
    return f;
  };
  const push = (m: Map<number, string[]>, off: number, id: string) => m.set(off, [...(m.get(off) ?? []), id]);
  for (const r of input) {
    const j = r.off;
    const upper = j === 0 ? Number.NEGATIVE_INFINITY : maxUpTo[j - 1] - shape.boundMs - 1;
    const lower = j < batchSize ? Number.NEGATIVE_INFINITY : maxUpTo[j - batchSize] - shape.boundMs - 1;
    maxUpTo.push(Math.max(j === 0 ? Number.NEGATIVE_INFINITY : maxUpTo[j - 1], r.ts));
    ref.lowerAt.push(lower);
    if (r.key === FLUSH_KEY) continue;
    const beyond = j > 0 && r.ts < maxUpTo[j - 1] - shape.boundMs;
    if (beyond) ref.beyondBound++;
    if (shape.windows.kind !== "session") {
      let counted = false;
      for (const w of assignedWindows(shape.windows, r.ts)) {
        const cleanup = w.endMs - 1 + L;
        const id = rowKey({ key: r.key, start: w.startMs, end: w.endMs });
        if (cleanup > upper) {
          const f = finalOf(r.key, w.startMs, w.endMs);
          f.offs.push(j);
          if (beyond) f.beyond++;
          push(ref.countedIn, j, id);
          counted = true;
        } else if (cleanup <= lower) {
          push(ref.droppedFrom, j, id);
          ref.reliesOnLower.add(j);
        } else ref.ambiguous.add(j);
      }
      if (!counted) ref.dropped++;
      continue;
    }
    const gap = shape.windows.gapMs;
    let sessions = live.get(r.key) ?? [];
    // Sessions whose cleanup timer certainly fired before this record: final.
    const own: TimeWindow = { kind: "time", startMs: r.ts, endMs: r.ts + gap };
    for (const s of sessions) {
      if (s.end - 1 + L > lower) continue;
      closed.push({ key: r.key, s });
      if (intersects(own, { kind: "time", startMs: s.start, endMs: s.end })) ref.reliesOnLower.add(j);
    }
    sessions = sessions.filter((s) => s.end - 1 + L > lower);
    // The sessions this record's window merges with (transitively, as the merging window set does).
    let merged: TimeWindow = own;
    const touched = new Set<Session>();
    for (let grew = true; grew; ) {
      grew = false;
      for (const s of sessions) {
        if (touched.has(s) || !intersects(merged, { kind: "time", startMs: s.start, endMs: s.end })) continue;
        touched.add(s);
        merged = cover(merged, { kind: "time", startMs: s.start, endMs: s.end });
        grew = true;
      }
    }
    // Open or cleaned up depends on timing: the drawer avoids it.
    if ([...touched].some((s) => s.end - 1 + L <= upper)) {
      ref.ambiguous.add(j);
      live.set(r.key, sessions);
      continue;
    }
    const cleanup = merged.endMs - 1 + L;
    if (touched.size === 0 && cleanup <= lower) {
      push(ref.droppedFrom, j, rowKey({ key: r.key, start: r.ts, end: r.ts + gap }));
      ref.reliesOnLower.add(j);
      ref.dropped++;
      live.set(r.key, sessions);
      continue;
    }
    if (touched.size === 0 && cleanup <= upper) {
      ref.ambiguous.add(j);
      live.set(r.key, sessions);
      continue;
    }
    const next: Session = { start: merged.startMs, end: merged.endMs, offs: [j], beyond: beyond ? 1 : 0 };
    for (const s of touched) {
      next.offs.push(...s.offs);
      next.beyond += s.beyond;
    }
    live.set(r.key, [...sessions.filter((s) => !touched.has(s)), next]);
  }
  for (const [key, sessions] of live) for (const s of sessions) closed.push({ key, s });
  for (const { key, s } of closed) {
    const f = finalOf(key, s.start, s.end);
    f.offs.push(...s.offs);
    f.beyond += s.beyond;
  }
  if (shape.windows.kind === "session") for (const [id, f] of ref.finals) for (const off of f.offs) push(ref.countedIn, off, id);
  for (const f of ref.finals.values()) f.offs.sort((a, b) => a - b);
  return ref;
}

type Committed = Map<string, { row: WindowRow; atMs: number; where: string }[]>;

/** Per world, the rows read so far (the run's progress asks after every event). */
const read = new WeakMap<World, { cursor: number; rows: Committed }>();

/** The committed rows of `window-log`, per row key, in the order applied. */
function committedRows(w: World): Committed {
  let cache = read.get(w);
  if (!cache) read.set(w, (cache = { cursor: 0, rows: new Map() }));
  const m = cache.rows;
  for (; cache.cursor < w.applied.length; cache.cursor++) {
    const a = w.applied[cache.cursor];
    if (a.table !== "window-log") continue;
    for (const r of a.rows) {
      const row = JSON.parse(r[2]!) as WindowRow;
      const id = rowKey(row);
      const list = m.get(id) ?? [];
      list.push({ row, atMs: a.atMs, where: `txn ${a.txn} of ${a.writer} at ${a.atMs}ms` });
      m.set(id, list);
    }
  }
  return m;
}

const sameOffs = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

const references = new WeakMap<World, WindowReference>();

function referenceOf(w: World): WindowReference | undefined {
  const shape = w.scenario.shape.windows;
  if (!shape) return undefined;
  let ref = references.get(w);
  if (!ref) references.set(w, (ref = windowReference(shape.input, shape)));
  return ref;
}

/**
 * Whether every final window's result is committed (true without a window
 * branch). A committed row that counts a record the reference does not
 * count there ends the wait too: it cannot be undone, and the oracle
 * reports it.
 */
export function windowsComplete(w: World): boolean {
  const shape = w.scenario.shape.windows;
  const ref = referenceOf(w);
  if (!shape || !ref) return true;
  const rows = committedRows(w);
  for (const [id, list] of rows) {
    for (const { row } of list) if (row.offs.some((o) => !countsIn(shape, ref, o, row))) return true;
    if (!ref.finals.has(id) && shape.windows.kind !== "session") return true;
  }
  for (const [id, f] of ref.finals) {
    const list = rows.get(id);
    if (!list || !sameOffs(list[list.length - 1].row.offs, f.offs)) return false;
  }
  return true;
}

/** Whether the reference counts record `off` in the window of `row` (for sessions: inside the final session that counts it). */
function countsIn(shape: WindowShape, ref: WindowReference, off: number, row: WindowRow): boolean {
  const into = ref.countedIn.get(off) ?? [];
  if (shape.windows.kind !== "session") return into.includes(rowKey(row));
  const final = ref.finals.get(into[0] ?? "");
  return final !== undefined && final.key === row.key && final.start <= row.start && row.end <= final.end;
}

/**
 * Whether a restore explains that record `off` was counted where the
 * reference drops it (known bug W): some attempt restored the source at
 * an offset after which the records that raised the watermark, as the
 * reference counts on, were never read again before this one.
 */
function restoreExplains(w: World, shape: WindowShape, ref: WindowReference, off: number): string | undefined {
  if (!ref.reliesOnLower.has(off)) return undefined;
  const b = shape.readSpan;
  for (const { atMs, attempt, offset } of w.windowSourceRestores) {
    let max = Number.NEGATIVE_INFINITY;
    for (let i = Math.max(0, offset); i <= off - b; i++) max = Math.max(max, shape.input[i].ts);
    const lower = max - shape.boundMs - 1;
    if (lower < ref.lowerAt[off]) return `attempt ${attempt} restored in-w at offset ${offset} (${atMs}ms): from there the watermark before record ${off} is at least ${lower}, not ${ref.lowerAt[off]}`;
  }
  return undefined;
}

/** What the window branch did in a run (for the sweep's summary). */
export interface WindowStats {
  readonly windows: number;
  /** Windows with more than one committed result (re-fired by allowed lateness). */
  readonly refired: number;
  readonly beyondBound: number;
  readonly dropped: number;
}

export function windowStats(w: World): WindowStats | undefined {
  const ref = referenceOf(w);
  if (!ref) return undefined;
  let refired = 0;
  for (const list of committedRows(w).values()) if (list.length > 1) refired++;
  return { windows: ref.finals.size, refired, beyondBound: ref.beyondBound, dropped: ref.dropped };
}

/** The window branch's exactly-once failures. */
export function checkWindows(w: World): Failure[] {
  const shape = w.scenario.shape.windows;
  const ref = referenceOf(w);
  if (!shape || !ref) return [];
  const failures: Failure[] = [];
  const input = shape.input;
  const rows = committedRows(w);
  for (const [id, list] of rows) {
    let before: number[] = [];
    for (const { row, atMs, where } of list) {
      const bad = (text: string) => failures.push({ text: `window ${text} (${where})`, atMs });
      const recs = row.offs.map((o) => input[o]);
      if (recs.some((r) => !r || r.key !== row.key) || new Set(row.offs).size !== row.offs.length) {
        bad(`row: ${id} counts ${JSON.stringify(row.offs)}, not distinct records of key ${row.key}`);
        continue;
      }
      const sum = recs.reduce((s, r) => s + r.v, 0);
      const outside = recs.filter((r) => r.ts < row.start || r.ts >= row.end);
      if (row.count !== recs.length || row.sum !== sum || row.minTs !== Math.min(...recs.map((r) => r.ts)) || row.maxTs !== Math.max(...recs.map((r) => r.ts)) || outside.length > 0) {
        bad(`row: ${id} says count ${row.count} sum ${row.sum} over ${row.offs.length} records whose sum is ${sum}${outside.length > 0 ? `, records ${outside.map((r) => `${r.off}@${r.ts}`).join(",")} outside the window` : ""}`);
      }
      for (const o of row.offs) {
        if (countsIn(shape, ref, o, row)) continue;
        const into = ref.countedIn.get(o) ?? [];
        const why = ref.droppedFrom.get(o)?.includes(id) ? "drops it from that window (a watermark past its cleanup preceded it)" : into.length > 0 ? `counts it in ${into.join(", ")}` : "drops it";
        bad(`late counted: record ${o} (ts ${input[o].ts}) is counted in ${id}, but the reference ${why}`);
        const restore = restoreExplains(w, shape, ref, o);
        if (restore) w.signature("W", `record ${o} of in-w counted in ${id} at ${atMs}ms though dropped as late; ${restore}`);
      }
      if (!before.every((o) => row.offs.includes(o))) bad(`result: ${id} fired with ${JSON.stringify(row.offs)} after it had fired with ${JSON.stringify(before)}`);
      before = row.offs;
    }
  }
  for (const [id, f] of ref.finals) {
    const list = rows.get(id);
    if (!list) {
      failures.push({ text: `window lost: ${id} never fired (it counts ${JSON.stringify(f.offs)})` });
      continue;
    }
    const last = list[list.length - 1];
    if (!sameOffs(last.row.offs, f.offs)) failures.push({ text: `window result: the last result of ${id} counts ${JSON.stringify(last.row.offs)}, the reference ${JSON.stringify(f.offs)} (${last.where})`, atMs: last.atMs });
    if (list.length > 1 + f.beyond) {
      failures.push({ text: `window fired: ${id} has ${list.length} results, but only ${f.beyond} of its records came later than the bound (at ${list.map((x) => x.atMs).join(", ")} ms)`, atMs: list[1 + f.beyond].atMs });
    }
  }
  return failures;
}
