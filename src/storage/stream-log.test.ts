import { describe, expect, it } from "vitest";
import { doSql } from "../../test/support/do-sql.js";
import { doStorage } from "../../test/support/do-storage.js";
import { RECORD_BYTES_MAX } from "./record-limits.js";
import { IDEMPOTENCY_TTL_MS, OffsetsTruncatedError, READ_BYTES_MAX, StreamLog } from "./stream-log.js";

const texts = (from: number, n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ i: from + i }));
const parse = (lines: string) => (lines === "" ? [] : lines.split("\n").map((l) => (JSON.parse(l) as { i: number }).i));

/** A log on a fresh database with a clock the test moves. */
function log() {
  const clock = { ms: 1_000 };
  const storage = doStorage();
  return { storage, clock, log: new StreamLog(storage, () => clock.ms) };
}

describe("StreamLog: append", () => {
  it("gives each append the offsets after the last one", () => {
    const { log: l } = log();
    expect(l.append(texts(0, 3))).toEqual({ firstOffset: 0, endOffset: 3, count: 3, duplicate: false });
    expect(l.append(texts(3, 2))).toEqual({ firstOffset: 3, endOffset: 5, count: 2, duplicate: false });
    expect(l.info()).toEqual({ startOffset: 0, endOffset: 5 });
  });

  it("answers a repeated idempotency key with the first append's offsets, appending nothing", () => {
    const { log: l } = log();
    l.append(texts(0, 2));
    const first = l.append(texts(2, 3), "req-1");
    expect(l.append(texts(100, 7), "req-1")).toEqual({ firstOffset: 2, endOffset: 5, count: 3, duplicate: true });
    expect(first.duplicate).toBe(false);
    expect(l.info().endOffset).toBe(5);
    expect(parse(l.read(0, 100).lines)).toEqual([0, 1, 2, 3, 4]);
  });

  it("forgets an idempotency key after its time to live", () => {
    const { log: l, clock } = log();
    l.append(texts(0, 1), "old");
    // Kept a day (the default retention), or as long as the retention when longer.
    clock.ms += l.idempotencyTtlMs + 1;
    l.append(texts(1, 1), "other");
    expect(l.append(texts(2, 1), "old")).toEqual({ firstOffset: 2, endOffset: 3, count: 1, duplicate: false });
  });

  it("stores nothing of an append that fails, and keeps its offsets for the next", () => {
    const { log: l, storage } = log();
    l.append(texts(0, 2));
    let writes = 0;
    storage.sql.beforeExec = (q) => {
      if (q.startsWith("INSERT OR REPLACE INTO idempotency") && writes++ === 0) throw new Error("crash");
    };
    // Chunks of 1000 records: the first chunk is written, then the key's row fails.
    expect(() => l.append(texts(2, 1500), "k")).toThrow("crash");
    expect(l.info().endOffset).toBe(2);
    expect(l.read(0, 5000).count).toBe(2);
    expect(l.append(texts(2, 1), "k")).toEqual({ firstOffset: 2, endOffset: 3, count: 1, duplicate: false });
  });

  it("refuses a record larger than a stored record may be", () => {
    const { log: l } = log();
    expect(() => l.append([JSON.stringify("x".repeat(RECORD_BYTES_MAX))])).toThrow(/larger than/);
    expect(l.info().endOffset).toBe(0);
  });

  it("finds its end offset again on a new log over the same database (an object restart)", () => {
    const { storage, log: l } = log();
    l.append(texts(0, 4), "a");
    const again = new StreamLog(storage, () => 0);
    expect(again.info()).toEqual({ startOffset: 0, endOffset: 4 });
    expect(again.append(texts(9, 1), "a").duplicate).toBe(true);
    expect(again.append(texts(4, 1)).firstOffset).toBe(4);
  });

  it("splits a large append into chunks under the value limit, within Durable Object limits", () => {
    const storage = doStorage(doSql());
    const l = new StreamLog(storage, () => 0);
    const big = Array.from({ length: 5 }, (_, i) => JSON.stringify({ i, pad: "y".repeat(300_000) }));
    expect(l.append(big).endOffset).toBe(5);
    const chunks = storage.sql.db.prepare(`SELECT count, length(data) AS bytes FROM log ORDER BY first_offset`).all() as { count: number; bytes: number }[];
    expect(chunks.map((c) => c.count)).toEqual([1, 1, 1, 1, 1]);
    const seen: number[] = [];
    for (let offset = 0; offset < 5; ) {
      const r = l.read(offset, 10);
      seen.push(...parse(r.lines));
      offset = r.firstOffset + r.count;
    }
    expect(seen).toEqual([0, 1, 2, 3, 4]);
  });
});

