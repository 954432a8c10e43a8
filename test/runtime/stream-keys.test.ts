/**
 * Inside the Workers runtime: a StreamPartition's Idempotency-Keys on the
 * platform's SQLite, as digests (a WITHOUT ROWID table, deleted by row
 * value in bounded steps), and a partition written before digests, whose
 * keys stored as text are still recognized until they expire and whose
 * old table is then dropped.
 */
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { streamPartitionName } from "../../src/runtime/names.js";
import { IDEMPOTENCY_TTL_MS, StreamLog } from "../../src/storage/stream-log.js";

const CONFIG = { stream: "keys", partition: 0, retentionMs: 1_000, retentionBytes: 1024 ** 3, maxBytes: 2 * 1024 ** 3, maxRequestsPerSecond: 1e6 };

describe("Idempotency-Keys in the runtime", () => {
  it("recognizes keys stored as text before digests, expires every key after its window, and drops the old table", async () => {
    const stub = env.STREAM_PARTITION.get(env.STREAM_PARTITION.idFromName(streamPartitionName("keys", 0)));
    // An append through the object: its key is a digest.
    expect(await stub.append(['{"n":0}'], "new-0", { config: CONFIG, bodyHash: "h0" })).toMatchObject({ firstOffset: 0, duplicate: false });
    // A key as the log stored it before digests (text, no body hash), then the object restarts.
    await runInDurableObject(stub, (_instance, state) => {
      state.storage.sql.exec(`CREATE TABLE idempotency (key TEXT PRIMARY KEY, first_offset INTEGER NOT NULL, count INTEGER NOT NULL, created_ms INTEGER NOT NULL)`);
      state.storage.sql.exec(`INSERT INTO idempotency VALUES ('old-0', 0, 1, ?)`, Date.now());
    });
    await evictDurableObject(stub);
    expect(await stub.append(['{"n":0}'], "old-0", { config: CONFIG, bodyHash: "h-any" })).toEqual({ firstOffset: 0, endOffset: 1, count: 1, duplicate: true });
    expect(await stub.append(['{"n":9}'], "new-0", { config: CONFIG, bodyHash: "h9" })).toMatchObject({ refused: "idempotency_key_reused" });
    expect(await stub.append(['{"n":1}'], "new-1", { config: CONFIG, bodyHash: "h1" })).toMatchObject({ firstOffset: 1, duplicate: false });

    // A log over the object's storage with a clock past the window: every key expires, in steps, and the old table goes.
    const after = await runInDurableObject(stub, (_instance, state) => {
      const log = new StreamLog(state.storage, () => Date.now() + IDEMPOTENCY_TTL_MS + 60_000);
      while (log.truncate(64).more);
      const tables = state.storage.sql.exec<{ name: string }>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'idempotency%'`).toArray().map((r) => r.name);
      const keys = state.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM idempotency_keys`).one().n;
      return { tables, keys, next: log.append(['{"n":0}'], "old-0", "h-other") };
    });
    expect(after).toEqual({ tables: ["idempotency_keys"], keys: 0, next: { firstOffset: 2, endOffset: 3, count: 1, duplicate: false } });
  });
});
