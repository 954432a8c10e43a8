/**
 * One partition of an HTTP ingestion stream: a durable, replayable log with
 * retention. Records are stored as NDJSON chunks keyed by the offset of their
 * first record and stamped with their ingestion time; an append commits its
 * chunks, its idempotency key and the partition's counters in one
 * transaction, and a repeated idempotency key answers the first append's
 * offsets without appending (or refuses, when the body differs).
 *
 * Retention: a chunk is deleted once it is past retention (older than
 * `retentionMs`, or the partition holds more than `retentionBytes`) and
 * wholly below every live consumer's pin (see {@link StreamConsumers}):
 * nothing a running or restarting job still needs is deleted. Truncation
 * runs in bounded steps ({@link StreamLog.truncate}); a partition that
 * reaches `maxBytes` because of pins refuses appends (`stream_full`) until a
 * job checkpoints past its records.
 *
 * Written over the {@link Sql} port: the StreamPartition Durable Object runs
 * it on its SQLite (whose output gate holds the reply until the write is
 * durable), the simulator and the unit tests on `node:sqlite`.
 *
 * Tables: `log` (first offset → count, bytes, ingestion time, NDJSON data),
 * `meta` (one row: next offset, records, bytes, the stream's name and
 * limits), `idempotency_keys` (see idempotency-keys.ts) and `consumers`
 * (see stream-consumers.ts).
 */
import { RECORD_BYTES_MAX, utf8Length } from "./record-limits.js";
import type { Sql } from "./sql.js";
import { StreamConsumers, type ConsumerPin } from "./stream-consumers.js";
import { IdempotencyKeys } from "./idempotency-keys.js";
import { DEFAULT_STREAM_LIMITS, type StartPosition, type StreamLimits, idempotencyWindowMs } from "./stream-options.js";

/** An append the log took, or had taken before under the same idempotency key. */
export interface AppendAccepted {
  readonly firstOffset: number;
  /** One past the last offset written. */
  readonly endOffset: number;
  readonly count: number;
  /** The idempotency key was seen before: nothing was appended. */
  readonly duplicate: boolean;
  readonly refused?: undefined;
}

/** Why an append was refused; nothing of it was stored. */
export type AppendRefusal = "stream_full" | "rate_limited" | "idempotency_key_reused";

/** An append refused as a value: the route turns it into a 429 or 422. */
export interface AppendRefused {
  readonly refused: AppendRefusal;
  readonly message: string;
  /** When trying again may succeed (429s). */
  readonly retryAfterMs: number;
  readonly firstOffset?: undefined;
  readonly endOffset?: undefined;
  readonly count?: undefined;
  readonly duplicate?: undefined;
}

/** What an append answers. */
export type AppendResult = AppendAccepted | AppendRefused;

/** What a read answers. */
export interface ReadResult {
  /** Offset of the first record in `lines`. */
  readonly firstOffset: number;
  readonly count: number;
  /** NDJSON: one JSON record per line. */
  readonly lines: string;
  /** One past the last offset in the partition now. */
  readonly endOffset: number;
}

/** The storage a log needs: a Durable Object's `ctx.storage` has both. */
export interface StreamLogStorage {
  readonly sql: Sql;
  /** Runs `fn` as one transaction: all of its writes, or none when it throws. */
  transactionSync<T>(fn: () => T): T;
}

/** Who the partition is and what it enforces: every caller that knows the stream's definition hands it over. */
export interface PartitionConfig extends StreamLimits {
  readonly stream: string;
  readonly partition: number;
}

/** A partition's figures, as `GET /v1/streams/:stream` shows them. */
export interface PartitionStats {
  readonly stream: string | null;
  readonly partition: number | null;
  /** Records are at `earliestOffset .. nextOffset-1`. */
  readonly earliestOffset: number;
  readonly nextOffset: number;
  readonly records: number;
  /** UTF-8 bytes of the stored records (one newline each included). */
  readonly bytes: number;
  /** Ingestion time of the earliest retained record; null when empty. */
  readonly earliestTimestampMs: number | null;
  readonly limits: StreamLimits;
  readonly consumers: readonly ConsumerPin[];
}

/** A read or a start from an offset that retention already deleted. */
export class OffsetsTruncatedError extends Error {
  constructor(
    readonly stream: string,
    readonly partition: number,
    readonly neededOffset: number,
    readonly earliestOffset: number,
  ) {
    super(
      `offsets_truncated: stream "${stream}" partition ${partition}: offset ${neededOffset} is needed but retention deleted it (the earliest offset is ${earliestOffset}); start from "earliest" to skip the lost records`,
    );
    this.name = "OffsetsTruncatedError";
  }
}

