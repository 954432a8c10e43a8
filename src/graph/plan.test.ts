import { describe, expect, it } from "vitest";
import { type Click, count, counter, fakeSink, fakeSource } from "../../test/support/plan-fixtures.js";
import { job } from "../api/job.js";
import type { KeyedProcessFunction, ProcessFunction } from "../api/types.js";
import { generatorSource } from "../connectors/sources/generator-source.js";
import { JobDefinitionError } from "../errors.js";
import { MAX_PARALLELISM_LIMIT } from "./key-groups.js";
import { type ExecutionPlan, buildPlan, isStateful, nodeLabel, verticesCarryingOrigins } from "./plan.js";
import { AsyncDataStream } from "../api/async-data-stream.js";

const passThrough: ProcessFunction<Click, Click> = { processElement: (v, _ctx, out) => out.collect(v) };

/** Expects `fn` to throw a JobDefinitionError whose message matches every pattern. */
function expectJobError(fn: () => unknown, ...patterns: (RegExp | string)[]): JobDefinitionError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(JobDefinitionError);
  const err = caught as JobDefinitionError;
  expect(err.code).toBe("invalid_job");
  expect(err.status).toBe(400);
  for (const p of patterns) expect(err.message).toMatch(p);
  return err;
}

const vertex = (plan: ExecutionPlan, id: string) => {
  const v = plan.vertices.find((x) => x.id === id);
  if (!v) throw new Error(`no vertex ${id} in ${plan.vertices.map((x) => x.id).join(", ")}`);
  return v;
};

