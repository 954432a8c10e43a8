import { describe, expect, it } from "vitest";
import { type PolicyRun, SAME_EPOCH_MERGE_RUNS, planCompaction, planEpochMerge } from "./compaction-policy.js";

const run = (seq: number, epoch: number, bytes = 100): PolicyRun => ({ id: seq, seq, epoch, bytes });

describe("planCompaction", () => {
  it("merges like a binary counter among runs up to the last completed checkpoint, never above it", () => {
    expect(planCompaction([run(1, 1), run(2, 2)], 2)).toMatchObject({ inputs: [1, 2], reason: "size-ratio", dropTombstones: true });
    expect(planCompaction([run(1, 1), run(2, 2)], 1)).toBeUndefined();
    expect(planCompaction([run(1, 1, 400), run(2, 2), run(3, 3)], 3)).toMatchObject({ inputs: [2, 3], dropTombstones: false });
  });
});

describe("planEpochMerge", () => {
  it("merges the runs of one epoch above the last completed checkpoint once there are enough, never across epochs", () => {
    const flushes = (epoch: number, from: number, n: number) => Array.from({ length: n }, (_, i) => run(from + i, epoch));
    // Checkpoint 3 completed; epoch 4's flushes pile up.
    const runs = [run(1, 3, 1000), ...flushes(4, 2, SAME_EPOCH_MERGE_RUNS - 1)];
    expect(planEpochMerge(runs, 3)).toBeUndefined();
    runs.push(run(9, 4));
    expect(planEpochMerge(runs, 3)).toMatchObject({ inputs: [2, 3, 4, 9], reason: "epoch", dropTombstones: false });
    // Not with the run of epoch 3 (a restore to 3 keeps it and drops epoch 4's), nor past a write in flight.
    expect(planEpochMerge(runs, 3, 4)).toBeUndefined();
    // Two epochs above the completed one: each on its own.
    const two = [...flushes(5, 1, 2), ...flushes(6, 3, SAME_EPOCH_MERGE_RUNS)];
    expect(planEpochMerge(two, 4)).toMatchObject({ inputs: [3, 4, 5, 6], dropTombstones: false });
    expect(planEpochMerge(flushes(5, 1, SAME_EPOCH_MERGE_RUNS), 4)).toMatchObject({ dropTombstones: true });
  });
});
