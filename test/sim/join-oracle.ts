/**
 * The oracle of the join branch (join-job.ts). No record of either side is
 * ever late (join-job.ts says why), so {@link joinReference} computes the
 * exact committed output offline, from the input alone:
 *
 * - enrichment: one row per right record, with its key's profile (the
 *   input puts no record more than the wait before its profile), or
 *   without one when its key has none;
 * - co-process: per key and bucket of event time, one row with both
 *   sides' records in it;
 * - interval join: one row per left `a` and right `b` of one key with
 *   `a.ts + lower ≤ b.ts ≤ a.ts + upper` (exclusive bounds moved in by
 *   1 ms), carrying the larger of the two times;
 * - broadcast state: one row per right record, with the rules (left
 *   records) of its key at or before its time plus the wait;
 * - window join: one row per pair of one key in one window — tumbling and
 *   sliding windows as assigned; sessions merged over both sides' records
 *   of the key (no record can reach a session that already fired).
 *
 * {@link checkJoins} reads the committed rows of `join-log` in the order
 * the table partitions applied them: every row is one the reference has,
 * with the same content (`join unknown:`, `join row:`), committed once
 * (`join duplicated:`), and every row of the reference is committed
 * (`join lost:`). {@link joinsComplete} is the part of the run's progress
 * that waits for them.
 */
import type { Failure } from "./oracle.js";
import { type JRecord, type JoinRow, type JoinShape, bucketEnd, bucketRow, enrichedRow, pairRow, ruledRow, windowPairRow } from "./join-job.js";
import { assignedWindows } from "./window-job.js";
import type { World } from "./world.js";

/** Row id → the row the input must produce. */
export function joinReference(shape: JoinShape): Map<string, JoinRow> {
  const out = new Map<string, JoinRow>();
  const add = (row: JoinRow) => {
    if (out.has(row.id)) throw new Error(`join reference: row ${row.id} twice`);
    out.set(row.id, row);
  };
  const byKey = (rs: readonly JRecord[]) => {
    const m = new Map<string, JRecord[]>();
    for (const r of rs) m.set(r.key, [...(m.get(r.key) ?? []), r]);
    return m;
  };
  const lefts = byKey(shape.left);
  const rights = byKey(shape.right);
  const j = shape.join;
  if (j.kind === "enrich") {
    const profiles = new Map(shape.left.map((p) => [p.key, p]));
    for (const r of shape.right) {
      const p = profiles.get(r.key);
      if (p && r.ts + j.waitMs < p.ts) throw new Error(`join reference: record r/${r.off} comes more than ${j.waitMs} ms before its profile: its fate is the timing's`);
      add(enrichedRow(r, p));
    }
    return out;
  }
  if (j.kind === "broadcast") {
    for (const r of shape.right) add(ruledRow(r, shape.left.filter((l) => l.key === r.key && l.ts <= r.ts + j.waitMs)));
    return out;
  }
  if (j.kind === "coprocess") {
    const buckets = new Map<string, { key: string; end: number; l: JRecord[]; r: JRecord[] }>();
    for (const r of [...shape.left, ...shape.right]) {
      const end = bucketEnd(r.ts, j.bucketMs);
      const id = `${r.key}|${end}`;
      let b = buckets.get(id);
      if (!b) buckets.set(id, (b = { key: r.key, end, l: [], r: [] }));
      (r.side === "l" ? b.l : b.r).push(r);
    }
    for (const b of buckets.values()) add(bucketRow(b.key, b.end, b.l, b.r));
    return out;
  }
  if (j.kind === "interval") {
    const lower = j.lowerMs + (j.lowerExclusive ? 1 : 0);
    const upper = j.upperMs - (j.upperExclusive ? 1 : 0);
    for (const [key, ls] of lefts) {
      for (const l of ls) for (const r of rights.get(key) ?? []) if (r.ts >= l.ts + lower && r.ts <= l.ts + upper) add(pairRow(l, r, Math.max(l.ts, r.ts)));
    }
    return out;
  }
  const w = j.windows;
  if (w.kind !== "session") {
    const windows = new Map<string, { start: number; end: number; l: JRecord[]; r: JRecord[] }>();
    for (const r of [...shape.left, ...shape.right]) {
      for (const win of assignedWindows(w, r.ts)) {
        const id = `${r.key}|${win.startMs}|${win.endMs}`;
        let b = windows.get(id);
        if (!b) windows.set(id, (b = { start: win.startMs, end: win.endMs, l: [], r: [] }));
        (r.side === "l" ? b.l : b.r).push(r);
      }
    }
    for (const b of windows.values()) for (const l of b.l) for (const r of b.r) add(windowPairRow(l, r, { kind: "time", startMs: b.start, endMs: b.end }));
    return out;
  }
  for (const key of new Set([...lefts.keys(), ...rights.keys()])) {
    const all = [...(lefts.get(key) ?? []), ...(rights.get(key) ?? [])].sort((a, b) => a.ts - b.ts);
    let session: JRecord[] = [];
    let end = Number.NEGATIVE_INFINITY;
    const close = () => {
      if (session.length === 0) return;
      const win = { kind: "time" as const, startMs: session[0].ts, endMs: end };
      for (const l of session) if (l.side === "l") for (const r of session) if (r.side === "r") add(windowPairRow(l, r, win));
    };
    for (const r of all) {
      // Touching windows merge too (intersects() is inclusive at both ends, as in Flink).
      if (r.ts > end) {
        close();
        session = [];
      }
      session.push(r);
      end = Math.max(end, r.ts + w.gapMs);
    }
    close();
  }
  return out;
}

