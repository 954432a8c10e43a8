import { describe, expect, it } from "vitest";
import { doSql } from "../../test/support/do-sql.js";
import { doStorage } from "../../test/support/do-storage.js";
import { IDEMPOTENCY_KEY_BYTES, IdempotencyKeys, keyDigest } from "./idempotency-keys.js";
import { StreamLog } from "./stream-log.js";

describe("keyDigest", () => {
  it("gives two safe integers, the same for the same key and different for near keys", () => {
    const [a1, a2] = keyDigest("order-17");
    expect(Number.isSafeInteger(a1) && Number.isSafeInteger(a2)).toBe(true);
    expect(keyDigest("order-17")).toEqual([a1, a2]);
    const digests = new Set(Array.from({ length: 100_000 }, (_, i) => keyDigest(`k-${i}`).join(":")));
    expect(digests.size).toBe(100_000);
    expect(keyDigest("a")[0]).not.toBe(keyDigest("a")[1]);
  });
});

describe("IdempotencyKeys", () => {
  it("remembers an append by key, and expires keys oldest first in bounded steps", () => {
    const keys = new IdempotencyKeys(doSql());
    for (let i = 0; i < 10; i++) keys.remember(`k${i}`, { firstOffset: i * 2, count: 2, createdMs: 100 + i, bodyHash: "h" });
    expect(keys.lookup("k3")).toEqual({ firstOffset: 6, count: 2, createdMs: 103, bodyHash: "h" });
    expect(keys.lookup("nope")).toBe(null);
    expect(keys.oldestMs()).toBe(100);
    expect(keys.countExpired(105, 100)).toBe(5);
    keys.expire(105, 3);
    expect(keys.oldestMs()).toBe(103);
    expect(keys.lookup("k0")).toBe(null);
    keys.expire(1_000, 100);
    expect(keys.oldestMs()).toBe(null);
  });

  it("reads a log's keys stored as text before digests until they expire, then drops their table", () => {
    const sql = doSql();
    // The table as the log wrote it before: key text, with and without a body hash.
    sql.exec(`CREATE TABLE idempotency (key TEXT PRIMARY KEY, first_offset INTEGER NOT NULL, count INTEGER NOT NULL, created_ms INTEGER NOT NULL)`);
    sql.exec(`INSERT INTO idempotency VALUES ('old-1', 0, 3, 50)`);
    const keys = new IdempotencyKeys(sql);
    sql.exec(`INSERT INTO idempotency (key, first_offset, count, created_ms, body_hash) VALUES ('old-2', 3, 1, 60, 'h2')`);
    expect(keys.lookup("old-1")).toEqual({ firstOffset: 0, count: 3, createdMs: 50, bodyHash: null });
    expect(keys.lookup("old-2")).toMatchObject({ firstOffset: 3, bodyHash: "h2" });
    keys.remember("new-1", { firstOffset: 4, count: 1, createdMs: 70, bodyHash: "h3" });
    expect(keys.oldestMs()).toBe(50);
    expect(keys.countExpired(65, 10)).toBe(2);
    keys.expire(55, 10);
    expect(keys.lookup("old-1")).toBe(null);
    expect(keys.lookup("old-2")).not.toBe(null);
    keys.expire(65, 10);
    expect(sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'idempotency'`).one().n).toBe(0);
    expect(keys.lookup("new-1")).toMatchObject({ firstOffset: 4 });
    // A new object over the same database has no legacy table to read.
    expect(new IdempotencyKeys(sql).lookup("new-1")).toMatchObject({ firstOffset: 4 });
  });

  it(`takes at most ${IDEMPOTENCY_KEY_BYTES} bytes of SQLite per key, whatever the key's length`, () => {
    const perKey: number[] = [];
    for (const length of [8, 36, 256]) {
      const storage = doStorage();
      const clock = { ms: 1_000 };
      const log = new StreamLog(storage, () => clock.ms);
      log.configure({ stream: "s", partition: 0, retentionMs: 1, retentionBytes: 1, maxBytes: 1e9, maxRequestsPerSecond: 1e9 });
      const q = (p: string) => (storage.sql.db.prepare(`PRAGMA ${p}`).get() as Record<string, number>)[p];
      const used = () => (q("page_count") - q("freelist_count")) * q("page_size");
      const before = used();
      const n = 20_000;
      // One-record appends, each under its own key; retention deletes the records, so what stays is the keys.
      for (let i = 0; i < n; i++) {
        clock.ms++;
        log.append(['{"a":1}'], String(i).padStart(length, "k"), "1a2b3c4d5e6f7");
        if (i % 1000 === 999) while (log.truncate().more);
      }
      while (log.truncate().more);
      perKey.push((used() - before) / n);
    }
    console.log(`idempotency keys: ${perKey.map((b) => b.toFixed(1)).join(", ")} bytes per key for keys of 8, 36 and 256 characters`);
    for (const b of perKey) expect(b).toBeLessThanOrEqual(IDEMPOTENCY_KEY_BYTES);
  });
});
