import { describe, expect, it } from "vitest";
import type { DeliveryGuarantee, SinkMetrics, SinkTransactionHandle, SinkWriter } from "../../api/types.js";
import { SINK_FLUSH_INTERVAL_MS, SinkCommitter } from "./sink-committer.js";

/** A sink that logs what the committer asks of it. */
function fakeSink(name: string, guarantee: DeliveryGuarantee, log: string[], fail: { commit?: boolean; recover?: boolean } = {}) {
  let pending = 0;
  const sink: SinkWriter & { add(bytes: number): void } = {
    guarantee,
    add: (bytes) => void (pending += bytes),
    write: () => undefined,
    preCommit: (txn): SinkTransactionHandle => {
      log.push(`${name} preCommit ${txn}`);
      const handle = { txn, rows: 0, bytes: pending };
      pending = 0;
      return handle;
    },
    commit: async (txn) => {
      log.push(`${name} commit ${txn}`);
      if (fail.commit) throw new Error("publisher down");
    },
    recover: async (checkpointId) => {
      log.push(`${name} recover ${checkpointId}`);
      if (fail.recover) throw new Error("staging unreadable");
    },
    pendingBytes: () => pending,
    metrics: (): SinkMetrics => ({ pendingStagedBytes: pending, sealedTransactions: 0, committedTransactions: 0, lastCommitLatencyMs: null, maxCommitLatencyMs: 0 }),
    close: () => void log.push(`${name} close`),
  };
  return sink;
}

function setup(checkpointing: boolean, fail: { commit?: boolean; recover?: boolean } = {}) {
  const log: string[] = [];
  const clock = { nowMs: 1_000 };
  const eo = fakeSink("eo", "exactly_once", log, fail);
  const alo = fakeSink("alo", "at_least_once", log, fail);
  const sinks = new Map<string, SinkWriter>([
    ["eo", eo],
    ["alo", alo],
  ]);
  const committer = new SinkCommitter(sinks, checkpointing, 3, () => clock.nowMs);
  return { log, clock, eo, alo, committer };
}

describe("SinkCommitter with checkpointing", () => {
  it("seals every sink at the barrier; at-least-once sinks publish then, exactly-once ones on completion", async () => {
    const { log, committer, eo } = setup(true);
    eo.add(10);
    const handles = committer.preCommit(4);
    expect(handles.eo).toEqual({ txn: 4, rows: 0, bytes: 10 });
    expect(Object.keys(handles)).toEqual(["eo", "alo"]);
    await committer.commitAtBarrier(4);
    await committer.commitCompleted(4);
    expect(log).toEqual(["eo preCommit 4", "alo preCommit 4", "alo commit 4", "eo commit 4"]);
  });

  it("names the sink and the transaction when a commit fails", async () => {
    const { committer } = setup(true, { commit: true });
    await expect(committer.commitCompleted(2)).rejects.toThrow('sink "eo" failed to commit transaction 2: publisher down');
    await expect(committer.commitAtBarrier(2)).rejects.toThrow('sink "alo" failed to commit transaction 2: publisher down');
  });

  it("recovers every sink on restore, naming the one that fails", async () => {
    const ok = setup(true);
    await ok.committer.recover(7);
    expect(ok.log).toEqual(["eo recover 7", "alo recover 7"]);
    const bad = setup(true, { recover: true });
    await expect(bad.committer.recover(7)).rejects.toThrow('sink "eo" could not commit the transactions of checkpoint 7: staging unreadable');
  });

  it("hands the consumer loop the at-barrier commits of unaligned barriers, chained in order, once", async () => {
    const { log, committer } = setup(true);
    expect(committer.takeCommitBeforeNext()).toBeUndefined();
    committer.commitAtBarrierBeforeNext(5);
    committer.commitAtBarrierBeforeNext(6);
    const pending = committer.takeCommitBeforeNext();
    expect(committer.takeCommitBeforeNext()).toBeUndefined();
    await pending;
    expect(log).toEqual(["alo commit 5", "alo commit 6"]);
  });

  it("a failed at-barrier commit reaches the consumer loop through the chain", async () => {
    const { committer } = setup(true, { commit: true });
    committer.commitAtBarrierBeforeNext(5);
    await expect(committer.takeCommitBeforeNext()).rejects.toThrow("transaction 5");
  });

  it("after the end of input, the first later checkpoint is the final one; finishing drops empty transactions and seals nothing more", async () => {
    const { log, committer } = setup(true, { recover: true });
    expect(committer.endedAfter).toBeUndefined();
    expect(committer.isFinal(3)).toBe(false);
    committer.inputEnded(3);
    expect(committer.endedAfter).toBe(3);
    expect(committer.isFinal(3)).toBe(false);
    expect(committer.isFinal(4)).toBe(true);
    // A failing recover after the final commit is no error: only empty transactions were left.
    await committer.finish(4);
    expect(log).toEqual(["eo recover 4"]);
    expect(committer.preCommit(5)).toEqual({});
  });

  it("never flushes on the timer", async () => {
    const { log, clock, committer } = setup(true);
    clock.nowMs += SINK_FLUSH_INTERVAL_MS * 10;
    await committer.flushIfDue();
    expect(log).toEqual([]);
  });
});

describe("SinkCommitter without checkpointing", () => {
  it("seals and publishes on its timer, with transaction ids that grow across attempts", async () => {
    const { log, clock, committer, eo } = setup(false);
    expect(committer.flushDueInMs()).toBe(SINK_FLUSH_INTERVAL_MS);
    eo.add(5);
    expect(committer.pending()).toBe(true);
    clock.nowMs += SINK_FLUSH_INTERVAL_MS - 1;
    await committer.flushIfDue();
    expect(log).toEqual([]);
    clock.nowMs += 1;
    expect(committer.flushDueInMs()).toBe(0);
    await committer.flushIfDue();
    expect(log).toEqual(["eo preCommit 3000000001", "eo commit 3000000001", "alo preCommit 3000000001", "alo commit 3000000001"]);
    expect(committer.pending()).toBe(false);
    expect(committer.flushDueInMs()).toBe(SINK_FLUSH_INTERVAL_MS);
    await committer.flush();
    expect(log.at(-1)).toBe("alo commit 3000000002");
  });

  it("seals nothing at a barrier (a savepoint of such a run) and commits nothing on completion", async () => {
    const { log, committer } = setup(false);
    expect(committer.preCommit(1)).toEqual({});
    await committer.commitAtBarrier(1);
    await committer.commitCompleted(1);
    expect(log).toEqual([]);
  });

  it("closes every sink", () => {
    const { log, committer } = setup(false);
    committer.close();
    expect(log).toEqual(["eo close", "alo close"]);
  });
});
