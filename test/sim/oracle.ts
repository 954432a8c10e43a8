/**
 * The oracle: it reads only committed output (what the table partitions
 * applied, in the order they applied it) and the commit points in R2, and
 * checks exactly-once end to end:
 *
 * - every input record appears in the log exactly once, none is made up;
 * - per key, the records of one source partition keep their order;
 * - the state carried by each output (count, sum, count per source) is the
 *   reference fold of the key's committed inputs up to it, and the final
 *   state of each key (log and totals tables) is the fold of all its input;
 * - a transaction of checkpoint N is applied only after the _metadata of
 *   some checkpoint ≥ N was written (output visible only after its
 *   checkpoint completed);
 * - no staged transaction is left in any subtask once the job quiesced;
 * - checkpoints completed and faults landed.
 */
import { stagedTransactions } from "../../src/runtime/subtask/staging-store.js";
import { FLUSH_TXN_MIN, type InRecord, type OutRecord, type Totals } from "./jobs.js";
import { checkTimers, timersComplete } from "./timer-oracle.js";
import { watermarksBackwards } from "./watermark-invariant.js";
import { checkJoins, joinsComplete } from "./join-oracle.js";
import { asyncComplete, checkAsync } from "./async-oracle.js";
import { checkWindows, windowsComplete } from "./window-oracle.js";
import type { World } from "./world.js";

/** The input of a run. */
export class Expected {
  readonly byId = new Map<string, InRecord>();
  readonly byKey = new Map<string, InRecord[]>();

  add(r: InRecord): void {
    this.byId.set(recordId(r), r);
    let l = this.byKey.get(r.key);
    if (!l) this.byKey.set(r.key, (l = []));
    l.push(r);
  }

  get size(): number {
    return this.byId.size;
  }
}

export function recordId(r: { src: string; part: number; off: number }): string {
  return `${r.src}/${r.part}/${r.off}`;
}


/**
 * Tracks, as writes are applied, whether the job caught up: every input
 * record reached the log, and the totals table (when the job has one)
 * agrees with the log. Unaligned checkpoints make the second part needed:
 * the one output of a record goes to each sink on its own channel, and a
 * barrier may overtake it on one channel only — it is then that channel's
 * in-flight data, committed by the sink with the next checkpoint. So the
 * log can be complete while the totals table still waits for a checkpoint
 * (seed 961). It waits for agreement, not for correctness: a run whose
 * sinks agree on a wrong state stops all the same, and the oracle reports it.
 */
export class Progress {
  private cursor = 0;
  private readonly seen = new Set<string>();

  constructor(
    private readonly w: World,
    private readonly expected: Expected,
  ) {}

  complete(): boolean {
    const applied = this.w.applied;
    for (; this.cursor < applied.length; this.cursor++) {
      const a = applied[this.cursor];
      if (a.table !== "log") continue;
      for (const row of a.rows) {
        const out = JSON.parse(row[2]!) as OutRecord;
        this.seen.add(recordId(out));
      }
    }
    return this.seen.size >= this.expected.size && this.totalsAgree() && timersComplete(this.w, this.expected) && windowsComplete(this.w) && joinsComplete(this.w) && asyncComplete(this.w);
  }

  /** Whether every key's totals row holds the state of its last log row. */
  private totalsAgree(): boolean {
    if (!this.w.scenario.shape.withTotals) return true;
    const log = tableRows(this.w, "log");
    const totals = tableRows(this.w, "totals");
    for (const [key, last] of log) {
      const t = totals.get(key);
      if (!t || !sameTotals(JSON.parse(t) as Totals, (JSON.parse(last) as OutRecord).value)) return false;
    }
    return true;
  }
}

/** The current row of every key of `table`, over its partitions (the value's JSON). */
function tableRows(w: World, table: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const t of w.tables.values()) if (t.table === table) for (const [key, [, valueJson]] of t.rows) m.set(key, valueJson);
  return m;
}