/** Stored chunks stay well under SQLite's 2 MB value limit. */
const CHUNK_BYTES_MAX = 512 * 1024;
const CHUNK_RECORDS_MAX = 1000;
/** A read answers at most this much after its first chunk: two full chunks, what a read of 1,000 records took before reads filled up with small chunks. */
export const READ_BYTES_MAX = 2 * CHUNK_BYTES_MAX;
export { IDEMPOTENCY_TTL_MS } from "./stream-options.js";
/** Chunks one truncation step deletes at most: at most 64 × 512 KiB, a few milliseconds of SQLite work. */
export const TRUNCATE_CHUNKS_PER_STEP = 64;
/** Expired idempotency keys one step deletes at most. */
const EXPIRE_KEYS_PER_STEP = 500;
/** What a `stream_full` refusal asks the producer to wait: about a checkpoint interval. */
export const STREAM_FULL_RETRY_AFTER_MS = 1000;

interface Meta {
  nextOffset: number;
  records: number;
  bytes: number;
}

/** One stream partition's log, idempotency keys and consumers, on SQLite. */
export class StreamLog {
  private readonly sql: Sql;
  private meta: Meta;
  private config: PartitionConfig | null = null;
  /** The rate quota's token bucket: in memory, as a restart of the object may well refill it. */
  private tokens = 0;
  private tokensAtMs = -Infinity;
  /** The pins of jobs reading this partition. */
  readonly consumers: StreamConsumers;
  /** The Idempotency-Keys of its appends. */
  private readonly keys: IdempotencyKeys;