/** Per world, the reference (computed once) and the committed rows read so far (the run's progress asks after every event). */
const cache = new WeakMap<World, { ref: Map<string, JoinRow>; cursor: number; rows: Map<string, { row: JoinRow; atMs: number; where: string }[]>; wrong: boolean }>();

function state(w: World) {
  const shape = w.scenario.shape.joins;
  if (!shape) return undefined;
  let c = cache.get(w);
  if (!c) cache.set(w, (c = { ref: joinReference(shape), cursor: 0, rows: new Map(), wrong: false }));
  for (; c.cursor < w.applied.length; c.cursor++) {
    const a = w.applied[c.cursor];
    if (a.table !== "join-log") continue;
    for (const r of a.rows) {
      const row = JSON.parse(r[2]!) as JoinRow;
      const list = c.rows.get(row.id) ?? [];
      list.push({ row, atMs: a.atMs, where: `txn ${a.txn} of ${a.writer} at ${a.atMs}ms` });
      c.rows.set(row.id, list);
      const want = c.ref.get(row.id);
      if (list.length > 1 || !want || JSON.stringify(want) !== JSON.stringify(row)) c.wrong = true;
    }
  }
  return c;
}

/** Whether every row of the reference is committed (true without a join branch), or a committed row is already wrong (it cannot be undone: the oracle reports it). */
export function joinsComplete(w: World): boolean {
  const c = state(w);
  if (!c) return true;
  if (c.wrong) return true;
  for (const id of c.ref.keys()) if (!c.rows.has(id)) return false;
  return true;
}

/** What the join branch did in a run (for the sweep's summary). */
export interface JoinStats {
  readonly kind: string;
  readonly rows: number;
  readonly records: number;
}

export function joinStats(w: World): JoinStats | undefined {
  const shape = w.scenario.shape.joins;
  const c = state(w);
  if (!shape || !c) return undefined;
  return { kind: shape.join.kind, rows: c.ref.size, records: shape.left.length + shape.right.length };
}

/** The join branch's exactly-once failures. */
export function checkJoins(w: World): Failure[] {
  const c = state(w);
  if (!c) return [];
  const failures: Failure[] = [];
  for (const [id, list] of c.rows) {
    const want = c.ref.get(id);
    const first = list[0];
    if (!want) {
      failures.push({ text: `join unknown: row ${JSON.stringify(first.row)} is not in the offline join (${first.where})`, atMs: first.atMs });
      continue;
    }
    if (list.length > 1) failures.push({ text: `join duplicated: row ${id} committed ${list.length} times (${list.map((x) => x.where).join("; ")})`, atMs: list[1].atMs });
    for (const { row, atMs, where } of list) {
      if (JSON.stringify(row) !== JSON.stringify(want)) failures.push({ text: `join row: ${JSON.stringify(row)}, the offline join has ${JSON.stringify(want)} (${where})`, atMs });
    }
  }
  for (const [id, want] of c.ref) if (!c.rows.has(id)) failures.push({ text: `join lost: row ${id} (${JSON.stringify(want)}) never committed` });
  return failures;
}
