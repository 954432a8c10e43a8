/**
 * The StreamPartition object: the Durable Object shell around
 * {@link StreamLog}, one per partition of an HTTP ingestion stream. It gives
 * the log the object's SQLite and the wall clock, and runs retention on the
 * object's alarm, one bounded step per firing (a step deletes at most
 * {@link TRUNCATE_CHUNKS_PER_STEP} chunks, so it never holds the object for
 * long). An append is acknowledged only after its rows are stored (the
 * output gate holds the reply until the write is durable).
 */
import { DurableObject } from "cloudflare:workers";
import type { ErrorBody } from "../errors.js";
import { type AppendResult, OffsetsTruncatedError, type PartitionConfig, type PartitionStats, type ReadResult, StreamLog } from "../storage/stream-log.js";
import type { StartPosition } from "../storage/stream-options.js";
import type { FloeEnv } from "./env.js";

export { IDEMPOTENCY_TTL_MS, TRUNCATE_CHUNKS_PER_STEP } from "../storage/stream-log.js";
export type { AppendResult, PartitionConfig, PartitionStats, ReadResult } from "../storage/stream-log.js";

/** What an append takes besides its records. */
export interface AppendOptions {
  /** The stream's name and limits, from its definition. */
  readonly config?: PartitionConfig;
  /** Hash of the whole request's records: a reused Idempotency-Key with another body is refused. */
  readonly bodyHash?: string;
}

/** Where a run starts, or why it cannot (`offsets_truncated`). */
export type StartRunResult = { ok: true; offset: number } | { ok: false; error: ErrorBody };

/** One partition of a stream: the RPC surface of {@link StreamLog}. */
export class StreamPartition extends DurableObject<FloeEnv> {
  private readonly log: StreamLog;
  /** The alarm as set, so that scheduling reads no storage. */
  private alarmAtMs: number | null = null;

  constructor(ctx: DurableObjectState, env: FloeEnv) {
    super(ctx, env);
    this.log = new StreamLog(ctx.storage, () => Date.now());
    void ctx.blockConcurrencyWhile(async () => {
      this.alarmAtMs = await ctx.storage.getAlarm();
    });
  }

  /** {@link StreamLog.append}: all or nothing; a refusal (full, rate, reused key) is a value. */
  async append(records: string[], idempotencyKey?: string, options: AppendOptions = {}): Promise<AppendResult> {
    if (options.config) this.log.configure(options.config);
    const r = this.log.append(records, idempotencyKey, options.bodyHash);
    if (!r.refused) await this.schedule();
    return r;
  }

  /** Reads from `fromOffset`, whole chunks, about `maxRecords` records; throws `offsets_truncated` below the earliest offset. */
  read(fromOffset: number, maxRecords: number): ReadResult {
    return this.log.read(fromOffset, maxRecords);
  }

  /** The partition's offsets: records are at `startOffset .. endOffset-1`. */
  info(): { startOffset: number; endOffset: number } {
    return this.log.info();
  }

  /** The partition's figures, its consumers, and the size of its database as the platform counts it. */
  stats(config?: PartitionConfig): PartitionStats & { databaseBytes: number } {
    if (config) this.log.configure(config);
    return { ...this.log.stats(), databaseBytes: this.ctx.storage.sql.databaseSize };
  }

  /** Pins where run `runId` of `job` starts (see {@link StreamLog.startRun}). */
  async startRun(config: PartitionConfig, job: string, runId: number, position: StartPosition): Promise<StartRunResult> {
    this.log.configure(config);
    try {
      const offset = this.log.startRun(job, runId, position);
      await this.schedule();
      return { ok: true, offset };
    } catch (e) {
      if (!(e instanceof OffsetsTruncatedError)) throw e;
      return { ok: false, error: { code: "offsets_truncated", message: e.message, status: 409 } };
    }
  }

  /** A checkpoint of run `runId` of `job` completed having read up to `offset`: its pin moves there. */
  async checkpointed(config: PartitionConfig, job: string, runId: number, offset: number): Promise<void> {
    this.log.configure(config);
    if (this.log.consumers.checkpointed(job, runId, offset)) await this.schedule();
  }

  /** `job` ended: its runs up to `runId` pin nothing. */
  async release(job: string, runId: number): Promise<void> {
    this.log.consumers.release(job, runId);
    await this.schedule();
  }

  /** Where the latest run of `job` started here; null when no run of it was pinned here. */
  startOffset(job: string): number | null {
    return this.log.consumers.startOffset(job);
  }

  /** One bounded step of retention; the next one is scheduled right away when more is due. */
  override async alarm(): Promise<void> {
    this.alarmAtMs = null;
    const r = this.log.truncate();
    if (r.more) {
      this.alarmAtMs = Date.now();
      await this.ctx.storage.setAlarm(this.alarmAtMs);
    } else await this.schedule();
  }

  /** Sets the alarm to when truncation is next due, if earlier than the one set. */
  private async schedule(): Promise<void> {
    const at = this.log.nextTruncationMs();
    if (at === null || (this.alarmAtMs !== null && this.alarmAtMs <= at)) return;
    this.alarmAtMs = at;
    await this.ctx.storage.setAlarm(at);
  }
}
