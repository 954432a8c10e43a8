import { describe, expect, it } from "vitest";
import { subtaskAck as ack } from "../../test/support/acks.js";
import { PendingCheckpoint, type PendingCheckpointInit } from "./pending-checkpoint.js";
import type { SubtaskAck } from "./types.js";

const pending = (expected: string[], o: Partial<PendingCheckpointInit> = {}, acks: SubtaskAck[] = []) =>
  new PendingCheckpoint({ checkpointId: 7, attempt: 1, triggerMs: 500, expected, ...o }, acks);

const NOW = 600;

describe("PendingCheckpoint", () => {
  it("holds its id, attempt, trigger time and kind", () => {
    const p = pending(["a/0"]);
    expect(p.checkpointId).toBe(7);
    expect(p.attempt).toBe(1);
    expect(p.triggerMs).toBe(500);
    expect(p.isSavepoint).toBe(false);
    expect(p.expiresAtMs).toBe(Number.POSITIVE_INFINITY);
    expect(pending(["a/0"], { isSavepoint: true }).isSavepoint).toBe(true);
  });

  it("returns SUCCESS for each expected subtask, and is fully acknowledged after the last", () => {
    const p = pending(["a/0", "a/1", "b/0"]);
    expect(p.isFullyAcknowledged).toBe(false);
    expect(p.acknowledge(ack("a/0"), NOW)).toBe("SUCCESS");
    expect(p.acknowledge(ack("b/0"), NOW)).toBe("SUCCESS");
    expect(p.acknowledged).toBe(2);
    expect(p.isFullyAcknowledged).toBe(false);
    expect(p.acknowledge(ack("a/1"), NOW)).toBe("SUCCESS");
    expect(p.acknowledged).toBe(3);
    expect(p.isFullyAcknowledged).toBe(true);
  });

  it("returns DUPLICATE for a second ack of a subtask and keeps the first", () => {
    const p = pending(["a/0", "a/1"]);
    const first = ack("a/0", { checkpointedBytes: 1 });
    expect(p.acknowledge(first, NOW)).toBe("SUCCESS");
    expect(p.acknowledge(ack("a/0", { checkpointedBytes: 2 }), NOW)).toBe("DUPLICATE");
    expect(p.acknowledged).toBe(1);
    expect(p.isFullyAcknowledged).toBe(false);
    expect(p.acknowledgements().get("a/0")).toBe(first);
  });

  it("read back with the ids of the subtasks that acknowledged only, decides the next ack the same", () => {
    const p = new PendingCheckpoint({ checkpointId: 7, attempt: 1, triggerMs: 500, expected: ["a/0", "a/1", "b/0"] }, [], ["a/0", "b/0"]);
    expect(p.acknowledged).toBe(2);
    expect(p.hasAcknowledged("b/0")).toBe(true);
    expect(p.acknowledge(ack("a/0"), NOW)).toBe("DUPLICATE");
    expect(p.isFullyAcknowledged).toBe(false);
    expect(p.acknowledge(ack("a/1"), NOW)).toBe("SUCCESS");
    expect(p.isFullyAcknowledged).toBe(true);
    // It holds the acks it took: the stored ones are read when the checkpoint completes.
    expect([...p.acknowledgements().keys()]).toEqual(["a/1"]);
  });

  it("returns UNKNOWN for a subtask that is not expected, and does not count it", () => {
    const p = pending(["a/0"]);
    expect(p.acknowledge(ack("z/9"), NOW)).toBe("UNKNOWN");
    expect(p.acknowledged).toBe(0);
    expect(p.isFullyAcknowledged).toBe(false);
    expect(p.acknowledgements().has("z/9")).toBe(false);
    expect(p.acknowledge(ack("a/0"), NOW)).toBe("SUCCESS");
    expect(p.isFullyAcknowledged).toBe(true);
  });

  it("returns DISCARDED for an ack of another attempt, whatever else it is", () => {
    const p = pending(["a/0"]);
    expect(p.acknowledge(ack("a/0", { attempt: 2 }), NOW)).toBe("DISCARDED");
    expect(p.acknowledge(ack("z/9", { attempt: 0 }), NOW)).toBe("DISCARDED");
    expect(p.acknowledged).toBe(0);
    expect(p.isDiscarded).toBe(false);
  });

  it("returns DISCARDED for any ack once discarded, and is never fully acknowledged then", () => {
    const p = pending(["a/0", "a/1"]);
    expect(p.acknowledge(ack("a/0"), NOW)).toBe("SUCCESS");
    expect(p.isDiscarded).toBe(false);
    p.discard();
    expect(p.isDiscarded).toBe(true);
    // Discarded wins over every other outcome.
    expect(p.acknowledge(ack("a/1"), NOW)).toBe("DISCARDED");
    expect(p.acknowledge(ack("a/0"), NOW)).toBe("DISCARDED");
    expect(p.acknowledge(ack("z/9"), NOW)).toBe("DISCARDED");
    expect(p.acknowledged).toBe(1);
    expect(p.isFullyAcknowledged).toBe(false);
  });

  it("a discarded checkpoint that had every ack is not fully acknowledged", () => {
    const p = pending(["a/0"]);
    p.acknowledge(ack("a/0"), NOW);
    expect(p.isFullyAcknowledged).toBe(true);
    p.discard();
    expect(p.isFullyAcknowledged).toBe(false);
  });

  it("an expected ack at or past the deadline expires the checkpoint, even a duplicate", () => {
    const p = pending(["a/0", "a/1"], { expiresAtMs: 1_000 });
    expect(p.acknowledge(ack("a/0"), 999)).toBe("SUCCESS");
    expect(p.acknowledge(ack("z/9"), 1_000)).toBe("UNKNOWN");
    expect(p.isExpired).toBe(false);
    expect(p.acknowledge(ack("a/0"), 1_000)).toBe("DISCARDED");
    expect(p.isExpired).toBe(true);
    expect(p.isDiscarded).toBe(true);
    expect(p.acknowledge(ack("a/1"), 1_000)).toBe("DISCARDED");
    expect(p.acknowledged).toBe(1);
  });

  it("is built back from stored acks, and one stored as discarded takes no more", () => {
    const a0 = ack("a/0", { stateBytes: 5 });
    const p = pending(["a/0", "b/0"], {}, [a0]);
    expect(p.acknowledged).toBe(1);
    expect(p.hasAcknowledged("a/0")).toBe(true);
    expect(p.hasAcknowledged("b/0")).toBe(false);
    expect(p.acknowledge(ack("a/0"), NOW)).toBe("DUPLICATE");
    expect(p.acknowledge(ack("b/0"), NOW)).toBe("SUCCESS");
    expect(p.isFullyAcknowledged).toBe(true);
    const completing = pending(["a/0", "b/0"], { discarded: true }, [a0]);
    expect(completing.acknowledge(ack("b/0"), NOW)).toBe("DISCARDED");
  });

  it("keeps the acks by subtask id", () => {
    const p = pending(["a/0", "b/0"]);
    const a0 = ack("a/0", { stateBytes: 5 });
    const b0 = ack("b/0", { stateBytes: 6 });
    p.acknowledge(b0, NOW);
    p.acknowledge(a0, NOW);
    const acks = p.acknowledgements();
    expect(acks.size).toBe(2);
    expect(acks.get("a/0")).toBe(a0);
    expect(acks.get("b/0")).toBe(b0);
  });
});
