/**
 * The table sink: `{ key, value }` records become rows of a queryable
 * table, readable at `GET /v1/tables/:table[/:key]`. It commits through the
 * two-phase-commit framework, so under exactly-once a row is visible only
 * once the checkpoint that covers it completed (read_committed). Rows of one
 * key coalesce within a transaction, and a transaction is published with
 * its writer and id, so that the table applies it at most once.
 */
import type { DeliveryGuarantee, SinkDefinition, SinkWriterContext } from "../../api/types.js";
import { type Key, hashKey, keyText } from "../../graph/key-groups.js";
import type { FloeEnv } from "../../runtime/env.js";
import { tablePartitionName } from "../../runtime/names.js";
import type { TableRowWrite } from "../../storage/table-store.js";
import { type SinkPublisher, TransactionalSinkWriter } from "./two-phase-commit.js";

/** A row written to a table sink; a null value deletes the row. */
export interface TableRecord<V = unknown> {
  key: Key;
  value: V | null;
}

/** Options of {@link tableSink}. */
export interface TableSinkOptions {
  /** Partitions (objects) the table is spread over. Default 4. */
  partitions?: number;
  /** Default exactly_once: rows appear when their checkpoint completes. */
  guarantee?: DeliveryGuarantee;
}

/** The partition of a table that holds `key`. */
export function tablePartitionOf(key: Key, partitions: number): number {
  return hashKey(key) % partitions;
}

/** @example .sink(tableSink("clicks-per-user"), { uid: "counts-out" }) */
export function tableSink<V = unknown>(table: string, options: TableSinkOptions = {}): SinkDefinition<TableRecord<V>> {
  const partitions = options.partitions ?? 4;
  if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(table)) throw new TypeError(`table name must match [a-z0-9][a-z0-9_-]{0,62}, got ${JSON.stringify(table)}`);
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > 256) throw new TypeError(`table "${table}": partitions must be an integer in 1..256`);
  return {
    kind: "table",
    tables: [{ name: table, partitions }],
    createWriter: (ctx) =>
      new TransactionalSinkWriter(
        { uid: ctx.uid, guarantee: options.guarantee ?? "exactly_once", staging: ctx.staging, now: () => ctx.now() },
        new TablePublisher(table, partitions, ctx),
      ),
  };
}

class TablePublisher implements SinkPublisher {
  private readonly env: FloeEnv;
  private readonly writer: string;

  constructor(
    private readonly table: string,
    private readonly partitions: number,
    ctx: SinkWriterContext,
  ) {
    this.env = ctx.env as FloeEnv;
    // Transaction ids grow within a run; a fresh start is a new writer.
    this.writer = `${ctx.jobName}/${ctx.uid}/${ctx.subtaskIndex}@${ctx.runId}`;
  }

  keyOf(record: unknown): string {
    const key = (record as TableRecord | null)?.key;
    if (record === null || typeof record !== "object" || (typeof key !== "string" && typeof key !== "number")) {
      throw new TypeError(`a table row must be { key: string | number, value }, got ${preview(record)}`);
    }
    return keyText(key);
  }

  encode(record: unknown): string {
    const r = record as TableRecord;
    this.keyOf(r);
    const valueJson = r.value === null || r.value === undefined ? null : JSON.stringify(r.value);
    if (valueJson === undefined) throw new TypeError(`the value of key ${JSON.stringify(r.key)} is not JSON`);
    const row: TableRowWrite = [keyText(r.key), JSON.stringify(r.key), valueJson];
    return JSON.stringify(row);
  }

  async publish(txn: number, rows: readonly string[]): Promise<void> {
    const byPartition = new Map<number, TableRowWrite[]>();
    for (const text of rows) {
      const row = JSON.parse(text) as TableRowWrite;
      // hashKey of a key's canonical text equals hashKey of the key itself.
      const p = tablePartitionOf(row[0], this.partitions);
      let list = byPartition.get(p);
      if (!list) byPartition.set(p, (list = []));
      list.push(row);
    }
    await Promise.all(
      [...byPartition].map(([p, list]) =>
        this.env.TABLE_PARTITION.get(this.env.TABLE_PARTITION.idFromName(tablePartitionName(this.table, p))).upsert(list, this.writer, txn),
      ),
    );
  }
}

function preview(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
