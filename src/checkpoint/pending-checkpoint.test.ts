import { describe, expect, it } from "vitest";
import { PendingCheckpoint } from "./pending-checkpoint.js";
import type { SubtaskAck } from "./types.js";

const ack = (subtask: string, o: Partial<SubtaskAck> = {}): SubtaskAck => ({
  subtask,
  attempt: 1,
  keyed: {},
  sources: {},
  sinks: {},
  syncMs: 1,
  asyncMs: 2,
  alignmentMs: 0,
  startDelayMs: 0,
  ackTimestamp: 1_000,
  checkpointedBytes: 10,
  stateBytes: 10,
  ...o,
});

const pending = (...subtasks: string[]) => new PendingCheckpoint(7, 500, new Set(subtasks));

describe("PendingCheckpoint", () => {
  it("holds its id, trigger time and kind", () => {
    const p = pending("a/0");
    expect(p.checkpointId).toBe(7);
    expect(p.triggerMs).toBe(500);
    expect(p.isSavepoint).toBe(false);
    expect(new PendingCheckpoint(8, 1, new Set(["a/0"]), true).isSavepoint).toBe(true);
  });

  it("returns SUCCESS for each expected subtask, and is fully acknowledged after the last", () => {
    const p = pending("a/0", "a/1", "b/0");
    expect(p.isFullyAcknowledged).toBe(false);
    expect(p.acknowledge("a/0", ack("a/0"))).toBe("SUCCESS");
    expect(p.acknowledge("b/0", ack("b/0"))).toBe("SUCCESS");
    expect(p.acknowledged).toBe(2);
    expect(p.isFullyAcknowledged).toBe(false);
    expect(p.acknowledge("a/1", ack("a/1"))).toBe("SUCCESS");
    expect(p.acknowledged).toBe(3);
    expect(p.isFullyAcknowledged).toBe(true);
  });

  it("returns DUPLICATE for a second ack of a subtask and keeps the first", () => {
    const p = pending("a/0", "a/1");
    const first = ack("a/0", { checkpointedBytes: 1 });
    expect(p.acknowledge("a/0", first)).toBe("SUCCESS");
    expect(p.acknowledge("a/0", ack("a/0", { checkpointedBytes: 2 }))).toBe("DUPLICATE");
    expect(p.acknowledged).toBe(1);
    expect(p.isFullyAcknowledged).toBe(false);
    expect(p.acknowledgements().get("a/0")).toBe(first);
  });

  it("returns UNKNOWN for a subtask that is not expected, and does not count it", () => {
    const p = pending("a/0");
    expect(p.acknowledge("z/9", ack("z/9"))).toBe("UNKNOWN");
    expect(p.acknowledged).toBe(0);
    expect(p.isFullyAcknowledged).toBe(false);
    expect(p.acknowledgements().has("z/9")).toBe(false);
    expect(p.acknowledge("a/0", ack("a/0"))).toBe("SUCCESS");
    expect(p.isFullyAcknowledged).toBe(true);
  });

  it("returns DISCARDED for any ack once discarded, and is never fully acknowledged then", () => {
    const p = pending("a/0", "a/1");
    expect(p.acknowledge("a/0", ack("a/0"))).toBe("SUCCESS");
    expect(p.isDiscarded).toBe(false);
    p.discard();
    expect(p.isDiscarded).toBe(true);
    // Discarded wins over every other outcome.
    expect(p.acknowledge("a/1", ack("a/1"))).toBe("DISCARDED");
    expect(p.acknowledge("a/0", ack("a/0"))).toBe("DISCARDED");
    expect(p.acknowledge("z/9", ack("z/9"))).toBe("DISCARDED");
    expect(p.acknowledged).toBe(1);
    expect(p.isFullyAcknowledged).toBe(false);
  });

  it("a discarded checkpoint that had every ack is not fully acknowledged", () => {
    const p = pending("a/0");
    p.acknowledge("a/0", ack("a/0"));
    expect(p.isFullyAcknowledged).toBe(true);
    p.discard();
    expect(p.isFullyAcknowledged).toBe(false);
  });

  it("keeps the acks by subtask id", () => {
    const p = pending("a/0", "b/0");
    const a0 = ack("a/0", { stateBytes: 5 });
    const b0 = ack("b/0", { stateBytes: 6 });
    p.acknowledge("b/0", b0);
    p.acknowledge("a/0", a0);
    const acks = p.acknowledgements();
    expect(acks.size).toBe(2);
    expect(acks.get("a/0")).toBe(a0);
    expect(acks.get("b/0")).toBe(b0);
  });
});
