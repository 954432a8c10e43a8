/**
 * The local image of a subtask's keyed state, in its Durable Object's
 * SQLite. It is written at each checkpoint and read on demand after a
 * local restore.
 *
 * The image is the table `keyed_state` (one row per operator, state and
 * key, the value as JSON text) with the pending chunks of `image_chunks`
 * applied over it, in order. A chunk is a JSON array of rows of one
 * operator and one key group.
 *
 * - {@link StateImage.writeThrough} (a checkpoint's changes) writes rows
 *   straight into the table, one `INSERT … SELECT … FROM json_each(?)`
 *   per run of rows, unless chunks of that operator are pending: then it
 *   appends behind them.
 * - {@link StateImage.write} (a restore from R2) appends chunks, which
 *   costs what the bytes cost; {@link StateImage.mergeStep} moves the
 *   oldest chunk into the table inside SQLite, in the background. Merging
 *   a chunk a second time gives the same rows, so a merge cut short by a
 *   crash is simply merged again.
 *
 * {@link StateImage.backing} reads a key group's pending chunks into
 * memory when a key of that group is first asked for, and the table on
 * demand. A Durable Object statement may bind at most 100 parameters, but
 * one parameter may be a string of up to 2 MB, and each `sql.exec` call
 * costs about as much as the SQLite work of a small upsert: hence runs.
 */
import type { StateBacking, StateEntry } from "../state/keyed-state.js";
import { checkStateEntry } from "../state/state-limits.js";
import { timerStateName } from "../state/timer-queue.js";
import type { Sql } from "./sql.js";

type Kind = StateEntry["kind"];

/** One row to write: `valueJson` null deletes it. */
export interface ImageRow {
  readonly state: string;
  readonly kind: Kind;
  readonly key: string;
  readonly keyGroup: number;
  readonly valueJson: string | null;
}

/**
 * Characters of JSON per chunk: at most 3 bytes each in UTF-8, so the
 * bound string stays under the 2 MB a SQLite value may hold. Merging a
 * chunk of this size takes one turn of a few milliseconds to a few tens.
 */
export const IMAGE_CHUNK_CHARS = 200_000;

/**
 * Rows per chunk: merging a chunk is one turn, and an upsert into a large
 * table costs 10–40 µs per row here, so that a turn stays within tens of
 * milliseconds however small the rows are.
 */
export const IMAGE_CHUNK_ROWS = 1_000;

const TABLES = [
  `CREATE TABLE IF NOT EXISTS keyed_state (
  op TEXT NOT NULL, state TEXT NOT NULL, key TEXT NOT NULL, key_group INTEGER NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY (op, state, key))`,
  // del: the chunk deletes (rows [state, key]); else it upserts (rows [state, key, keyGroup, kind, value]),
  // each value as its JSON text: SQLite's `->` gives that text back as it was written.
  `CREATE TABLE IF NOT EXISTS image_chunks (
  seq INTEGER PRIMARY KEY, op TEXT NOT NULL, key_group INTEGER NOT NULL, del INTEGER NOT NULL, update_kind INTEGER NOT NULL, rows TEXT NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS image_chunks_by_group ON image_chunks (op, key_group, seq)`,
];

const UPSERT_FROM_LOG = `INSERT INTO keyed_state (op, state, key, key_group, kind, value)
  SELECT l.op, r.value ->> 0, r.value ->> 1, r.value ->> 2, r.value ->> 3, r.value -> 4 FROM image_chunks AS l, json_each(l.rows) AS r WHERE l.seq = ?1
  ON CONFLICT (op, state, key) DO UPDATE SET value = excluded.value`;
const UPSERT_FROM_LOG_WITH_KIND = `${UPSERT_FROM_LOG}, kind = excluded.kind`;
const DELETE_FROM_LOG = `DELETE FROM keyed_state WHERE op = ?2 AND (state, key) IN (
  SELECT r.value ->> 0, r.value ->> 1 FROM image_chunks AS l, json_each(l.rows) AS r WHERE l.seq = ?1)`;
// Straight into the table, from one bound JSON array. `WHERE true` lets SQLite tell the upsert's ON CONFLICT from a join constraint.
const UPSERT_FROM_JSON = `INSERT INTO keyed_state (op, state, key, key_group, kind, value)
  SELECT ?1, r.value ->> 0, r.value ->> 1, r.value ->> 2, r.value ->> 3, r.value -> 4 FROM json_each(?2) AS r WHERE true
  ON CONFLICT (op, state, key) DO UPDATE SET value = excluded.value`;