describe("buildPlan: chaining", () => {
  it("chains a forward pipeline of equal parallelism into one vertex", () => {
    const j = job("pipe");
    j.source(fakeSource(2), { uid: "in" })
      .map((c) => ({ ...c, n: c.n + 1 }))
      .filter((c) => c.n > 0)
      .flatMap((c) => [c, c])
      .sink(fakeSink(), { uid: "out" });
    const plan = buildPlan(j);
    expect(plan).toEqual({
      job: "pipe",
      maxParallelism: 128,
      batchSize: 1000,
      vertices: [
        {
          id: "in",
          name: "in → map#1 → filter#2 → flatMap#3 → out",
          nodes: [0, 1, 2, 3, 4],
          parallelism: 2,
          inputs: [],
          outputs: [],
          keyed: false,
          isSource: true,
          uids: ["in", "out"],
        },
      ],
    });
  });

  it("breaks the chain at keyBy with a hash edge, and chains again after the keyed operator", () => {
    const j = job("keyed");
    j.source(fakeSource(2), { uid: "in" })
      .map((c) => c)
      .keyBy((c) => c.user)
      .process(counter, { uid: "count" })
      .map((n) => n * 2)
      .sink(fakeSink(), { uid: "out" });
    const plan = buildPlan(j);
    expect(plan.vertices.map((v) => v.nodes)).toEqual([
      [0, 1],
      [2, 3, 4],
    ]);
    const [src, counted] = plan.vertices;
    expect(src).toMatchObject({ id: "in", keyed: false, isSource: true, uids: ["in"] });
    expect(src.outputs).toEqual([{ vertex: "count", parallelism: 2, partitioner: "hash", toNode: 2, inputIndex: 0 }]);
    expect(counted).toMatchObject({ id: "count", keyed: true, isSource: false, parallelism: 2, uids: ["count", "out"] });
    expect(counted.name).toBe("count → map#3 → out");
    expect(counted.inputs).toEqual([{ vertex: "in", parallelism: 2, partitioner: "hash", inputIndex: 0 }]);
    expect(counted.outputs).toEqual([]);
  });

  it("uses a hash edge for a keyed sink, even at equal parallelism", () => {
    const j = job("keyed-sink");
    j.source(fakeSource(3), { uid: "in" })
      .keyBy((c) => c.user)
      .sink(fakeSink(), { uid: "out" });
    const plan = buildPlan(j);
    expect(plan.vertices.map((v) => v.id)).toEqual(["in", "out"]);
    expect(vertex(plan, "out")).toMatchObject({ keyed: true, parallelism: 3 });
    expect(vertex(plan, "out").inputs[0].partitioner).toBe("hash");
  });

  it("gives a rebalance edge and a new vertex where the parallelism changes", () => {
    const j = job("rescale");
    j.source(fakeSource(2), { uid: "in" })
      .map((c) => c, { parallelism: 4 })
      .filter(() => true)
      .sink(fakeSink(), { uid: "out", parallelism: 1 });
    const plan = buildPlan(j);
    expect(plan.vertices.map((v) => [v.id, v.nodes, v.parallelism])).toEqual([
      ["in", [0], 2],
      ["map-1", [1, 2], 4],
      ["out", [3], 1],
    ]);
    expect(vertex(plan, "in").outputs).toEqual([{ vertex: "map-1", parallelism: 4, partitioner: "rebalance", toNode: 1, inputIndex: 0 }]);
    expect(vertex(plan, "map-1").inputs).toEqual([{ vertex: "in", parallelism: 2, partitioner: "rebalance", inputIndex: 0 }]);
    expect(vertex(plan, "out").inputs).toEqual([{ vertex: "map-1", parallelism: 4, partitioner: "rebalance", inputIndex: 0 }]);
  });

  it("does not chain an operator whose input feeds several consumers", () => {
    const j = job("fan-out");
    const s = j.source(fakeSource(2), { uid: "in" });
    s.map((c) => c.user).sink(fakeSink(), { uid: "users" });
    s.map((c) => c.n).sink(fakeSink(), { uid: "numbers" });
    const plan = buildPlan(j);
    expect(plan.vertices.map((v) => [v.id, v.nodes])).toEqual([
      ["in", [0]],
      ["map-1", [1, 2]],
      ["map-3", [3, 4]],
    ]);
    expect(vertex(plan, "in").outputs).toEqual([
      { vertex: "map-1", parallelism: 2, partitioner: "forward", toNode: 1, inputIndex: 0 },
      { vertex: "map-3", parallelism: 2, partitioner: "forward", toNode: 3, inputIndex: 0 },
    ]);
    expect(vertex(plan, "map-1").name).toBe("map#1 → users");
    expect(vertex(plan, "map-1").uids).toEqual(["users"]);
  });

  it("does not chain a union, and numbers its inputs", () => {
    const j = job("union");
    const a = j.source(fakeSource(2), { uid: "a" });
    const b = j.source(fakeSource(3), { uid: "b" });
    j.union(a, b)
      .map((c) => c, { uid: "merge" })
      .sink(fakeSink(), { uid: "out" });
    const plan = buildPlan(j);
    expect(plan.vertices.map((v) => [v.id, v.nodes, v.parallelism])).toEqual([
      ["a", [0], 2],
      ["b", [1], 3],
      ["merge", [2, 3], 3],
    ]);
    expect(vertex(plan, "merge").inputs).toEqual([
      { vertex: "a", parallelism: 2, partitioner: "rebalance", inputIndex: 0 },
      { vertex: "b", parallelism: 3, partitioner: "forward", inputIndex: 1 },
    ]);
    expect(vertex(plan, "a").outputs).toEqual([{ vertex: "merge", parallelism: 3, partitioner: "rebalance", toNode: 2, inputIndex: 0 }]);
    expect(vertex(plan, "b").outputs).toEqual([{ vertex: "merge", parallelism: 3, partitioner: "forward", toNode: 2, inputIndex: 1 }]);
  });

  it("keys every input of a keyed union", () => {
    const j = job("keyed-union");
    const a = j.source(fakeSource(1), { uid: "a" });
    const b = j.source(fakeSource(1), { uid: "b" });
    j.union(a, b)
      .keyBy((c) => c.user)
      .process(counter, { uid: "count", parallelism: 4 })
      .sink(fakeSink(), { uid: "out" });
    const plan = buildPlan(j);
    expect(vertex(plan, "count").keyed).toBe(true);
    expect(vertex(plan, "count").inputs.map((i) => [i.vertex, i.partitioner, i.inputIndex])).toEqual([
      ["a", "hash", 0],
      ["b", "hash", 1],
    ]);
    expect(vertex(plan, "count").nodes).toEqual([2, 3]);
  });

  it("lists vertices in topological order, every input before its consumer", () => {
    const j = job("topo");
    const a = j.source(fakeSource(1), { uid: "a" });
    const b = j.source(fakeSource(2), { uid: "b" }).map((c) => c, { parallelism: 3 });
    const u = j.union(a, b).keyBy((c) => c.user).process(counter, { uid: "count" });
    u.map((n) => n, { parallelism: 1 }).sink(fakeSink(), { uid: "out1" });
    u.sink(fakeSink(), { uid: "out2" });
    const plan = buildPlan(j);
    const seen = new Set<string>();
    for (const v of plan.vertices) {
      for (const input of v.inputs) expect(seen.has(input.vertex)).toBe(true);
      seen.add(v.id);
    }
    expect(plan.vertices[0].isSource).toBe(true);
    // Every node is in exactly one vertex.
    expect(plan.vertices.flatMap((v) => v.nodes).sort((x, y) => x - y)).toEqual(j.nodes.map((n) => n.id));
  });

  it("is plain JSON", () => {
    const j = job("json");
    j.source(fakeSource(2), { uid: "in" })
      .keyBy((c) => c.user)
      .process(counter, { uid: "count" })
      .sink(fakeSink(), { uid: "out" });
    const plan = buildPlan(j);
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
  });

  it("works with the generator source", () => {
    const j = job("gen");
    j.source(generatorSource({ partitions: 3, count: 10, make: (i) => ({ user: `u${i}`, n: i }) }), { uid: "gen" })
      .keyBy((c) => c.user)
      .process(counter, { uid: "count" })
      .sink(fakeSink(), { uid: "out" });
    const plan = buildPlan(j);
    expect(plan.vertices.map((v) => [v.id, v.parallelism])).toEqual([
      ["gen", 3],
      ["count", 3],
    ]);
  });
});

