import { describe, expect, it } from "vitest";
import { subtaskAck } from "../../test/support/acks.js";
import type { ExecutionPlan, PlanVertex } from "../graph/plan.js";
import { buildMetadata, parallelismByUid, restoreSpecFor } from "./completed-checkpoint.js";
import type { KeyedStateHandle, SubtaskAck } from "./types.js";

const vertex = (id: string, parallelism: number, uids: string[], o: Partial<PlanVertex> = {}): PlanVertex => ({
  id,
  name: id,
  nodes: [],
  parallelism,
  inputs: [],
  outputs: [],
  keyed: false,
  isSource: false,
  uids,
  ...o,
});

/** A source (2 subtasks) into a keyed counter chained with a sink (2 subtasks), 8 key groups. */
const plan: ExecutionPlan = {
  job: "clicks",
  maxParallelism: 8,
  batchSize: 100,
  vertices: [vertex("source", 2, ["src"], { isSource: true }), vertex("count", 2, ["count", "out"], { keyed: true })],
};

const handle = (start: number, end: number, file: string): KeyedStateHandle => ({ files: [file], keyGroups: { start, end }, stateBytes: 10, checkpointedBytes: 10, entries: 1 });

const ack = (subtask: string, o: Partial<SubtaskAck> = {}): SubtaskAck => subtaskAck(subtask, { attempt: 3, ...o });

const acks = [
  ack("count/0", { keyed: { count: handle(0, 3, "k0") }, sinks: { out: { txn: 5 } }, channelState: { file: "c0", bytes: 7 } }),
  ack("count/1", { keyed: { count: handle(4, 7, "k1") }, sinks: { out: { txn: 6 } } }),
  ack("source/0", { sources: { src: { p0: 10 } } }),
  ack("source/1", { sources: { src: { p1: 20, p2: 30 } } }),
];

const metadata = buildMetadata({ plan, checkpointId: 12, attempt: 3, isSavepoint: false, triggerMs: 100, completedMs: 150, acks });

describe("parallelismByUid", () => {
  it("maps every operator uid to its vertex's parallelism", () => {
    expect([...parallelismByUid(plan)]).toEqual([["src", 2], ["count", 2], ["out", 2]]);
  });
});

describe("buildMetadata", () => {
  it("records the checkpoint, and per operator each subtask's part", () => {
    expect(metadata).toMatchObject({ version: 1, job: "clicks", checkpointId: 12, kind: "CHECKPOINT", triggerTimestamp: 100, completedTimestamp: 150, attempt: 3, maxParallelism: 8 });
    expect(metadata.operators.count).toEqual({ parallelism: 2, keyed: { "count/0": handle(0, 3, "k0"), "count/1": handle(4, 7, "k1") }, sources: {}, sinks: {} });
    expect(metadata.operators.out.sinks).toEqual({ "count/0": { txn: 5 }, "count/1": { txn: 6 } });
    expect(metadata.operators.src.sources).toEqual({ "source/0": { p0: 10 }, "source/1": { p1: 20, p2: 30 } });
    expect(metadata.channels).toEqual({ "count/0": { file: "c0", bytes: 7 } });
  });

  it("marks a savepoint, and leaves channels out when no subtask had in-flight data", () => {
    const m = buildMetadata({ plan, checkpointId: 1, attempt: 1, isSavepoint: true, triggerMs: 0, completedMs: 1, acks: [ack("source/0")] });
    expect(m.kind).toBe("SAVEPOINT");
    expect("channels" in m).toBe(false);
    expect(m.operators).toEqual({});
  });

  it("gives an operator the plan does not know parallelism 1", () => {
    const m = buildMetadata({ plan, checkpointId: 1, attempt: 1, isSavepoint: false, triggerMs: 0, completedMs: 1, acks: [ack("x/0", { sinks: { gone: 1 } })] });
    expect(m.operators.gone.parallelism).toBe(1);
  });
});

