import { describe, expect, it } from "vitest";
import { doStorage } from "../../../test/support/do-storage.js";
import { job } from "../../api/job.js";
import type { CheckpointMetadata } from "../../checkpoint/types.js";
import { NOT_STARTED, httpSource, partitionConfig } from "../../connectors/sources/http-source.js";
import { tableSink } from "../../connectors/sinks/table-sink.js";
import { FloeError } from "../../errors.js";
import { OffsetsTruncatedError, StreamLog } from "../../storage/stream-log.js";
import type { StartingOffsets } from "../../storage/stream-options.js";
import { JobRegistry } from "../registry.js";
import type { CoordinatorContext } from "./coordinator-context.js";
import type { JobRecord } from "./coordinator-store.js";
import { StreamPins, type StreamPartitionApi, checkpointedOffsets } from "./stream-pins.js";

/** A job reading stream "s" (2 partitions), with pins over real logs and a job record the test sets. */
function world(startingOffsets?: StartingOffsets) {
  const j = job("pinned");
  j.source(httpSource<{ k: string }>("s", { partitions: 2, retentionMs: 1000, startingOffsets }), { uid: "in" })
    .map((r) => ({ key: r.k, value: 1 }), { uid: "row" })
    .sink(tableSink("out"), { uid: "out" });
  const registry = new JobRegistry([j]);
  const clock = { ms: 1_000 };
  const logs = [0, 1].map(() => new StreamLog(doStorage(), () => clock.ms));
  logs.forEach((l, p) => l.configure(partitionConfig(registry.stream("s")!, p)));
  let pending: Promise<unknown>[] = [];
  const partition = (_stream: string, p: number): StreamPartitionApi => ({
    startRun: async (config, jobName, runId, position) => {
      logs[p].configure(config);
      try {
        return { ok: true, offset: logs[p].startRun(jobName, runId, position) };
      } catch (e) {
        if (!(e instanceof OffsetsTruncatedError)) throw e;
        return { ok: false, error: { code: "offsets_truncated", message: e.message, status: 409 } };
      }
    },
    checkpointed: async (config, jobName, runId, offset) => {
      pending.push(Promise.resolve(logs[p].consumers.checkpointed(jobName, runId, offset)));
    },
    release: async (jobName, runId) => {
      logs[p].consumers.release(jobName, runId);
    },
  });
  const record = { status: "RUNNING", runId: 1, plan: { job: "pinned" } } as unknown as JobRecord;
  const ctx = { host: { streamPartition: partition }, registry, store: { job: () => record }, now: () => clock.ms } as unknown as CoordinatorContext;
  const settle = async () => {
    await Promise.all(pending);
    pending = [];
  };
  return { pins: new StreamPins(ctx), definition: j, logs, clock, record, settle };
}

const metadata = (positions: Record<string, number>): CheckpointMetadata => ({
  version: 1,
  job: "pinned",
  checkpointId: 7,
  kind: "CHECKPOINT",
  triggerTimestamp: 0,
  completedTimestamp: 0,
  attempt: 1,
  maxParallelism: 16,
  operators: { in: { parallelism: 2, keyed: {}, sinks: {}, sources: { "v/0": { "s/0": positions["s/0"] }, "v/1": { "s/1": positions["s/1"] } } } },
});

describe("checkpointedOffsets", () => {
  it("takes the offsets of the job's streams from every source subtask, and nothing else", () => {
    const m = metadata({ "s/0": 4, "s/1": 9 });
    expect([...checkpointedOffsets(m, new Set(["s"]))]).toEqual([
      ["s/0", 4],
      ["s/1", 9],
    ]);
    expect(checkpointedOffsets(m, new Set(["other"])).size).toBe(0);
    // A partition the run never started says nothing of where to begin: the next run uses its own starting position.
    expect([...checkpointedOffsets(metadata({ "s/0": NOT_STARTED, "s/1": 9 }), new Set(["s"]))]).toEqual([["s/1", 9]]);
  });
});