describe("buildPlan: vertex ids", () => {
  it("names a vertex after its head's uid, else after its head's kind and node id", () => {
    const j = job("ids");
    j.source(fakeSource(1), { uid: "in" })
      .map((c) => c, { parallelism: 2 })
      .map((c) => c, { uid: "second", parallelism: 3 })
      .sink(fakeSink(), { uid: "out", parallelism: 1 });
    expect(buildPlan(j).vertices.map((v) => v.id)).toEqual(["in", "map-1", "second", "out"]);
  });

  it("keeps ids unique when a uid collides with a generated id", () => {
    const j = job("clash");
    j.source(fakeSource(1), { uid: "in" })
      .map((c) => c, { parallelism: 2 }) // vertex "map-1"
      .keyBy((c) => c.user)
      .process(counter, { uid: "map-1" }) // its uid is taken as a vertex id
      .sink(fakeSink(), { uid: "out", parallelism: 1 });
    const plan = buildPlan(j);
    const ids = plan.vertices.map((v) => v.id);
    // keyBy adds no node: the process is node 2.
    expect(ids).toEqual(["in", "map-1", "map-1-2", "out"]);
    expect(new Set(ids).size).toBe(ids.length);
    expect(vertex(plan, "map-1-2").inputs[0].vertex).toBe("map-1");
    expect(vertex(plan, "map-1").outputs[0].vertex).toBe("map-1-2");
  });

  it("uses the display name in the vertex name when one is given", () => {
    const j = job("names");
    j.source(fakeSource(1), { uid: "in", name: "Clicks" })
      .map((c) => c, { name: "Parse" })
      .sink(fakeSink(), { uid: "out" });
    const plan = buildPlan(j);
    expect(plan.vertices[0]).toMatchObject({ id: "in", name: "Clicks → Parse → out" });
  });
});