const UPSERT_FROM_JSON_WITH_KIND = `${UPSERT_FROM_JSON}, kind = excluded.kind`;
const DELETE_FROM_JSON = `DELETE FROM keyed_state WHERE op = ?1 AND (state, key) IN (SELECT r.value ->> 0, r.value ->> 1 FROM json_each(?2) AS r)`;
const UPSERT_ONE = `INSERT INTO keyed_state (op, state, key, key_group, kind, value) VALUES (?, ?, ?, ?, ?, ?)
  ON CONFLICT (op, state, key) DO UPDATE SET value = excluded.value`;
const UPSERT_ONE_WITH_KIND = `${UPSERT_ONE}, kind = excluded.kind`;
/** Keys of a pending chunk that the table holds (one primary-key probe per row; a join would scan the table). */
const IN_TABLE_FROM_LOG = `SELECT r.value ->> 0 AS state, r.value ->> 1 AS key FROM image_chunks AS l, json_each(l.rows) AS r
  WHERE l.seq = ?1 AND EXISTS (SELECT 1 FROM keyed_state AS t WHERE t.op = l.op AND t.state = r.value ->> 0 AND t.key = r.value ->> 1)`;

/** The state names of timer entries: a restore reads these rows only, through the primary key's (op, state) prefix. */
const TIMER_STATES = [timerStateName("event"), timerStateName("processing")] as const;
const TIMERS_IN_TABLE = `SELECT state, key, value FROM keyed_state WHERE op = ?1 AND state IN (?2, ?3)`;
/** Timer rows of the pending chunks, in the order they apply (chunk, then position in it). */
const TIMERS_IN_LOG = `SELECT l.del AS del, r.value ->> 0 AS state, r.value ->> 1 AS key, r.value -> 4 AS value
  FROM image_chunks AS l, json_each(l.rows) AS r WHERE l.op = ?1 AND r.value ->> 0 IN (?2, ?3) ORDER BY l.seq, r.key`;

/** Rows a backing's pass over the table reads per statement. */
const ENTRIES_PAGE_ROWS = 1000;

/** Rows of one operator and key group gathered for one chunk. */
interface OpenRun {
  readonly uid: string;
  readonly keyGroup: number;
  readonly del: boolean;
  readonly updateKind: boolean;
  rows: string[];
  chars: number;
}

/** A pending entry as the image will hold it (its value as parsed from the chunk), or null when deleted. */
type Pending = { kind: Kind; value: unknown } | null;

/** Options of {@link StateImage}. */
export interface StateImageOptions {
  /**
   * Broken on purpose, for a simulator variant that must be caught: each
   * merge deletes its chunk in one turn and applies it (from memory) in
   * the next, so that a crash in between loses the chunk.
   */
  readonly mergeDeletesFirst?: boolean;
}

/** A chunk taken out of `image_chunks` and not yet applied (only with `mergeDeletesFirst`). */
interface CarriedChunk {
  readonly op: string;
  readonly del: number;
  readonly updateKind: number;
  readonly rows: string;
}

/** The keyed-state image of one Durable Object. */
export class StateImage {
  private carried: CarriedChunk | undefined;
  /**
   * Counts writes that may change what a key reads (not merges, which only
   * move a chunk's rows into the table): a backing drops what it cached of
   * the pending chunks when it changed, since with a memory budget the
   * keyed-state backend reads back keys it wrote and evicted.
   */
  private generation = 0;

  constructor(
    private readonly sql: Sql,
    private readonly options: StateImageOptions = {},
  ) {
    for (const t of TABLES) sql.exec(t);
  }

  /**
   * Runs of rows being gathered per operator and key group, until they
   * fill a chunk or {@link seal} writes them: one checkpoint's changes
   * arrive in many small writes, and a chunk per write and key group
   * would make thousands of tiny chunks.
   */
  private readonly open = new Map<string, OpenRun>();

  /**
   * Appends rows of operator `uid`, applied in order: upserts (the value;
   * the kind too when `updateKind`) and deletions. They are part of the
   * image once {@link seal}ed (reading and merging seal first).
   */
  write(uid: string, rows: Iterable<ImageRow>, updateKind = false): void {
    for (const r of rows) {
      const del = r.valueJson === null;
      const json = rowJson(r);
      if (json.length + 2 > IMAGE_CHUNK_CHARS) {
        // Too big for a chunk: written to the table as it is, after everything before it, so that the order holds.
        this.mergeAll();
        this.writeOne(uid, r, updateKind);
        continue;
      }
      // A key is in one key group, so the order that matters is kept within each group's runs.
      const id = `${uid}\u0000${r.keyGroup}`;
      let run = this.open.get(id);
      // A run holds rows of one sort (upserts or deletions) and one kind-update mode, so that their order is kept.
      if (run && (run.del !== del || run.updateKind !== updateKind || run.chars + json.length + 1 > IMAGE_CHUNK_CHARS || run.rows.length >= IMAGE_CHUNK_ROWS)) {
        this.flush(run);
        run = undefined;
      }
      if (!run) this.open.set(id, (run = { uid, keyGroup: r.keyGroup, del, updateKind, rows: [], chars: 0 }));
      run.rows.push(json);
      run.chars += json.length + 1;
    }
  }

