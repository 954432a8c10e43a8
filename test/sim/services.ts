/**
 * The objects around the job: the partitions of the ingestion log that
 * sources read and the partitions of the tables that sinks publish to. Each
 * runs the shipping core ({@link StreamLog}, {@link TableStore}) on its own
 * `node:sqlite` database under Durable Object limits; what stays here is the
 * world's part: the object's life, the RPC dispatch, and the audit of
 * applied writes that the oracle reads. They keep everything in storage, so
 * they are never reset.
 */
import { StreamLog } from "../../src/storage/stream-log.js";
import { type TableRowWrite, TableStore } from "../../src/storage/table-store.js";
import { doStorage } from "../support/do-storage.js";
import { Life } from "./loop.js";
import type { Callee } from "./network.js";

/** One partition of an ingestion stream: StreamPartition's log, on its own database. */
export class SimStreamPartition implements Callee {
  readonly life: Life;
  private readonly log: StreamLog;

  constructor(
    readonly name: string,
    now: () => number,
  ) {
    this.life = new Life(name, 0);
    this.log = new StreamLog(doStorage(), now);
  }

  /** Ingestion, as `POST /v1/ingest` appends a request's records (already checked). */
  append(records: readonly unknown[]): void {
    this.log.append(records.map((r) => JSON.stringify(r)));
  }

  get endOffset(): number {
    return this.log.info().endOffset;
  }

  invoke(method: string, args: unknown[]): unknown {
    if (method === "read") return this.log.read(args[0] as number, args[1] as number);
    if (method === "append") return this.log.append(args[0] as string[], args[1] as string | undefined);
    if (method === "info") return this.log.info();
    if (method === "startOffset") return this.log.consumers.startOffset(args[0] as string);
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

/** One partition of a table: TablePartition's store and writer fence on its own database, with an audit of what it applied. */
export class SimTablePartition implements Callee {
  readonly life: Life;
  private readonly store: TableStore;

  constructor(
    readonly name: string,
    readonly table: string,
    private readonly now: () => number,
    private readonly audit: AppliedWrite[],
  ) {
    this.life = new Life(name, 0);
    this.store = new TableStore(doStorage().sql);
  }

  /** The rows as stored: key text → [key JSON, value JSON]. */
  get rows(): Map<string, [keyJson: string, valueJson: string]> {
    return this.store.stored();
  }

  /** {@link TableStore.upsert}; a write it applied goes into the audit. */
  upsert(rows: TableRowWrite[], writer?: string, txn?: number): { applied: boolean } {
    const result = this.store.upsert(rows, writer, txn);
    if (result.applied) {
      this.audit.push({ atMs: this.now(), table: this.table, partition: this.name, writer, txn, rows: rows.map((r) => [...r] as unknown as TableRowWrite) });
    }
    return result;
  }

  invoke(method: string, args: unknown[]): unknown {
    if (method === "upsert") return this.upsert(args[0] as TableRowWrite[], args[1] as string | undefined, args[2] as number | undefined);
    if (method === "get") return this.store.get(args[0] as string);
    if (method === "list") return this.store.list(args[0] as string | null, args[1] as number);
    throw new Error(`TablePartition has no method ${method}`);
  }
}