describe("buildPlan: parallelism", () => {
  it("takes a source's default parallelism, and the input's for the operators after it", () => {
    const j = job("p");
    j.source(fakeSource(5), { uid: "in" })
      .keyBy((c) => c.user)
      .process(counter, { uid: "count" })
      .sink(fakeSink(), { uid: "out" });
    expect(buildPlan(j).vertices.map((v) => v.parallelism)).toEqual([5, 5]);
  });

  it("falls back to the job's parallelism, then to 1", () => {
    const withJobDefault = job("p1", { parallelism: 3 });
    withJobDefault.source(fakeSource(), { uid: "in" }).sink(fakeSink(), { uid: "out" });
    expect(buildPlan(withJobDefault).vertices.map((v) => v.parallelism)).toEqual([3]);

    const bare = job("p2");
    bare.source(fakeSource(), { uid: "in" }).sink(fakeSink(), { uid: "out" });
    expect(buildPlan(bare).vertices.map((v) => v.parallelism)).toEqual([1]);
  });

  it("prefers a source's default parallelism over the job's", () => {
    const j = job("p3", { parallelism: 3 });
    j.source(fakeSource(2), { uid: "in" }).sink(fakeSink(), { uid: "out" });
    expect(buildPlan(j).vertices[0].parallelism).toBe(2);
  });

  it("prefers an operator's own parallelism over any default", () => {
    const j = job("p4", { parallelism: 3 });
    j.source(fakeSource(2), { uid: "in", parallelism: 6 }).sink(fakeSink(), { uid: "out" });
    expect(buildPlan(j).vertices.map((v) => v.parallelism)).toEqual([6]);
  });

  it("applies a numeric override to every operator, over their own settings", () => {
    const j = job("p5");
    j.source(fakeSource(2), { uid: "in" })
      .map((c) => c, { parallelism: 4 })
      .keyBy((c) => c.user)
      .process(counter, { uid: "count", parallelism: 8 })
      .sink(fakeSink(), { uid: "out", parallelism: 1 });
    const plan = buildPlan(j, 3);
    expect(plan.vertices.map((v) => [v.id, v.nodes, v.parallelism])).toEqual([
      ["in", [0, 1], 3],
      ["count", [2, 3], 3],
    ]);
  });

  it("applies a per-uid override and lets the rest inherit", () => {
    const j = job("p6");
    j.source(fakeSource(2), { uid: "in" })
      .map((c) => c)
      .keyBy((c) => c.user)
      .process(counter, { uid: "count", parallelism: 4 })
      .map((n) => n)
      .sink(fakeSink(), { uid: "out" });
    const plan = buildPlan(j, { in: 5, count: 7 });
    expect(plan.vertices.map((v) => [v.id, v.nodes, v.parallelism])).toEqual([
      ["in", [0, 1], 5],
      ["count", [2, 3, 4], 7],
    ]);
    // Only the named operators move; the others keep their settings.
    expect(buildPlan(j, { out: 1 }).vertices.map((v) => [v.id, v.parallelism])).toEqual([
      ["in", 2],
      ["count", 4],
      ["out", 1],
    ]);
  });

  it("refuses a per-uid override naming unknown uids", () => {
    const j = job("p7");
    j.source(fakeSource(2), { uid: "in" }).sink(fakeSink(), { uid: "out" });
    expectJobError(() => buildPlan(j, { in: 2, nope: 3, other: 1 }), "parallelism names unknown uids: nope, other");
  });

  it("refuses a parallelism above maxParallelism, naming the operator", () => {
    const j = job("p8", { maxParallelism: 4 });
    j.source(fakeSource(2), { uid: "in" })
      .keyBy((c) => c.user)
      .process(counter, { uid: "count", parallelism: 5 })
      .sink(fakeSink(), { uid: "out" });
    expectJobError(() => buildPlan(j), 'operator "count"', "1..maxParallelism (4)", "got 5");
    expectJobError(() => buildPlan(j, 9), 'operator "in"', "got 9");
    expectJobError(() => buildPlan(j, { count: 2, out: 6 }), 'operator "out"', "got 6");
    expect(buildPlan(j, 4).vertices.map((v) => v.parallelism)).toEqual([4, 4]);
  });

  it("refuses a source whose default parallelism exceeds maxParallelism", () => {
    const j = job("p9", { maxParallelism: 2 });
    j.source(fakeSource(3), { uid: "in" }).sink(fakeSink(), { uid: "out" });
    expectJobError(() => buildPlan(j), 'operator "in"', "got 3");
  });

  it("refuses a parallelism that is not a positive integer", () => {
    for (const p of [0, -1, 1.5, Number.NaN]) {
      const j = job("p10");
      j.source(fakeSource(1), { uid: "in" })
        .map((c) => c, { parallelism: p })
        .sink(fakeSink(), { uid: "out" });
      expectJobError(() => buildPlan(j), 'operator "map#1"', "parallelism must be an integer");
    }
    const j = job("p11");
    j.source(fakeSource(1), { uid: "in" }).sink(fakeSink(), { uid: "out" });
    expectJobError(() => buildPlan(j, 0), "got 0");
    expectJobError(() => buildPlan(j, { in: 2.5 }), 'operator "in"', "got 2.5");
  });
});

