/**
 * The part of a Durable Object's `SqlStorage` that floe's storage code uses.
 * Written against this port, the same statements run in the object and, on
 * `node:sqlite` under the object's limits, in unit tests and the simulator
 * (`test/support/do-sql.ts`).
 */

/** A value SQLite stores and a statement binds. */
export type SqlValue = string | number | null | ArrayBuffer;

/** The rows a statement gives, read once. */
export interface SqlCursor<T> extends Iterable<T> {
  toArray(): T[];
  /** The one row; throws when there is none or more than one. */
  one(): T;
}

/** Runs one statement; at most 100 bound parameters, values up to 2 MB (Durable Object limits). */
export interface Sql {
  exec<T extends Record<string, SqlValue> = Record<string, SqlValue>>(query: string, ...bindings: SqlValue[]): SqlCursor<T>;
}
