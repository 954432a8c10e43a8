/**
 * The local image of a subtask's keyed state, in its Durable Object's
 * SQLite. It is written at each checkpoint and read on demand after a
 * local restore.
 *
 * The image is log-structured, so that a checkpoint's write costs what its
 * bytes cost, not what its rows cost:
 *
 * - `image_log` holds appended changes: chunks of rows as JSON arrays, in
 *   the order they were written. A checkpoint appends its changes there
 *   (a few statements of up to {@link IMAGE_CHUNK_CHARS} characters) and
 *   is done with the image.
 * - `keyed_state` holds one row per (operator, state, key) with the value
 *   as JSON text. {@link StateImage.mergeStep} moves the oldest chunk into
 *   it (one `INSERT … SELECT … FROM json_each` inside SQLite, then the
 *   chunk is deleted), in the background while processing goes on.
 *
 * The image is the table with the pending chunks applied over it, in
 * order. Merging a chunk keeps that image: applying a chunk a second time
 * gives the same rows, so a merge cut short by a crash is simply merged
 * again. {@link StateImage.backing} reads the pending chunks into memory
 * and the table on demand.
 *
 * Upserting a row into SQLite costs 5–12 µs whatever the statement, so a
 * checkpoint that changed a million keys used to spend seconds writing the
 * table before it could acknowledge. Now it appends 100 MB of text in a
 * few hundred milliseconds and the merge pays the rows later.
 */
import type { StateBacking, StateEntry } from "../state/keyed-state.js";

type Kind = StateEntry["kind"];

/** The part of a Durable Object's `SqlStorage` the image uses (node:sqlite can stand in for it in tests). */
export interface ImageSql {
  exec(query: string, ...bindings: (string | number | null)[]): Iterable<Record<string, unknown>> & { toArray(): Record<string, unknown>[] };
}

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

const TABLES = [
  `CREATE TABLE IF NOT EXISTS keyed_state (
  op TEXT NOT NULL, state TEXT NOT NULL, key TEXT NOT NULL, key_group INTEGER NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY (op, state, key))`,
  // del: the chunk deletes (rows [state, key]); else it upserts (rows [state, key, keyGroup, kind, value]),
  // each value as its JSON text: SQLite's `->` gives that text back as it was written.
  `CREATE TABLE IF NOT EXISTS image_log (
  seq INTEGER PRIMARY KEY, op TEXT NOT NULL, del INTEGER NOT NULL, update_kind INTEGER NOT NULL, rows TEXT NOT NULL)`,
];

const UPSERT_FROM_LOG = `INSERT INTO keyed_state (op, state, key, key_group, kind, value)
  SELECT l.op, r.value ->> 0, r.value ->> 1, r.value ->> 2, r.value ->> 3, r.value -> 4 FROM image_log AS l, json_each(l.rows) AS r WHERE l.seq = ?1
  ON CONFLICT (op, state, key) DO UPDATE SET value = excluded.value`;
const UPSERT_FROM_LOG_WITH_KIND = `${UPSERT_FROM_LOG}, kind = excluded.kind`;
const DELETE_FROM_LOG = `DELETE FROM keyed_state WHERE op = ?2 AND (state, key) IN (
  SELECT r.value ->> 0, r.value ->> 1 FROM image_log AS l, json_each(l.rows) AS r WHERE l.seq = ?1)`;
const UPSERT_ONE = `INSERT INTO keyed_state (op, state, key, key_group, kind, value) VALUES (?, ?, ?, ?, ?, ?)
  ON CONFLICT (op, state, key) DO UPDATE SET value = excluded.value`;
const UPSERT_ONE_WITH_KIND = `${UPSERT_ONE}, kind = excluded.kind`;
/** Keys of a pending chunk that the table holds (one primary-key probe per row; a join would scan the table). */
const IN_TABLE_FROM_LOG = `SELECT r.value ->> 0 AS state, r.value ->> 1 AS key FROM image_log AS l, json_each(l.rows) AS r
  WHERE l.seq = ?1 AND EXISTS (SELECT 1 FROM keyed_state AS t WHERE t.op = l.op AND t.state = r.value ->> 0 AND t.key = r.value ->> 1)`;

/** A pending entry as the image will hold it (its value as parsed from the chunk), or null when deleted. */
type Pending = { kind: Kind; value: unknown } | null;

/** The keyed-state image of one Durable Object. */
export class StateImage {
  constructor(private readonly sql: ImageSql) {
    for (const t of TABLES) sql.exec(t);
  }