/** Transactions staged or sealed in some subtask (its real SQL tables) that should have been published by now. */
export function leftovers(w: World): string[] {
  const last = Math.max(0, ...w.completedAt.keys());
  const out: string[] = [];
  for (const [name, s] of w.subtasks) {
    for (const t of stagedTransactions(s.sql)) {
      const stale = t.txn === -1 ? t.rows > 0 : t.txn <= last || t.txn >= FLUSH_TXN_MIN;
      if (stale) out.push(`${name.replace(/^job:[^/]+\//, "")}: ${t.uid} txn ${t.txn} (${t.rows} rows${t.sealed ? ", sealed" : ""}) left staged; last completed checkpoint ${last}`);
    }
  }
  return out;
}

function fold(records: readonly InRecord[]): Totals {
  const t: Totals = { count: 0, sum: 0, bySrc: {} };
  for (const r of records) {
    t.count++;
    t.sum += r.v;
    t.bySrc[r.src] = (t.bySrc[r.src] ?? 0) + 1;
  }
  return t;
}

function sameTotals(a: Totals | undefined, b: Totals): boolean {
  if (!a || a.count !== b.count || a.sum !== b.sum) return false;
  const ka = Object.keys(a.bySrc ?? {}).sort();
  const kb = Object.keys(b.bySrc).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a.bySrc[k] === b.bySrc[k]);
}

const show = (t: Totals | undefined) => (t ? `count=${t.count} sum=${t.sum} bySrc=${JSON.stringify(t.bySrc)}` : "nothing");

/** What the oracle found wrong, and when it became visible (if it has a moment). */
export interface Failure {
  readonly text: string;
  readonly atMs?: number;
}

