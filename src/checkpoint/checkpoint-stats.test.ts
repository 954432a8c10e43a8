import { describe, expect, it } from "vitest";
import { type CheckpointRecord, type RestoreRecord, checkpointDetail, checkpointOverview, historyEntry } from "./checkpoint-stats.js";
import { subtaskAck as ack } from "../../test/support/acks.js";

const record = (o: Partial<CheckpointRecord> & { id: number }): CheckpointRecord => ({
  status: "COMPLETED",
  isSavepoint: false,
  triggerMs: o.id * 1_000,
  endMs: null,
  numSubtasks: 2,
  failure: null,
  externalPath: null,
  discarded: false,
  acks: [],
  ...o,
});

/** A completed checkpoint with two subtasks. */
const completed5 = record({
  id: 5,
  triggerMs: 10_000,
  endMs: 10_250,
  externalPath: "ckpt/job/chk-5",
  acks: [
    ack("map/1", { ackTimestamp: 10_200, checkpointedBytes: 100, stateBytes: 1_000, alignmentMs: 3, startDelayMs: 20, syncMs: 1, asyncMs: 40 }),
    ack("map/0", { ackTimestamp: 10_180, checkpointedBytes: 50, stateBytes: 2_000, alignmentMs: 9, startDelayMs: 5, syncMs: 4, asyncMs: 30 }),
  ],
});

describe("historyEntry", () => {
  it("summarizes a completed checkpoint in Flink's snake_case shape", () => {
    expect(historyEntry(completed5)).toEqual({
      id: 5,
      status: "COMPLETED",
      is_savepoint: false,
      checkpoint_type: "CHECKPOINT",
      trigger_timestamp: 10_000,
      latest_ack_timestamp: 10_200,
      end_to_end_duration: 250,
      checkpointed_size: 150,
      state_size: 3_000,
      persisted_data: 0,
      alignment_duration: 9,
      start_delay: 20,
      sync_duration: 4,
      async_duration: 40,
      num_subtasks: 2,
      num_acknowledged_subtasks: 2,
      external_path: "ckpt/job/chk-5",
      discarded: false,
      failure_message: null,
    });
  });

  it("marks savepoints", () => {
    const e = historyEntry(record({ id: 6, isSavepoint: true, endMs: 6_010, externalPath: "sp/1" }));
    expect(e.is_savepoint).toBe(true);
    expect(e.checkpoint_type).toBe("SAVEPOINT");
    expect(e.external_path).toBe("sp/1");
  });

  it("for an in-progress checkpoint, measures up to the latest ack, or 0 without acks", () => {
    const none = historyEntry(record({ id: 7, status: "IN_PROGRESS", triggerMs: 7_000 }));
    expect(none.latest_ack_timestamp).toBeNull();
    expect(none.end_to_end_duration).toBe(0);
    expect(none.num_acknowledged_subtasks).toBe(0);
    expect(none.checkpointed_size).toBe(0);
    expect(none.alignment_duration).toBe(0);
    expect(none).not.toHaveProperty("failure_timestamp");

    const some = historyEntry(record({ id: 7, status: "IN_PROGRESS", triggerMs: 7_000, acks: [ack("a/0", { ackTimestamp: 7_040 })] }));
    expect(some.latest_ack_timestamp).toBe(7_040);
    expect(some.end_to_end_duration).toBe(40);
    expect(some.num_acknowledged_subtasks).toBe(1);
  });

  it("for a failed checkpoint, gives the failure message and timestamp", () => {
    const e = historyEntry(record({ id: 8, status: "FAILED", triggerMs: 8_000, endMs: 8_900, failure: "CHECKPOINT_EXPIRED: took too long" }));
    expect(e.status).toBe("FAILED");
    expect(e.failure_message).toBe("CHECKPOINT_EXPIRED: took too long");
    expect(e.failure_timestamp).toBe(8_900);
    expect(e.end_to_end_duration).toBe(900);
  });

  it("hides the external path of a discarded checkpoint", () => {
    const e = historyEntry({ ...completed5, discarded: true });
    expect(e.discarded).toBe(true);
    expect(e.external_path).toBeNull();
  });
});

describe("checkpointDetail", () => {
  it("adds per-subtask figures, sorted by subtask id", () => {
    const d = checkpointDetail(completed5);
    expect(d.id).toBe(5);
    expect(d.checkpointed_size).toBe(150);
    expect(d.subtasks).toEqual([
      {
        subtask: "map/0",
        ack_timestamp: 10_180,
        end_to_end_duration: 180,
        checkpointed_size: 50,
        state_size: 2_000,
        sync_duration: 4,
        async_duration: 30,
        alignment_duration: 9,
        start_delay: 5,
        persisted_data: 0,
        unaligned: false,
      },
      {
        subtask: "map/1",
        ack_timestamp: 10_200,
        end_to_end_duration: 200,
        checkpointed_size: 100,
        state_size: 1_000,
        sync_duration: 1,
        async_duration: 40,
        alignment_duration: 3,
        start_delay: 20,
        persisted_data: 0,
        unaligned: false,
      },
    ]);
    // The record is not reordered.
    expect(completed5.acks.map((a) => a.subtask)).toEqual(["map/1", "map/0"]);
  });

  it("has no subtasks before any ack", () => {
    expect(checkpointDetail(record({ id: 1, status: "IN_PROGRESS" })).subtasks).toEqual([]);
  });
});

