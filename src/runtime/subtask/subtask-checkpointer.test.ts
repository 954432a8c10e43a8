import { describe, expect, it } from "vitest";
import { END_OF_TIME_MS } from "../../time/watermark-strategy.js";
import type { SinkWriter, SourceReader } from "../../api/types.js";
import type { ChannelStateHandle, SubtaskAck } from "../../checkpoint/types.js";
import { valueState } from "../../api/state.js";
import { KeyedStateBackend } from "../../state/keyed-state.js";
import { KeyedSnapshotter, type SnapshotStore } from "../../state/snapshotter.js";
import { decodeChannelState } from "../batch-encoding.js";
import type { ChannelMessage } from "../messages.js";
import { RecordWriter } from "../record-writer.js";
import { SinkCommitter } from "./sink-committer.js";
import { SubtaskCheckpointer } from "./subtask-checkpointer.js";

const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** State files in memory; `failing` makes every put fail. */
function memoryStore(failing = false): SnapshotStore & { puts: string[] } {
  const puts: string[] = [];
  return {
    puts,
    fileKey: (uid, id) => `chk-${id}/${uid}`,
    savepointFileKey: (uid, id) => `sp-${id}/${uid}`,
    put: async (key) => {
      puts.push(key);
      if (failing) throw new Error("R2 refused");
    },
    writeImage: () => ({ add: () => undefined, addTimeIndex: () => undefined, seal: async () => undefined }),
    markImage: () => undefined,
    pause: async () => undefined,
  };
}

interface Options {
  unaligned?: boolean;
  alignTimeoutMs?: number;
  failingStore?: boolean;
  /** Messages the receiver leaves untaken (no credit comes back). */
  stuck?: boolean;
}

function setup(o: Options = {}) {
  const clock = { nowMs: 1_000 };
  const acks: (SubtaskAck & { checkpointId: number })[] = [];
  const declines: string[] = [];
  const channelStates: { checkpointId: number; body: string }[] = [];
  const sent: ChannelMessage[] = [];
  const sleeps: { ms: number; wake: () => void }[] = [];
  const log: string[] = [];
  const host = {
    now: () => clock.nowMs,
    sleep: (ms: number) => new Promise<void>((wake) => sleeps.push({ ms, wake })),
    putChannelState: async (checkpointId: number, body: string): Promise<ChannelStateHandle> => {
      channelStates.push({ checkpointId, body });
      return { file: `channels-${checkpointId}`, bytes: body.length };
    },
    acknowledge: async (ack: SubtaskAck & { checkpointId: number }) => void acks.push(ack),
    decline: async (checkpointId: number, reason: string) => void declines.push(`${checkpointId}: ${reason}`),
  };
  const writer = new RecordWriter(
    [{ vertex: "down", parallelism: 1, partitioner: "rebalance" }],
    { vertex: "up", index: 0, attempt: 2 },
    128,
    (_vertex, _index, message) => {
      sent.push(message);
      return o.stuck ? new Promise(() => undefined) : Promise.resolve("accepted");
    },
    10,
    () => clock.nowMs,
    1,
  );
  const sink: SinkWriter = {
    guarantee: "at_least_once",
    write: () => undefined,
    preCommit: (txn) => (log.push(`preCommit ${txn}`), { txn, rows: 1, bytes: 8 }),
    commit: async (txn) => void log.push(`commit ${txn}`),
    recover: async () => undefined,
    pendingBytes: () => 0,
    metrics: () => ({ pendingStagedBytes: 0, sealedTransactions: 0, committedTransactions: 0, lastCommitLatencyMs: null, maxCommitLatencyMs: 0 }),
  };
  const sinks = new SinkCommitter(new Map([["out", sink]]), true, 2, () => clock.nowMs);
  let offset = 10;
  let watermarkMs = Number.NEGATIVE_INFINITY;
  const reader = { positions: () => ({ p0: offset }) } as unknown as SourceReader;
  const state = new KeyedStateBackend(128, "count");
  const checkpointer = new SubtaskCheckpointer({
    host,
    report: (call) => call(),
    snapshotter: new KeyedSnapshotter(memoryStore(o.failingStore), { incremental: false, fullEvery: 1 }, { start: 0, end: 127 }),
    keyedState: new Map([["count", state]]),
    reader,
    sourceUid: "src",
    writer,
    sinks,
    attempt: 2,
    subtaskId: "up/0",
    describe: "up (subtask 1/1)",
    unaligned: o.unaligned ?? false,
    alignTimeoutMs: o.alignTimeoutMs ?? 0,
    watermarkMs: () => watermarkMs,
  });
  return {
    clock,
    acks,
    declines,
    channelStates,
    sent,
    sleeps,
    log,
    writer,
    state,
    checkpointer,
    advance: (n: number) => void (offset += n),
    setWatermark: (ms: number) => void (watermarkMs = ms),
  };
}

