/**
 * The oracle of the timer branch (timer-job.ts): it reads the committed
 * rows of the table `timer-log`, in the order they were applied, and checks
 * that timers fire exactly once:
 *
 * - every input record has exactly one `in` row (`timer in:`);
 * - an event-time timer's row appears at most once per key and timestamp,
 *   only for a timer some committed `in` row asked for, only once the
 *   watermark had reached it, and its output carried its timestamp as event
 *   time (`timer event:`); every timer asked for at or below the final
 *   watermark of the subtask that owns its key has fired (`timer lost:`);
 * - every id waiting for a processing-time timer is emitted by exactly one
 *   `pt` row, never one it did not wait in (`timer processing:`); in an
 *   unbounded run every one is emitted (a bounded input's end stops
 *   processing time, as in Flink, so there some may still wait).
 *
 * {@link timersComplete} is the part of the run's progress that waits for
 * all of this to be committed.
 */
import { keyGroupOf, subtaskForKeyGroup } from "../../src/graph/key-groups.js";
import type { Expected, Failure } from "./oracle.js";
import type { TimerRow } from "./timer-job.js";
import type { World } from "./world.js";

interface Seen {
  readonly ins: Map<string, Extract<TimerRow, { kind: "in" }>[]>;
  readonly events: Map<string, { row: Extract<TimerRow, { kind: "et" }>; atMs: number }[]>;
  readonly processing: Map<string, number>;
}

/** The committed timer rows so far. */
function seen(w: World): Seen {
  const s: Seen = { ins: new Map(), events: new Map(), processing: new Map() };
  for (const a of w.applied) {
    if (a.table !== "timer-log") continue;
    for (const r of a.rows) {
      const row = JSON.parse(r[2]!) as TimerRow;
      if (row.kind === "in") push(s.ins, row.id, row);
      else if (row.kind === "et") push(s.events, `${row.key}@${row.ts}`, { row, atMs: a.atMs });
      else for (const id of row.ids) s.processing.set(id, (s.processing.get(id) ?? 0) + 1);
    }
  }
  return s;
}

function push<V>(m: Map<string, V[]>, k: string, v: V): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

/** The input watermark, now, of the timer operator's subtask that owns `key` (-∞ when it has no task). */
function ownerWatermark(w: World): (key: string) => number {
  const byIndex = new Map<number, number>();
  let parallelism = 0;
  for (const s of w.subtasks.values()) {
    const t = s.instance.task;
    if (!t || !t.chain.keyedState.has("timers") || t.state === "failed" || t.state === "canceled") continue;
    parallelism = t.vertex.parallelism;
    byIndex.set(t.deployment.index, t.currentWatermarkMs);
  }
  const maxP = w.scenario.shape.maxParallelism;
  return (key) => (parallelism === 0 ? Number.NEGATIVE_INFINITY : (byIndex.get(subtaskForKeyGroup(maxP, parallelism, keyGroupOf(key, maxP))) ?? Number.NEGATIVE_INFINITY));
}

/** What the committed rows still lack: timers due by now and not committed, inputs without their row, waiting ids. */
function missing(w: World, expected: Expected, s: Seen): string[] {
  const out: string[] = [];
  for (const id of expected.byId.keys()) if (!s.ins.has(id)) out.push(`in: record ${id} has no row`);
  const watermarkOf = ownerWatermark(w);
  for (const [id, rows] of s.ins) {
    const r = rows[0];
    if (r.et !== null && r.et <= watermarkOf(r.key) && !s.events.has(`${r.key}@${r.et}`)) {
      out.push(`lost: event-time timer ${r.key}@${r.et} (asked for by ${id}) never fired, though the watermark of its subtask is ${watermarkOf(r.key)}`);
    }
    if (r.pt && !w.scenario.shape.bounded && !s.processing.has(id)) out.push(`processing: ${id} of key ${r.key} waits for a processing-time timer that never fired`);
  }
  return out;
}

/** Whether every timer row the run owes is committed (true when the run has no timer branch). */
export function timersComplete(w: World, expected: Expected): boolean {
  if (!w.scenario.shape.timers) return true;
  return missing(w, expected, seen(w)).length === 0;
}

/** The timer branch's exactly-once failures. */
export function checkTimers(w: World, expected: Expected): Failure[] {
  if (!w.scenario.shape.timers) return [];
  const s = seen(w);
  const failures: Failure[] = [];
  for (const [id, rows] of s.ins) {
    if (!expected.byId.has(id)) failures.push({ text: `timer in: ${id} is not an input record` });
    if (rows.length > 1) failures.push({ text: `timer in: record ${id} has ${rows.length} rows` });
  }
  const asked = new Set<string>();
  const waited = new Set<string>();
  for (const [id, [r]] of s.ins) {
    if (r.et !== null) asked.add(`${r.key}@${r.et}`);
    if (r.pt) waited.add(id);
  }
  for (const [timer, fired] of s.events) {
    const { row } = fired[0];
    if (fired.length > 1) failures.push({ text: `timer event: ${timer} fired ${fired.length} times (committed at ${fired.map((f) => f.atMs).join(", ")} ms)`, atMs: fired[1].atMs });
    if (!asked.has(timer)) failures.push({ text: `timer event: ${timer} fired, but no committed record asked for it`, atMs: fired[0].atMs });
    if (!(row.wm >= row.ts)) failures.push({ text: `timer event: ${timer} fired at watermark ${row.wm}, before the watermark reached it`, atMs: fired[0].atMs });
    if (row.ctxTs !== row.ts) failures.push({ text: `timer event: ${timer} gave its output event time ${row.ctxTs}, not its timestamp` });
  }
  for (const [id, n] of s.processing) {
    if (n > 1) failures.push({ text: `timer processing: ${id} emitted by ${n} processing-time timers` });
    if (!waited.has(id)) failures.push({ text: `timer processing: ${id} emitted, but no committed record put it on the list` });
  }
  for (const m of missing(w, expected, s)) failures.push({ text: `timer ${m}` });
  return failures;
}