describe("StreamLog: read", () => {
  it("reads from an offset inside a chunk, and whole chunks after it", () => {
    const { log: l } = log();
    l.append(texts(0, 5));
    l.append(texts(5, 5));
    const r = l.read(3, 100);
    expect(r).toMatchObject({ firstOffset: 3, count: 7, endOffset: 10 });
    expect(parse(r.lines)).toEqual([3, 4, 5, 6, 7, 8, 9]);
  });

  it("stops before a chunk that would pass maxRecords, but always returns at least one chunk", () => {
    const { log: l } = log();
    l.append(texts(0, 4));
    l.append(texts(4, 4));
    expect(l.read(0, 6)).toMatchObject({ firstOffset: 0, count: 4 });
    expect(l.read(4, 2)).toMatchObject({ firstOffset: 4, count: 4 });
  });

  it("fills a read with small chunks (one per request) up to maxRecords", () => {
    const { log: l } = log();
    for (let i = 0; i < 30; i++) l.append(texts(i, 1));
    const r = l.read(2, 10);
    expect(r).toMatchObject({ firstOffset: 2, count: 10, endOffset: 30 });
    expect(parse(r.lines)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });

  it("takes no more than READ_BYTES_MAX after the first chunk", () => {
    const { log: l } = log();
    const pad = "z".repeat(300_000);
    for (let i = 0; i < 6; i++) l.append([JSON.stringify({ i, pad })]);
    // 300 kB chunks: a third fits in the limit, a fourth does not.
    expect(Math.floor(READ_BYTES_MAX / 300_000)).toBe(3);
    expect(l.read(0, 100)).toMatchObject({ firstOffset: 0, count: 3 });
    expect(l.read(5, 100)).toMatchObject({ firstOffset: 5, count: 1 });
  });

  it("answers nothing at or past the end, with the end offset", () => {
    const { log: l } = log();
    expect(l.read(0, 10)).toEqual({ firstOffset: 0, count: 0, lines: "", endOffset: 0 });
    l.append(texts(0, 2));
    expect(l.read(2, 10)).toEqual({ firstOffset: 2, count: 0, lines: "", endOffset: 2 });
    expect(l.read(7, 10)).toEqual({ firstOffset: 7, count: 0, lines: "", endOffset: 2 });
  });

  it("reads every record once when a reader continues after each read", () => {
    const { log: l } = log();
    for (let i = 0, at = 0; i < 20; i++) {
      const n = 1 + ((i * 7) % 13);
      l.append(texts(at, n));
      at += n;
    }
    const seen: number[] = [];
    for (let offset = 0; offset < l.info().endOffset; ) {
      const r = l.read(offset, 9);
      expect(r.firstOffset).toBe(offset);
      seen.push(...parse(r.lines));
      offset = r.firstOffset + r.count;
    }
    expect(seen).toEqual(Array.from({ length: seen.length }, (_, i) => i));
    expect(seen.length).toBe(l.info().endOffset);
  });
});

/** A log with limits, on a database under Durable Object limits. */
function limited(limits: Partial<{ retentionMs: number; retentionBytes: number; maxBytes: number; maxRequestsPerSecond: number }> = {}) {
  const clock = { ms: 1_000 };
  const storage = doStorage(doSql());
  const l = new StreamLog(storage, () => clock.ms);
  l.configure({ stream: "s", partition: 0, retentionMs: 10_000, retentionBytes: 1e9, maxBytes: 2e9, maxRequestsPerSecond: 1e9, ...limits });
  return { storage, clock, log: l };
}

describe("StreamLog: retention", () => {
  it("deletes chunks older than the retention, oldest first, and the earliest offset advances", () => {
    const { log: l, clock } = limited();
    l.append(texts(0, 3));
    clock.ms += 6_000;
    l.append(texts(3, 2));
    clock.ms += 5_000;
    expect(l.truncate()).toEqual({ deletedRecords: 3, more: false });
    expect(l.info()).toEqual({ startOffset: 3, endOffset: 5 });
    expect(l.stats()).toMatchObject({ earliestOffset: 3, nextOffset: 5, records: 2, earliestTimestampMs: 7_000 });
    expect(() => l.read(1, 10)).toThrow(OffsetsTruncatedError);
    expect(() => l.read(1, 10)).toThrow(/offsets_truncated: stream "s" partition 0: offset 1 is needed .* earliest offset is 3/);
    expect(parse(l.read(3, 10).lines)).toEqual([3, 4]);
  });

  it("deletes the oldest chunks while the partition is over its retention size", () => {
    const { log: l } = limited({ retentionBytes: 100 });
    for (let i = 0; i < 10; i++) l.append(texts(i * 2, 2)); // {"i":0} and a newline: 8 bytes, 9 from 10 on
    expect(l.stats().bytes).toBe(170);
    l.truncate();
    expect(l.stats().bytes).toBeLessThanOrEqual(100);
    expect(l.info()).toEqual({ startOffset: 10, endOffset: 20 });
    expect(l.stats().bytes).toBe(90);
  });

  it("deletes nothing at or after a live job's pin, whatever its age, and follows the pin as checkpoints complete", () => {
    const { log: l, clock } = limited();
    l.append(texts(0, 2));
    expect(l.startRun("job", 1, "earliest")).toBe(0);
    l.append(texts(2, 2));
    clock.ms += 20_000;
    expect(l.truncate().deletedRecords).toBe(0);
    expect(l.consumers.checkpointed("job", 1, 3)).toBe(true);
    // Chunk [2, 4) holds offset 3, which the job still needs.
    expect(l.truncate().deletedRecords).toBe(2);
    expect(l.info().startOffset).toBe(2);
    // A late message of an earlier run moves nothing; the pin never goes back.
    expect(l.consumers.checkpointed("job", 0, 4)).toBe(false);
    expect(l.consumers.checkpointed("job", 1, 1)).toBe(false);
    l.consumers.release("job", 1);
    expect(l.truncate().deletedRecords).toBe(2);
    expect(l.info()).toEqual({ startOffset: 4, endOffset: 4 });
  });

  it("truncates in bounded steps", () => {
    const { log: l, clock } = limited();
    for (let i = 0; i < 10; i++) l.append(texts(i, 1));
    clock.ms += 20_000;
    expect(l.truncate(4)).toEqual({ deletedRecords: 4, more: true });
    expect(l.truncate(4)).toEqual({ deletedRecords: 4, more: true });
    expect(l.truncate(4)).toEqual({ deletedRecords: 2, more: false });
  });

  it("keeps its next offset when every record was deleted, across a restart", () => {
    const { log: l, clock, storage } = limited();
    l.append(texts(0, 5));
    clock.ms += 20_000;
    l.truncate();
    const again = new StreamLog(storage, () => clock.ms);
    expect(again.info()).toEqual({ startOffset: 5, endOffset: 5 });
    expect(again.append(texts(5, 1))).toMatchObject({ firstOffset: 5 });
    expect(again.limits.retentionMs).toBe(10_000);
  });

  it("says when truncation is next due", () => {
    const { log: l, clock } = limited();
    expect(l.nextTruncationMs()).toBe(null);
    l.append(texts(0, 1));
    expect(l.nextTruncationMs()).toBe(1_000 + 10_000 + 1);
    l.startRun("job", 1, "earliest");
    expect(l.nextTruncationMs()).toBe(null);
    clock.ms = 50_000;
    l.consumers.checkpointed("job", 1, 1);
    expect(l.nextTruncationMs()).toBe(50_000);
  });

  it("keeps a partition's database bounded under a sustained load while checkpoints complete (page_count − freelist_count)", () => {
    const { log: l, clock, storage } = limited({ retentionMs: 1_000 });
    l.startRun("job", 1, "earliest");
    const pad = "p".repeat(2_000);
    const usedBytes = () => {
      const q = (p: string) => (storage.sql.db.prepare(`PRAGMA ${p}`).get() as Record<string, number>)[p];
      return { file: q("page_count") * q("page_size"), used: (q("page_count") - q("freelist_count")) * q("page_size") };
    };
    const sizes: { file: number; used: number }[] = [];
    for (let round = 0; round < 40; round++) {
      // 100 requests of 20 records (~40 kB each): about 4 MB a round, 160 MB in all.
      for (let i = 0; i < 100; i++) l.append(Array.from({ length: 20 }, (_, j) => JSON.stringify({ round, i, j, pad })));
      clock.ms += 500;
      l.consumers.checkpointed("job", 1, l.info().endOffset);
      while (l.truncate().more) {
        // bounded steps, as the object's alarm runs them
      }
      sizes.push(usedBytes());
    }
    // Retention holds about two rounds (1 s at 500 ms a round): the file stops growing once freed pages are reused.
    const last = sizes.at(-1)!;
    expect(last.used).toBeLessThan(16 * 1024 * 1024);
    expect(last.file).toBeLessThan(24 * 1024 * 1024);
    expect(Math.max(...sizes.slice(10).map((s) => s.file))).toBe(Math.max(...sizes.slice(5, 10).map((s) => s.file)));
  });
});

describe("StreamLog: starting positions", () => {
  it("starts at the earliest, the latest, or the first record ingested at or after a time", () => {
    const { log: l, clock } = limited();
    l.append(texts(0, 2));
    clock.ms = 5_000;
    l.append(texts(2, 2));
    expect(l.startRun("a", 1, "earliest")).toBe(0);
    expect(l.startRun("b", 1, "latest")).toBe(4);
    expect(l.startRun("c", 1, { timestamp: 2_000 })).toBe(2);
    expect(l.startRun("d", 1, { timestamp: 9_000 })).toBe(4);
    expect(l.consumers.startOffset("c")).toBe(2);
    expect(l.consumers.startOffset("nobody")).toBe(null);
  });

  it("refuses a recorded offset that retention deleted, unless asked for the earliest", () => {
    const { log: l, clock } = limited();
    l.append(texts(0, 2));
    clock.ms += 20_000;
    l.append(texts(2, 2));
    l.truncate();
    expect(() => l.startRun("j", 2, { offset: 1, orEarliest: false })).toThrow(/offset 1 is needed .* earliest offset is 2/);
    expect(l.consumers.startOffset("j")).toBe(null);
    expect(l.startRun("j", 2, { offset: 1, orEarliest: true })).toBe(2);
    expect(l.startRun("j", 3, { offset: 3, orEarliest: false })).toBe(3);
  });
});

describe("StreamLog: limits", () => {
  it("refuses appends with stream_full while a job pins a full partition, and takes them once its checkpoint moves past", () => {
    const { log: l } = limited({ retentionBytes: 50, maxBytes: 100 });
    l.startRun("slow", 1, "earliest");
    for (let i = 0; i < 6; i++) expect(l.append(texts(i * 2, 2)).refused).toBeUndefined();
    const full = l.append(texts(12, 2));
    expect(full).toMatchObject({ refused: "stream_full", retryAfterMs: 1000 });
    expect(full.refused && full.message).toMatch(/stream "s" partition 0 holds 98 bytes/);
    expect(l.info().endOffset).toBe(12);
    l.consumers.checkpointed("slow", 1, 8);
    expect(l.append(texts(12, 2))).toMatchObject({ firstOffset: 12, duplicate: false });
    expect(l.info().startOffset).toBeGreaterThan(0);
  });

  it("refuses requests over the rate quota, and takes them again as time passes", () => {
    const { log: l, clock } = limited({ maxRequestsPerSecond: 2 });
    expect(l.append(texts(0, 1)).refused).toBeUndefined();
    expect(l.append(texts(1, 1)).refused).toBeUndefined();
    expect(l.append(texts(2, 1))).toMatchObject({ refused: "rate_limited", retryAfterMs: 500 });
    clock.ms += 500;
    expect(l.append(texts(2, 1))).toMatchObject({ firstOffset: 2 });
  });

  it("refuses a repeated idempotency key with another body, and still answers the same body as a duplicate", () => {
    const { log: l } = limited();
    l.append(texts(0, 2), "k", "hash-1");
    expect(l.append(texts(0, 2), "k", "hash-1")).toEqual({ firstOffset: 0, endOffset: 2, count: 2, duplicate: true });
    expect(l.append(texts(5, 1), "k", "hash-2")).toMatchObject({ refused: "idempotency_key_reused" });
    expect(l.info().endOffset).toBe(2);
  });

  it("remembers idempotency keys at least as long as the retention", () => {
    const { log: l, clock } = limited({ retentionMs: 2 * IDEMPOTENCY_TTL_MS });
    expect(l.idempotencyTtlMs).toBe(2 * IDEMPOTENCY_TTL_MS);
    l.append(texts(0, 1), "k", "h");
    clock.ms += IDEMPOTENCY_TTL_MS + 1;
    expect(l.append(texts(0, 1), "k", "h")).toMatchObject({ duplicate: true });
    clock.ms += IDEMPOTENCY_TTL_MS;
    l.truncate();
    expect(l.append(texts(1, 1), "k", "h")).toMatchObject({ firstOffset: 1, duplicate: false });
  });
});

describe("StreamLog: a crash during truncation", () => {
  it("deletes all of a step or none of it, and the next log over the same database finishes the work", () => {
    const { log: l, clock, storage } = limited();
    l.startRun("job", 1, "earliest");
    for (let i = 0; i < 10; i++) l.append(texts(i * 3, 3), `k${i}`, "h");
    clock.ms += 20_000;
    l.consumers.checkpointed("job", 1, 30);
    storage.sql.beforeExec = (q) => {
      if (q.startsWith("UPDATE meta SET records")) throw new Error("crash");
    };
    expect(() => l.truncate(4)).toThrow("crash");
    storage.sql.beforeExec = undefined;
    // The object died: a new log over the same database sees nothing of the interrupted step.
    const again = new StreamLog(storage, () => clock.ms);
    expect(again.stats()).toMatchObject({ earliestOffset: 0, nextOffset: 30, records: 30 });
    expect(parse(again.read(0, 100).lines)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    while (again.truncate(4).more) {
      // the alarm's steps
    }
    expect(again.stats()).toMatchObject({ earliestOffset: 30, nextOffset: 30, records: 0, bytes: 0 });
    expect(again.append(texts(30, 1))).toMatchObject({ firstOffset: 30 });
  });
});