const kinds = (sent: ChannelMessage[]) => sent.map((m) => (m.kind === "barrier" ? `barrier ${m.checkpointId}${m.priority ? " priority" : ""}` : m.kind));

describe("SubtaskCheckpointer, aligned", () => {
  it("snapshots, forwards the barrier behind buffered output, acknowledges with its statistics, then at-least-once sinks publish", async () => {
    const { clock, acks, sent, log, writer, checkpointer } = setup();
    writer.emit({ v: 1 });
    clock.nowMs = 1_050;
    await checkpointer.checkpoint({ checkpointId: 3, triggerMs: 1_000, isSavepoint: false }, 1_020, 7);
    expect(kinds(sent)).toEqual(["batch", "barrier 3"]);
    expect(log).toEqual(["preCommit 3", "commit 3"]);
    expect(checkpointer.lastCheckpointId).toBe(3);
    await settle();
    expect(acks).toHaveLength(1);
    expect(acks[0]).toMatchObject({
      checkpointId: 3,
      subtask: "up/0",
      attempt: 2,
      sources: { src: { p0: 10 } },
      sinks: { out: { txn: 3, rows: 1, bytes: 8 } },
      alignmentMs: 7,
      startDelayMs: 20,
      syncMs: 0,
      channelState: null,
      unaligned: false,
    });
  });

  it("acknowledges the subtask's watermark at the snapshot: none before the first, none at the end of time (a drain)", async () => {
    const { acks, checkpointer, setWatermark } = setup();
    await checkpointer.checkpoint({ checkpointId: 1, triggerMs: 0, isSavepoint: false }, 0, 0);
    setWatermark(4_999);
    await checkpointer.checkpoint({ checkpointId: 2, triggerMs: 0, isSavepoint: false }, 0, 0);
    setWatermark(END_OF_TIME_MS);
    await checkpointer.checkpoint({ checkpointId: 3, triggerMs: 0, isSavepoint: true }, 0, 0);
    await settle();
    expect(acks.map((a) => [a.checkpointId, a.watermarkMs])).toEqual([
      [1, null],
      [2, 4_999],
      [3, null],
    ]);
  });

  it("declines when the state upload fails", async () => {
    const { declines, acks, state, checkpointer } = setup({ failingStore: true });
    state.setCurrentKey("k");
    state.getState(valueState<number>("n")).update(1);
    await checkpointer.checkpoint({ checkpointId: 4, triggerMs: 1_000, isSavepoint: false }, 1_000, 0);
    await settle();
    expect(acks).toEqual([]);
    expect(declines).toEqual(["4: subtask up (subtask 1/1) could not upload its snapshot: R2 refused"]);
  });

  it("keeps the source positions of pending checkpoints until one completes", async () => {
    const { checkpointer, advance } = setup();
    await checkpointer.checkpoint({ checkpointId: 1, triggerMs: 1_000, isSavepoint: false }, 1_000, 0);
    advance(5);
    await checkpointer.checkpoint({ checkpointId: 2, triggerMs: 1_000, isSavepoint: false }, 1_000, 0);
    expect(checkpointer.positionsCompleted(2)).toEqual({ p0: 15 });
    expect(checkpointer.positionsCompleted(1)).toBeUndefined();
  });
});

