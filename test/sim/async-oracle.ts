/**
 * The oracle of the async I/O branch (async-job.ts). It reads the committed
 * rows of `async-log` and `async-dead` in the order the table partitions
 * applied them, the requests the function sent (async-service.ts:
 * the service saw those the network did not drop, so what holds for the
 * requests sent holds for the service's log), and what each deploy of the branch's subtasks
 * restored ({@link noteAsyncDeploy}: the checkpoint's records in flight in
 * the async operator, its in-flight channel data, the source's offsets):
 *
 * - **results exactly once**: every committed row is one the record gives
 *   (`async unknown:`, `async row:`: id, value, event time), once
 *   (`async duplicated:`); each record has one outcome — all its results,
 *   or the timeout handler's row, or (with a dead-letter output) a dead
 *   letter holding the record — never two, never part of one
 *   (`async outcome:`); a record with results has one (`async lost:`);
 * - **the counter's numbering** of each partition's results is 0..n-1,
 *   each once (`async seq:`: its keyed state is exactly-once too);
 * - **ordered mode**: in the counter's order, the results one async
 *   subtask emitted for one source partition are in input order
 *   (`async order:`). That is what ordered mode promises per channel;
 *   across a restore too (the records in flight at the checkpoint are
 *   requested again before any newer input, and in their order);
 * - **watermarks**: no result reaches the counter at or behind its
 *   watermark (`async late:`): the operator never lets a watermark overtake
 *   a record it came after (unordered: never across a watermark);
 * - **requests** (as sent; `attempt` is the record's attempt
 *   in one operator instance, so attempt 1 is a record taken into the
 *   operator): a record is taken at most once per job attempt
 *   (`async request twice:`), and job attempt a takes a record only if
 *   its restore entitles it (`async request:`): a fresh start (no
 *   checkpoint) may take every record; a restore of checkpoint C only the
 *   records listed in flight in C for that subtask (`operators.lookup.inFlight`),
 *   those in C's in-flight channel data towards it (unaligned
 *   checkpoints: the async subtask's input, the source's buffered output),
 *   and those at or after C's source offset of their partition — the
 *   records not yet covered by C. So a record requested again was in
 *   flight at the failure: read, and not yet in a completed checkpoint.
 *   This is exact: a record in none of those sets reached a subtask of
 *   attempt a only through a bug (a zombie let in, a duplicate delivered,
 *   a committed record replayed). Conversely, every record the last
 *   attempt restored in flight is requested by it (`async not requested
 *   again:`).
 *
 * - **connections**: a subtask never has more requests open at once than
 *   its `maxConcurrentRequests` (at most the platform's 6 per invocation)
 *   (`async connections:`).
 *
 * What is not checked: which outcome a record gets (the timing's), and
 * retries (a record's attempts > 1 within one instance are the retry
 * strategy's, not a repeat).
 */
import type { DeadLetter } from "../../src/api/dead-letter.js";
import { decodeBatch, decodeChannelState, fromInFlight } from "../../src/runtime/batch-encoding.js";
import type { SubtaskDeployment } from "../../src/runtime/messages.js";
import type { Failure } from "./oracle.js";
import { ASYNC_DEAD, ASYNC_LOG, ASYNC_SOURCE, ASYNC_UID, type AsyncRow, type QRecord, answerOf, asyncKeyOf, resultCount } from "./async-job.js";
import type { FakeR2 } from "./r2.js";
import type { World } from "./world.js";

/** A record's id: `<part>|<off>`. */
export function qid(r: Pick<QRecord, "part" | "off">): string {
  return `${r.part}|${r.off}`;
}

/** What one deploy of the branch's source or async subtask restored. */
export interface AsyncRestoreNote {
  readonly atMs: number;
  readonly attempt: number;
  readonly vertex: string;
  readonly index: number;
  /** Null: a fresh start. */
  readonly checkpointId: number | null;
  /** Async subtask: the records listed in flight for it. */
  readonly inFlight: readonly string[];
  /** Async subtask: records of its input channels' in-flight data. */
  readonly channelIn: readonly string[];
  /** Source subtask: records of its buffered output, per target subtask (`lookup/<i>`). */
  readonly channelOut: Readonly<Record<string, readonly string[]>>;
  /** Source subtask: the restored offset per partition number (the next record to read). */
  readonly offsets: ReadonlyMap<number, number>;
}