  /** `now` stamps records and idempotency keys and drives retention and the rate quota. */
  constructor(
    private readonly storage: StreamLogStorage,
    private readonly now: () => number,
  ) {
    this.sql = storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS log (first_offset INTEGER PRIMARY KEY, count INTEGER NOT NULL, data TEXT NOT NULL)`);
    // Columns added with retention: a log written before has none of them (ingestion time 0: past any retention).
    addColumn(this.sql, "log", "bytes INTEGER NOT NULL DEFAULT 0");
    addColumn(this.sql, "log", "append_ms INTEGER NOT NULL DEFAULT 0");
    this.sql.exec(`CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), next_offset INTEGER NOT NULL, records INTEGER NOT NULL, bytes INTEGER NOT NULL, config TEXT)`);
    const row = this.sql.exec<{ next_offset: number; records: number; bytes: number; config: string | null }>(`SELECT next_offset, records, bytes, config FROM meta`).toArray()[0];
    if (row) {
      this.meta = { nextOffset: row.next_offset, records: row.records, bytes: row.bytes };
      this.config = row.config ? (JSON.parse(row.config) as PartitionConfig) : null;
    } else {
      // A log from before the meta row: its counters from its rows, once (its chunks' sizes too).
      // Its records' ingestion times are unknown: they count from now, so that the upgrade deletes nothing at once.
      this.sql.exec(`UPDATE log SET bytes = length(CAST(data AS BLOB)) + count, append_ms = ? WHERE bytes = 0`, now());
      const t = this.sql.exec<{ e: number | null; n: number | null; b: number | null }>(`SELECT MAX(first_offset + count) AS e, SUM(count) AS n, SUM(bytes) AS b FROM log`).one();
      this.meta = { nextOffset: t.e ?? 0, records: t.n ?? 0, bytes: t.b ?? 0 };
      this.sql.exec(`INSERT INTO meta (id, next_offset, records, bytes) VALUES (1, ?, ?, ?)`, this.meta.nextOffset, this.meta.records, this.meta.bytes);
    }
    this.consumers = new StreamConsumers(this.sql, now);
    this.keys = new IdempotencyKeys(this.sql);
  }

  /** The stream's limits in force: the last configuration handed over, or the defaults. */
  get limits(): StreamLimits {
    return this.config ?? DEFAULT_STREAM_LIMITS;
  }

  /** Takes the stream's name and limits (stored, so that truncation on an alarm knows them too); a no-op when unchanged. */
  configure(config: PartitionConfig): void {
    const c = this.config;
    if (
      c &&
      c.stream === config.stream &&
      c.partition === config.partition &&
      c.retentionMs === config.retentionMs &&
      c.retentionBytes === config.retentionBytes &&
      c.maxBytes === config.maxBytes &&
      c.maxRequestsPerSecond === config.maxRequestsPerSecond
    ) {
      return;
    }
    const { stream, partition, retentionMs, retentionBytes, maxBytes, maxRequestsPerSecond } = config;
    this.config = { stream, partition, retentionMs, retentionBytes, maxBytes, maxRequestsPerSecond };
    this.sql.exec(`UPDATE meta SET config = ? WHERE id = 1`, JSON.stringify(this.config));
  }

  /** How long idempotency keys are remembered: a day, or the retention when longer. */
  get idempotencyTtlMs(): number {
    return idempotencyWindowMs(this.limits);
  }

  /**
   * Appends records, each the JSON text of one record without newlines.
   * All or nothing: the rows, the idempotency key and the counters commit
   * in one transaction. Refused as a value: a key seen with another
   * `bodyHash`, a full partition, a request over the rate quota.
   */
  append(records: readonly string[], idempotencyKey?: string, bodyHash?: string): AppendResult {
    const now = this.now();
    if (idempotencyKey !== undefined) {
      const seen = this.keys.lookup(idempotencyKey);
      if (seen && seen.createdMs >= now - this.idempotencyTtlMs) {
        if (bodyHash !== undefined && seen.bodyHash !== null && seen.bodyHash !== bodyHash) {
          return {
            refused: "idempotency_key_reused",
            message: `Idempotency-Key ${JSON.stringify(idempotencyKey)} was used for a request with another body; use a new key for a new request`,
            retryAfterMs: 0,
          };
        }
        return { firstOffset: seen.firstOffset, endOffset: seen.firstOffset + seen.count, count: seen.count, duplicate: true };
      }
    }
    const waitMs = this.takeToken(now);
    if (waitMs > 0) {
      return { refused: "rate_limited", message: `${this.where()} takes at most ${this.limits.maxRequestsPerSecond} requests a second`, retryAfterMs: waitMs };
    }
    let bytes = 0;
    for (let i = 0; i < records.length; i++) {
      const size = utf8Length(records[i]);
      if (size > RECORD_BYTES_MAX) throw new Error(`record ${i} is larger than ${RECORD_BYTES_MAX} bytes`);
      bytes += size + 1;
    }
    // A partition with records that cannot take these deletes what retention allows first; an empty one takes any request.
    if (this.meta.records > 0 && this.meta.bytes + bytes > this.limits.maxBytes) {
      this.truncate(TRUNCATE_CHUNKS_PER_STEP);
      if (this.meta.records > 0 && this.meta.bytes + bytes > this.limits.maxBytes) {
        return {
          refused: "stream_full",
          message: `${this.where()} holds ${this.meta.bytes} bytes of records a job has not checkpointed past (limit ${this.limits.maxBytes}); retry once it has`,
          retryAfterMs: STREAM_FULL_RETRY_AFTER_MS,
        };
      }
    }
    const firstOffset = this.meta.nextOffset;
    const next = this.storage.transactionSync(() => {
      let offset = firstOffset;
      let start = 0;
      while (start < records.length) {
        let chunkBytes = 0;
        let end = start;
        while (end < records.length && end - start < CHUNK_RECORDS_MAX) {
          const size = utf8Length(records[end]) + 1;
          if (end > start && chunkBytes + size > CHUNK_BYTES_MAX) break;
          chunkBytes += size;
          end++;
        }
        this.sql.exec(
          `INSERT INTO log (first_offset, count, data, bytes, append_ms) VALUES (?, ?, ?, ?, ?)`,
          offset,
          end - start,
          records.slice(start, end).join("\n"),
          chunkBytes,
          now,
        );
        offset += end - start;
        start = end;
      }
      if (idempotencyKey !== undefined) this.keys.remember(idempotencyKey, { firstOffset, count: records.length, createdMs: now, bodyHash: bodyHash ?? null });
      const meta = { nextOffset: offset, records: this.meta.records + records.length, bytes: this.meta.bytes + bytes };
      this.sql.exec(`UPDATE meta SET next_offset = ?, records = ?, bytes = ? WHERE id = 1`, meta.nextOffset, meta.records, meta.bytes);
      return meta;
    });
    this.meta = next;
    return { firstOffset, endOffset: next.nextOffset, count: records.length, duplicate: false };
  }

  /** Milliseconds until the rate quota has a request to give (0: it gave one now). */
  private takeToken(now: number): number {
    const rate = this.limits.maxRequestsPerSecond;
    this.tokens = Math.min(Math.max(1, rate), this.tokens + ((now - this.tokensAtMs) * rate) / 1000);
    this.tokensAtMs = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * 1000) / rate);
  }

  /**
   * Reads from `fromOffset`, whole chunks, about `maxRecords` records: at
   * least the chunk holding `fromOffset`, then following chunks while they
   * fit within `maxRecords` records and {@link READ_BYTES_MAX} bytes. The
   * chunks are chosen by their sizes first, so that only their data is read.
   * An offset retention deleted throws {@link OffsetsTruncatedError}: the
   * reader would silently skip records.
   */
  read(fromOffset: number, maxRecords: number): ReadResult {
    const end = this.meta.nextOffset;
    if (fromOffset >= end) return { firstOffset: fromOffset, count: 0, lines: "", endOffset: end };
    const earliest = this.earliestOffset();
    if (fromOffset < earliest) throw new OffsetsTruncatedError(this.config?.stream ?? "?", this.config?.partition ?? -1, fromOffset, earliest);
    // Each chunk holds a record at least: maxRecords + 1 chunks (the first one partly read) are the most a read takes.
    const sizes = this.sql
      .exec<{ first_offset: number; count: number; bytes: number }>(
        `SELECT first_offset, count, bytes FROM log
         WHERE first_offset >= (SELECT COALESCE(MAX(first_offset), 0) FROM log WHERE first_offset <= ?)
         ORDER BY first_offset LIMIT ?`,
        fromOffset,
        Math.max(1, maxRecords) + 1,
      )
      .toArray();
    let count = 0;
    let bytes = 0;
    let firstOffset = fromOffset;
    let firstChunk = fromOffset;
    let endOffset = fromOffset;
    for (const chunk of sizes) {
      if (chunk.first_offset + chunk.count <= fromOffset) continue;
      if (count === 0) {
        firstChunk = chunk.first_offset;
        firstOffset = Math.max(fromOffset, chunk.first_offset);
      }
      const records = chunk.first_offset + chunk.count - Math.max(fromOffset, chunk.first_offset);
      if (count > 0 && (count + records > maxRecords || bytes + chunk.bytes > READ_BYTES_MAX)) break;
      count += records;
      bytes += chunk.bytes;
      endOffset = chunk.first_offset + chunk.count;
      if (count >= maxRecords) break;
    }
    const rows = this.sql
      .exec<{ first_offset: number; data: string }>(`SELECT first_offset, data FROM log WHERE first_offset >= ? AND first_offset < ? ORDER BY first_offset`, firstChunk, endOffset)
      .toArray();
    const parts = rows.map((row) => (row.first_offset < fromOffset ? row.data.split("\n").slice(fromOffset - row.first_offset).join("\n") : row.data));
    return { firstOffset, count, lines: parts.join("\n"), endOffset: end };
  }

  /** The partition's offsets: records are at `startOffset .. endOffset-1`. */
  info(): { startOffset: number; endOffset: number } {
    return { startOffset: this.earliestOffset(), endOffset: this.meta.nextOffset };
  }

  private earliestOffset(): number {
    const first = this.sql.exec<{ s: number | null }>(`SELECT MIN(first_offset) AS s FROM log`).one();
    return first.s ?? this.meta.nextOffset;
  }

  /** The partition's figures and its consumers' pins. */
  stats(): PartitionStats {
    const first = this.sql.exec<{ first_offset: number; append_ms: number }>(`SELECT first_offset, append_ms FROM log ORDER BY first_offset LIMIT 1`).toArray()[0];
    return {
      stream: this.config?.stream ?? null,
      partition: this.config?.partition ?? null,
      earliestOffset: first?.first_offset ?? this.meta.nextOffset,
      nextOffset: this.meta.nextOffset,
      records: this.meta.records,
      bytes: this.meta.bytes,
      earliestTimestampMs: first?.append_ms ?? null,
      limits: this.limits,
      consumers: this.consumers.list(),
    };
  }

  /**
   * Where `job`'s run `runId` starts: `position` resolved against the log
   * now, and pinned there so that nothing from it on is deleted while the
   * run lives. A recorded offset that retention deleted throws
   * {@link OffsetsTruncatedError}, unless it asks for the earliest instead.
   */
  startRun(job: string, runId: number, position: StartPosition): number {
    const earliest = this.earliestOffset();
    const offset = this.resolve(position, earliest);
    this.consumers.start(job, runId, offset);
    return offset;
  }

  private resolve(position: StartPosition, earliest: number): number {
    if (position === "earliest") return earliest;
    if (position === "latest") return this.meta.nextOffset;
    if ("timestamp" in position) {
      const chunk = this.sql.exec<{ first_offset: number }>(`SELECT first_offset FROM log WHERE append_ms >= ? ORDER BY first_offset LIMIT 1`, position.timestamp).toArray()[0];
      return chunk?.first_offset ?? this.meta.nextOffset;
    }
    if (position.offset >= earliest) return position.offset;
    if (position.orEarliest) return earliest;
    throw new OffsetsTruncatedError(this.config?.stream ?? "?", this.config?.partition ?? -1, position.offset, earliest);
  }

  /**
   * One bounded step of retention: deletes up to `maxChunks` of the oldest
   * chunks that are past retention and below every live pin, and up to a
   * few hundred expired idempotency keys. Returns whether more is due now.
   */
  truncate(maxChunks = TRUNCATE_CHUNKS_PER_STEP): { deletedRecords: number; more: boolean } {
    const now = this.now();
    const { retentionMs, retentionBytes } = this.limits;
    const pin = this.consumers.minPin() ?? Infinity;
    const chunks = this.sql
      .exec<{ first_offset: number; count: number; bytes: number; append_ms: number }>(`SELECT first_offset, count, bytes, append_ms FROM log ORDER BY first_offset LIMIT ?`, maxChunks + 1)
      .toArray();
    let bytes = this.meta.bytes;
    let records = this.meta.records;
    let upTo = -1;
    let taken = 0;
    for (const c of chunks) {
      if (taken === maxChunks) break;
      if (c.first_offset + c.count > pin) break;
      if (c.append_ms > now - retentionMs && bytes <= retentionBytes) break;
      bytes -= c.bytes;
      records -= c.count;
      upTo = c.first_offset;
      taken++;
    }
    const expired = this.keys.countExpired(now - this.idempotencyTtlMs, EXPIRE_KEYS_PER_STEP + 1);
    if (taken === 0 && expired === 0) return { deletedRecords: 0, more: false };
    const deletedRecords = this.meta.records - records;
    this.storage.transactionSync(() => {
      if (taken > 0) {
        this.sql.exec(`DELETE FROM log WHERE first_offset <= ?`, upTo);
        this.sql.exec(`UPDATE meta SET records = ?, bytes = ? WHERE id = 1`, records, bytes);
      }
      if (expired > 0) this.keys.expire(now - this.idempotencyTtlMs, EXPIRE_KEYS_PER_STEP);
    });
    this.meta = { ...this.meta, records, bytes };
    const moreChunks = taken === maxChunks && chunks.length > maxChunks;
    return { deletedRecords, more: moreChunks || expired > EXPIRE_KEYS_PER_STEP };
  }

  /**
   * When truncation should next run: now when a step is due, else when the
   * oldest chunk or idempotency key passes retention; null when nothing
   * ever will until a pin moves or a record arrives (their calls ask again).
   */
  nextTruncationMs(): number | null {
    const now = this.now();
    const first = this.sql.exec<{ first_offset: number; count: number; append_ms: number }>(`SELECT first_offset, count, append_ms FROM log ORDER BY first_offset LIMIT 1`).toArray()[0];
    const key = this.keys.oldestMs();
    const times: number[] = [];
    if (key !== null) times.push(key + this.idempotencyTtlMs + 1);
    const pin = this.consumers.minPin() ?? Infinity;
    if (first && first.first_offset + first.count <= pin) {
      times.push(this.meta.bytes > this.limits.retentionBytes ? now : first.append_ms + this.limits.retentionMs + 1);
    }
    return times.length === 0 ? null : Math.max(now, Math.min(...times));
  }

  private where(): string {
    return this.config ? `stream "${this.config.stream}" partition ${this.config.partition}` : "this stream partition";
  }
}

/** Adds a column to a table that may predate it. */
function addColumn(sql: Sql, table: string, definition: string): void {
  const name = definition.split(" ")[0];
  const columns = sql.exec<{ name: string }>(`PRAGMA table_info(${table})`).toArray();
  if (!columns.some((c) => c.name === name)) sql.exec(`ALTER TABLE ${table} ADD COLUMN ${definition}`);
}