describe("SubtaskCheckpointer, unaligned", () => {
  it("a source's barrier skips buffered output, which becomes in-flight data", async () => {
    const { acks, sent, channelStates, writer, checkpointer } = setup({ unaligned: true });
    writer.emit({ v: 1 });
    await checkpointer.checkpoint({ checkpointId: 5, triggerMs: 1_000, isSavepoint: false }, 1_000, 0);
    expect(kinds(sent)).toEqual(["barrier 5 priority"]);
    expect(decodeChannelState(channelStates[0].body)).toEqual({ inputs: {}, outputs: { "down/0": [{ v: 1 }] } });
    await settle();
    expect(acks[0]).toMatchObject({ checkpointId: 5, unaligned: true, channelState: { file: "channels-5" } });
  });

  it("collects input in-flight data from its start to its finish, then uploads it with the output and acknowledges", async () => {
    const { acks, sent, channelStates, writer, checkpointer } = setup({ unaligned: true });
    writer.emit({ v: 9 });
    checkpointer.beginUnaligned({ checkpointId: 6, triggerMs: 1_000, isSavepoint: false }, 1_000, 0, new Map([["a/0", ["[1]"]]]));
    expect(kinds(sent)).toEqual(["barrier 6 priority"]);
    expect(checkpointer.lastCheckpointId).toBe(6);
    checkpointer.addInFlight(6, "a/0", ["[2]"]);
    checkpointer.addInFlight(6, "b/0", []);
    checkpointer.addInFlight(6, "c/0", ["[3]"]);
    // Another checkpoint's data is not this one's.
    checkpointer.addInFlight(7, "a/0", ["[4]"]);
    await settle();
    expect(acks).toEqual([]);
    checkpointer.finishUnaligned(6);
    expect(decodeChannelState(channelStates[0].body)).toEqual({ inputs: { "a/0": ["[1]", "[2]"], "c/0": ["[3]"] }, outputs: { "down/0": [{ v: 9 }] } });
    await settle();
    expect(acks[0]).toMatchObject({ checkpointId: 6, unaligned: true });
    // Finished once only.
    checkpointer.finishUnaligned(6);
    expect(channelStates).toHaveLength(1);
  });

  it("a discarded collection acknowledges nothing", async () => {
    const { acks, channelStates, checkpointer } = setup({ unaligned: true });
    checkpointer.beginUnaligned({ checkpointId: 6, triggerMs: 1_000, isSavepoint: false }, 1_000, 0, new Map());
    checkpointer.discardUnaligned(6);
    checkpointer.finishUnaligned(6);
    await settle();
    expect(acks).toEqual([]);
    expect(channelStates).toEqual([]);
  });

  it("with an alignment timeout, the barrier waits behind output until the deadline, then overtakes what is left", async () => {
    const { acks, sent, sleeps, channelStates, writer, checkpointer } = setup({ unaligned: true, alignTimeoutMs: 200, stuck: true });
    writer.emit({ v: 1 });
    writer.emit({ v: 2 });
    // One credit: the first batch takes it, and the barrier waits.
    void writer.flush();
    await settle();
    writer.emit({ v: 3 });
    const done = checkpointer.checkpoint({ checkpointId: 8, triggerMs: 950, isSavepoint: false }, 1_000, 0);
    await settle();
    expect(sleeps.map((s) => s.ms)).toEqual([150]);
    expect(kinds(sent)).toEqual(["batch"]);
    sleeps[0].wake();
    await settle();
    expect(kinds(sent)).toEqual(["batch", "barrier 8 priority"]);
    expect(decodeChannelState(channelStates[0].body).outputs).toEqual({ "down/0": [{ v: 3 }] });
    await settle();
    expect(acks[0]).toMatchObject({ checkpointId: 8, unaligned: true });
    void done;
  });
});

describe("SubtaskCheckpointer at the end of input", () => {
  it("snapshots and acknowledges with no barrier to forward", async () => {
    const { acks, sent, clock, checkpointer } = setup();
    clock.nowMs = 1_300;
    checkpointer.checkpointAtEnd({ checkpointId: 9, triggerMs: 1_250, isSavepoint: false });
    expect(checkpointer.lastCheckpointId).toBe(9);
    await settle();
    expect(sent).toEqual([]);
    expect(acks[0]).toMatchObject({ checkpointId: 9, startDelayMs: 50, unaligned: false, channelState: null });
  });

  it("remembers the checkpoint a restore started from", () => {
    const { checkpointer } = setup();
    checkpointer.restoredFrom(12);
    expect(checkpointer.lastCheckpointId).toBe(12);
  });
});