describe("buildPlan: job options", () => {
  it("keeps maxParallelism and batchSize in the plan", () => {
    const j = job("opts", { maxParallelism: 16, batchSize: 250 });
    j.source(fakeSource(1), { uid: "in" }).sink(fakeSink(), { uid: "out" });
    expect(buildPlan(j)).toMatchObject({ job: "opts", maxParallelism: 16, batchSize: 250 });
  });

  it("accepts maxParallelism at both ends of its range", () => {
    for (const maxParallelism of [1, MAX_PARALLELISM_LIMIT]) {
      const j = job("bounds", { maxParallelism });
      j.source(fakeSource(1), { uid: "in" }).sink(fakeSink(), { uid: "out" });
      expect(buildPlan(j).maxParallelism).toBe(maxParallelism);
    }
  });

  it("refuses a bad maxParallelism", () => {
    for (const maxParallelism of [0, -4, 1.5, MAX_PARALLELISM_LIMIT + 1, Number.NaN]) {
      const j = job("bad-max", { maxParallelism });
      j.source(fakeSource(1), { uid: "in" }).sink(fakeSink(), { uid: "out" });
      expectJobError(() => buildPlan(j), 'job "bad-max"', `maxParallelism must be an integer in 1..${MAX_PARALLELISM_LIMIT}`);
    }
  });

  it("refuses a bad batchSize", () => {
    for (const batchSize of [0, 1.5, 100_001]) {
      const j = job("bad-batch", { batchSize });
      j.source(fakeSource(1), { uid: "in" }).sink(fakeSink(), { uid: "out" });
      expectJobError(() => buildPlan(j), 'job "bad-batch"', "batchSize must be an integer in 1..100000");
    }
  });
});

