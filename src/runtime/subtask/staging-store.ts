/**
 * The staging rows of a subtask's two-phase-commit sinks, in its Durable
 * Object's SQLite: `sink_stage` holds each transaction's rows in order
 * (the open one as txn -1), `sink_sealed` the transactions sealed at a
 * barrier and not yet published. Both are written in the same turn as the
 * snapshot they belong to, and outlive resets.
 */
import type { StagingStore } from "../../api/types.js";
import { OPEN_TXN } from "../../connectors/sinks/two-phase-commit.js";
import { utf8Length } from "../../storage/record-limits.js";
import type { Sql } from "../../storage/sql.js";
import type { SubtaskFaultSeams, SubtaskObserver } from "./ports.js";

const TABLES = [
  `CREATE TABLE IF NOT EXISTS sink_stage (
  uid TEXT NOT NULL, txn INTEGER NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, bytes INTEGER NOT NULL,
  PRIMARY KEY (uid, txn, seq))`,
  `CREATE TABLE IF NOT EXISTS sink_sealed (uid TEXT NOT NULL, txn INTEGER NOT NULL, PRIMARY KEY (uid, txn))`,
];

/** Creates the staging tables if they are not there. */
export function createStagingTables(sql: Sql): void {
  for (const t of TABLES) sql.exec(t);
}

/** Options of {@link sqlStagingStore}: who restores (for the observer), what watches, and the test seams. */
export interface StagingOptions {
  readonly attempt: number;
  readonly observer?: SubtaskObserver;
  readonly seams?: SubtaskFaultSeams;
}

/** A {@link StagingStore} over the object's SQL. */
export function sqlStagingStore(sql: Sql, options: StagingOptions): StagingStore {
  const { attempt, observer, seams } = options;
  const drop = (uid: string, txn: number) => {
    sql.exec(`DELETE FROM sink_stage WHERE uid = ? AND txn = ?`, uid, txn);
    sql.exec(`DELETE FROM sink_sealed WHERE uid = ? AND txn = ?`, uid, txn);
  };
  return {
    append: (uid, txn, rows) => {
      const seq = sql.exec<{ s: number }>(`SELECT COALESCE(MAX(seq), 0) + 1 AS s FROM sink_stage WHERE uid = ? AND txn = ?`, uid, txn).one().s;
      const data = rows.join("\n");
      sql.exec(`INSERT INTO sink_stage (uid, txn, seq, data, bytes) VALUES (?, ?, ?, ?, ?)`, uid, txn, seq, data, utf8Length(data));
    },
    seal: (uid, txn) => {
      observer?.sealing?.(uid, txn);
      sql.exec(`UPDATE sink_stage SET txn = ? WHERE uid = ? AND txn = ?`, txn, uid, OPEN_TXN);
      sql.exec(`INSERT OR IGNORE INTO sink_sealed (uid, txn) VALUES (?, ?)`, uid, txn);
    },
    sealed: (uid) => sql.exec<{ txn: number }>(`SELECT txn FROM sink_sealed WHERE uid = ? ORDER BY txn`, uid).toArray().map((r) => r.txn),
    rows: (uid, txn) => {
      const rows = sql
        .exec<{ data: string }>(`SELECT data FROM sink_stage WHERE uid = ? AND txn = ? ORDER BY seq`, uid, txn)
        .toArray()
        .flatMap((r) => (r.data.length === 0 ? [] : r.data.split("\n")));
      // Broken on purpose (a simulator variant): the rows are gone before the publish that reads them has landed.
      if (seams?.dropBeforePublish) drop(uid, txn);
      return rows;
    },
    drop: (uid, txn) => {
      drop(uid, txn);
      observer?.dropped?.(uid, txn);
    },
    dropAfter: (uid, txn) => {
      const dropped = observer?.droppedAfter
        ? sql.exec<{ txn: number }>(`SELECT txn FROM sink_sealed WHERE uid = ? AND txn > ? ORDER BY txn`, uid, txn).toArray().map((r) => r.txn)
        : [];
      sql.exec(`DELETE FROM sink_stage WHERE uid = ? AND (txn > ? OR txn = ?)`, uid, txn, OPEN_TXN);
      sql.exec(`DELETE FROM sink_sealed WHERE uid = ? AND txn > ?`, uid, txn);
      if (dropped.length > 0) observer?.droppedAfter?.(uid, txn, dropped, attempt);
    },
    bytes: (uid) => sql.exec<{ b: number | null }>(`SELECT SUM(bytes) AS b FROM sink_stage WHERE uid = ?`, uid).one().b ?? 0,
  };
}

/** One transaction left in staging: its rows, and whether it is sealed. */
export interface StagedTransaction {
  readonly uid: string;
  readonly txn: number;
  readonly rows: number;
  readonly sealed: boolean;
}

/** Every transaction staged or sealed in this object, for operators and the simulator's oracle. */
export function stagedTransactions(sql: Sql): StagedTransaction[] {
  const out = new Map<string, { uid: string; txn: number; rows: number; sealed: boolean }>();
  const at = (uid: string, txn: number) => {
    const id = `${uid}\u0000${txn}`;
    let e = out.get(id);
    if (!e) out.set(id, (e = { uid, txn, rows: 0, sealed: false }));
    return e;
  };
  for (const r of sql.exec<{ uid: string; txn: number; data: string }>(`SELECT uid, txn, data FROM sink_stage`)) {
    at(r.uid, r.txn).rows += r.data.length === 0 ? 0 : r.data.split("\n").length;
  }
  for (const s of sql.exec<{ uid: string; txn: number }>(`SELECT uid, txn FROM sink_sealed`)) at(s.uid, s.txn).sealed = true;
  return [...out.values()];
}
