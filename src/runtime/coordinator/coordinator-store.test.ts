import { describe, expect, it } from "vitest";
import { subtaskAck as ack } from "../../../test/support/acks.js";
import type { CheckpointMetadata } from "../../checkpoint/types.js";
import { doSql } from "../../../test/support/do-sql.js";
import { CoordinatorStore, INITIAL_JOB } from "./coordinator-store.js";

const metadata = (checkpointId: number): CheckpointMetadata => ({
  version: 1,
  job: "j",
  checkpointId,
  kind: "CHECKPOINT",
  triggerTimestamp: 0,
  completedTimestamp: 1,
  attempt: 1,
  maxParallelism: 8,
  operators: {},
});

describe("CoordinatorStore on the Sql port", () => {
  it("starts with the initial job record and keeps what is saved, across a new store over the same database", () => {
    const sql = doSql();
    const store = new CoordinatorStore(sql);
    expect(store.job()).toEqual(INITIAL_JOB);
    store.saveJob({ ...INITIAL_JOB, status: "RUNNING", attempt: 3 });
    // The object's constructor runs again after a reset: its tables are there already.
    const again = new CoordinatorStore(sql);
    expect(again.job()).toMatchObject({ status: "RUNNING", attempt: 3 });
  });

  it("keeps a pending checkpoint and its acks, ordered by subtask, until it completes", () => {
    const store = new CoordinatorStore(doSql());
    store.insertPending(1, 1, 100, ["b/0", "a/0"], false);
    expect(store.pendingIds()).toEqual([{ id: 1, triggerMs: 100 }]);
    expect(store.pending(1)).toEqual({ attempt: 1, triggerMs: 100, expected: ["b/0", "a/0"], isSavepoint: false, status: "IN_PROGRESS" });
    store.addAck(1, ack("b/0"));
    store.addAck(1, ack("a/0"));
    expect(store.acks(1).map((a) => a.subtask)).toEqual(["a/0", "b/0"]);
    expect(store.ackedSubtasks(1).sort()).toEqual(["a/0", "b/0"]);
    expect(store.ackedSubtasks(2)).toEqual([]);
    // Only a completing checkpoint completes.
    expect(store.complete(1, 150, "r2://x", metadata(1))).toBe(false);
    store.setStatus(1, "COMPLETING");
    expect(store.pendingIds()).toEqual([]);
    expect(store.complete(1, 150, "r2://x", metadata(1))).toBe(true);
    expect(store.retained()).toEqual([{ id: 1, metadata: metadata(1), externalPath: "r2://x" }]);
    expect(store.record(1)).toMatchObject({ id: 1, status: "COMPLETED", endMs: 150, numSubtasks: 2, discarded: false });
  });

  it("fails only a pending or completing checkpoint, and a failed one does not complete", () => {
    const store = new CoordinatorStore(doSql());
    store.insertPending(1, 1, 100, ["a/0"], true);
    store.setStatus(1, "COMPLETING");
    expect(store.fail(1, 120, "JOB_FAILOVER: x")).toBe(true);
    expect(store.fail(1, 130, "again")).toBe(false);
    expect(store.complete(1, 150, "r2://x", metadata(1))).toBe(false);
    expect(store.record(1)).toMatchObject({ status: "FAILED", failure: "JOB_FAILOVER: x", isSavepoint: true, endMs: 120 });
  });

  it("keeps savepoints and discarded checkpoints out of the retained list, newest first", () => {
    const store = new CoordinatorStore(doSql());
    for (const id of [1, 2, 3]) {
      store.insertPending(id, 1, id, ["a/0"], id === 2);
      store.setStatus(id, "COMPLETING");
      store.complete(id, id, `r2://${id}`, metadata(id));
    }
    store.insertPending(4, 1, 4, ["a/0"], false);
    expect(store.retained().map((r) => r.id)).toEqual([3, 1]);
    store.discard([1]);
    expect(store.retained().map((r) => r.id)).toEqual([3]);
    expect(store.records().map((r) => r.id)).toEqual([4, 3, 2, 1]);
  });

  it("trims the history to 200 rows, keeping completed checkpoints that are not discarded", () => {
    const store = new CoordinatorStore(doSql());
    store.insertPending(1, 1, 0, ["a/0"], false);
    store.setStatus(1, "COMPLETING");
    store.complete(1, 1, "r2://1", metadata(1));
    store.insertPending(2, 1, 0, ["a/0"], false);
    store.setStatus(2, "COMPLETING");
    store.complete(2, 1, "r2://2", metadata(2));
    store.discard([2]);
    store.insertPending(3, 1, 0, ["a/0"], false);
    store.fail(3, 1, "CHECKPOINT_EXPIRED: x");
    store.addAck(3, ack("a/0"));
    for (let id = 4; id <= 203; id++) store.insertPending(id, 1, 0, ["a/0"], false);
    expect(store.record(1)?.status).toBe("COMPLETED");
    expect(store.record(2)).toBeUndefined();
    expect(store.record(3)).toBeUndefined();
    expect(store.acks(3)).toEqual([]);
    expect(store.records()).toHaveLength(201);
  });
});