describe("checkpointOverview", () => {
  const records: CheckpointRecord[] = [
    record({ id: 1, endMs: 1_100, acks: [ack("a/0", { ackTimestamp: 1_100, checkpointedBytes: 10, stateBytes: 10, alignmentMs: 1 })] }),
    record({ id: 2, status: "FAILED", endMs: 2_500, failure: "declined" }),
    record({ id: 3, endMs: 3_300, acks: [ack("a/0", { ackTimestamp: 3_300, checkpointedBytes: 30, stateBytes: 40, alignmentMs: 3 })] }),
    record({ id: 4, isSavepoint: true, endMs: 4_200, externalPath: "sp/4", acks: [ack("a/0", { ackTimestamp: 4_200, checkpointedBytes: 20, stateBytes: 40, alignmentMs: 2 })] }),
    record({ id: 5, status: "FAILED", endMs: 5_700, failure: "expired" }),
    record({ id: 6, status: "IN_PROGRESS" }),
  ];
  const restores: RestoreRecord[] = [
    { id: 1, restoreMs: 1_500, isSavepoint: false, externalPath: "ckpt/chk-1" },
    { id: 4, restoreMs: 4_500, isSavepoint: true, externalPath: "sp/4" },
  ];
  // Records arrive in any order; the overview sorts them.
  const shuffled = [records[3], records[0], records[5], records[2], records[4], records[1]];

  it("counts checkpoints by status, and restores", () => {
    expect(checkpointOverview(shuffled, restores).counts).toEqual({ restored: 2, total: 6, in_progress: 1, completed: 3, failed: 2 });
  });

  it("names the latest completed checkpoint, savepoint, failure and restore", () => {
    const { latest } = checkpointOverview(shuffled, restores);
    expect(latest.completed).toEqual(historyEntry(records[2]));
    expect(latest.completed?.id).toBe(3);
    expect(latest.savepoint?.id).toBe(4);
    expect(latest.savepoint?.external_path).toBe("sp/4");
    expect(latest.failed?.id).toBe(5);
    expect(latest.failed?.failure_message).toBe("expired");
    expect(latest.restored).toEqual({ id: 4, restore_timestamp: 4_500, is_savepoint: true, external_path: "sp/4" });
  });

  it("summarizes completed checkpoints and savepoints (min, max, avg, percentiles)", () => {
    const { summary } = checkpointOverview(shuffled, restores);
    // Completed: 1 (100 ms, 10 B), 3 (300 ms, 30 B), 4 (200 ms, 20 B).
    expect(summary.end_to_end_duration).toEqual({ min: 100, max: 300, avg: 200, p50: 200, p90: 300, p95: 300, p99: 300, p999: 300 });
    expect(summary.checkpointed_size).toEqual({ min: 10, max: 30, avg: 20, p50: 20, p90: 30, p95: 30, p99: 30, p999: 30 });
    expect(summary.state_size).toEqual({ min: 10, max: 40, avg: 30, p50: 40, p90: 40, p95: 40, p99: 40, p999: 40 });
    expect(summary.alignment_duration).toEqual({ min: 1, max: 3, avg: 2, p50: 2, p90: 3, p95: 3, p99: 3, p999: 3 });
  });

  it("takes percentiles by nearest rank and rounds the average", () => {
    // Ten completed checkpoints of 10, 20, …, 100 bytes.
    const ten = Array.from({ length: 10 }, (_, i) =>
      record({ id: i + 1, endMs: (i + 1) * 1_000 + 1, acks: [ack("a/0", { checkpointedBytes: (i + 1) * 10 })] }),
    );
    expect(checkpointOverview(ten, []).summary.checkpointed_size).toEqual({ min: 10, max: 100, avg: 55, p50: 50, p90: 90, p95: 100, p99: 100, p999: 100 });

    const odd = [1, 2, 4].map((b, i) => record({ id: i + 1, acks: [ack("a/0", { checkpointedBytes: b })] }));
    // (1 + 2 + 4) / 3 = 2.33…
    expect(checkpointOverview(odd, []).summary.checkpointed_size.avg).toBe(2);
  });

  it("lists the history newest first, every status, limited to historySize", () => {
    const all = checkpointOverview(shuffled, restores);
    expect(all.history.map((h) => h.id)).toEqual([6, 5, 4, 3, 2, 1]);
    expect(all.history.map((h) => h.status)).toEqual(["IN_PROGRESS", "FAILED", "COMPLETED", "COMPLETED", "FAILED", "COMPLETED"]);
    expect(all.history[1]).toEqual(historyEntry(records[4]));
    expect(checkpointOverview(shuffled, restores, 2).history.map((h) => h.id)).toEqual([6, 5]);
  });

  it("is empty and zeroed with no checkpoints", () => {
    const zero = { min: 0, max: 0, avg: 0, p50: 0, p90: 0, p95: 0, p99: 0, p999: 0 };
    expect(checkpointOverview([], [])).toEqual({
      counts: { restored: 0, total: 0, in_progress: 0, completed: 0, failed: 0 },
      latest: { completed: null, savepoint: null, failed: null, restored: null },
      summary: { end_to_end_duration: zero, checkpointed_size: zero, state_size: zero, alignment_duration: zero },
      history: [],
    });
  });

  it("has no latest checkpoint when only savepoints completed, and no summary from failures", () => {
    const o = checkpointOverview([records[3], records[1]], []);
    expect(o.latest.completed).toBeNull();
    expect(o.latest.savepoint?.id).toBe(4);
    expect(o.summary.end_to_end_duration.max).toBe(200);
    expect(o.summary.end_to_end_duration.min).toBe(200);
  });
});
