/**
 * A Durable Object's `ctx.storage` as far as floe's SQL code uses it: the
 * {@link doSql} port and `transactionSync`, on one `node:sqlite` database.
 */
import { type DoSql, doSql } from "./do-sql.js";

/** `ctx.storage`'s SQL and synchronous transactions, over one database. */
export interface DoStorage {
  readonly sql: DoSql;
  /** All of `fn`'s writes, or none when it throws (a savepoint, so that calls may nest as in workerd). */
  transactionSync<T>(fn: () => T): T;
}

/** Storage over `sql` (a fresh in-memory database by default). */
export function doStorage(sql: DoSql = doSql()): DoStorage {
  let depth = 0;
  return {
    sql,
    transactionSync<T>(fn: () => T): T {
      const name = `tx${depth++}`;
      sql.db.exec(`SAVEPOINT ${name}`);
      try {
        const result = fn();
        sql.db.exec(`RELEASE ${name}`);
        return result;
      } catch (e) {
        sql.db.exec(`ROLLBACK TO ${name}`);
        sql.db.exec(`RELEASE ${name}`);
        throw e;
      } finally {
        depth--;
      }
    },
  };
}
