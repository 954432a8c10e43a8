/**
 * The Idempotency-Keys a stream partition remembers: for each, the offsets
 * its append took, a hash of the request's records, and when. A key is
 * stored as a 106-bit digest (two 53-bit hashes), not as its text, so that
 * every key costs the same few dozen bytes whatever its length (up to 256
 * characters): the keys of a window of requests are what bounds the
 * database besides the records (see {@link IDEMPOTENCY_KEY_BYTES}).
 *
 * Table `idempotency_keys`: (h1, h2) → first offset, count, created time,
 * body hash; an index on the created time for expiry in bounded steps. A
 * log written before the digests has table `idempotency` (key text → the
 * same): it is read until its keys expire, never written, and dropped once
 * empty.
 */
import type { Sql } from "./sql.js";

/** What an append under a key took. */
export interface RememberedAppend {
  readonly firstOffset: number;
  readonly count: number;
  readonly createdMs: number;
  /** Null for a key stored before body hashes were. */
  readonly bodyHash: string | null;
}

/**
 * Bytes of SQLite one remembered key takes, rounded up from the measured
 * 76 (table row and created-time index, 50,000 keys, node:sqlite): the
 * figure stream-options.ts sizes a partition's key window with.
 */
export const IDEMPOTENCY_KEY_BYTES = 100;

/**
 * Two 53-bit hashes of `key` (cyrb53 under two seeds): a digest wide enough
 * that two keys of a window of billions collide with odds of about 2^-46.
 * Not a defence against an attacker, who holds the stream's token anyway.
 *
 * @example keyDigest("order-17") // [h1, h2], each below 2^53
 */
export function keyDigest(key: string): [number, number] {
  return [cyrb53(key, 0x9e3779b9), cyrb53(key, 0x7f4a7c15)];
}

function cyrb53(text: string, seed: number): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** A partition's remembered keys, on its SQLite. */
export class IdempotencyKeys {
  /** The table of key texts from before digests still exists. */
  private legacy: boolean;

  constructor(private readonly sql: Sql) {
    sql.exec(
      `CREATE TABLE IF NOT EXISTS idempotency_keys (h1 INTEGER NOT NULL, h2 INTEGER NOT NULL, first_offset INTEGER NOT NULL, count INTEGER NOT NULL, created_ms INTEGER NOT NULL, body_hash TEXT, PRIMARY KEY (h1, h2)) WITHOUT ROWID`,
    );
    sql.exec(`CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys (created_ms)`);
    this.legacy = sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'idempotency'`).one().n > 0;
    if (this.legacy) {
      // The first legacy tables had no body hash: such a key answers a duplicate for any body, as it did.
      const columns = sql.exec<{ name: string }>(`PRAGMA table_info(idempotency)`).toArray();
      if (!columns.some((c) => c.name === "body_hash")) sql.exec(`ALTER TABLE idempotency ADD COLUMN body_hash TEXT`);
      sql.exec(`CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency (created_ms)`);
    }
  }

  /** What the append under `key` took, if it is remembered (expired or not: the caller compares the time). */
  lookup(key: string): RememberedAppend | null {
    const [h1, h2] = keyDigest(key);
    type Row = { first_offset: number; count: number; created_ms: number; body_hash: string | null };
    const row =
      this.sql.exec<Row>(`SELECT first_offset, count, created_ms, body_hash FROM idempotency_keys WHERE h1 = ? AND h2 = ?`, h1, h2).toArray()[0] ??
      (this.legacy ? this.sql.exec<Row>(`SELECT first_offset, count, created_ms, body_hash FROM idempotency WHERE key = ?`, key).toArray()[0] : undefined);
    return row ? { firstOffset: row.first_offset, count: row.count, createdMs: row.created_ms, bodyHash: row.body_hash } : null;
  }

  /** Remembers the append under `key` (replacing an expired one); call inside the append's transaction. */
  remember(key: string, append: RememberedAppend): void {
    const [h1, h2] = keyDigest(key);
    this.sql.exec(
      `INSERT OR REPLACE INTO idempotency_keys (h1, h2, first_offset, count, created_ms, body_hash) VALUES (?, ?, ?, ?, ?, ?)`,
      h1,
      h2,
      append.firstOffset,
      append.count,
      append.createdMs,
      append.bodyHash,
    );
  }

  /** How many keys created before `cutoffMs` there are, counting up to `limit`. */
  countExpired(cutoffMs: number, limit: number): number {
    const q = (table: string) => this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM (SELECT 1 FROM ${table} WHERE created_ms < ? LIMIT ?)`, cutoffMs, limit).one().n;
    return Math.min(limit, q("idempotency_keys") + (this.legacy ? q("idempotency") : 0));
  }

  /** Deletes up to `limit` keys created before `cutoffMs`, oldest first; call inside a transaction. */
  expire(cutoffMs: number, limit: number): void {
    this.sql.exec(
      `DELETE FROM idempotency_keys WHERE (h1, h2) IN (SELECT h1, h2 FROM idempotency_keys WHERE created_ms < ? ORDER BY created_ms LIMIT ?)`,
      cutoffMs,
      limit,
    );
    if (!this.legacy) return;
    this.sql.exec(`DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency WHERE created_ms < ? ORDER BY created_ms LIMIT ?)`, cutoffMs, limit);
    if (this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM (SELECT 1 FROM idempotency LIMIT 1)`).one().n === 0) {
      this.sql.exec(`DROP TABLE idempotency`);
      this.legacy = false;
    }
  }

  /** When the oldest remembered key was created; null when none is. */
  oldestMs(): number | null {
    const q = (table: string) => this.sql.exec<{ c: number | null }>(`SELECT MIN(created_ms) AS c FROM ${table}`).one().c;
    const times = [q("idempotency_keys"), this.legacy ? q("idempotency") : null].filter((t): t is number => t !== null);
    return times.length === 0 ? null : Math.min(...times);
  }
}
