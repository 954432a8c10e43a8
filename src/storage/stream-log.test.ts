import { describe, expect, it } from "vitest";
import { doSql } from "../../test/support/do-sql.js";
import { doStorage } from "../../test/support/do-storage.js";
import { RECORD_BYTES_MAX } from "./record-limits.js";
import { IDEMPOTENCY_TTL_MS, READ_BYTES_MAX, StreamLog } from "./stream-log.js";

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
    clock.ms += IDEMPOTENCY_TTL_MS + 1;
    // Expired keys are swept by the next keyed append.
    l.append(texts(1, 1), "other");
    expect(l.append(texts(2, 1), "old")).toEqual({ firstOffset: 2, endOffset: 3, count: 1, duplicate: false });
  });

  it("stores nothing of an append that fails, and keeps its offsets for the next", () => {
    const { log: l, storage } = log();
    l.append(texts(0, 2));
    let writes = 0;
    storage.sql.beforeExec = (q) => {
      if (q.startsWith("INSERT INTO idempotency") && writes++ === 0) throw new Error("crash");
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