  /**
   * Writes rows of operator `uid` in order straight into the table, one
   * statement per run of up to {@link IMAGE_CHUNK_CHARS} characters, when
   * nothing of `uid` is pending; otherwise appends them behind what is, as
   * {@link write} does, so that the order holds. A checkpoint's changes go
   * this way: a restore then finds them in the table and reads nothing
   * ahead of its first record.
   */
  writeThrough(uid: string, rows: Iterable<ImageRow>, updateKind = false): void {
    if (this.hasPending(uid)) {
      this.write(uid, rows, updateKind);
      return;
    }
    let run: string[] = [];
    let chars = 0;
    let deleting = false;
    const flush = () => {
      if (run.length === 0) return;
      this.generation++;
      this.sql.exec(deleting ? DELETE_FROM_JSON : updateKind ? UPSERT_FROM_JSON_WITH_KIND : UPSERT_FROM_JSON, uid, `[${run.join(",")}]`);
      run = [];
      chars = 0;
    };
    for (const r of rows) {
      const del = r.valueJson === null;
      const json = rowJson(r);
      if (del !== deleting || chars + json.length + 1 > IMAGE_CHUNK_CHARS) {
        flush();
        deleting = del;
      }
      if (json.length + 2 > IMAGE_CHUNK_CHARS) {
        this.writeOne(uid, r, updateKind);
        continue;
      }
      run.push(json);
      chars += json.length + 1;
    }
    flush();
  }

  /** Whether operator `uid` has rows not yet merged into the table. */
  private hasPending(uid: string): boolean {
    for (const run of this.open.values()) if (run.uid === uid && run.rows.length > 0) return true;
    return this.sql.exec(`SELECT 1 AS x FROM image_chunks WHERE op = ? LIMIT 1`, uid).toArray().length > 0;
  }

  /**
   * Writes one row straight into the table. Only rows too large for a chunk
   * come here, so this is where a row too large for SQLite is refused by
   * name (the keyed-state capture refuses it first; a state file written
   * before that check, restored from R2, would reach this).
   */
  private writeOne(uid: string, r: ImageRow, updateKind: boolean): void {
    this.generation++;
    if (r.valueJson === null) this.sql.exec(`DELETE FROM keyed_state WHERE op = ? AND state = ? AND key = ?`, uid, r.state, r.key);
    else {
      checkStateEntry(uid, r.state, r.key, r.valueJson);
      this.sql.exec(updateKind ? UPSERT_ONE_WITH_KIND : UPSERT_ONE, uid, r.state, r.key, r.keyGroup, r.kind, r.valueJson);
    }
  }

  /** Writes every gathered run as a chunk: what was written is now the image. */
  seal(): void {
    for (const run of this.open.values()) this.flush(run);
    this.open.clear();
  }

  private flush(run: OpenRun): void {
    if (run.rows.length > 0) {
      this.generation++;
      this.sql.exec(`INSERT INTO image_chunks (op, key_group, del, update_kind, rows) VALUES (?, ?, ?, ?, ?)`, run.uid, run.keyGroup, run.del ? 1 : 0, run.updateKind ? 1 : 0, `[${run.rows.join(",")}]`);
    }
    run.rows = [];
    run.chars = 0;
  }

  /** Number of chunks not yet merged into the table. */
  pending(): number {
    this.seal();
    return this.sql.exec(`SELECT COUNT(*) AS n FROM image_chunks`).toArray()[0].n as number;
  }

  /** Merges the oldest pending chunk into the table. Returns whether more are pending. */
  mergeStep(): boolean {
    this.seal();
    if (this.options.mergeDeletesFirst) return this.brokenMergeStep();
    const next = this.sql.exec(`SELECT seq, op, del, update_kind FROM image_chunks ORDER BY seq LIMIT 2`).toArray();
    if (next.length === 0) return false;
    const { seq, op, del, update_kind } = next[0] as { seq: number; op: string; del: number; update_kind: number };
    if (del) this.sql.exec(DELETE_FROM_LOG, seq, op);
    else this.sql.exec(update_kind ? UPSERT_FROM_LOG_WITH_KIND : UPSERT_FROM_LOG, seq);
    this.sql.exec(`DELETE FROM image_chunks WHERE seq = ?`, seq);
    return next.length > 1;
  }

