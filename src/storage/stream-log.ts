/**
 * One partition of an HTTP ingestion stream: a durable, replayable log.
 * Records are stored as NDJSON chunks keyed by the offset of their first
 * record; an append commits its chunks and its idempotency key in one
 * transaction, and a repeated idempotency key answers the first append's
 * offsets without appending.
 *
 * Written over the {@link Sql} port: the StreamPartition Durable Object runs
 * it on its SQLite (whose output gate holds the reply until the write is
 * durable), the simulator and the unit tests on `node:sqlite`.
 *
 * Tables: `log` (first offset → count, NDJSON data) and `idempotency`
 * (key → first offset, count, when it was appended).
 */
import { RECORD_BYTES_MAX, utf8Length } from "./record-limits.js";
import type { Sql } from "./sql.js";

/** What an append answers. */
export interface AppendResult {
  readonly firstOffset: number;
  /** One past the last offset written. */
  readonly endOffset: number;
  readonly count: number;
  /** The idempotency key was seen before: nothing was appended. */
  readonly duplicate: boolean;
}

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

/** Stored chunks stay well under SQLite's 2 MB value limit. */
const CHUNK_BYTES_MAX = 512 * 1024;
const CHUNK_RECORDS_MAX = 1000;
/** A read answers at most this much after its first chunk: two full chunks, what a read of 1,000 records took before reads filled up with small chunks. */
export const READ_BYTES_MAX = 2 * CHUNK_BYTES_MAX;
/** Idempotency keys are remembered this long. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

/** One stream partition's log and idempotency keys, on SQLite. */
export class StreamLog {
  private endOffset: number;
  private readonly sql: Sql;

  /** `now` dates idempotency keys, which expire after {@link IDEMPOTENCY_TTL_MS}. */
  constructor(
    private readonly storage: StreamLogStorage,
    private readonly now: () => number,
  ) {
    this.sql = storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS log (first_offset INTEGER PRIMARY KEY, count INTEGER NOT NULL, data TEXT NOT NULL)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, first_offset INTEGER NOT NULL, count INTEGER NOT NULL, created_ms INTEGER NOT NULL)`);
    const last = this.sql.exec<{ e: number | null }>(`SELECT MAX(first_offset + count) AS e FROM log`).one();
    this.endOffset = last.e ?? 0;
  }

  /**
   * Appends records, each the JSON text of one record without newlines.
   * All or nothing: the rows and the idempotency key commit in one
   * transaction, and the end offset moves only after it.
   */
  append(records: readonly string[], idempotencyKey?: string): AppendResult {
    const now = this.now();
    if (idempotencyKey !== undefined) {
      const seen = this.sql
        .exec<{ first_offset: number; count: number }>(`SELECT first_offset, count FROM idempotency WHERE key = ?`, idempotencyKey)
        .toArray()[0];
      if (seen) {
        return { firstOffset: seen.first_offset, endOffset: seen.first_offset + seen.count, count: seen.count, duplicate: true };
      }
    }
    for (let i = 0; i < records.length; i++) {
      if (utf8Length(records[i]) > RECORD_BYTES_MAX) throw new Error(`record ${i} is larger than ${RECORD_BYTES_MAX} bytes`);
    }
    const firstOffset = this.endOffset;
    const endOffset = this.storage.transactionSync(() => {
      let offset = firstOffset;
      let start = 0;
      while (start < records.length) {
        let bytes = 0;
        let end = start;
        while (end < records.length && end - start < CHUNK_RECORDS_MAX) {
          const size = utf8Length(records[end]) + 1;
          if (end > start && bytes + size > CHUNK_BYTES_MAX) break;
          bytes += size;
          end++;
        }
        this.sql.exec(`INSERT INTO log (first_offset, count, data) VALUES (?, ?, ?)`, offset, end - start, records.slice(start, end).join("\n"));
        offset += end - start;
        start = end;
      }
      if (idempotencyKey !== undefined) {
        this.sql.exec(`INSERT INTO idempotency (key, first_offset, count, created_ms) VALUES (?, ?, ?, ?)`, idempotencyKey, firstOffset, records.length, now);
        this.sql.exec(`DELETE FROM idempotency WHERE created_ms < ?`, now - IDEMPOTENCY_TTL_MS);
      }
      return offset;
    });
    this.endOffset = endOffset;
    return { firstOffset, endOffset, count: records.length, duplicate: false };
  }

  /**
   * Reads from `fromOffset`, whole chunks, about `maxRecords` records: at
   * least the chunk holding `fromOffset`, then following chunks while they
   * fit within `maxRecords` records and {@link READ_BYTES_MAX} bytes. The
   * chunks are chosen by their sizes first, so that only their data is read.
   */
  read(fromOffset: number, maxRecords: number): ReadResult {
    if (fromOffset >= this.endOffset) return { firstOffset: fromOffset, count: 0, lines: "", endOffset: this.endOffset };
    // Each chunk holds a record at least: maxRecords + 1 chunks (the first one partly read) are the most a read takes.
    const sizes = this.sql
      .exec<{ first_offset: number; count: number; bytes: number }>(
        `SELECT first_offset, count, length(CAST(data AS BLOB)) AS bytes FROM log
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
      .exec<{ first_offset: number; data: string }>(
        `SELECT first_offset, data FROM log WHERE first_offset >= ? AND first_offset < ? ORDER BY first_offset`,
        firstChunk,
        endOffset,
      )
      .toArray();
    const parts = rows.map((row) => (row.first_offset < fromOffset ? row.data.split("\n").slice(fromOffset - row.first_offset).join("\n") : row.data));
    return { firstOffset, count, lines: parts.join("\n"), endOffset: this.endOffset };
  }

  /** The partition's offsets: records are at `startOffset .. endOffset-1`. */
  info(): { startOffset: number; endOffset: number } {
    const first = this.sql.exec<{ s: number | null }>(`SELECT MIN(first_offset) AS s FROM log`).one();
    return { startOffset: first.s ?? 0, endOffset: this.endOffset };
  }
}
