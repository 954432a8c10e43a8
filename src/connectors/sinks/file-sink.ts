/**
 * The R2 file sink: each committed transaction becomes NDJSON part files
 * with deterministic keys, `<prefix>part-<subtask>-<transaction>-<n>.jsonl`
 * (rolled at `partBytes`). Until its checkpoint completes, a transaction
 * lives only in the subtask's staging storage, so nothing is visible under
 * the prefix before commit; writing the same transaction again after a
 * crash writes the same keys with the same content.
 */
import type { DeliveryGuarantee, SinkDefinition, SinkWriterContext } from "../../api/types.js";
import { utf8Length } from "../../storage/record-limits.js";
import { type SinkPublisher, TransactionalSinkWriter, encodeJson } from "./two-phase-commit.js";

/** Options of {@link fileSink}. */
export interface FileSinkOptions {
  /** Key prefix of the part files, e.g. "exports/clicks/". */
  prefix: string;
  /** R2 binding to write to. Default "FILES". */
  binding?: string;
  /** Parts are rolled at this size. Default 8 MiB. */
  partBytes?: number;
  /** Default exactly_once. */
  guarantee?: DeliveryGuarantee;
}

/** The key of part `n` of a transaction. */
export function partKey(prefix: string, subtask: number, txn: number, n: number): string {
  return `${prefix}part-${subtask}-${String(txn).padStart(12, "0")}-${n}.jsonl`;
}

/** @example .sink(fileSink({ prefix: "exports/clicks/" }), { uid: "files-out" }) */
export function fileSink<T = unknown>(options: FileSinkOptions): SinkDefinition<T> {
  if (typeof options.prefix !== "string" || options.prefix.startsWith("/") || options.prefix.includes("..")) {
    throw new TypeError(`fileSink prefix must be a relative key prefix, got ${JSON.stringify(options.prefix)}`);
  }
  const partBytes = options.partBytes ?? 8 * 1024 * 1024;
  if (!Number.isInteger(partBytes) || partBytes < 1024) throw new TypeError("fileSink partBytes must be an integer ≥ 1024");
  return {
    kind: "file",
    createWriter: (ctx) =>
      new TransactionalSinkWriter(
        { uid: ctx.uid, guarantee: options.guarantee ?? "exactly_once", staging: ctx.staging, now: () => ctx.now() },
        new FilePublisher(options.prefix, options.binding ?? "FILES", partBytes, ctx),
      ),
  };
}

class FilePublisher implements SinkPublisher {
  constructor(
    private readonly prefix: string,
    private readonly binding: string,
    private readonly partBytes: number,
    private readonly ctx: SinkWriterContext,
  ) {}

  encode(record: unknown): string {
    return encodeJson(record);
  }

  async publish(txn: number, rows: readonly string[]): Promise<void> {
    if (rows.length === 0) return;
    const bucket = (this.ctx.env as Record<string, unknown>)[this.binding] as R2Bucket | undefined;
    if (!bucket) throw new Error(`the Worker has no R2 binding ${this.binding} for the file sink`);
    let part: string[] = [];
    let bytes = 0;
    let n = 0;
    const puts: Promise<unknown>[] = [];
    const roll = () => {
      puts.push(bucket.put(partKey(this.prefix, this.ctx.subtaskIndex, txn, n++), `${part.join("\n")}\n`));
      part = [];
      bytes = 0;
    };
    for (const row of rows) {
      const size = utf8Length(row) + 1;
      if (part.length > 0 && bytes + size > this.partBytes) roll();
      part.push(row);
      bytes += size;
    }
    if (part.length > 0) roll();
    await Promise.all(puts);
  }
}