  /** {@link mergeStep} as the broken variant does it: delete in one call, apply in the next. */
  private brokenMergeStep(): boolean {
    const c = this.carried;
    if (c) {
      this.carried = undefined;
      if (c.del) this.sql.exec(DELETE_FROM_JSON, c.op, c.rows);
      else this.sql.exec(c.updateKind ? UPSERT_FROM_JSON_WITH_KIND : UPSERT_FROM_JSON, c.op, c.rows);
      return this.sql.exec(`SELECT 1 AS x FROM image_chunks LIMIT 1`).toArray().length > 0;
    }
    const next = this.sql.exec(`SELECT seq, op, del, update_kind, rows FROM image_chunks ORDER BY seq LIMIT 1`).toArray()[0];
    if (!next) return false;
    this.sql.exec(`DELETE FROM image_chunks WHERE seq = ?`, next.seq);
    this.carried = { op: next.op as string, del: next.del as number, updateKind: next.update_kind as number, rows: next.rows as string };
    return true;
  }

  /** Merges every pending chunk. */
  mergeAll(): void {
    while (this.mergeStep());
  }

  /** Drops every operator's rows. */
  clear(): void {
    this.open.clear();
    this.carried = undefined;
    this.generation++;
    this.sql.exec(`DELETE FROM keyed_state`);
    this.sql.exec(`DELETE FROM image_chunks`);
  }

  /** Drops the rows of operator `uid`. */
  clearOperator(uid: string): void {
    for (const [id, run] of this.open) if (run.uid === uid) this.open.delete(id);
    if (this.carried?.op === uid) this.carried = undefined;
    this.generation++;
    this.sql.exec(`DELETE FROM keyed_state WHERE op = ?`, uid);
    this.sql.exec(`DELETE FROM image_chunks WHERE op = ?`, uid);
  }

