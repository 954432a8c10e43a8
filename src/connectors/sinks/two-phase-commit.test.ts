import { describe, expect, it } from "vitest";
import type { DeliveryGuarantee, SinkWriter, StagingStore } from "../../api/types.js";
import { FloeError } from "../../errors.js";
import { utf8Length } from "../../storage/record-limits.js";
import { OPEN_TXN, type SinkPublisher, TransactionalSinkWriter } from "./two-phase-commit.js";

// ---------------------------------------------------------------------------
// Fakes
// ---------------------------------------------------------------------------

/**
 * An in-memory StagingStore, faithful to the contract (and to the SQLite one
 * in runtime/subtask.ts): rows per (uid, txn), appended in chunks; OPEN_TXN
 * (-1) is the open transaction; seal relabels the open rows and marks the
 * transaction sealed (even when it has no rows); sealed() is ascending;
 * dropAfter drops the open rows and every later sealed transaction; bytes is
 * the UTF-8 size of each appended chunk joined with newlines.
 */
class MemoryStaging implements StagingStore {
  private readonly chunks = new Map<string, Map<number, string[][]>>();
  private readonly sealedTxns = new Map<string, Set<number>>();
  /** Every append, in order (a copy of its rows). */
  readonly appends: { uid: string; txn: number; rows: string[] }[] = [];
  /** drop(uid, txn) throws once for these transactions: a crash between publish and cleanup. */
  readonly failDropOnce = new Set<number>();

  private txns(uid: string): Map<number, string[][]> {
    let m = this.chunks.get(uid);
    if (!m) this.chunks.set(uid, (m = new Map()));
    return m;
  }

  private sealedOf(uid: string): Set<number> {
    let s = this.sealedTxns.get(uid);
    if (!s) this.sealedTxns.set(uid, (s = new Set()));
    return s;
  }

  append(uid: string, txn: number, rows: readonly string[]): void {
    this.appends.push({ uid, txn, rows: [...rows] });
    const t = this.txns(uid);
    t.set(txn, [...(t.get(txn) ?? []), [...rows]]);
  }

  seal(uid: string, txn: number): void {
    const t = this.txns(uid);
    const open = t.get(OPEN_TXN);
    if (open) {
      t.delete(OPEN_TXN);
      t.set(txn, [...(t.get(txn) ?? []), ...open]);
    }
    this.sealedOf(uid).add(txn);
  }

  sealed(uid: string): number[] {
    return [...this.sealedOf(uid)].sort((a, b) => a - b);
  }

  rows(uid: string, txn: number): string[] {
    return (this.txns(uid).get(txn) ?? []).flat();
  }

  drop(uid: string, txn: number): void {
    if (this.failDropOnce.delete(txn)) throw new Error(`crash while dropping transaction ${txn}`);
    this.txns(uid).delete(txn);
    this.sealedOf(uid).delete(txn);
  }

  dropAfter(uid: string, txn: number): void {
    const t = this.txns(uid);
    for (const id of [...t.keys()]) if (id === OPEN_TXN || id > txn) t.delete(id);
    const s = this.sealedOf(uid);
    for (const id of [...s]) if (id > txn) s.delete(id);
  }

  bytes(uid: string): number {
    let n = 0;
    for (const chunks of this.txns(uid).values()) for (const c of chunks) n += utf8Length(c.join("\n"));
    return n;
  }

  /** Rows of the open transaction already in staging. */
  openRows(uid: string): string[] {
    return this.rows(uid, OPEN_TXN);
  }
}

interface Held {
  txn: number;
  release(): void;
  fail(e: Error): void;
}

/**
 * An unkeyed publisher: records are strings or objects, encoded as JSON.
 * It records every attempt, every successful publish, and what an idempotent
 * external system keeps (the first successful publish of each transaction).
 */
class FakePublisher implements SinkPublisher {
  encodeCalls = 0;
  /** Transaction of every publish call, in call order (including failed ones). */
  readonly attempts: number[] = [];
  /** Every publish that succeeded. */
  readonly published: { txn: number; rows: string[] }[] = [];
  /** The idempotent external system: a transaction applies once. */
  readonly applied = new Map<number, string[]>();
  /** The next publish of these transactions fails. */
  readonly failOnce = new Set<number>();
  /** When set, publishes wait in `held` until the test releases them. */
  hold = false;
  readonly held: Held[] = [];
  inFlight = 0;
  maxInFlight = 0;
  /** Called at the start of every publish (e.g. to advance a clock). */
  onPublish?: (txn: number) => void;

  encode(record: unknown): string {
    this.encodeCalls++;
    if (typeof record !== "string" && (typeof record !== "object" || record === null)) {
      throw new TypeError(`a record must be a string or an object, got ${String(record)}`);
    }
    return JSON.stringify(record);
  }

