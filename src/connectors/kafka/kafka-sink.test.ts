import type { Transaction } from "kafkajs";
import { describe, expect, it } from "vitest";
import { checkTransactionTimeout, isConcurrentTransactions, sendOffsetsRetrying } from "./kafka-sink.js";

const OFFSETS = { consumerGroupId: "g", topics: [{ topic: "t", partitions: [{ partition: 0, offset: "5" }] }] };

/** A transaction whose sendOffsets fails with `failures` in turn, then succeeds. */
function transaction(failures: unknown[]) {
  let calls = 0;
  const tx = {
    sendOffsets: async () => {
      calls++;
      const f = failures.shift();
      if (f !== undefined) throw f;
    },
  } as unknown as Transaction;
  return { tx, calls: () => calls };
}

const concurrent = () => Object.assign(new Error("The producer attempted to update the transaction while another concurrent operation was ongoing"), { type: "CONCURRENT_TRANSACTIONS" });

describe("sendOffsetsRetrying", () => {
  it("tries again while the broker answers CONCURRENT_TRANSACTIONS, on the given clock", async () => {
    const waits: number[] = [];
    const { tx, calls } = transaction([concurrent(), { cause: { type: "CONCURRENT_TRANSACTIONS" } }, concurrent()]);
    await sendOffsetsRetrying(tx, OFFSETS, async (ms) => void waits.push(ms));
    expect(calls()).toBe(4);
    expect(waits).toEqual([20, 30, 45]);
  });

  it("throws any other error at once", async () => {
    const fenced = Object.assign(new Error("fenced"), { type: "INVALID_PRODUCER_EPOCH" });
    const { tx, calls } = transaction([fenced]);
    await expect(sendOffsetsRetrying(tx, OFFSETS, async () => {})).rejects.toBe(fenced);
    expect(calls()).toBe(1);
  });

  it("gives up after 21 tries, with waits capped at 400 ms", async () => {
    const waits: number[] = [];
    const { tx, calls } = transaction(Array.from({ length: 30 }, concurrent));
    await expect(sendOffsetsRetrying(tx, OFFSETS, async (ms) => void waits.push(ms))).rejects.toMatchObject({ type: "CONCURRENT_TRANSACTIONS" });
    expect(calls()).toBe(21);
    expect(Math.max(...waits)).toBe(400);
    expect(waits.reduce((a, b) => a + b, 0)).toBeLessThan(7_000);
  });
});

describe("isConcurrentTransactions", () => {
  it("reads the type on the error or its cause", () => {
    expect(isConcurrentTransactions(concurrent())).toBe(true);
    expect(isConcurrentTransactions({ cause: { type: "CONCURRENT_TRANSACTIONS" } })).toBe(true);
    expect(isConcurrentTransactions(new Error("x"))).toBe(false);
    expect(isConcurrentTransactions(null)).toBe(false);
  });
});

describe("checkTransactionTimeout", () => {
  it("refuses a transaction timeout that a checkpoint can outlast", () => {
    expect(checkTransactionTimeout(60_000, { intervalMs: 30_000, timeoutMs: 30_000 }, "sink")).toMatch(/must exceed/);
    expect(checkTransactionTimeout(60_001, { intervalMs: 30_000, timeoutMs: 30_000 }, "sink")).toBeUndefined();
  });
});
