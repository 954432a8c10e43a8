/**
 * One partition of a queryable table written by table sinks. Rows are
 * upserted in batches; a batch that names its writer and transaction is
 * applied at most once, so that a sink may safely publish again after a
 * crash between publishing and forgetting what it published.
 */
import { DurableObject } from "cloudflare:workers";
import type { FloeEnv } from "./env.js";

/** A row as stored: canonical key text, key JSON, value JSON (null value deletes). */
export type TableRowWrite = readonly [keyText: string, keyJson: string, valueJson: string | null];

/** A row as read. */
export interface TableRow {
  readonly key: unknown;
  readonly value: unknown;
}

export class TablePartition extends DurableObject<FloeEnv> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: FloeEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS rows (key TEXT PRIMARY KEY, key_json TEXT NOT NULL, value_json TEXT NOT NULL)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS writers (writer TEXT PRIMARY KEY, txn INTEGER NOT NULL)`);
  }

  /**
   * Upserts rows. With `writer` and `txn`, the batch is skipped when that
   * writer already published a transaction ≥ `txn` here.
   */
  upsert(rows: TableRowWrite[], writer?: string, txn?: number): { applied: boolean } {
    if (writer !== undefined && txn !== undefined) {
      const last = this.sql.exec<{ txn: number }>(`SELECT txn FROM writers WHERE writer = ?`, writer).toArray()[0];
      if (last && last.txn >= txn) return { applied: false };
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
}