  async publish(txn: number, rows: readonly string[]): Promise<void> {
    this.attempts.push(txn);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      this.onPublish?.(txn);
      if (this.hold) await new Promise<void>((resolve, reject) => this.held.push({ txn, release: resolve, fail: reject }));
      else await Promise.resolve();
      if (this.failOnce.delete(txn)) throw new Error(`external system refused transaction ${txn}`);
      this.published.push({ txn, rows: [...rows] });
      if (!this.applied.has(txn)) this.applied.set(txn, [...rows]);
    } finally {
      this.inFlight--;
    }
  }

  publishedTxns(): number[] {
    return this.published.map((p) => p.txn);
  }

  /** Every row published, over all transactions, in publish order. */
  allRows(): string[] {
    return this.published.flatMap((p) => p.rows);
  }
}

interface KV {
  key: unknown;
  value: unknown;
}

/** A keyed publisher (as a table sink): one row per key per transaction. */
class KeyedPublisher extends FakePublisher {
  keyOfCalls = 0;

  keyOf(record: unknown): string {
    this.keyOfCalls++;
    const key = (record as KV | null)?.key;
    if (typeof key !== "string") throw new TypeError(`a row needs a string key, got ${JSON.stringify(record)}`);
    return key;
  }

  override encode(record: unknown): string {
    this.encodeCalls++;
    const r = record as KV;
    const value = JSON.stringify(r.value);
    if (value === undefined) throw new TypeError(`the value of key ${r.key as string} is not JSON`);
    return `${r.key as string}=${value}`;
  }
}

const UID = "out";

function setup<P extends FakePublisher = FakePublisher>(
  options: { publisher?: P; staging?: MemoryStaging; guarantee?: DeliveryGuarantee; uid?: string; clock?: { t: number } } = {},
) {
  const clock = options.clock ?? { t: 1_000 };
  const staging = options.staging ?? new MemoryStaging();
  const publisher = (options.publisher ?? new FakePublisher()) as P;
  const uid = options.uid ?? UID;
  const writer = new TransactionalSinkWriter({ uid, guarantee: options.guarantee ?? "exactly_once", staging, now: () => clock.t }, publisher);
  return { clock, staging, publisher, writer, uid };
}

/** Lets pending promise callbacks (and the writer's commit chain) run. */
const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** The size a transaction's rows are expected to take: each row's UTF-8 bytes plus a newline separator. */
const rowBytes = (rows: readonly string[]) => rows.reduce((n, r) => n + utf8Length(r) + 1, 0);

/** A string record whose JSON encoding is exactly `size` ASCII characters. */
const sized = (i: number, size: number) => {
  const head = `r${i}-`;
  return head + "x".repeat(size - 2 - head.length);
};