  /**
   * The image of operator `uid`, read on demand. A key group's pending
   * chunks are read into memory when one of its keys is first asked for;
   * other keys come from the table. What it reads for a key does not
   * change while the keyed-state backend has not written that key: merges
   * only move a chunk into the table, and later chunks hold keys the
   * backend wrote (it keeps every key it read or wrote in memory).
   *
   * `count`, when the caller knows it (the checkpoint recorded the number
   * of keys), spares counting; otherwise every pending chunk is read now
   * and its keys looked up in the table.
   */
  backing(uid: string, count?: number): StateBacking {
    this.seal();
    const sql = this.sql;
    const pendingGroups = () => new Set(sql.exec(`SELECT DISTINCT key_group FROM image_chunks WHERE op = ?`, uid).toArray().map((r) => r.key_group as number));
    let groups = pendingGroups();
    /** Per key group read so far: its pending entries. */
    const loaded = new Map<number, Map<string, Pending>>();
    let seen = this.generation;
    /** Drops what was read of the pending chunks if the image was written since (keys evicted after a write are read again). */
    const fresh = () => {
      if (seen === this.generation) return;
      // Rows gathered but not yet in a chunk are read as chunks too (sealing them counts as a write: seen after).
      this.seal();
      seen = this.generation;
      groups = pendingGroups();
      loaded.clear();
    };
    const group = (keyGroup: number): Map<string, Pending> | undefined => {
      if (!groups.has(keyGroup)) return undefined;
      let pending = loaded.get(keyGroup);
      if (pending) return pending;
      pending = new Map();
      const chunks = sql.exec(`SELECT del, update_kind, rows FROM image_chunks WHERE op = ? AND key_group = ? ORDER BY seq`, uid, keyGroup).toArray() as { del: number; update_kind: number; rows: string }[];
      for (const c of chunks) {
        for (const r of JSON.parse(c.rows) as [string, string, number?, Kind?, unknown?][]) {
          const id = entryId(r[0], r[1]);
          if (c.del) pending.set(id, null);
          else {
            const before = c.update_kind ? undefined : pending.get(id);
            pending.set(id, { kind: before ? before.kind : r[3]!, value: r[4] });
          }
        }
      }
      loaded.set(keyGroup, pending);
      return pending;
    };
    const total = count ?? this.count(uid, groups, group);
    return {
      get: (state, key, keyGroup) => {
        fresh();
        const p = group(keyGroup)?.get(entryId(state, key));
        // The keyed-state backend keeps what it read (and may change it in place, which marks it changed:
        // written back, the image's generation moves on and the chunks are read again).
        if (p !== undefined) return p === null ? undefined : p;
        const row = sql.exec(`SELECT kind, value FROM keyed_state WHERE op = ? AND state = ? AND key = ?`, uid, state, key).toArray()[0];
        return row ? { kind: row.kind as Kind, value: JSON.parse(row.value as string), bytes: (row.value as string).length } : undefined;
      },
      entries: function* () {
        fresh();
        // This pass's own view of the pending chunks: a write while the pass is suspended must not change it under it.
        const pendingNow = new Map<number, Map<string, Pending>>();
        for (const g of groups) pendingNow.set(g, group(g)!);
        // Rows merged since hold what the chunks hold, or keys written after the backing was made.
        // In pages by primary key, each a statement of its own: a caller may suspend the pass between turns (a full
        // snapshot streams the image while processing goes on), and no cursor stays open across them.
        let after: [string, string] | undefined;
        for (;;) {
          const page = (
            after === undefined
              ? sql.exec(`SELECT state, key, key_group, kind, value FROM keyed_state WHERE op = ?1 ORDER BY state, key LIMIT ${ENTRIES_PAGE_ROWS}`, uid)
              : sql.exec(
                  `SELECT state, key, key_group, kind, value FROM keyed_state WHERE op = ?1 AND (state, key) > (?2, ?3) ORDER BY state, key LIMIT ${ENTRIES_PAGE_ROWS}`,
                  uid,
                  after[0],
                  after[1],
                )
          ).toArray();
          for (const r of page) {
            const state = r.state as string;
            const key = r.key as string;
            if (!pendingNow.get(r.key_group as number)?.has(entryId(state, key))) yield { state, key, kind: r.kind as Kind, value: JSON.parse(r.value as string) };
          }
          if (page.length < ENTRIES_PAGE_ROWS) break;
          const last = page[page.length - 1];
          after = [last.state as string, last.key as string];
        }
        for (const pending of pendingNow.values()) {
          for (const [id, p] of pending) {
            if (p === null) continue;
            const cut = id.indexOf("\u0000");
            yield { state: id.slice(0, cut), key: id.slice(cut + 1), kind: p.kind, value: p.value };
          }
        }
      },
      timers: function* () {
        const timers = new Map<string, { state: string; key: string; value: unknown } | null>();
        for (const r of sql.exec(TIMERS_IN_TABLE, uid, ...TIMER_STATES)) {
          timers.set(entryId(r.state as string, r.key as string), { state: r.state as string, key: r.key as string, value: JSON.parse(r.value as string) });
        }
        for (const r of sql.exec(TIMERS_IN_LOG, uid, ...TIMER_STATES)) {
          const id = entryId(r.state as string, r.key as string);
          timers.set(id, r.del ? null : { state: r.state as string, key: r.key as string, value: JSON.parse(r.value as string) });
        }
        for (const t of timers.values()) if (t) yield t;
      },
      count: () => total,
    };
  }

  /** Keys of operator `uid` in the table and the pending chunks, each counted once, read now. */
  private count(uid: string, groups: ReadonlySet<number>, group: (keyGroup: number) => Map<string, Pending> | undefined): number {
    let count = this.sql.exec(`SELECT COUNT(*) AS n FROM keyed_state WHERE op = ?`, uid).toArray()[0].n as number;
    for (const g of groups) {
      const pending = group(g)!;
      const inTable = new Set<string>();
      if (count > 0) {
        for (const c of this.sql.exec(`SELECT seq FROM image_chunks WHERE op = ? AND key_group = ?`, uid, g).toArray()) {
          for (const r of this.sql.exec(IN_TABLE_FROM_LOG, c.seq as number)) inTable.add(entryId(r.state as string, r.key as string));
        }
      }
      for (const [id, p] of pending) {
        if (p !== null && !inTable.has(id)) count++;
        else if (p === null && inTable.has(id)) count--;
      }
    }
    return count;
  }
}

/** A row as an element of a chunk or statement: [state, key, keyGroup, kind, value] (the value's JSON as it is), or [state, key] to delete. */
function rowJson(r: ImageRow): string {
  return r.valueJson === null
    ? `[${JSON.stringify(r.state)},${JSON.stringify(r.key)}]`
    : `[${JSON.stringify(r.state)},${JSON.stringify(r.key)},${r.keyGroup},"${r.kind}",${r.valueJson}]`;
}

function entryId(state: string, key: string): string {
  return `${state}\u0000${key}`;
}