describe("restoreSpecFor, the inverse", () => {
  it("gives each subtask back what it acknowledged, at the same parallelism", () => {
    const s0 = restoreSpecFor(metadata, ["count", "out"], { start: 0, end: 3 }, "count/0");
    expect(s0).toEqual({ checkpointId: 12, keyed: { count: [handle(0, 3, "k0")], out: [] }, sources: { count: {}, out: {} }, channelState: { file: "c0", bytes: 7 } });
    const s1 = restoreSpecFor(metadata, ["count", "out"], { start: 4, end: 7 }, "count/1");
    expect(s1.keyed.count).toEqual([handle(4, 7, "k1")]);
    expect(s1.channelState).toBeNull();
  });

  it("gives a rescaled subtask every handle that overlaps its range", () => {
    expect(restoreSpecFor(metadata, ["count"], { start: 3, end: 4 }).keyed.count).toEqual([handle(0, 3, "k0"), handle(4, 7, "k1")]);
    expect(restoreSpecFor(metadata, ["count"], { start: 0, end: 7 }).keyed.count).toHaveLength(2);
    expect(restoreSpecFor(metadata, ["count"], { start: 5, end: 5 }).keyed.count).toEqual([handle(4, 7, "k1")]);
  });

  it("merges the source positions of every old subtask", () => {
    expect(restoreSpecFor(metadata, ["src"], { start: 0, end: 7 }, "source/0").sources).toEqual({ src: { p0: 10, p1: 20, p2: 30 } });
  });

  it("starts a subtask at the lowest watermark its keyed operators' old subtasks had, and at none when one had none", () => {
    const withWatermarks = (w0: number | null, w1: number | null) =>
      buildMetadata({
        plan,
        checkpointId: 13,
        attempt: 3,
        isSavepoint: false,
        triggerMs: 100,
        completedMs: 150,
        acks: [ack("count/0", { keyed: { count: handle(0, 3, "k0") }, watermarkMs: w0 }), ack("count/1", { keyed: { count: handle(4, 7, "k1") }, watermarkMs: w1 }), ack("source/0", { sources: { src: { p0: 10 } } })],
      });
    const m = withWatermarks(900, 700);
    expect(m.operators.count.watermarks).toEqual({ "count/0": 900, "count/1": 700 });
    expect(restoreSpecFor(m, ["count", "out"], { start: 0, end: 3 }, "count/0").watermarkMs).toBe(900);
    // Rescaled: its keys come from both old subtasks, so it starts where the slower one was.
    expect(restoreSpecFor(m, ["count", "out"], { start: 0, end: 7 }).watermarkMs).toBe(700);
    expect(restoreSpecFor(withWatermarks(900, null), ["count"], { start: 0, end: 7 }).watermarkMs).toBeUndefined();
    // No event time anywhere: the metadata has no watermarks, and a subtask starts at none, as from older metadata.
    expect(withWatermarks(null, null).operators.count.watermarks).toBeUndefined();
    expect(restoreSpecFor(metadata, ["count"], { start: 0, end: 7 }).watermarkMs).toBeUndefined();
    expect(restoreSpecFor(m, ["src"], { start: 0, end: 7 }, "source/0").watermarkMs).toBeUndefined();
  });

  it("starts a source subtask at the watermark it had sent: its own at the same parallelism, the lowest after a rescale", () => {
    const m = buildMetadata({
      plan,
      checkpointId: 14,
      attempt: 3,
      isSavepoint: false,
      triggerMs: 100,
      completedMs: 150,
      acks: [ack("source/0", { sources: { src: { p0: 10 } }, watermarkMs: 1481 }), ack("source/1", { sources: { src: { p1: 4 } }, watermarkMs: 1200 })],
    });
    expect(m.operators.src.watermarks).toEqual({ "source/0": 1481, "source/1": 1200 });
    expect(restoreSpecFor(m, ["src"], { start: 0, end: 7 }, "source/0", { index: 0, parallelism: m.operators.src.parallelism }).watermarkMs).toBe(1481);
    expect(restoreSpecFor(m, ["src"], { start: 0, end: 7 }, "source/0", { index: 0, parallelism: 3 }).watermarkMs).toBe(1200);
  });

  it("leaves out operators the checkpoint does not have", () => {
    const s = restoreSpecFor(metadata, ["new-op"], { start: 0, end: 7 });
    expect(s).toEqual({ checkpointId: 12, keyed: {}, sources: {}, channelState: null });
  });
});