/** Catches a synchronous throw. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

// ---------------------------------------------------------------------------
// The StagingStore contract, as the fake implements it
// ---------------------------------------------------------------------------

describe("StagingStore contract (in-memory fake)", () => {
  it("keeps rows per (uid, txn) in append order; seal relabels the open rows", () => {
    const s = new MemoryStaging();
    s.append("a", OPEN_TXN, ["1", "2"]);
    s.append("a", OPEN_TXN, ["3"]);
    s.append("b", OPEN_TXN, ["other"]);
    expect(s.sealed("a")).toEqual([]);
    s.seal("a", 5);
    expect(s.rows("a", OPEN_TXN)).toEqual([]);
    expect(s.rows("a", 5)).toEqual(["1", "2", "3"]);
    expect(s.sealed("a")).toEqual([5]);
    expect(s.rows("b", OPEN_TXN)).toEqual(["other"]);
    expect(s.sealed("b")).toEqual([]);
    // An empty open transaction still seals.
    s.seal("a", 6);
    expect(s.sealed("a")).toEqual([5, 6]);
    expect(s.rows("a", 6)).toEqual([]);
  });

  it("lists sealed transactions oldest first; drop and dropAfter delete rows and seals", () => {
    const s = new MemoryStaging();
    for (const txn of [3, 1, 4, 2]) {
      s.append("a", OPEN_TXN, [`t${txn}`]);
      s.seal("a", txn);
    }
    s.append("a", OPEN_TXN, ["open"]);
    expect(s.sealed("a")).toEqual([1, 2, 3, 4]);
    s.drop("a", 1);
    expect(s.sealed("a")).toEqual([2, 3, 4]);
    expect(s.rows("a", 1)).toEqual([]);
    s.dropAfter("a", 2);
    expect(s.sealed("a")).toEqual([2]);
    expect(s.rows("a", 2)).toEqual(["t2"]);
    expect(s.rows("a", 3)).toEqual([]);
    expect(s.rows("a", OPEN_TXN)).toEqual([]);
  });

  it("counts bytes as UTF-8 over all transactions of a uid", () => {
    const s = new MemoryStaging();
    s.append("a", OPEN_TXN, ["ab", "é"]); // "ab\né": 2 + 1 + 2
    s.append("a", OPEN_TXN, ["xyz"]);
    s.seal("a", 1);
    s.append("a", OPEN_TXN, ["q"]);
    s.append("b", OPEN_TXN, ["ignored"]);
    expect(s.bytes("a")).toBe(5 + 3 + 1);
    s.dropAfter("a", 0);
    expect(s.bytes("a")).toBe(0);
    expect(s.bytes("b")).toBe(7);
  });
});

// ---------------------------------------------------------------------------
// TransactionalSinkWriter
// ---------------------------------------------------------------------------

describe("TransactionalSinkWriter: write, preCommit, commit", () => {
  it("is a SinkWriter with the configured guarantee", () => {
    const w: SinkWriter = setup({ guarantee: "at_least_once" }).writer;
    expect(w.guarantee).toBe("at_least_once");
    expect(setup().writer.guarantee).toBe("exactly_once");
  });

  it("publishes nothing until commit; preCommit seals the open transaction and returns its handle", async () => {
    const { writer, staging, publisher, uid } = setup();
    writer.write("a");
    writer.write({ n: 1 });
    writer.write("c");
    await settle();
    expect(publisher.attempts).toEqual([]);
    expect(staging.sealed(uid)).toEqual([]);

    const handle = writer.preCommit(1);
    const expected = ['"a"', '{"n":1}', '"c"'];
    expect(handle).toEqual({ txn: 1, rows: 3, bytes: rowBytes(expected) });
    expect(staging.sealed(uid)).toEqual([1]);
    expect(staging.rows(uid, 1)).toEqual(expected);
    expect(staging.openRows(uid)).toEqual([]);
    await settle();
    expect(publisher.attempts).toEqual([]);

    await writer.commit(1);
    expect(publisher.published).toEqual([{ txn: 1, rows: expected }]);
    expect(staging.sealed(uid)).toEqual([]);
    expect(staging.rows(uid, 1)).toEqual([]);
    expect(staging.bytes(uid)).toBe(0);
  });

  it("an empty transaction has an empty handle and leaves nothing staged once committed", async () => {
    const { writer, staging, publisher, uid } = setup();
    expect(writer.preCommit(1)).toEqual({ txn: 1, rows: 0, bytes: 0 });
    await writer.commit(1);
    expect(publisher.allRows()).toEqual([]);
    expect(staging.sealed(uid)).toEqual([]);
    expect(writer.pendingBytes()).toBe(0);
  });

  it("commit(N) publishes every sealed transaction ≤ N oldest first and never a later one", async () => {
    const { writer, staging, publisher, uid } = setup();
    for (const txn of [1, 2, 3]) {
      writer.write(`t${txn}-a`);
      writer.write(`t${txn}-b`);
      writer.preCommit(txn);
    }
    await writer.commit(2);
    expect(publisher.published).toEqual([
      { txn: 1, rows: ['"t1-a"', '"t1-b"'] },
      { txn: 2, rows: ['"t2-a"', '"t2-b"'] },
    ]);
    expect(staging.sealed(uid)).toEqual([3]);
    expect(staging.rows(uid, 3)).toEqual(['"t3-a"', '"t3-b"']);

    await writer.commit(3);
    expect(publisher.publishedTxns()).toEqual([1, 2, 3]);
    expect(staging.sealed(uid)).toEqual([]);
  });

  it("commit does not publish the open transaction written after the barrier", async () => {
    const { writer, staging, publisher, uid } = setup();
    writer.write("before");
    writer.preCommit(1);
    writer.write("after");
    await writer.commit(1);
    expect(publisher.published).toEqual([{ txn: 1, rows: ['"before"'] }]);
    expect(staging.sealed(uid)).toEqual([]);
    writer.preCommit(2);
    await writer.commit(2);
    expect(publisher.published[1]).toEqual({ txn: 2, rows: ['"after"'] });
  });

  it("a lost completion notification: preCommit(1), preCommit(2), commit(2) publishes 1 then 2", async () => {
    const { writer, publisher } = setup();
    writer.write("one");
    writer.preCommit(1);
    writer.write("two");
    writer.preCommit(2);
    await writer.commit(2);
    expect(publisher.published).toEqual([
      { txn: 1, rows: ['"one"'] },
      { txn: 2, rows: ['"two"'] },
    ]);
  });

  it("keeps an aborted checkpoint's transaction and commits it with the next completed one", async () => {
    const { writer, staging, publisher, uid } = setup();
    writer.write("in-aborted-1");
    writer.preCommit(1); // checkpoint 1 is aborted: no commit(1)
    writer.write("in-2");
    writer.preCommit(2);
    await settle();
    expect(publisher.attempts).toEqual([]);
    expect(staging.sealed(uid)).toEqual([1, 2]);
    await writer.commit(2);
    expect(publisher.allRows()).toEqual(['"in-aborted-1"', '"in-2"']);
    expect(publisher.publishedTxns()).toEqual([1, 2]);
  });

  it("commit of an already committed transaction publishes nothing again", async () => {
    const { writer, publisher } = setup();
    writer.write("x");
    writer.preCommit(1);
    await writer.commit(1);
    await writer.commit(1);
    expect(publisher.attempts).toEqual([1]);
  });

  it("writers of different uids sharing one store do not see each other's transactions", async () => {
    const staging = new MemoryStaging();
    const a = setup({ staging, uid: "a" });
    const b = setup({ staging, uid: "b" });
    a.writer.write("from-a");
    b.writer.write("from-b");
    a.writer.preCommit(1);
    b.writer.preCommit(1);
    await a.writer.commit(1);
    expect(a.publisher.allRows()).toEqual(['"from-a"']);
    expect(staging.rows("b", 1)).toEqual(['"from-b"']);
    await a.writer.recover(0);
    expect(staging.sealed("b")).toEqual([1]);
    await b.writer.commit(1);
    expect(b.publisher.allRows()).toEqual(['"from-b"']);
  });
});

describe("TransactionalSinkWriter: recover", () => {
  it("recover(M) on a restarted writer commits sealed ≤ M and drops later sealed ones and the open one", async () => {
    const staging = new MemoryStaging();
    const before = setup({ staging });
    for (const txn of [1, 2, 3]) {
      before.writer.write(`t${txn}`);
      before.writer.preCommit(txn);
    }
    // The open transaction spilled to staging before the crash.
    for (let i = 0; i < 600; i++) before.writer.write(sized(i, 1000));
    expect(staging.openRows(UID).length).toBeGreaterThan(0);

    const after = setup({ staging });
    await after.writer.recover(2);
    expect(after.publisher.published).toEqual([
      { txn: 1, rows: ['"t1"'] },
      { txn: 2, rows: ['"t2"'] },
    ]);
    expect(staging.sealed(UID)).toEqual([]);
    expect(staging.openRows(UID)).toEqual([]);
    expect(staging.rows(UID, 3)).toEqual([]);
    expect(staging.bytes(UID)).toBe(0);
    expect(after.writer.pendingBytes()).toBe(0);

    // The replayed records of checkpoint 3 form a fresh transaction 3.
    after.writer.write("replayed");
    after.writer.preCommit(3);
    await after.writer.commit(3);
    expect(after.publisher.published[2]).toEqual({ txn: 3, rows: ['"replayed"'] });
  });

  it("recover drops the writer's in-memory open transaction (its records are replayed)", async () => {
    const { writer, publisher, staging, uid } = setup();
    writer.write("sealed");
    writer.preCommit(1);
    writer.write("open-a");
    writer.write("open-b");
    await writer.recover(1);
    expect(publisher.published).toEqual([{ txn: 1, rows: ['"sealed"'] }]);
    expect(writer.pendingBytes()).toBe(0);
    writer.preCommit(2);
    await writer.commit(2);
    expect(publisher.allRows()).toEqual(['"sealed"']);
    expect(staging.bytes(uid)).toBe(0);
  });

  it("recover drops the in-memory keyed rows too", async () => {
    const { writer, publisher } = setup({ publisher: new KeyedPublisher() });
    writer.write({ key: "k", value: 1 });
    await writer.recover(0);
    expect(writer.pendingBytes()).toBe(0);
    writer.preCommit(1);
    await writer.commit(1);
    expect(publisher.allRows()).toEqual([]);
  });

  it("recover(0) drops everything and publishes nothing", async () => {
    const staging = new MemoryStaging();
    const before = setup({ staging });
    before.writer.write("a");
    before.writer.preCommit(1);
    before.writer.write("b");
    before.writer.preCommit(2);
    for (let i = 0; i < 600; i++) before.writer.write(sized(i, 1000));
    expect(staging.bytes(UID)).toBeGreaterThan(0);

    const after = setup({ staging });
    await after.writer.recover(0);
    expect(after.publisher.attempts).toEqual([]);
    expect(staging.sealed(UID)).toEqual([]);
    expect(staging.bytes(UID)).toBe(0);
    expect(after.writer.metrics().pendingStagedBytes).toBe(0);
  });

  it("recover rejects when a publish fails and keeps the transaction for the next attempt", async () => {
    const staging = new MemoryStaging();
    const before = setup({ staging });
    before.writer.write("a");
    before.writer.preCommit(1);
    const after = setup({ staging });
    after.publisher.failOnce.add(1);
    await expect(after.writer.recover(1)).rejects.toThrow("refused transaction 1");
    expect(staging.sealed(UID)).toEqual([1]);
    await after.writer.recover(1);
    expect(after.publisher.published).toEqual([{ txn: 1, rows: ['"a"'] }]);
  });
});

describe("TransactionalSinkWriter: idempotency and failures", () => {
  it("a failed publish leaves the transaction staged; a later commit publishes the same rows again", async () => {
    const { writer, staging, publisher, uid } = setup();
    writer.write("a");
    writer.write("b");
    writer.preCommit(1);
    publisher.failOnce.add(1);
    await expect(writer.commit(1)).rejects.toThrow("refused transaction 1");
    expect(staging.sealed(uid)).toEqual([1]);
    expect(staging.rows(uid, 1)).toEqual(['"a"', '"b"']);
    expect(writer.metrics().committedTransactions).toBe(0);

    await writer.commit(1);
    expect(publisher.attempts).toEqual([1, 1]);
    expect(publisher.published).toEqual([{ txn: 1, rows: ['"a"', '"b"'] }]);
    expect(staging.sealed(uid)).toEqual([]);
    expect(writer.metrics().committedTransactions).toBe(1);
  });

  it("a crash between publish and cleanup publishes the transaction again; an idempotent publisher applies it once", async () => {
    const staging = new MemoryStaging();
    const before = setup({ staging });
    before.writer.write("a");
    before.writer.preCommit(1);
    staging.failDropOnce.add(1);
    await expect(before.writer.commit(1)).rejects.toThrow("crash while dropping");
    expect(before.publisher.published).toEqual([{ txn: 1, rows: ['"a"'] }]);
    expect(staging.sealed(UID)).toEqual([1]);

    // The restarted writer publishes transaction 1 again, to the same external system.
    const after = setup({ staging, publisher: before.publisher });
    await after.writer.recover(1);
    expect(before.publisher.published).toEqual([
      { txn: 1, rows: ['"a"'] },
      { txn: 1, rows: ['"a"'] },
    ]);
    expect([...before.publisher.applied]).toEqual([[1, ['"a"']]]);
    expect(staging.sealed(UID)).toEqual([]);
  });

  it("a failure of an older transaction stops the commit before any later one (order is kept)", async () => {
    const { writer, publisher, staging, uid } = setup();
    writer.write("a");
    writer.preCommit(1);
    writer.write("b");
    writer.preCommit(2);
    publisher.failOnce.add(1);
    await expect(writer.commit(2)).rejects.toThrow();
    expect(publisher.attempts).toEqual([1]);
    expect(staging.sealed(uid)).toEqual([1, 2]);
  });

  it("a failed commit does not block later commits", async () => {
    const { writer, publisher, staging, uid } = setup();
    writer.write("a");
    writer.preCommit(1);
    publisher.failOnce.add(1);
    await expect(writer.commit(1)).rejects.toThrow();
    writer.write("b");
    writer.preCommit(2);
    await writer.commit(2);
    expect(publisher.published).toEqual([
      { txn: 1, rows: ['"a"'] },
      { txn: 2, rows: ['"b"'] },
    ]);
    expect(staging.sealed(uid)).toEqual([]);
  });

  it("a failed commit queued before another does not block it, even when both are in flight", async () => {
    const { writer, publisher } = setup();
    writer.write("a");
    writer.preCommit(1);
    writer.write("b");
    writer.preCommit(2);
    publisher.failOnce.add(1);
    const first = writer.commit(1);
    const second = writer.commit(2);
    const [r1, r2] = await Promise.allSettled([first, second]);
    expect(r1.status).toBe("rejected");
    expect(r2.status).toBe("fulfilled");
    expect(publisher.attempts).toEqual([1, 1, 2]);
    expect(publisher.publishedTxns()).toEqual([1, 2]);
  });
});

describe("TransactionalSinkWriter: commits are serialized", () => {
  it("two concurrent commits never publish concurrently, and publish each transaction once", async () => {
    const { writer, publisher } = setup();
    publisher.hold = true;
    writer.write("a");
    writer.preCommit(1);
    writer.write("b");
    writer.preCommit(2);
    const first = writer.commit(1);
    const second = writer.commit(2);
    await settle();
    expect(publisher.held.map((h) => h.txn)).toEqual([1]);
    expect(publisher.inFlight).toBe(1);
    publisher.held.shift()!.release();
    await settle();
    expect(publisher.held.map((h) => h.txn)).toEqual([2]);
    expect(publisher.inFlight).toBe(1);
    publisher.held.shift()!.release();
    await Promise.all([first, second]);
    expect(publisher.maxInFlight).toBe(1);
    expect(publisher.attempts).toEqual([1, 2]);
    expect(publisher.publishedTxns()).toEqual([1, 2]);
  });

  it("concurrent commits of the same checkpoint publish it once", async () => {
    const { writer, publisher } = setup();
    publisher.hold = true;
    writer.write("a");
    writer.preCommit(1);
    writer.write("b");
    writer.preCommit(2);
    const commits = [writer.commit(2), writer.commit(2), writer.commit(1)];
    for (let i = 0; i < 5; i++) {
      await settle();
      publisher.held.shift()?.release();
    }
    await Promise.all(commits);
    expect(publisher.maxInFlight).toBe(1);
    expect(publisher.attempts).toEqual([1, 2]);
  });

  it("a transaction sealed while a commit is publishing waits for its own commit", async () => {
    const { writer, publisher, staging, uid } = setup();
    publisher.hold = true;
    writer.write("a");
    writer.preCommit(1);
    const first = writer.commit(1);
    await settle();
    writer.write("b");
    writer.preCommit(2);
    const second = writer.commit(3);
    publisher.held.shift()!.release();
    await first;
    expect(publisher.publishedTxns()).toEqual([1]);
    await settle();
    expect(publisher.held.map((h) => h.txn)).toEqual([2]);
    publisher.held.shift()!.release();
    await second;
    expect(publisher.published).toEqual([
      { txn: 1, rows: ['"a"'] },
      { txn: 2, rows: ['"b"'] },
    ]);
    expect(staging.sealed(uid)).toEqual([]);
  });
});

describe("TransactionalSinkWriter: keyed sinks", () => {
  it("coalesce rows per key within a transaction (the last wins) and encode at preCommit", async () => {
    const { writer, publisher, staging, uid } = setup({ publisher: new KeyedPublisher() });
    writer.write({ key: "a", value: 1 });
    writer.write({ key: "b", value: 1 });
    writer.write({ key: "a", value: 2 });
    writer.write({ key: "c", value: null });
    writer.write({ key: "c", value: 3 });
    expect(publisher.keyOfCalls).toBe(5);
    expect(publisher.encodeCalls).toBe(0);
    expect(staging.appends).toEqual([]);

    const handle = writer.preCommit(1);
    expect(publisher.encodeCalls).toBe(3);
    const expected = ["a=2", "b=1", "c=3"];
    expect(handle).toEqual({ txn: 1, rows: 3, bytes: rowBytes(expected) });
    expect([...staging.rows(uid, 1)].sort()).toEqual(expected);

    await writer.commit(1);
    expect(publisher.published).toHaveLength(1);
    expect([...publisher.published[0].rows].sort()).toEqual(expected);
  });

  it("do not coalesce across transactions", async () => {
    const { writer, publisher } = setup({ publisher: new KeyedPublisher() });
    writer.write({ key: "a", value: 1 });
    writer.preCommit(1);
    writer.write({ key: "a", value: 2 });
    writer.preCommit(2);
    await writer.commit(2);
    expect(publisher.published).toEqual([
      { txn: 1, rows: ["a=1"] },
      { txn: 2, rows: ["a=2"] },
    ]);
  });

  it("count open keyed rows as pending until they are committed", async () => {
    const { writer } = setup({ publisher: new KeyedPublisher() });
    expect(writer.pendingBytes()).toBe(0);
    writer.write({ key: "a", value: 1 });
    const one = writer.pendingBytes();
    expect(one).toBeGreaterThan(0);
    writer.write({ key: "a", value: 2 });
    expect(writer.pendingBytes()).toBe(one); // coalesced: still one row
    writer.write({ key: "b", value: 2 });
    expect(writer.pendingBytes()).toBeGreaterThan(one);
    writer.preCommit(1);
    expect(writer.pendingBytes()).toBeGreaterThan(0);
    await writer.commit(1);
    expect(writer.pendingBytes()).toBe(0);
  });

  it("never spill to staging before the barrier", () => {
    const { writer, staging } = setup({ publisher: new KeyedPublisher() });
    for (let i = 0; i < 700; i++) writer.write({ key: `k${i}`, value: "x".repeat(1000) });
    expect(staging.appends).toEqual([]);
  });
});

describe("TransactionalSinkWriter: unkeyed sinks", () => {
  it("encode at write time and keep every row in order", async () => {
    const { writer, publisher } = setup();
    writer.write("a");
    expect(publisher.encodeCalls).toBe(1);
    writer.write("a");
    writer.write({ z: 1 });
    expect(publisher.encodeCalls).toBe(3);
    writer.preCommit(1);
    expect(publisher.encodeCalls).toBe(3);
    await writer.commit(1);
    expect(publisher.allRows()).toEqual(['"a"', '"a"', '{"z":1}']);
  });

  it("spill the open transaction to staging once it passes 512 KB, without changing what is published", async () => {
    const { writer, staging, publisher, uid } = setup();
    const records: string[] = [];
    const write = (i: number) => {
      const r = sized(i, 1000);
      records.push(r);
      writer.write(r);
    };
    // 524 rows of 1,000 bytes: 524,000 < 512 KiB (524,288).
    for (let i = 0; i < 524; i++) write(i);
    expect(staging.appends).toEqual([]);
    expect(writer.pendingBytes()).toBe(524 * 1000);

    write(524); // 525,000 bytes: past 512 KiB
    expect(staging.openRows(uid)).toEqual(records.map((r) => JSON.stringify(r)));
    expect(staging.sealed(uid)).toEqual([]);
    expect(staging.appends.every((a) => a.txn === OPEN_TXN)).toBe(true);
    for (const a of staging.appends) expect(utf8Length(a.rows.join("\n"))).toBeLessThanOrEqual(512 * 1024);
    expect(writer.pendingBytes()).toBe(staging.bytes(uid));
    await settle();
    expect(publisher.attempts).toEqual([]);

    for (let i = 525; i < 530; i++) write(i);
    const spilledBytes = staging.bytes(uid);
    expect(writer.pendingBytes()).toBe(spilledBytes + 5 * 1000);

    writer.preCommit(1);
    expect(staging.openRows(uid)).toEqual([]);
    await writer.commit(1);
    expect(publisher.published).toHaveLength(1);
    expect(publisher.published[0].txn).toBe(1);
    expect(publisher.published[0].rows).toEqual(records.map((r) => JSON.stringify(r)));
    expect(staging.bytes(uid)).toBe(0);
    expect(writer.pendingBytes()).toBe(0);
  });

  it("a spilled transaction is published exactly as the same records unspilled", async () => {
    const big = setup();
    const small = setup();
    const recs = Array.from({ length: 800 }, (_, i) => sized(i, 1000));
    for (const r of recs) big.writer.write(r);
    big.writer.preCommit(1);
    await big.writer.commit(1);
    // The same records over two transactions never reach the threshold.
    for (const r of recs.slice(0, 400)) small.writer.write(r);
    small.writer.preCommit(1);
    for (const r of recs.slice(400)) small.writer.write(r);
    small.writer.preCommit(2);
    await small.writer.commit(2);
    expect(big.staging.appends.length).toBeGreaterThan(1);
    expect(big.publisher.allRows()).toEqual(small.publisher.allRows());
  });

  // BUG: preCommit counts only the rows still in memory. After a spill
  // (stageOpen() in write) this.rows is empty, so the handle's `rows` and
  // `bytes` miss everything staged before the barrier.
  it("the handle of a spilled transaction counts all its rows and bytes", () => {
    const { writer } = setup();
    const encoded: string[] = [];
    for (let i = 0; i < 528; i++) {
      const r = sized(i, 1000);
      encoded.push(JSON.stringify(r));
      writer.write(r);
    }
    const handle = writer.preCommit(1);
    expect(handle.rows).toBe(528);
    expect(handle.bytes).toBe(rowBytes(encoded));
  });

  // BUG (minor): stageOpen() sums rows[i].length (UTF-16 code units) rather
  // than UTF-8 bytes, unlike write()'s openBytes and the staging store.
  it("the handle counts bytes as UTF-8", () => {
    const { writer } = setup();
    writer.write("é€😀");
    const encoded = JSON.stringify("é€😀");
    expect(writer.preCommit(1).bytes).toBe(utf8Length(encoded) + 1);
  });
});

describe("TransactionalSinkWriter: unserializable records", () => {
  function expectUnserializable(e: unknown, ...fragments: string[]) {
    expect(e).toBeInstanceOf(FloeError);
    expect((e as FloeError).code).toBe("unserializable_record");
    expect((e as FloeError).message).toContain(`sink "${UID}"`);
    for (const f of fragments) expect((e as FloeError).message).toContain(f);
  }

  it("unkeyed: fails at write, naming the sink and the checkpoint the record follows", async () => {
    const { writer, publisher, staging, uid } = setup();
    expectUnserializable(
      thrown(() => writer.write(42)),
      "checkpoint 0",
      "a record must be a string or an object, got 42",
    );
    writer.write("good");
    writer.preCommit(4);
    expectUnserializable(
      thrown(() => writer.write(null)),
      "checkpoint 4",
      "got null",
    );
    writer.write("also good");
    writer.preCommit(5);
    await writer.commit(5);
    // The rejected records are in no transaction.
    expect(publisher.allRows()).toEqual(['"good"', '"also good"']);
    expect(staging.bytes(uid)).toBe(0);
  });

  it("unkeyed: after recover(M) the message names checkpoint M", async () => {
    const { writer } = setup();
    await writer.recover(9);
    expectUnserializable(
      thrown(() => writer.write(7)),
      "checkpoint 9",
    );
  });

  it("keyed: a record without a key fails at write", () => {
    const { writer } = setup({ publisher: new KeyedPublisher() });
    writer.preCommit(2);
    expectUnserializable(
      thrown(() => writer.write({ value: 1 })),
      "checkpoint 2",
      "needs a string key",
    );
  });

  it("keyed: a value that cannot be encoded fails at preCommit, naming the transaction; nothing is sealed", async () => {
    const { writer, publisher, staging, uid } = setup({ publisher: new KeyedPublisher() });
    writer.write({ key: "ok", value: 1 });
    writer.write({ key: "bad", value: undefined }); // keyOf accepts it; encode cannot
    expect(publisher.encodeCalls).toBe(0);
    expectUnserializable(
      thrown(() => writer.preCommit(7)),
      "transaction 7",
      "the value of key bad is not JSON",
    );
    expect(staging.sealed(uid)).toEqual([]);
    expect(staging.appends).toEqual([]);
    await settle();
    expect(publisher.attempts).toEqual([]);
    // The task fails and recovers; the writer works again.
    await writer.recover(0);
    writer.write({ key: "ok", value: 2 });
    writer.preCommit(1);
    await writer.commit(1);
    expect(publisher.allRows()).toEqual(["ok=2"]);
  });
});

describe("TransactionalSinkWriter: metrics", () => {
  it("start empty", () => {
    expect(setup().writer.metrics()).toEqual({
      pendingStagedBytes: 0,
      sealedTransactions: 0,
      committedTransactions: 0,
      lastCommitLatencyMs: null,
      maxCommitLatencyMs: 0,
    });
  });

  it("track pending bytes from write to commit", async () => {
    const { writer, staging, uid } = setup();
    writer.write("ab"); // '"ab"': 4 bytes
    writer.write("é"); // '"é"': 4 bytes
    expect(writer.metrics().pendingStagedBytes).toBe(8);
    writer.preCommit(1);
    expect(writer.metrics().pendingStagedBytes).toBe(staging.bytes(uid));
    expect(writer.metrics().pendingStagedBytes).toBeGreaterThanOrEqual(8);
    writer.write("c");
    expect(writer.metrics().pendingStagedBytes).toBe(staging.bytes(uid) + 3);
    await writer.commit(1);
    expect(writer.metrics().pendingStagedBytes).toBe(3);
    expect(writer.metrics().pendingStagedBytes).toBe(writer.pendingBytes());
  });

  it("count committed transactions and measure latency from preCommit to the end of the publish", async () => {
    const { writer, clock, publisher } = setup();
    publisher.onPublish = () => {
      clock.t += 50;
    };
    clock.t = 1_000;
    writer.write("a");
    writer.preCommit(1);
    clock.t = 1_100;
    writer.write("b");
    writer.preCommit(2);
    clock.t = 1_200;
    await writer.commit(2);
    // txn 1: published at 1,250 (sealed at 1,000); txn 2: published at 1,300 (sealed at 1,100).
    expect(writer.metrics()).toEqual({
      pendingStagedBytes: 0,
      sealedTransactions: 0,
      committedTransactions: 2,
      lastCommitLatencyMs: 200,
      maxCommitLatencyMs: 250,
    });

    writer.write("c");
    writer.preCommit(3); // at 1,300
    await writer.commit(3); // published at 1,350
    expect(writer.metrics().committedTransactions).toBe(3);
    expect(writer.metrics().lastCommitLatencyMs).toBe(50);
    expect(writer.metrics().maxCommitLatencyMs).toBe(250);
  });

  it("count sealed transactions waiting for a commit, aborted ones included", async () => {
    const { writer, publisher } = setup();
    writer.write("a");
    writer.preCommit(1);
    expect(writer.metrics().sealedTransactions).toBe(1);
    writer.preCommit(2); // checkpoint 1 aborted: both wait
    expect(writer.metrics().sealedTransactions).toBe(2);
    publisher.failOnce.add(1);
    await expect(writer.commit(2)).rejects.toThrow();
    expect(writer.metrics().sealedTransactions).toBe(2);
    await writer.commit(1);
    expect(writer.metrics().sealedTransactions).toBe(1);
    await writer.commit(2);
    expect(writer.metrics().sealedTransactions).toBe(0);
    expect(writer.metrics().committedTransactions).toBe(2);
  });

  it("a failed commit counts nothing and measures nothing", async () => {
    const { writer, clock, publisher } = setup();
    writer.write("a");
    writer.preCommit(1);
    clock.t += 40;
    publisher.failOnce.add(1);
    await expect(writer.commit(1)).rejects.toThrow();
    expect(writer.metrics().committedTransactions).toBe(0);
    expect(writer.metrics().lastCommitLatencyMs).toBeNull();
    clock.t += 60;
    await writer.commit(1);
    expect(writer.metrics().committedTransactions).toBe(1);
    expect(writer.metrics().lastCommitLatencyMs).toBe(100);
  });

  it("transactions committed by recover after a restart count, without a latency", async () => {
    const staging = new MemoryStaging();
    const before = setup({ staging });
    before.writer.write("a");
    before.writer.preCommit(1);
    const after = setup({ staging });
    await after.writer.recover(1);
    expect(after.writer.metrics().committedTransactions).toBe(1);
    expect(after.writer.metrics().lastCommitLatencyMs).toBeNull();
  });
});