describe("buildPlan: uids", () => {
  it("refuses a source without uid, naming it", () => {
    const j = job("no-uid");
    j.source(fakeSource(1)).sink(fakeSink(), { uid: "out" });
    expectJobError(() => buildPlan(j), 'source operator "source#0" of job "no-uid" keeps state and needs a uid');
  });

  it("names an operator by its display name when it has one", () => {
    const j = job("no-uid");
    j.source(fakeSource(1), { name: "Clicks reader" }).sink(fakeSink(), { uid: "out" });
    expectJobError(() => buildPlan(j), 'source operator "Clicks reader"', "needs a uid");
  });

  it("refuses a keyed process without uid", () => {
    const stateless: KeyedProcessFunction<string, Click, Click> = { processElement: (v, _c, out) => out.collect(v) };
    const j = job("no-uid");
    j.source(fakeSource(1), { uid: "in" })
      .keyBy((c) => c.user)
      .process(stateless)
      .sink(fakeSink(), { uid: "out" });
    expectJobError(() => buildPlan(j), 'process operator "process#1"', "needs a uid");
  });

  it("refuses a sink without uid, keyed or not", () => {
    const plain = job("no-uid");
    plain.source(fakeSource(1), { uid: "in" }).map((c) => c).sink(fakeSink());
    expectJobError(() => buildPlan(plain), 'sink operator "sink#2"', "needs a uid");

    const keyed = job("no-uid");
    keyed.source(fakeSource(1), { uid: "in" }).keyBy((c) => c.user).sink(fakeSink());
    expectJobError(() => buildPlan(keyed), 'sink operator "sink#1"', "needs a uid");
  });

  it("refuses a non-keyed process with declared state and no uid", () => {
    const withState: ProcessFunction<Click, Click> = { state: [count], processElement: () => {} };
    const j = job("no-uid");
    j.source(fakeSource(1), { uid: "in" }).process(withState).sink(fakeSink(), { uid: "out" });
    expectJobError(() => buildPlan(j), 'process operator "process#1"', "needs a uid");
  });

  it("lets stateless operators go without uid", () => {
    const j = job("stateless");
    j.source(fakeSource(1), { uid: "in" })
      .map((c) => c)
      .filter(() => true)
      .flatMap((c) => [c])
      .process(passThrough)
      .sink(fakeSink(), { uid: "out" });
    expect(buildPlan(j).vertices[0].uids).toEqual(["in", "out"]);
  });

  it("refuses a uid used twice, naming both operators", () => {
    const j = job("dup");
    j.source(fakeSource(1), { uid: "x" })
      .map((c) => c)
      .sink(fakeSink(), { uid: "x" });
    expectJobError(() => buildPlan(j), 'uid "x" is used by two operators (source#0 and sink#2) of job "dup"');
  });

  it("refuses a uid with characters outside [A-Za-z0-9_.-]", () => {
    for (const uid of ["has space", "", "a/b", "x".repeat(65)]) {
      const j = job("bad-uid");
      j.source(fakeSource(1), { uid }).sink(fakeSink(), { uid: "out" });
      expectJobError(() => buildPlan(j), `uid ${JSON.stringify(uid)} must be 1-64 characters`);
    }
  });
});

describe("buildPlan: graph shape", () => {
  it("refuses a job without source", () => {
    expectJobError(() => buildPlan(job("empty")), 'job "empty" has no source');
  });

  it("refuses keyed state on a non-keyed process", () => {
    const withState: ProcessFunction<Click, Click> = { state: [count], processElement: () => {} };
    const j = job("not-keyed");
    j.source(fakeSource(1), { uid: "in" })
      .process(withState, { uid: "count" })
      .sink(fakeSink(), { uid: "out" });
    expectJobError(() => buildPlan(j), 'operator "count" declares keyed state but its input is not keyed', "keyBy()");
  });

  it("forbids keyBy on a keyed stream", () => {
    const keyed = job("twice")
      .source(fakeSource(1), { uid: "in" })
      .keyBy((c) => c.user);
    expect(() => keyed.keyBy()).toThrow(TypeError);
    expect(() => keyed.keyBy()).toThrow("keyBy on a keyed stream: process or sink it first");
  });

  it("refuses an operator that mixes keyed and non-keyed inputs", () => {
    // The DSL cannot union a keyed stream with another; a hand-built node can.
    const j = job("mixed");
    const a = j.source(fakeSource(1), { uid: "a" });
    const b = j.source(fakeSource(1), { uid: "b" });
    const mixed = j.add({
      kind: "process",
      options: { uid: "count" },
      inputs: [{ from: a.nodeId, keySelector: (v) => (v as Click).user }, { from: b.nodeId }],
      process: counter,
    });
    j.add({ kind: "sink", options: { uid: "out" }, inputs: [{ from: mixed }], sink: fakeSink() });
    expectJobError(() => buildPlan(j), 'operator "count" mixes keyed and non-keyed inputs');
  });

  it("refuses an empty union", () => {
    const j = job("empty-union");
    j.source(fakeSource(1), { uid: "in" }).sink(fakeSink(), { uid: "out" });
    j.union<Click>().map((c) => c);
    expectJobError(() => buildPlan(j), 'job "empty-union"', "union() needs at least one stream");
  });

  it("refuses a union that reads one stream twice", () => {
    const j = job("twice");
    const s = j.source(fakeSource(1), { uid: "in" });
    j.union(s, s).sink(fakeSink(), { uid: "out" });
    expectJobError(() => buildPlan(j), 'operator "out" reads the same stream twice');
  });

  it("refuses a stream of another job", () => {
    const other = job("other");
    const foreign = other
      .source(fakeSource(1), { uid: "a" })
      .map((c) => c)
      .map((c) => c);
    const j = job("mine");
    j.source(fakeSource(1), { uid: "in" }).sink(fakeSink(), { uid: "out" });
    j.union(foreign).sink(fakeSink(), { uid: "stolen" });
    expectJobError(() => buildPlan(j), 'union() got a stream of job "other"');
  });

  // Regression: a foreign stream with a smaller node id used to be wired to this job's node of that id.
  it("refuses a stream of another job whatever its node id", () => {
    const other = job("other");
    const foreign = other.source(fakeSource(1), { uid: "a" }); // node 0 of "other"
    const j = job("mine");
    j.source(fakeSource(1), { uid: "in" }).map((c) => c);
    j.union(foreign).sink(fakeSink(), { uid: "stolen" }); // reads node 0 of "mine"
    expectJobError(() => buildPlan(j), "streams cannot cross jobs");
  });
});