/** Notes what a deploy of the branch's source or async operator restores (world.ts calls it for each deploy). */
export function noteAsyncDeploy(d: SubtaskDeployment, r2: FakeR2, atMs: number): AsyncRestoreNote | undefined {
  if (d.vertex !== ASYNC_UID && d.vertex !== ASYNC_SOURCE) return undefined;
  const spec = d.restore;
  const inFlight = ((spec?.inFlight?.[ASYNC_UID] ?? []) as { value: QRecord }[]).map((r) => qid(r.value));
  const channelIn: string[] = [];
  const channelOut: Record<string, string[]> = {};
  if (spec?.channelState) {
    const stored = r2.objects.get(spec.channelState.file);
    // The checkpoint is retained while a deploy restores it; a missing file fails that restore (nothing is requested).
    if (stored) {
      const file = decodeChannelState(new TextDecoder().decode(stored.body));
      for (const batches of Object.values(file.inputs)) {
        for (const text of batches) {
          const e = fromInFlight(text);
          if (e.kind === "batch") for (const r of decodeBatch(e.records) as QRecord[]) channelIn.push(qid(r));
        }
      }
      for (const [target, values] of Object.entries(file.outputs)) channelOut[target] = (values as QRecord[]).map(qid);
    }
  }
  const offsets = new Map<number, number>();
  for (const [key, off] of Object.entries(spec?.sources[ASYNC_SOURCE] ?? {})) offsets.set(Number(/\/(\d+)$/.exec(key)?.[1]), Math.max(0, off));
  return { atMs, attempt: d.attempt, vertex: d.vertex, index: d.index, checkpointId: spec?.checkpointId ?? null, inFlight, channelIn, channelOut, offsets };
}

interface Seen {
  readonly row: AsyncRow;
  readonly atMs: number;
  readonly where: string;
}

interface State {
  readonly records: Map<string, QRecord>;
  cursor: number;
  /** Row id → its committed copies. */
  readonly rows: Map<string, Seen[]>;
  readonly dead: Map<string, { letter: DeadLetter; atMs: number; where: string }[]>;
  wrong: boolean;
}

const cache = new WeakMap<World, State>();

function state(w: World): State | undefined {
  const shape = w.scenario.shape.async;
  if (!shape) return undefined;
  let c = cache.get(w);
  if (!c) cache.set(w, (c = { records: new Map(shape.input.flat().map((r) => [qid(r), r])), cursor: 0, rows: new Map(), dead: new Map(), wrong: false }));
  for (; c.cursor < w.applied.length; c.cursor++) {
    const a = w.applied[c.cursor];
    if (a.table !== ASYNC_LOG && a.table !== ASYNC_DEAD) continue;
    const where = `txn ${a.txn} of ${a.writer} at ${a.atMs}ms`;
    for (const r of a.rows) {
      if (a.table === ASYNC_DEAD) {
        const letter = JSON.parse(r[2]!) as DeadLetter;
        const id = qid(letter.value as QRecord);
        const list = c.dead.get(id) ?? [];
        list.push({ letter, atMs: a.atMs, where });
        c.dead.set(id, list);
        if (list.length > 1 || !c.records.has(id) || outcomes(c, id) > 1) c.wrong = true;
        continue;
      }
      const row = JSON.parse(r[2]!) as AsyncRow;
      const list = c.rows.get(row.id) ?? [];
      list.push({ row, atMs: a.atMs, where });
      c.rows.set(row.id, list);
      if (list.length > 1 || rowProblem(c, row) !== undefined || outcomes(c, qid(row)) > 1) c.wrong = true;
    }
  }
  return c;
}

