/**
 * The TablePartition object: the Durable Object shell around
 * {@link TableStore}, one per partition of a queryable table written by
 * table sinks. It gives the store the object's SQLite; upserts run in one
 * synchronous turn, so a batch and its writer fence commit together.
 */
import { DurableObject } from "cloudflare:workers";
import { type TableRow, type TableRowWrite, TableStore } from "../storage/table-store.js";
import type { FloeEnv } from "./env.js";

export type { TableRow, TableRowWrite } from "../storage/table-store.js";

/** One partition of a table: the RPC surface of {@link TableStore}. */
export class TablePartition extends DurableObject<FloeEnv> {
  private readonly store: TableStore;

  constructor(ctx: DurableObjectState, env: FloeEnv) {
    super(ctx, env);
    this.store = new TableStore(ctx.storage.sql);
  }

  /** {@link TableStore.upsert}: skipped when `writer` already applied a transaction ≥ `txn` here. */
  upsert(rows: TableRowWrite[], writer?: string, txn?: number): { applied: boolean } {
    return this.store.upsert(rows, writer, txn);
  }

  /** One row by canonical key text. */
  get(key: string): TableRow | null {
    return this.store.get(key);
  }

  /** Rows in key order after `afterKey`, at most `limit`; `last` is the key text to continue after. */
  list(afterKey: string | null, limit: number): { rows: TableRow[]; last: string | null } {
    return this.store.list(afterKey, limit);
  }
}
