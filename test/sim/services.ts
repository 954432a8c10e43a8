/**
 * The objects around the job: the partitions of the ingestion log that
 * sources read (as StreamPartition serves them) and the partitions of the
 * tables that sinks publish to (as TablePartition applies them). They keep
 * everything in storage, so they are never reset; what the oracle reads is
 * their audit of applied writes.
 */
import type { TableRowWrite } from "../../src/runtime/table-partition.js";
import { Life } from "./loop.js";
import type { Callee } from "./network.js";

/** One partition of an ingestion stream: the replayable log a source reads. */
export class SimStreamPartition implements Callee {
  readonly life: Life;
  private readonly lines: string[] = [];

  constructor(readonly name: string) {
    this.life = new Life(name, 0);
  }

  append(records: readonly unknown[]): void {
    for (const r of records) this.lines.push(JSON.stringify(r));
  }

  get endOffset(): number {
    return this.lines.length;
  }

  /** StreamPartition.read: records from `fromOffset`, at most `maxRecords`, and the end offset now. */
  read(fromOffset: number, maxRecords: number) {
    const end = this.lines.length;
    if (fromOffset >= end) return { firstOffset: fromOffset, count: 0, lines: "", endOffset: end };
    const slice = this.lines.slice(fromOffset, fromOffset + Math.max(1, maxRecords));
    return { firstOffset: fromOffset, count: slice.length, lines: slice.join("\n"), endOffset: end };
  }

  invoke(method: string, args: unknown[]): unknown {
    if (method === "read") return this.read(args[0] as number, args[1] as number);
    throw new Error(`StreamPartition has no method ${method}`);
  }
}

/** One write a table partition applied. */
export interface AppliedWrite {
  readonly atMs: number;
  readonly table: string;
  readonly partition: string;
  readonly writer: string | undefined;
  readonly txn: number | undefined;
  readonly rows: readonly TableRowWrite[];
}

/** One partition of a table: TablePartition.upsert, with an audit of what it applied. */
export class SimTablePartition implements Callee {
  readonly life: Life;
  /** key text → [key JSON, value JSON]. */
  readonly rows = new Map<string, [string, string]>();
  /** writer → last transaction applied. */
  readonly writers = new Map<string, number>();
  skipped = 0;

  constructor(
    readonly name: string,
    readonly table: string,
    private readonly now: () => number,
    private readonly audit: AppliedWrite[],
  ) {
    this.life = new Life(name, 0);
  }

  /** Upserts rows; with `writer` and `txn`, skipped when that writer already published a transaction ≥ `txn` here. */
  upsert(rows: TableRowWrite[], writer?: string, txn?: number): { applied: boolean } {
    if (writer !== undefined && txn !== undefined) {
      const last = this.writers.get(writer);
      if (last !== undefined && last >= txn) {
        this.skipped++;
        return { applied: false };
      }
      this.writers.set(writer, txn);
    }
    for (const [key, keyJson, valueJson] of rows) {
      if (valueJson === null) this.rows.delete(key);
      else this.rows.set(key, [keyJson, valueJson]);
    }
    this.audit.push({ atMs: this.now(), table: this.table, partition: this.name, writer, txn, rows: rows.map((r) => [...r] as unknown as TableRowWrite) });
    return { applied: true };
  }

  invoke(method: string, args: unknown[]): unknown {
    if (method === "upsert") return this.upsert(args[0] as TableRowWrite[], args[1] as string | undefined, args[2] as number | undefined);
    throw new Error(`TablePartition has no method ${method}`);
  }
}