/** What is wrong with a row's content, if anything. */
function rowProblem(c: State, row: AsyncRow): string | undefined {
  const r = c.records.get(qid(row));
  if (!r) return "not a record of the input";
  if (row.kind === "timeout") {
    if (row.id !== `${qid(r)}|t` || row.val !== -1) return `not the timeout handler's row of ${qid(r)}`;
  } else if (row.kind !== "result" || row.id !== `${qid(r)}|${row.i}` || row.i >= resultCount(r) || row.val !== answerOf(r) + row.i) {
    return `not result ${row.i} of ${qid(r)} (value ${answerOf(r) + row.i}, ${resultCount(r)} results)`;
  }
  return undefined;
}

/** The outcome a record got, as committed: its rows by kind. */
function outcomeOf(c: State, id: string): { results: number[]; timeouts: number; dead: number } {
  const results: number[] = [];
  const r = c.records.get(id)!;
  for (let i = 0; i < resultCount(r); i++) for (const _ of c.rows.get(`${id}|${i}`) ?? []) results.push(i);
  return { results, timeouts: (c.rows.get(`${id}|t`) ?? []).length, dead: (c.dead.get(id) ?? []).length };
}

/** How many kinds of outcome a record has committed (more than one is wrong). */
function outcomes(c: State, id: string): number {
  const o = outcomeOf(c, id);
  return (o.results.length > 0 ? 1 : 0) + (o.timeouts > 0 ? 1 : 0) + (o.dead > 0 ? 1 : 0);
}

/** Whether a record's committed rows are one whole outcome. */
function complete(c: State, id: string): boolean {
  const o = outcomeOf(c, id);
  const n = resultCount(c.records.get(id)!);
  return o.timeouts > 0 || o.dead > 0 || (n > 0 && o.results.length >= n);
}

/** Per (job attempt, async subtask): what its restore entitles it to request, as a predicate on records. */
function entitlement(w: World): (attempt: number, sub: number, r: QRecord) => boolean {
  const notes = w.asyncRestores;
  const memo = new Map<string, (r: QRecord) => boolean>();
  return (attempt, sub, r) => {
    const key = `${attempt}/${sub}`;
    let f = memo.get(key);
    if (!f) {
      const mine = notes.filter((n) => n.attempt === attempt && n.vertex === ASYNC_UID && n.index === sub);
      const sources = notes.filter((n) => n.attempt === attempt && n.vertex === ASYNC_SOURCE);
      if (mine.length === 0) f = () => false;
      else if (mine.some((n) => n.checkpointId === null) || sources.some((n) => n.checkpointId === null)) f = () => true;
      else {
        const ids = new Set<string>();
        for (const n of mine) for (const id of [...n.inFlight, ...n.channelIn]) ids.add(id);
        for (const n of sources) for (const id of n.channelOut[`${ASYNC_UID}/${sub}`] ?? []) ids.add(id);
        const offsets = new Map<number, number>();
        for (const n of sources) for (const [p, off] of n.offsets) offsets.set(p, Math.min(off, offsets.get(p) ?? Number.POSITIVE_INFINITY));
        f = (q) => ids.has(qid(q)) || q.off >= (offsets.get(q.part) ?? Number.POSITIVE_INFINITY);
      }
      memo.set(key, f);
    }
    return f(r);
  };
}

/** Records the given attempt restored towards each async subtask (in flight, or in-flight channel data): sub → ids. */
function restoredBy(w: World, attempt: number): Map<number, Set<string>> {
  const out = new Map<number, Set<string>>();
  const add = (sub: number, id: string) => {
    let s = out.get(sub);
    if (!s) out.set(sub, (s = new Set()));
    s.add(id);
  };
  for (const n of w.asyncRestores) {
    if (n.attempt !== attempt || n.checkpointId === null) continue;
    if (n.vertex === ASYNC_UID) for (const id of [...n.inFlight, ...n.channelIn]) add(n.index, id);
    else for (const [target, ids] of Object.entries(n.channelOut)) if (target.startsWith(`${ASYNC_UID}/`)) for (const id of ids) add(Number(target.slice(ASYNC_UID.length + 1)), id);
  }
  return out;
}