describe("StreamPins", () => {
  it("pins a fresh run at its starting offsets, follows completed checkpoints, and lets go when the job ends", async () => {
    const w = world();
    for (const l of w.logs) l.append(['{"k":"a"}', '{"k":"b"}']);
    await w.pins.startRun("pinned", w.definition, 1, null, "latest");
    expect(w.logs.map((l) => l.consumers.list()[0].offset)).toEqual([2, 2]);
    for (const l of w.logs) l.append(['{"k":"c"}']);
    w.pins.checkpointCompleted(w.record, metadata({ "s/0": 3, "s/1": 2 }));
    await w.settle();
    expect(w.logs.map((l) => l.consumers.minPin())).toEqual([3, 2]);
    w.pins.afterTransition(); // still running: nothing released
    expect(w.logs.map((l) => l.consumers.minPin())).toEqual([3, 2]);
    (w.record as { status: string }).status = "CANCELED";
    w.pins.afterTransition();
    await new Promise((r) => setTimeout(r, 0));
    expect(w.logs.map((l) => l.consumers.minPin())).toEqual([null, null]);
  });

  it("refuses a snapshot whose offsets retention deleted, naming stream, partition and offsets, and pins nothing", async () => {
    const w = world();
    for (const l of w.logs) l.append(['{"k":"a"}', '{"k":"b"}']);
    w.clock.ms += 5_000;
    w.logs[1].truncate();
    const from = metadata({ "s/0": 1, "s/1": 1 });
    let caught: unknown;
    await w.pins.startRun("pinned", w.definition, 2, from).catch((e) => (caught = e));
    expect(caught).toBeInstanceOf(FloeError);
    expect((caught as FloeError).code).toBe("offsets_truncated");
    expect((caught as FloeError).status).toBe(409);
    expect((caught as FloeError).message).toMatch(/^stream "s" partition 1: offset 1 is needed but retention deleted it \(the earliest offset is 2\)/);
    expect(w.logs.map((l) => l.consumers.minPin())).toEqual([null, null]);
    // Asked to, the run starts at the earliest retained offset where the snapshot's was deleted.
    await w.pins.startRun("pinned", w.definition, 2, from, "earliest");
    expect(w.logs.map((l) => l.consumers.startOffset("pinned"))).toEqual([1, 2]);
  });

  it("starts a fresh run at the definition's timestamp, and refuses one in the future before pinning anything", async () => {
    const w = world({ timestamp: 1_500 });
    for (const l of w.logs) l.append(['{"k":"a"}']);
    w.clock.ms = 2_000;
    for (const l of w.logs) l.append(['{"k":"b"}']);
    await w.pins.startRun("pinned", w.definition, 1, null);
    expect(w.logs.map((l) => l.consumers.startOffset("pinned"))).toEqual([1, 1]);

    const future = world({ timestamp: 5_000 });
    await expect(future.pins.startRun("pinned", future.definition, 1, null)).rejects.toMatchObject({
      code: "invalid_starting_offsets",
      status: 400,
      message: expect.stringMatching(/^stream "s": startingOffsets.timestamp 5000 in the job's definition is in the future \(now is 1000\)/),
    });
    expect(future.logs.map((l) => l.consumers.list())).toEqual([[], []]);
    // The start request's position overrides the definition's.
    await future.pins.startRun("pinned", future.definition, 1, null, "earliest");
    expect(future.logs.map((l) => l.consumers.startOffset("pinned"))).toEqual([0, 0]);
  });

  it("refuses latest or a timestamp together with a snapshot", async () => {
    const w = world();
    await expect(w.pins.startRun("pinned", w.definition, 2, metadata({ "s/0": 0, "s/1": 0 }), "latest")).rejects.toMatchObject({ code: "invalid_starting_offsets" });
  });
});