describe("async I/O records in flight", () => {
  /** An async operator "lookup" of 3 subtasks between the source and the counter. */
  const asyncPlan: ExecutionPlan = { ...plan, vertices: [...plan.vertices, vertex("lookup", 3, ["lookup"])] };
  const m = buildMetadata({
    plan: asyncPlan,
    checkpointId: 4,
    attempt: 1,
    isSavepoint: false,
    triggerMs: 0,
    completedMs: 1,
    acks: [ack("lookup/0", { inFlight: { lookup: ["a", "b"] } }), ack("lookup/1", { inFlight: { lookup: [] } }), ack("lookup/2", { inFlight: { lookup: ["c", "d", "e"] } })],
  });
  const at = (index: number, parallelism: number) => restoreSpecFor(m, ["lookup"], { start: 0, end: 7 }, `lookup/${index}`, { index, parallelism }).inFlight?.lookup ?? [];

  it("are kept per subtask, leaving out subtasks that had none", () => {
    expect(m.operators.lookup.inFlight).toEqual({ "lookup/0": ["a", "b"], "lookup/2": ["c", "d", "e"] });
  });

  it("go back to the same subtask at the same parallelism", () => {
    expect([0, 1, 2].map((i) => at(i, 3))).toEqual([["a", "b"], [], ["c", "d", "e"]]);
    expect("inFlight" in restoreSpecFor(m, ["lookup"], { start: 0, end: 7 }, "lookup/1", { index: 1, parallelism: 3 })).toBe(false);
  });

  it("are dealt round-robin when rescaled: every record to exactly one subtask", () => {
    expect([0, 1].map((i) => at(i, 2))).toEqual([["a", "c", "e"], ["b", "d"]]);
    expect([0, 1, 2, 3, 4, 5].map((i) => at(i, 6))).toEqual([["a"], ["b"], ["c"], ["d"], ["e"], []]);
    expect(at(0, 1)).toEqual(["a", "b", "c", "d", "e"]);
  });
});

describe("broadcast state", () => {
  const rules = { rules: [["/a", 3]] as [string, unknown][] };
  const more = { rules: [["/a", 3], ["/b", 4]] as [string, unknown][] };
  const bplan: ExecutionPlan = { ...plan, vertices: [vertex("rules", 3, ["apply"], { keyed: true })] };
  const build = (acks: SubtaskAck[]) => buildMetadata({ plan: bplan, checkpointId: 4, attempt: 1, isSavepoint: false, triggerMs: 0, completedMs: 1, acks });

  it("is kept once per operator, from subtask 0, and a copy of another subtask only where it differs", () => {
    const aligned = build([ack("rules/0", { broadcast: { apply: rules } }), ack("rules/1"), ack("rules/2")]);
    expect(aligned.operators.apply.broadcast).toEqual({ state: rules });
    const unaligned = build([ack("rules/0", { broadcast: { apply: rules } }), ack("rules/1", { broadcast: { apply: rules } }), ack("rules/2", { broadcast: { apply: more } })]);
    expect(unaligned.operators.apply.broadcast).toEqual({ state: rules, own: { "rules/2": more } });
    const emptyFirst = build([ack("rules/0"), ack("rules/1", { broadcast: { apply: more } }), ack("rules/2")]);
    expect(emptyFirst.operators.apply.broadcast).toEqual({ own: { "rules/1": more } });
  });

  it("goes back to every subtask: its own differing copy at the same parallelism, the operator's copy otherwise and after a rescale", () => {
    const m = build([ack("rules/0", { broadcast: { apply: rules } }), ack("rules/1"), ack("rules/2", { broadcast: { apply: more } })]);
    const spec = (subtask: string, index: number, parallelism: number) => restoreSpecFor(m, ["apply"], { start: 0, end: 7 }, subtask, { index, parallelism }).broadcast;
    expect(spec("rules/0", 0, 3)).toEqual({ apply: rules });
    expect(spec("rules/1", 1, 3)).toEqual({ apply: rules });
    expect(spec("rules/2", 2, 3)).toEqual({ apply: more });
    for (let i = 0; i < 5; i++) expect(spec(`rules/${i}`, i, 5)).toEqual({ apply: rules });
    expect(restoreSpecFor(build([ack("rules/0"), ack("rules/1")]), ["apply"], { start: 0, end: 7 }, "rules/0", { index: 0, parallelism: 3 }).broadcast).toBeUndefined();
  });
});