/** Checks a quiesced run; returns what is wrong (empty when exactly-once held). */
export function checkRun(w: World, expected: Expected): Failure[] {
  const failures: Failure[] = [];
  const limit = (kind: string, lines: (string | Failure)[]) => {
    if (lines.length === 0) return;
    for (const l of lines.slice(0, 6)) failures.push(typeof l === "string" ? { text: `${kind}: ${l}` } : { text: `${kind}: ${l.text}`, atMs: l.atMs });
    if (lines.length > 6) failures.push({ text: `${kind}: … ${lines.length - 6} more`, atMs: Math.min(...lines.map((l) => (typeof l === "string" ? Number.POSITIVE_INFINITY : (l.atMs ?? Number.POSITIVE_INFINITY)))) });
  };

  // Per key, the committed log in the order it was applied.
  const dup: Failure[] = [];
  const unknown: Failure[] = [];
  const order: Failure[] = [];
  const state: Failure[] = [];
  const firstSeen = new Map<string, string>();
  const perKey = new Map<string, { count: number; sum: number; bySrc: Record<string, number>; lastOff: Map<string, number> }>();
  for (const a of w.applied) {
    if (a.table !== "log") continue;
    for (const row of a.rows) {
      const out = JSON.parse(row[2]!) as OutRecord;
      const id = recordId(out);
      const where = `txn ${a.txn} of ${a.writer} at ${a.atMs}ms`;
      const input = expected.byId.get(id);
      if (!input || input.key !== out.key || input.v !== out.v) {
        unknown.push({ text: `${id} (key ${out.key}) is not an input record (${where})`, atMs: a.atMs });
        continue;
      }
      if (firstSeen.has(id)) {
        dup.push({ text: `record ${id} of key ${out.key} committed twice: ${firstSeen.get(id)}, again ${where}`, atMs: a.atMs });
      } else firstSeen.set(id, where);
      let k = perKey.get(out.key);
      if (!k) perKey.set(out.key, (k = { count: 0, sum: 0, bySrc: {}, lastOff: new Map() }));
      const channel = `${out.src}/${out.part}`;
      const before = k.lastOff.get(channel);
      if (before !== undefined && out.off <= before) order.push({ text: `key ${out.key}: ${channel} offset ${out.off} committed after offset ${before} (${where})`, atMs: a.atMs });
      k.lastOff.set(channel, out.off);
      k.count++;
      k.sum += out.v;
      k.bySrc[out.src] = (k.bySrc[out.src] ?? 0) + 1;
      const ref: Totals = { count: k.count, sum: k.sum, bySrc: { ...k.bySrc } };
      if (!sameTotals(out.value, ref)) {
        state.push({ text: `key ${out.key} after ${id}: state ${show(out.value)}, but the fold of its committed inputs is ${show(ref)} (${where})`, atMs: a.atMs });
        // Follow the engine's state from here, so that one divergence is reported once.
        k.count = out.value.count;
        k.sum = out.value.sum;
        k.bySrc = { ...out.value.bySrc };
      }
    }
  }
  limit("duplicated", dup);
  limit("unknown", unknown);
  limit("order", order);
  limit("state", state);

  const lost: string[] = [];
  for (const [id, r] of expected.byId) if (!firstSeen.has(id)) lost.push(`record ${id} of key ${r.key} never committed`);
  limit("lost", lost);

  // Final state per key: the last log row and the totals table.
  const finals: string[] = [];
  const logRows = tableRows(w, "log");
  const totals = w.scenario.shape.withTotals ? tableRows(w, "totals") : undefined;
  for (const [key, records] of expected.byKey) {
    const want = fold(records);
    const last = logRows.get(key);
    const got = last ? (JSON.parse(last) as OutRecord).value : undefined;
    if (!sameTotals(got, want)) finals.push(`log row of key ${key} holds ${show(got)}, the fold of its input is ${show(want)}`);
    if (totals) {
      const t = totals.get(key);
      const tv = t ? (JSON.parse(t) as Totals) : undefined;
      if (!sameTotals(tv, want)) finals.push(`totals row of key ${key} holds ${show(tv)}, the fold of its input is ${show(want)}`);
    }
  }
  for (const key of logRows.keys()) if (!expected.byKey.has(key)) finals.push(`log has a row for key ${key}, which is not in the input`);
  limit("final state", finals);

  // Output visible only after its checkpoint completed.
  const early: Failure[] = [];
  const metadataAt = [...w.r2.metadataWrittenAt.entries()].sort((a, b) => a[0] - b[0]);
  for (const a of w.applied) {
    if (a.txn === undefined) continue;
    if (a.txn >= FLUSH_TXN_MIN) {
      // Every run checkpoints: a sink publishes only when a checkpoint completed, at end of input too (bug B).
      early.push({ text: `${a.table} txn ${a.txn} of ${a.writer} applied at ${a.atMs}ms without a checkpoint (a flush at end of input)`, atMs: a.atMs });
      continue;
    }
    const commit = metadataAt.find(([id, at]) => id >= a.txn! && at <= a.atMs);
    if (!commit) {
      const own = w.r2.metadataWrittenAt.get(a.txn);
      early.push({ text: `${a.table} txn ${a.txn} of ${a.writer} applied at ${a.atMs}ms, before any checkpoint ≥ ${a.txn} had its _metadata (checkpoint ${a.txn}: ${own === undefined ? "never" : `at ${own}ms`})`, atMs: a.atMs });
    }
  }
  limit("visible before commit", early);

  limit("left behind", leftovers(w));

  const completed = w.completedAt.size;
  // Every job commits only through checkpoints; a bounded one finishes with a final checkpoint.
  limit("watermark", [...watermarksBackwards(w)]);
  limit("timers", checkTimers(w, expected));
  limit("windows", checkWindows(w));
  limit("joins", checkJoins(w));
  limit("async", checkAsync(w));
  if (completed < 1) failures.push({ text: `checkpoints: none completed` });
  if (w.faults.total() < 1) failures.push({ text: `faults: none landed` });
  return failures;
}