describe("verticesCarryingOrigins", () => {
  it("is every vertex an async operator heads and every vertex that feeds one, never a source or one downstream of it", () => {
    const j = job("enrich");
    const keyedPass: KeyedProcessFunction<string, Click, Click> = { processElement: (v, _ctx, out) => out.collect(v) };
    const parsed = j
      .source(fakeSource(1), { uid: "in", parallelism: 2 })
      .keyBy((c) => c.user)
      .process(keyedPass, { uid: "count", parallelism: 3 });
    const enriched = AsyncDataStream.unorderedWait(parsed, async (c: Click) => [c], { uid: "lookup", timeoutMs: 100, parallelism: 4 });
    enriched.keyBy((c) => c.user).process(counter, { uid: "after", parallelism: 2 }).sink(fakeSink(), { uid: "out" });
    // A branch that does not lead to the async operator.
    parsed.sink(fakeSink(), { uid: "side", parallelism: 5 });
    const plan = buildPlan(j);
    const ids = (uid: string) => plan.vertices.find((v) => v.uids.includes(uid))!.id;
    expect([...verticesCarryingOrigins(plan, j.nodes)].sort()).toEqual([ids("count"), ids("lookup")].sort());
  });

  it("is empty for a job without an async operator", () => {
    const j = job("plain");
    j.source(fakeSource(1), { uid: "in" })
      .keyBy((c) => c.user)
      .process(counter, { uid: "count", parallelism: 2 })
      .sink(fakeSink(), { uid: "out" });
    expect(verticesCarryingOrigins(buildPlan(j), j.nodes).size).toBe(0);
  });
});

describe("isStateful and nodeLabel", () => {
  it("tell which nodes keep state and how to name them", () => {
    const withState: ProcessFunction<Click, Click> = { state: [count], processElement: () => {} };
    const j = job("labels");
    const s = j.source(fakeSource(1), { uid: "in" });
    s.map((c) => c, { name: "Parse" })
      .process(passThrough)
      .process(withState, { uid: "p" })
      .keyBy((c) => c.user)
      .process(counter, { uid: "count" })
      .sink(fakeSink(), { uid: "out" });
    expect(j.nodes.map((n) => [n.kind, isStateful(n), nodeLabel(n)])).toEqual([
      ["source", true, "in"],
      ["map", false, "Parse"],
      ["process", false, "process#2"],
      ["process", true, "p"],
      ["process", true, "count"],
      ["sink", true, "out"],
    ]);
  });
});
