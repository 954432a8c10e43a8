/**
 * The local image of a subtask's keyed state, in its Durable Object's
 * SQLite: one row per (operator, state, key), value as JSON text. It is
 * written back at each checkpoint and read on demand after a local restore.
 *
 * Writes are bulk: a run of rows becomes one statement over a JSON array
 * (`json_each`), not one statement per key. A Durable Object statement may
 * bind at most 100 parameters, but one parameter may be a string of up to
 * 2 MB, and each `sql.exec` call costs about as much as the SQLite work of
 * a small upsert. Rows are applied in the order given, as one statement
 * each would.
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
 * Characters of JSON per statement: at most 3 bytes each in UTF-8, so the
 * bound string stays under the 2 MB a SQLite value may hold.
 */
export const IMAGE_STATEMENT_CHARS_MAX = 500_000;

const TABLE = `CREATE TABLE IF NOT EXISTS keyed_state (
  op TEXT NOT NULL, state TEXT NOT NULL, key TEXT NOT NULL, key_group INTEGER NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY (op, state, key))`;

// `WHERE true` lets SQLite tell the upsert's ON CONFLICT from a join constraint.
const UPSERT_FROM_JSON = `INSERT INTO keyed_state (op, state, key, key_group, kind, value)
  SELECT ?1, r.value ->> 0, r.value ->> 1, r.value ->> 2, r.value ->> 3, r.value ->> 4 FROM json_each(?2) AS r WHERE true
  ON CONFLICT (op, state, key) DO UPDATE SET value = excluded.value`;
const UPSERT_FROM_JSON_WITH_KIND = `${UPSERT_FROM_JSON}, kind = excluded.kind`;
const UPSERT_ONE = `INSERT INTO keyed_state (op, state, key, key_group, kind, value) VALUES (?, ?, ?, ?, ?, ?)
  ON CONFLICT (op, state, key) DO UPDATE SET value = excluded.value`;
const UPSERT_ONE_WITH_KIND = `${UPSERT_ONE}, kind = excluded.kind`;
const DELETE_FROM_JSON = `DELETE FROM keyed_state WHERE op = ?1 AND (state, key) IN (SELECT r.value ->> 0, r.value ->> 1 FROM json_each(?2) AS r)`;

/** The keyed-state image of one Durable Object. */
export class StateImage {
  constructor(private readonly sql: ImageSql) {
    sql.exec(TABLE);
  }

  /**
   * Writes rows of operator `uid` in order: upserts (the value; the kind
   * too when `updateKind`) and deletions.
   */
  write(uid: string, rows: Iterable<ImageRow>, updateKind = false): void {
    // A run of rows of one sort (upserts or deletions) is one JSON array, so that the order between sorts is kept.
    let run: string[] = [];
    let chars = 0;
    let deleting = false;
    const flush = () => {
      if (run.length === 0) return;
      this.sql.exec(deleting ? DELETE_FROM_JSON : updateKind ? UPSERT_FROM_JSON_WITH_KIND : UPSERT_FROM_JSON, uid, `[${run.join(",")}]`);
      run = [];
      chars = 0;
    };
    for (const r of rows) {
      const del = r.valueJson === null;
      const json = del
        ? `[${JSON.stringify(r.state)},${JSON.stringify(r.key)}]`
        : `[${JSON.stringify(r.state)},${JSON.stringify(r.key)},${r.keyGroup},"${r.kind}",${JSON.stringify(r.valueJson)}]`;
      if (del !== deleting || chars + json.length + 1 > IMAGE_STATEMENT_CHARS_MAX) {
        flush();
        deleting = del;
      }
      if (json.length + 2 > IMAGE_STATEMENT_CHARS_MAX) {
        // Too big to wrap (escaping the value's JSON grows it): bound as it is, alone.
        if (del) this.sql.exec(`DELETE FROM keyed_state WHERE op = ? AND state = ? AND key = ?`, uid, r.state, r.key);
        else this.sql.exec(updateKind ? UPSERT_ONE_WITH_KIND : UPSERT_ONE, uid, r.state, r.key, r.keyGroup, r.kind, r.valueJson);
        continue;
      }
      run.push(json);
      chars += json.length + 1;
    }
    flush();
  }

  /** Drops every operator's rows. */
  clear(): void {
    this.sql.exec(`DELETE FROM keyed_state`);
  }

  /** Drops the rows of operator `uid`. */
  clearOperator(uid: string): void {
    this.sql.exec(`DELETE FROM keyed_state WHERE op = ?`, uid);
  }

  /** The rows of operator `uid`, read on demand. */
  backing(uid: string): StateBacking {
    const sql = this.sql;
    return {
      get: (state, key) => {
        const row = sql.exec(`SELECT kind, value FROM keyed_state WHERE op = ? AND state = ? AND key = ?`, uid, state, key).toArray()[0];
        return row ? { kind: row.kind as Kind, value: JSON.parse(row.value as string) } : undefined;
      },
      entries: function* () {
        for (const r of sql.exec(`SELECT state, key, kind, value FROM keyed_state WHERE op = ?`, uid)) {
          yield { state: r.state as string, key: r.key as string, kind: r.kind as Kind, value: JSON.parse(r.value as string) };
        }
      },
      count: () => sql.exec(`SELECT COUNT(*) AS n FROM keyed_state WHERE op = ?`, uid).toArray()[0].n as number,
    };
  }
}