/**
 * First requests (a record taken into an operator instance) per record and job attempt: sub and time of each. As the
 * function sent them: the service saw those the network did not drop, so what holds for these holds for its log.
 */
function firstRequests(w: World): Map<string, Map<number, { sub: number; atMs: number }[]>> {
  const out = new Map<string, Map<number, { sub: number; atMs: number }[]>>();
  for (const e of w.asyncCalls.sent) {
    if (e.attempt !== 1) continue;
    const id = qid(e);
    let m = out.get(id);
    if (!m) out.set(id, (m = new Map()));
    m.set(e.jobAttempt, [...(m.get(e.jobAttempt) ?? []), { sub: e.sub, atMs: e.atMs }]);
  }
  return out;
}

/** Whether every record that gives a row has its outcome committed, and the last attempt requested what it restored (true without the branch, or once a row is already wrong). */
export function asyncComplete(w: World): boolean {
  const c = state(w);
  if (!c) return true;
  if (c.wrong) return true;
  for (const [id, r] of c.records) if (resultCount(r) > 0 && !complete(c, id)) return false;
  const restored = restoredBy(w, w.currentAttempt());
  if (restored.size === 0) return true;
  const asked = new Set(w.asyncCalls.sent.filter((e) => e.attempt === 1 && e.jobAttempt === w.currentAttempt()).map((e) => `${e.sub}/${qid(e)}`));
  for (const [sub, ids] of restored) for (const id of ids) if (!asked.has(`${sub}/${id}`)) return false;
  return true;
}

/** What the async branch did in a run (for the sweep's summary). */
export interface AsyncStats {
  readonly keyed: boolean;
  readonly mode: "ordered" | "unordered";
  readonly records: number;
  readonly requests: number;
  readonly retries: number;
  readonly timeouts: number;
  readonly deadLetters: number;
  /** Of those, the ones naming where their record was read. */
  readonly deadLettersWithSource: number;
  /** Records taken by more than one job attempt. */
  readonly requestedAgain: number;
  /** Records listed in flight (or in in-flight channel data) in restored checkpoints. */
  readonly restoredInFlight: number;
  /** Unordered mode: results that arrived at the counter before a result of an earlier record of their partition. */
  readonly overtaking: number;
}

export function asyncStats(w: World): AsyncStats | undefined {
  const shape = w.scenario.shape.async;
  const c = state(w);
  if (!shape || !c) return undefined;
  const log = w.asyncService?.log ?? [];
  let timeouts = 0;
  for (const [id, list] of c.rows) if (id.endsWith("|t")) timeouts += list.length;
  let deadLetters = 0;
  let deadLettersWithSource = 0;
  for (const list of c.dead.values()) {
    deadLetters += list.length;
    deadLettersWithSource += list.filter((d) => d.letter.source !== null).length;
  }
  let restoredInFlight = 0;
  for (const n of w.asyncRestores) if (n.checkpointId !== null) restoredInFlight += n.inFlight.length + n.channelIn.length;
  let overtaking = 0;
  if (shape.mode === "unordered") for (const rows of byPartitionInSeq(c).values()) {
    let maxOff = -1;
    for (const { row } of rows) {
      if (row.off < maxOff) overtaking++;
      maxOff = Math.max(maxOff, row.off);
    }
  }
  const again = [...firstRequests(w).values()].filter((m) => m.size > 1).length;
  return { mode: shape.mode, keyed: shape.keyed === true, records: c.records.size, requests: log.length, retries: log.filter((e) => e.attempt > 1).length, timeouts, deadLetters, deadLettersWithSource, requestedAgain: again, restoredInFlight, overtaking };
}

