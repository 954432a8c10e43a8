/**
 * A Subtask object's SQLite tables (meta, sink_stage, sink_sealed,
 * keyed_state) in memory. They outlive resets. Statements that SQLite would
 * refuse (a primary-key clash) are refused here too.
 */
import { OPEN_TXN } from "../../src/connectors/sinks/two-phase-commit.js";
import type { StateEntry } from "../../src/state/keyed-state.js";

export interface StageRow {
  readonly uid: string;
  txn: number;
  readonly seq: number;
  readonly data: string;
  readonly bytes: number;
}

export interface KeyedRow {
  readonly op: string;
  readonly state: string;
  readonly key: string;
  readonly keyGroup: number;
  kind: StateEntry["kind"];
  value: string;
}

/** Map keys of two and three key columns. */
export const k2 = (a: string | number, b: string | number) => `${a}\u0000${b}`;
export const k3 = (a: string | number, b: string | number, c: string | number) => `${a}\u0000${b}\u0000${c}`;

/** A subtask object's SQLite storage, in memory. */
export class SubtaskStorage {
  readonly meta = new Map<string, string>();
  /** sink_stage, primary key (uid, txn, seq). */
  readonly stage = new Map<string, StageRow>();
  /** sink_sealed, primary key (uid, txn). */
  readonly sealed = new Map<string, { uid: string; txn: number }>();
  /** keyed_state, primary key (op, state, key). */
  readonly keyed = new Map<string, KeyedRow>();

  /** UPDATE sink_stage SET txn = ? WHERE uid = ? AND txn = OPEN: all or nothing, refused on a primary-key clash. */
  sealOpen(uid: string, txn: number): void {
    const open = [...this.stage.values()].filter((r) => r.uid === uid && r.txn === OPEN_TXN);
    for (const r of open) {
      if (txn !== OPEN_TXN && this.stage.has(k3(uid, txn, r.seq))) throw new Error("UNIQUE constraint failed: sink_stage.uid, sink_stage.txn, sink_stage.seq: SQLITE_CONSTRAINT");
    }
    for (const r of open) this.stage.delete(k3(uid, OPEN_TXN, r.seq));
    for (const r of open) {
      r.txn = txn;
      this.stage.set(k3(uid, txn, r.seq), r);
    }
  }

  /** Transactions still staged or sealed, per sink uid (for the oracle). */
  staged(): { uid: string; txn: number; rows: number; sealed: boolean }[] {
    const out = new Map<string, { uid: string; txn: number; rows: number; sealed: boolean }>();
    for (const r of this.stage.values()) {
      const e = out.get(k2(r.uid, r.txn)) ?? { uid: r.uid, txn: r.txn, rows: 0, sealed: false };
      e.rows += r.data.length === 0 ? 0 : r.data.split("\n").length;
      out.set(k2(r.uid, r.txn), e);
    }
    for (const s of this.sealed.values()) {
      const e = out.get(k2(s.uid, s.txn)) ?? { uid: s.uid, txn: s.txn, rows: 0, sealed: true };
      e.sealed = true;
      out.set(k2(s.uid, s.txn), e);
    }
    return [...out.values()];
  }
}

