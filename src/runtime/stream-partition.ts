/**
 * The StreamPartition object: the Durable Object shell around
 * {@link StreamLog}, one per partition of an HTTP ingestion stream. It gives
 * the log the object's SQLite and the wall clock; an append is acknowledged
 * only after its rows are stored (the output gate holds the reply until the
 * write is durable).
 */
import { DurableObject } from "cloudflare:workers";
import { type AppendResult, type ReadResult, StreamLog } from "../storage/stream-log.js";
import type { FloeEnv } from "./env.js";

export { IDEMPOTENCY_TTL_MS } from "../storage/stream-log.js";
export type { AppendResult, ReadResult } from "../storage/stream-log.js";

/** One partition of a stream: the RPC surface of {@link StreamLog}. */
export class StreamPartition extends DurableObject<FloeEnv> {
  private readonly log: StreamLog;

  constructor(ctx: DurableObjectState, env: FloeEnv) {
    super(ctx, env);
    this.log = new StreamLog(ctx.storage, () => Date.now());
  }

  /** {@link StreamLog.append}: all or nothing; a repeated idempotency key answers the first append's offsets. */
  append(records: string[], idempotencyKey?: string): AppendResult {
    return this.log.append(records, idempotencyKey);
  }

  /** Reads from `fromOffset`, whole chunks, about `maxRecords` records. */
  read(fromOffset: number, maxRecords: number): ReadResult {
    return this.log.read(fromOffset, maxRecords);
  }

  /** The partition's offsets: records are at `startOffset .. endOffset-1`. */
  info(): { startOffset: number; endOffset: number } {
    return this.log.info();
  }
}