  /**
   * Appends rows of operator `uid`, applied in order: upserts (the value;
   * the kind too when `updateKind`) and deletions.
   */
  write(uid: string, rows: Iterable<ImageRow>, updateKind = false): void {
    // A run of rows of one sort (upserts or deletions) is one chunk, so that the order between sorts is kept.
    let run: string[] = [];
    let chars = 0;
    let deleting = false;
    const flush = () => {
      if (run.length === 0) return;
      this.sql.exec(`INSERT INTO image_log (op, del, update_kind, rows) VALUES (?, ?, ?, ?)`, uid, deleting ? 1 : 0, updateKind ? 1 : 0, `[${run.join(",")}]`);
      run = [];
      chars = 0;
    };
    for (const r of rows) {
      const del = r.valueJson === null;
      const json = del
        ? `[${JSON.stringify(r.state)},${JSON.stringify(r.key)}]`
        : `[${JSON.stringify(r.state)},${JSON.stringify(r.key)},${r.keyGroup},"${r.kind}",${r.valueJson}]`;
      if (del !== deleting || chars + json.length + 1 > IMAGE_CHUNK_CHARS) {
        flush();
        deleting = del;
      }
      if (json.length + 2 > IMAGE_CHUNK_CHARS) {
        // Too big for a chunk: written to the table as it is, after everything before it, so that the order holds.
        this.mergeAll();
        if (del) this.sql.exec(`DELETE FROM keyed_state WHERE op = ? AND state = ? AND key = ?`, uid, r.state, r.key);
        else this.sql.exec(updateKind ? UPSERT_ONE_WITH_KIND : UPSERT_ONE, uid, r.state, r.key, r.keyGroup, r.kind, r.valueJson);
        continue;
      }
      run.push(json);
      chars += json.length + 1;
    }
    flush();
  }

  /** Number of chunks not yet merged into the table. */
  pending(): number {
    return this.sql.exec(`SELECT COUNT(*) AS n FROM image_log`).toArray()[0].n as number;
  }

  /** Merges the oldest pending chunk into the table. Returns whether more are pending. */
  mergeStep(): boolean {
    const next = this.sql.exec(`SELECT seq, op, del, update_kind FROM image_log ORDER BY seq LIMIT 2`).toArray();
    if (next.length === 0) return false;
    const { seq, op, del, update_kind } = next[0] as { seq: number; op: string; del: number; update_kind: number };
    if (del) this.sql.exec(DELETE_FROM_LOG, seq, op);
    else this.sql.exec(update_kind ? UPSERT_FROM_LOG_WITH_KIND : UPSERT_FROM_LOG, seq);
    this.sql.exec(`DELETE FROM image_log WHERE seq = ?`, seq);
    return next.length > 1;
  }

  /** Merges every pending chunk. */
  mergeAll(): void {
    while (this.mergeStep());
  }

  /** Drops every operator's rows. */
  clear(): void {
    this.sql.exec(`DELETE FROM keyed_state`);
    this.sql.exec(`DELETE FROM image_log`);
  }

  /** Drops the rows of operator `uid`. */
  clearOperator(uid: string): void {
    this.sql.exec(`DELETE FROM keyed_state WHERE op = ?`, uid);
    this.sql.exec(`DELETE FROM image_log WHERE op = ?`, uid);
  }

  /**
   * The image of operator `uid` as it is now, read on demand: its pending
   * chunks are read into memory, the table's rows when asked for. Merges
   * that run later do not change what it reads, and neither do later
   * writes of keys the reader already holds in memory (the keyed-state
   * backend caches every key it read or wrote).
   */
  backing(uid: string): StateBacking {
    const sql = this.sql;
    const pending = new Map<string, Pending>();
    const chunks = sql.exec(`SELECT seq, del, update_kind, rows FROM image_log WHERE op = ? ORDER BY seq`, uid).toArray() as { seq: number; del: number; update_kind: number; rows: string }[];
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
    // Counted now, while the table and the chunks agree: a key is counted once whether it is in either or both.
    let count = sql.exec(`SELECT COUNT(*) AS n FROM keyed_state WHERE op = ?`, uid).toArray()[0].n as number;
    if (pending.size > 0) {
      const inTable = new Set<string>();
      if (count > 0) for (const c of chunks) for (const r of sql.exec(IN_TABLE_FROM_LOG, c.seq)) inTable.add(entryId(r.state as string, r.key as string));
      for (const [id, p] of pending) {
        if (p !== null && !inTable.has(id)) count++;
        else if (p === null && inTable.has(id)) count--;
      }
    }
    return {
      get: (state, key) => {
        const p = pending.get(entryId(state, key));
        // Handed out once: the keyed-state backend keeps what it read (and may change it in place).
        if (p !== undefined) return p === null ? undefined : p;
        const row = sql.exec(`SELECT kind, value FROM keyed_state WHERE op = ? AND state = ? AND key = ?`, uid, state, key).toArray()[0];
        return row ? { kind: row.kind as Kind, value: JSON.parse(row.value as string) } : undefined;
      },
      entries: function* () {
        // Rows merged since hold what `pending` holds, or keys written after the backing was made.
        for (const r of sql.exec(`SELECT state, key, kind, value FROM keyed_state WHERE op = ?`, uid)) {
          const state = r.state as string;
          const key = r.key as string;
          if (!pending.has(entryId(state, key))) yield { state, key, kind: r.kind as Kind, value: JSON.parse(r.value as string) };
        }
        for (const [id, p] of pending) {
          if (p === null) continue;
          const cut = id.indexOf("\u0000");
          yield { state: id.slice(0, cut), key: id.slice(cut + 1), kind: p.kind, value: p.value };
        }
      },
      count: () => count,
    };
  }
}

function entryId(state: string, key: string): string {
  return `${state}\u0000${key}`;
}
