/**
 * The table sink: `{ key, value }` records become rows of a queryable
 * table, readable at `GET /v1/tables/:table[/:key]`. Rows of one key are
 * coalesced between publishes (a table keeps only the latest value), and a
 * publish names its writer and sequence so that repeating it is harmless.
 */
import type { SinkDefinition, SinkWriter, SinkWriterContext } from "../../api/types.js";
import { FloeError } from "../../errors.js";
import { type Key, hashKey, keyText } from "../../graph/key-groups.js";
import type { FloeEnv } from "../../runtime/env.js";
import { tablePartitionName } from "../../runtime/names.js";
import type { TableRowWrite } from "../../runtime/table-partition.js";

/** A row written to a table sink; a null value deletes the row. */
export interface TableRecord<V = unknown> {
  key: Key;
  value: V | null;
}

/** Options of {@link tableSink}. */
export interface TableSinkOptions {
  /** Partitions (objects) the table is spread over. Default 4. */
  partitions?: number;
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
    createWriter: (ctx) => new TableSinkWriter(table, partitions, ctx),
  };
}

class TableSinkWriter implements SinkWriter<TableRecord> {
  private pending = new Map<string, TableRowWrite>();
  private bytes = 0;
  private publishes = 0;
  private readonly env: FloeEnv;
  private readonly writerId: string;

  constructor(
    private readonly table: string,
    private readonly partitions: number,
    private readonly ctx: SinkWriterContext,
  ) {
    this.env = ctx.env as FloeEnv;
    this.writerId = `${ctx.jobName}/${ctx.uid}/${ctx.subtaskIndex}`;
  }

  write(record: TableRecord): void {
    const key = record?.key;
    if (record === null || typeof record !== "object" || (typeof key !== "string" && typeof key !== "number")) {
      throw new FloeError(
        "unserializable_record",
        `table sink "${this.ctx.uid}" needs records { key: string | number, value }, got ${preview(record)}`,
      );
    }
    const text = keyText(key);
    const valueJson = record.value === null || record.value === undefined ? null : JSON.stringify(record.value);
    const row: TableRowWrite = [text, JSON.stringify(key), valueJson];
    this.bytes += text.length + (valueJson?.length ?? 0);
    this.pending.set(text, row);
  }

  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const byPartition = new Map<number, TableRowWrite[]>();
    for (const row of this.pending.values()) {
      // hashKey of a key's canonical text equals hashKey of the key itself.
      const p = tablePartitionOf(row[0], this.partitions);
      let rows = byPartition.get(p);
      if (!rows) byPartition.set(p, (rows = []));
      rows.push(row);
    }
    this.pending = new Map();
    this.bytes = 0;
    this.publishes++;
    await Promise.all(
      [...byPartition].map(([p, rows]) =>
        this.env.TABLE_PARTITION.get(this.env.TABLE_PARTITION.idFromName(tablePartitionName(this.table, p))).upsert(rows),
      ),
    );
  }

  pendingBytes(): number {
    return this.bytes;
  }
}

function preview(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
