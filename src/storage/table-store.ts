/**
 * The rows of one partition of a queryable table, and the fence that makes
 * a table sink's publish idempotent: a batch that names its writer and
 * transaction is applied at most once, so that a sink may safely publish
 * again after a crash between publishing and forgetting what it published.
 *
 * Written over the {@link Sql} port: the TablePartition Durable Object runs
 * it on its SQLite, the simulator and the unit tests on `node:sqlite`.
 *
 * Tables: `rows` (key text → key JSON, value JSON) and `writers` (writer →
 * the last transaction it applied here).
 */
import type { Sql } from "./sql.js";

/** A row as stored: canonical key text, key JSON, value JSON (null value deletes). */
export type TableRowWrite = readonly [keyText: string, keyJson: string, valueJson: string | null];

/** A row as read. */
export interface TableRow {
  readonly key: unknown;
  readonly value: unknown;
}

/** One table partition's rows and writer fence, on SQLite. */
export class TableStore {
  constructor(private readonly sql: Sql) {
    sql.exec(`CREATE TABLE IF NOT EXISTS rows (key TEXT PRIMARY KEY, key_json TEXT NOT NULL, value_json TEXT NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS writers (writer TEXT PRIMARY KEY, txn INTEGER NOT NULL)`);
  }

  /**
   * Upserts rows. With `writer` and `txn`, the batch is skipped when that
   * writer already published a transaction ≥ `txn` here. Synchronous, so
   * that in a Durable Object the fence and the rows commit together.
   */
  upsert(rows: readonly TableRowWrite[], writer?: string, txn?: number): { applied: boolean } {
    if (writer !== undefined && txn !== undefined) {
      const last = this.lastTxn(writer);
      if (last !== undefined && last >= txn) return { applied: false };
      this.sql.exec(`INSERT INTO writers (writer, txn) VALUES (?, ?) ON CONFLICT(writer) DO UPDATE SET txn = excluded.txn`, writer, txn);
    }
    for (const [key, keyJson, valueJson] of rows) {
      if (valueJson === null) this.sql.exec(`DELETE FROM rows WHERE key = ?`, key);
      else
        this.sql.exec(
          `INSERT INTO rows (key, key_json, value_json) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value_json = excluded.value_json`,
          key,
          keyJson,
          valueJson,
        );
    }
    return { applied: true };
  }

  /** One row by canonical key text. */
  get(key: string): TableRow | null {
    const row = this.sql.exec<{ key_json: string; value_json: string }>(`SELECT key_json, value_json FROM rows WHERE key = ?`, key).toArray()[0];
    return row ? { key: JSON.parse(row.key_json), value: JSON.parse(row.value_json) } : null;
  }

  /** Rows in key order after `afterKey`, at most `limit`; `last` is the key text to continue after. */
  list(afterKey: string | null, limit: number): { rows: TableRow[]; last: string | null } {
    const rows = this.sql
      .exec<{ key: string; key_json: string; value_json: string }>(
        afterKey === null
          ? `SELECT key, key_json, value_json FROM rows ORDER BY key LIMIT ?`
          : `SELECT key, key_json, value_json FROM rows WHERE key > ? ORDER BY key LIMIT ?`,
        ...(afterKey === null ? [limit] : [afterKey, limit]),
      )
      .toArray();
    return {
      rows: rows.map((r) => ({ key: JSON.parse(r.key_json), value: JSON.parse(r.value_json) })),
      last: rows.length === limit ? rows[rows.length - 1].key : null,
    };
  }

  /** The last transaction `writer` applied here, or undefined. */
  lastTxn(writer: string): number | undefined {
    return this.sql.exec<{ txn: number }>(`SELECT txn FROM writers WHERE writer = ?`, writer).toArray()[0]?.txn;
  }

  /** Every row as stored, in key order: key text → [key JSON, value JSON] (what a checker compares). */
  stored(): Map<string, [keyJson: string, valueJson: string]> {
    const out = new Map<string, [string, string]>();
    for (const r of this.sql.exec<{ key: string; key_json: string; value_json: string }>(`SELECT key, key_json, value_json FROM rows ORDER BY key`)) {
      out.set(r.key, [r.key_json, r.value_json]);
    }
    return out;
  }
}
