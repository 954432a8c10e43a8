/**
 * `node:sqlite` as a Durable Object's SQL storage: the {@link Sql} port with
 * the limits the platform enforces and Node's SQLite does not (100 bound
 * parameters, 2 MB per string or blob, 100 KB per statement), so that code
 * that runs here within them runs in production too. Unit tests and the
 * simulator run floe's real statements on it.
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type { Sql, SqlCursor, SqlValue } from "../../src/storage/sql.js";

/** Durable Object SQLite limits (Cloudflare's docs, 2026-12). */
export const DO_SQL_LIMITS = { boundParametersMax: 100, valueBytesMax: 2_000_000, statementCharsMax: 100_000 } as const;

/** A {@link Sql} over one in-memory database, counting statements; `beforeExec` may throw to inject a fault. */
export interface DoSql extends Sql {
  readonly db: DatabaseSync;
  /** Statements run so far. */
  statements: number;
  /** Called before each statement; a throw fails that statement before it takes effect. */
  beforeExec?: (query: string) => void;
}

/** A fresh database (or `db`) behind the {@link Sql} port, with Durable Object limits. */
export function doSql(db = new DatabaseSync(":memory:")): DoSql {
  const prepared = new Map<string, StatementSync>();
  const sql: DoSql = {
    db,
    statements: 0,
    exec<T extends Record<string, SqlValue>>(query: string, ...bindings: SqlValue[]): SqlCursor<T> {
      sql.beforeExec?.(query);
      if (bindings.length > DO_SQL_LIMITS.boundParametersMax) throw new Error(`${bindings.length} bound parameters; Durable Objects allow ${DO_SQL_LIMITS.boundParametersMax}`);
      if (query.length > DO_SQL_LIMITS.statementCharsMax) throw new Error(`statement of ${query.length} characters; Durable Objects allow 100 KB`);
      for (const b of bindings) {
        const bytes = typeof b === "string" ? Buffer.byteLength(b) : b instanceof ArrayBuffer ? b.byteLength : 0;
        if (bytes > DO_SQL_LIMITS.valueBytesMax) throw new Error(`a bound value of ${bytes} bytes; Durable Objects allow 2 MB`);
      }
      sql.statements++;
      let stmt = prepared.get(query);
      if (!stmt) prepared.set(query, (stmt = db.prepare(query)));
      const args = bindings.map((b) => (b instanceof ArrayBuffer ? new Uint8Array(b) : b));
      const rows = (stmt.columns().length > 0 ? stmt.all(...args) : (stmt.run(...args), [])) as T[];
      return cursor(rows);
    },
  };
  return sql;
}

function cursor<T>(rows: T[]): SqlCursor<T> {
  return {
    toArray: () => rows,
    one: () => {
      if (rows.length !== 1) throw new Error(`Expected exactly one result from SQL query, but got ${rows.length === 0 ? "no" : "multiple"} results.`);
      return rows[0];
    },
    [Symbol.iterator]: () => rows[Symbol.iterator](),
  };
}