/** Per partition, the committed rows in the counter's order. */
function byPartitionInSeq(c: State): Map<number, Seen[]> {
  const out = new Map<number, Seen[]>();
  for (const list of c.rows.values()) for (const s of list) out.set(s.row.part, [...(out.get(s.row.part) ?? []), s]);
  for (const rows of out.values()) rows.sort((a, b) => (a.row.seq ?? 0) - (b.row.seq ?? 0));
  return out;
}

/** The async branch's failures. */
export function checkAsync(w: World): Failure[] {
  const shape = w.scenario.shape.async;
  const c = state(w);
  if (!shape || !c) return [];
  const failures: Failure[] = [];

  // Each row: a row the record gives, once, with its record's event time, not behind the counter's watermark.
  for (const [id, list] of c.rows) {
    const first = list[0];
    const problem = rowProblem(c, first.row);
    if (problem !== undefined) {
      failures.push({ text: `async ${c.records.has(qid(first.row)) ? "row" : "unknown"}: ${JSON.stringify(first.row)}: ${problem} (${first.where})`, atMs: first.atMs });
      continue;
    }
    if (list.length > 1) failures.push({ text: `async duplicated: row ${id} committed ${list.length} times (${list.map((x) => x.where).join("; ")})`, atMs: list[1].atMs });
    const r = c.records.get(qid(first.row))!;
    for (const { row, atMs, where } of list) {
      const ts = shape.watermarks ? r.ts : null;
      if (row.ts !== ts) failures.push({ text: `async row: ${id} came with event time ${row.ts}, its record's is ${ts} (${where})`, atMs });
      else if (row.ts !== null && row.ts !== undefined && row.wm !== null && row.wm !== undefined && row.ts <= row.wm) {
        failures.push({ text: `async late: ${id} (event time ${row.ts}, from async subtask ${row.sub}) reached the counter behind its watermark ${row.wm} (${where})`, atMs });
      }
    }
  }
  for (const [id, list] of c.dead) {
    const first = list[0];
    const r = c.records.get(id);
    if (!r || JSON.stringify(first.letter.value) !== JSON.stringify(r) || first.letter.operator !== ASYNC_UID) {
      failures.push({ text: `async unknown: dead letter ${JSON.stringify(first.letter).slice(0, 200)} (${first.where})`, atMs: first.atMs });
    }
    if (list.length > 1) failures.push({ text: `async duplicated: dead letter of ${id} committed ${list.length} times (${list.map((x) => x.where).join("; ")})`, atMs: list[1].atMs });
    // Where it was read, carried over the edge into the operator: that record's partition and offset (unknown only
    // for a record replayed from in-flight data).
    // Its key: the selector's for a keyed stream, else none.
    const key = r && shape.keyed ? asyncKeyOf(r) : null;
    if (r && first.letter.key !== key) failures.push({ text: `async key: the dead letter of ${id} names key ${JSON.stringify(first.letter.key)}, not ${JSON.stringify(key)} (${first.where})`, atMs: first.atMs });
    const source = first.letter.source;
    if (r && source !== null && (Number(/\/(\d+)$/.exec(source.partition)?.[1]) !== r.part || source.offset !== r.off)) {
      failures.push({ text: `async source: the dead letter of ${id} names ${source.partition} offset ${source.offset} (${first.where})`, atMs: first.atMs });
    }
  }
  if (!shape.deadLetters && c.dead.size > 0) failures.push({ text: `async unknown: ${c.dead.size} dead letters in a run without a dead-letter output` });

  // One outcome per record, whole.
  for (const [id, r] of c.records) {
    const o = outcomeOf(c, id);
    const n = resultCount(r);
    const kinds = outcomes(c, id);
    const what = `${o.results.length} result rows of ${n}, ${o.timeouts} timeout rows, ${o.dead} dead letters`;
    const atMs = Math.max(...[...(c.rows.get(`${id}|t`) ?? []), ...Array.from({ length: n }, (_, i) => c.rows.get(`${id}|${i}`) ?? []).flat(), ...(c.dead.get(id) ?? [])].map((s) => s.atMs), 0);
    if (kinds > 1) failures.push({ text: `async outcome: record ${id} has ${what}: two outcomes`, atMs });
    else if (o.results.length > 0 && new Set(o.results).size < n) failures.push({ text: `async outcome: record ${id} has ${what}: part of its results`, atMs });
    else if (kinds === 0 && n > 0) failures.push({ text: `async lost: record ${id} (${n} results) has no outcome committed` });
  }

  // The counter's numbering of each partition: 0..n-1, each once; ordered mode keeps input order per async subtask.
  for (const [part, rows] of byPartitionInSeq(c)) {
    const seqs = rows.map((s) => s.row.seq ?? -1);
    const wrong = seqs.findIndex((s, i) => s !== i);
    if (wrong >= 0) failures.push({ text: `async seq: partition ${part}'s results are numbered ${seqs.slice(Math.max(0, wrong - 2), wrong + 3).join(",")}… (position ${wrong}: expected ${wrong}; ${rows[wrong].row.id}, ${rows[wrong].where})`, atMs: rows[wrong].atMs });
    if (shape.mode !== "ordered") continue;
    const last = new Map<number, Seen>();
    for (const s of rows) {
      const before = last.get(s.row.sub);
      if (before && (s.row.off < before.row.off || (s.row.off === before.row.off && s.row.i <= before.row.i))) {
        failures.push({ text: `async order: ordered mode, async subtask ${s.row.sub}: ${s.row.id} (seq ${s.row.seq}, ${s.where}) came after ${before.row.id} (seq ${before.row.seq}, ${before.where})`, atMs: s.atMs });
      }
      last.set(s.row.sub, s);
    }
  }

  // Requests, as the service saw them.
  const entitled = entitlement(w);
  for (const [id, byAttempt] of firstRequests(w)) {
    const r = c.records.get(id);
    if (!r) {
      failures.push({ text: `async request: the service was asked about ${id}, which is not an input record` });
      continue;
    }
    for (const [attempt, asks] of byAttempt) {
      if (asks.length > 1) failures.push({ text: `async request twice: record ${id} was taken ${asks.length} times by job attempt ${attempt} (subtasks ${asks.map((a) => `${a.sub} at ${a.atMs}ms`).join(", ")})`, atMs: asks[1].atMs });
      for (const a of asks) {
        if (entitled(attempt, a.sub, r)) continue;
        const restore = w.asyncRestores.filter((n) => n.attempt === attempt && (n.vertex === ASYNC_SOURCE || n.index === a.sub));
        const what = restore.length === 0 ? "no deploy of it was seen" : restore.map((n) => `${n.vertex}/${n.index} restored ${n.checkpointId === null ? "nothing" : `checkpoint ${n.checkpointId} (in flight ${n.inFlight.length}, channel ${n.channelIn.length}, offsets ${JSON.stringify([...n.offsets])})`}`).join("; ");
        failures.push({ text: `async request: job attempt ${attempt} (async subtask ${a.sub}) requested record ${id} at ${a.atMs}ms, which its restore does not hand it (${what})`, atMs: a.atMs });
      }
    }
  }
  // Connections: never more open at once than the operator allows (at most the platform's 6 per invocation).
  const allowed = shape.maxConcurrentRequests ?? Math.min(shape.capacity, 6);
  for (const [who, max] of w.asyncCalls.max) {
    if (max > allowed) failures.push({ text: `async connections: ${who} had ${max} requests open at once, the operator allows ${allowed}` });
  }
  const final = w.currentAttempt();
  const asked = new Set(w.asyncCalls.sent.filter((e) => e.attempt === 1 && e.jobAttempt === final).map((e) => `${e.sub}/${qid(e)}`));
  for (const [sub, ids] of restoredBy(w, final)) {
    const missing = [...ids].filter((id) => !asked.has(`${sub}/${id}`));
    if (missing.length > 0) failures.push({ text: `async not requested again: the last attempt (${final}) restored ${missing.length} records in flight towards async subtask ${sub} and never requested ${missing.slice(0, 8).join(", ")}` });
  }
  return failures;
}
