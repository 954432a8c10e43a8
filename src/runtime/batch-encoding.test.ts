import { describe, expect, it } from "vitest";
import { type Click, counter, fakeSink, fakeSource } from "../../test/support/plan-fixtures.js";
import { job } from "../api/job.js";
import type { LogicalNode } from "../api/job.js";
import { keyGroupOf, keyGroupRange, inRange } from "../graph/key-groups.js";
import { buildPlan } from "../graph/plan.js";
import {
  CoInputKeyTypes,
  checkReceivedKey,
  decodeBatch,
  decodeChannelState,
  encodeBatch,
  encodeChannelState,
  fromInFlight,
  fromInFlightBatch,
  inFlightWatermark,
  inFlightBatch,
  inputKeys,
  keyedOperatorName,
  KeySelectorError,
  previewInput,
  receivedKeyError,
  selectorThrewError,
} from "./batch-encoding.js";
import type { ChannelMessage, DeliveryResult } from "./messages.js";
import { RecordWriter } from "./record-writer.js";

/** Two sources unioned and keyed, then a non-keyed map at another parallelism and a forward sink. */
function unionJob() {
  const j = job("keys", { maxParallelism: 16 });
  const a = j.source(fakeSource(), { uid: "a", parallelism: 2 });
  const b = j.source(fakeSource(), { uid: "b", parallelism: 1 });
  const byUser = (c: Click) => c.user;
  j.union(a, b)
    .keyBy(byUser)
    .process(counter, { uid: "count", parallelism: 3 })
    .map((n) => n + 1, { uid: "plus", parallelism: 2 })
    .process({ processElement: (v, _ctx, out) => out.collect(v) }, { uid: "id", parallelism: 2 })
    .sink(fakeSink(), { uid: "out", parallelism: 2 });
  return { j, plan: buildPlan(j), byUser };
}

describe("inputKeys", () => {
  it("gives each input channel the key selector of its edge, and none on non-keyed edges", () => {
    const { j, plan, byUser } = unionJob();
    const vertex = (uid: string) => plan.vertices.find((v) => v.uids.includes(uid))!;
    const countKeys = inputKeys(j, vertex("count"), 1);
    expect([...countKeys.keys()]).toEqual([`${vertex("a").id}/0`, `${vertex("a").id}/1`, `${vertex("b").id}/0`]);
    for (const k of countKeys.values()) expect(k).toBe(byUser);
    const plusKeys = inputKeys(j, vertex("plus"), 0);
    expect([...plusKeys.entries()]).toEqual([0, 1, 2].map((i) => [`${vertex("count").id}/${i}`, undefined]));
  });

  it("agrees with the selector every sender partitions by, on every edge of the plan", () => {
    const { j, plan } = unionJob();
    for (const sender of plan.vertices) {
      for (const o of sender.outputs) {
        const receiver = plan.vertices.find((v) => v.id === o.vertex)!;
        for (let s = 0; s < sender.parallelism; s++) {
          for (let r = 0; r < receiver.parallelism; r++) {
            const keys = inputKeys(j, receiver, r);
            const channel = `${sender.id}/${s}`;
            // A forward edge connects s → s only.
            if (!keys.has(channel)) continue;
            expect(keys.get(channel)).toBe(j.nodes[o.toNode].inputs[o.inputIndex].keySelector);
          }
        }
      }
    }
  });

  it("recomputes, from each value of a batch, the key the sender partitioned it by", async () => {
    const { j, plan, byUser } = unionJob();
    const a = plan.vertices.find((v) => v.uids.includes("a"))!;
    const countVertex = plan.vertices.find((v) => v.uids.includes("count"))!;
    const sent: { index: number; message: ChannelMessage }[] = [];
    const send = async (_vertex: string, index: number, message: ChannelMessage): Promise<DeliveryResult> => {
      sent.push({ index, message });
      return "accepted";
    };
    const o = a.outputs[0];
    const writer = new RecordWriter(
      [{ vertex: o.vertex, parallelism: o.parallelism, partitioner: o.partitioner, keySelector: j.nodes[o.toNode].inputs[o.inputIndex].keySelector }],
      { vertex: a.id, index: 1, attempt: 1 },
      plan.maxParallelism,
      send,
      100,
      () => 0,
    );
    for (let i = 0; i < 200; i++) writer.emit({ user: `user-${i % 37}`, n: i } satisfies Click);
    await writer.flush();
    let received = 0;
    for (const { index, message } of sent) {
      if (message.kind !== "batch") continue;
      const keyOf = inputKeys(j, countVertex, index).get(message.channel)!;
      const range = keyGroupRange(plan.maxParallelism, countVertex.parallelism, index);
      for (const value of decodeBatch(message.records) as Click[]) {
        expect(keyOf(value)).toBe(byUser(value));
        expect(inRange(range, keyGroupOf(keyOf(value), plan.maxParallelism))).toBe(true);
        received++;
      }
    }
    expect(received).toBe(200);
  });
});

/** A job whose keyed operator reads `at`, a Date on the sending side and its ISO text once a batch crossed a channel. */
function dateJob(keyBy: (e: { user: string; at: Date }) => string) {
  const j = job("dates", { maxParallelism: 16 });
  j.source(fakeSource<{ user: string; at: Date }>(), { uid: "in", parallelism: 1 })
    .keyBy(keyBy)
    .process(counter as never, { uid: "count-per-day", name: "count per day", parallelism: 4 })
    .sink(fakeSink(), { uid: "out", parallelism: 4 });
  const plan = buildPlan(j);
  const source = plan.vertices.find((v) => v.uids.includes("in"))!;
  const keyed = plan.vertices.find((v) => v.uids.includes("count-per-day"))!;
  return { j, plan, source, keyed, head: j.nodes[keyed.nodes[0]] };
}

/** Sends `values` from the job's source through a real RecordWriter; the batches each keyed subtask received. */
async function sendAll(d: ReturnType<typeof dateJob>, values: unknown[]): Promise<{ index: number; message: ChannelMessage }[]> {
  const sent: { index: number; message: ChannelMessage }[] = [];
  const send = async (_vertex: string, index: number, message: ChannelMessage): Promise<DeliveryResult> => {
    sent.push({ index, message });
    return "accepted";
  };
  const o = d.source.outputs[0];
  const node = d.j.nodes[o.toNode];
  const writer = new RecordWriter(
    [{ vertex: o.vertex, parallelism: o.parallelism, partitioner: o.partitioner, keySelector: node.inputs[o.inputIndex].keySelector, operator: keyedOperatorName(node) }],
    { vertex: d.source.id, index: 0, attempt: 1 },
    d.plan.maxParallelism,
    send,
    1000,
    () => 0,
  );
  for (const v of values) writer.emit(v);
  await writer.flush();
  return sent;
}

describe("keys that change across the JSON round trip", () => {
  const days = Array.from({ length: 40 }, (_, i) => ({ user: `u${i}`, at: new Date(Date.UTC(2026, 0, 1 + i)) }));

  it("are refused at the sender when the key selector returns a Date", async () => {
    const d = dateJob((e) => e.at as unknown as string);
    await expect(sendAll(d, days)).rejects.toThrow(
      /^keyBy into operator "count per day" \(uid "count-per-day"\): the key selector returned a Date, which is not a key .*; the key selector's input was \{"user":"u0","at":"2026-01-01T00:00:00.000Z"\}\./,
    );
  });

  it("are caught at the receiver when the key is a string that the round trip changes", async () => {
    // String(Date) at the sender, String(ISO text) at the receiver: both strings, different keys.
    const d = dateJob((e) => String(e.at));
    const sent = await sendAll(d, days);
    const keyOf = (index: number, channel: string) => inputKeys(d.j, d.keyed, index).get(channel)!;
    let misrouted = 0;
    for (const { index, message } of sent) {
      if (message.kind !== "batch") continue;
      const range = keyGroupRange(d.plan.maxParallelism, d.keyed.parallelism, index);
      for (const value of decodeBatch(message.records) as unknown[]) {
        const key = keyOf(index, message.channel)(value);
        try {
          checkReceivedKey(d.head, { index, parallelism: d.keyed.parallelism }, value, key, range, d.plan.maxParallelism);
        } catch (e) {
          expect(e).toBeInstanceOf(KeySelectorError);
          expect((e as Error).message).toMatch(
            new RegExp(
              `^keyBy into operator "count per day" \\(uid "count-per-day"\\): the key selector gave key "${(value as { at: string }).at}" \\(key group \\d+\\) ` +
                `for the record as subtask ${index + 1}/4 received it, but that subtask owns key groups ${range.start}\\.\\.${range.end}: the key changed across the batch's JSON round trip`,
            ),
          );
          misrouted++;
        }
      }
    }
    // Each record lands in one of 4 subtasks by its sender's key: about three in four are caught.
    expect(misrouted).toBeGreaterThan(10);
  });

  it("pass when the key is a field the round trip keeps", async () => {
    const d = dateJob((e) => e.user);
    const sent = await sendAll(d, days);
    for (const { index, message } of sent) {
      if (message.kind !== "batch") continue;
      const range = keyGroupRange(d.plan.maxParallelism, d.keyed.parallelism, index);
      const keyOf = inputKeys(d.j, d.keyed, index).get(message.channel)!;
      for (const value of decodeBatch(message.records) as unknown[]) {
        expect(() => checkReceivedKey(d.head, { index, parallelism: 4 }, value, keyOf(value), range, d.plan.maxParallelism)).not.toThrow();
      }
    }
  });
});

describe("key selector errors", () => {
  it("name the operator by name and uid, or by one when they agree", () => {
    const { head } = dateJob((e) => e.user);
    expect(keyedOperatorName(head)).toBe('operator "count per day" (uid "count-per-day")');
    expect(keyedOperatorName({ ...head, options: { uid: "c" } })).toBe('operator "c"');
    expect(keyedOperatorName({ ...head, options: { uid: "c", name: "c" } })).toBe('operator "c"');
  });

  it("show the input as JSON, cut when long, or say what it is", () => {
    expect(previewInput({ a: 1 })).toBe('{"a":1}');
    expect(previewInput(undefined)).toBe("undefined");
    expect(previewInput(1n)).toBe("a bigint");
    const long = previewInput({ s: "x".repeat(1000) });
    expect(long).toHaveLength(301);
    expect(long.endsWith("…")).toBe(true);
    const cyclic: { self?: unknown } = {};
    cyclic.self = cyclic;
    expect(previewInput(cyclic)).toBe("an object");
  });

  it("say when the receiver's key is no key, or the selector threw, after the round trip", () => {
    const received = receivedKeyError('operator "c"', { m: {} }, undefined);
    expect(received.message).toMatch(/^keyBy into operator "c": the key selector returned undefined for the record as this subtask received it: the key changed across the batch's JSON round trip/);
    expect(received.message).toContain(`the key selector's input was {"m":{}}`);
    const cause = new TypeError("e.at.getTime is not a function");
    const threw = selectorThrewError('operator "c"', { at: "2026-01-01" }, cause, true);
    expect(threw.message).toMatch(/^keyBy into operator "c": the key selector threw TypeError: e\.at\.getTime is not a function for the record as this subtask received it \(after the batch's JSON round trip\)/);
    expect(threw.cause).toBe(cause);
    expect(threw.at("partition 1 offset 7").message).toContain("(after the batch's JSON round trip), at partition 1 offset 7; the key selector's input was");
  });
});

/** Values as one JSON round trip of the whole array gives them back, which a batch's round trip must equal exactly. */
const roundTrip = (values: unknown[]): unknown[] => JSON.parse(JSON.stringify(values)) as unknown[];

/** Deterministic pseudo-random numbers for the generated batches. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("batch records text", () => {
  const clicks = (n: number) => Array.from({ length: n }, (_, i) => ({ user: `u${i % 3}`, seq: i, value: i * 1.5, tags: ["a", i], at: { ms: i } }));

  it("sends records of one shape as columns, and reads them back as a JSON round trip would", () => {
    const values = clicks(10);
    const text = encodeBatch(values);
    expect(text.startsWith('{"fields":["user","seq","value","tags","at"],"columns":[')).toBe(true);
    expect(text.length).toBeLessThan(JSON.stringify(values).length);
    const back = decodeBatch(text);
    expect(back).toStrictEqual(roundTrip(values));
    // The same fields in the same order, as JSON.parse would give them.
    expect(back.map((v) => JSON.stringify(v))).toEqual(values.map((v) => JSON.stringify(v)));
  });

  it("sends rows where columns would differ from a JSON round trip, and for short batches", () => {
    const cases: [string, unknown[]][] = [
      ["a field undefined in one record", [...clicks(5), { user: "x", seq: undefined, value: 1, tags: [], at: {} }]],
      ["a function field", clicks(5).map((c, i) => (i === 2 ? { ...c, at: () => 1 } : c))],
      ["a symbol field", clicks(5).map((c, i) => (i === 4 ? { ...c, user: Symbol("s") } : c))],
      ["a Date field (toJSON)", clicks(5).map((c) => ({ ...c, at: new Date(7) }))],
      ["an object field whose toJSON answers undefined", clicks(5).map((c) => ({ ...c, at: { toJSON: () => undefined } }))],
      ["a field missing", [...clicks(5), { user: "x", seq: 1, value: 1, tags: [] }]],
      ["a field more", [...clicks(5), { user: "x", seq: 1, value: 1, tags: [], at: {}, more: 1 }]],
      ["fields in another order", [...clicks(5), { seq: 1, user: "x", value: 1, tags: [], at: {} }]],
      ["a class instance", [...clicks(5), new (class Click { user = "x"; seq = 1; value = 1; tags = []; at = {}; })()]],
      ["a null-prototype record", [...clicks(5), Object.assign(Object.create(null) as object, { user: "x", seq: 1, value: 1, tags: [], at: {} })]],
      ["arrays", Array.from({ length: 6 }, (_, i) => [i, `${i}`])],
      ["scalars", [1, "two", null, true, 5, 6]],
      ["a __proto__ field", Array.from({ length: 6 }, () => JSON.parse('{"__proto__":{"x":1},"a":1}') as unknown)],
      ["empty objects", Array.from({ length: 6 }, () => ({}))],
      ["three records", clicks(3)],
    ];
    for (const [what, values] of cases) {
      const text = encodeBatch(values);
      expect(text, what).toBe(JSON.stringify(values));
      expect(decodeBatch(text), what).toStrictEqual(roundTrip(values));
    }
  });

  it("keeps integer-like field names, non-finite numbers, -0 and nested undefined as a JSON round trip does", () => {
    const values = Array.from({ length: 6 }, (_, i) => ({ 10: i, 2: "two", b: Number.NaN, a: -0, c: Infinity, d: { e: undefined, f: [undefined] } }));
    const text = encodeBatch(values);
    expect(text.startsWith('{"fields":["2","10","b","a","c","d"]')).toBe(true);
    expect(decodeBatch(text)).toStrictEqual(roundTrip(values));
    expect(JSON.stringify(decodeBatch(text))).toBe(JSON.stringify(values));
  });

  it("sends rows when Object.prototype has an enumerable property", () => {
    const proto = Object.prototype as Record<string, unknown>;
    proto.polluted = 1;
    try {
      const values = clicks(6);
      expect(encodeBatch(values)).toBe(JSON.stringify(values));
    } finally {
      delete proto.polluted;
    }
  });

  it("agrees with a JSON round trip over generated batches", () => {
    const random = seeded(20261207);
    const scalar = (): unknown => {
      const r = random();
      if (r < 0.3) return Math.floor(random() * 1e6) - 5e5;
      if (r < 0.5) return random() * 100;
      if (r < 0.7) return `s${Math.floor(random() * 100)}\u00e9"\\`;
      if (r < 0.8) return null;
      if (r < 0.9) return random() < 0.5;
      return r < 0.95 ? [scalar(), { n: scalar() }] : undefined;
    };
    const names = ["k", "v", "1", "x y", "é", "t"];
    let asColumns = 0;
    for (let round = 0; round < 300; round++) {
      const width = 1 + Math.floor(random() * names.length);
      const fields = names.slice(0, width);
      const n = Math.floor(random() * 12);
      const values: unknown[] = [];
      for (let i = 0; i < n; i++) {
        const o: Record<string, unknown> = {};
        for (const f of fields) if (random() > 0.02) o[f] = scalar();
        values.push(o);
      }
      const text = encodeBatch(values);
      if (text.startsWith("{")) asColumns++;
      expect(decodeBatch(text)).toStrictEqual(roundTrip(values));
      expect(JSON.stringify(decodeBatch(text))).toBe(JSON.stringify(values));
    }
    // Both forms were met.
    expect(asColumns).toBeGreaterThan(30);
    expect(asColumns).toBeLessThan(270);
  });

  it("keeps a column batch through in-flight data, with and without event times", () => {
    const records = encodeBatch(clicks(8));
    const data = { inputs: { "src/0": [records, inFlightBatch(records, "[1,2,3,4,5,6,7,8]")] }, outputs: {} };
    const back = decodeChannelState(encodeChannelState(data)).inputs["src/0"];
    expect(back.map(fromInFlight)).toEqual([
      { kind: "batch", records },
      { kind: "batch", records, timestamps: "[1,2,3,4,5,6,7,8]" },
    ]);
  });
});

describe("in-flight data", () => {
  it("stores batches and buffered output as values, and reads them back", () => {
    const data = { inputs: { "src/0": [encodeBatch([{ user: "a" }, { user: "b" }])] }, outputs: { "sink/1": [1, "two", { three: 3 }] } };
    const text = encodeChannelState(data);
    expect(JSON.parse(text).version).toBe(2);
    expect(decodeChannelState(text)).toEqual(data);
  });

  it("reads version 1, whose batches and output were [key, value] pairs, as values", () => {
    const v1 = JSON.stringify({
      version: 1,
      inputs: { "src/0": [JSON.stringify([["a", { user: "a" }], ["b", { user: "b" }]]), JSON.stringify([[null, 7]])] },
      outputs: { "sink/1": [[null, 1], ["k", { key: "k" }]] },
    });
    expect(decodeChannelState(v1)).toEqual({
      inputs: { "src/0": [encodeBatch([{ user: "a" }, { user: "b" }]), encodeBatch([7])] },
      outputs: { "sink/1": [1, { key: "k" }] },
    });
  });

  it("keeps records' event times: batches with some carry them, output gets them beside it", () => {
    const withTimes = inFlightBatch('["a","b"]', "[5,null]");
    const data = { inputs: { "src/0": ['["x"]', withTimes] }, outputs: { "map/0": ["o"] }, outputTimestamps: { "map/0": [9] } };
    const back = decodeChannelState(encodeChannelState(data));
    expect(back.inputs["src/0"].map(fromInFlightBatch)).toEqual([{ records: '["x"]' }, { records: '["a","b"]', timestamps: "[5,null]" }]);
    expect(back.outputTimestamps).toEqual({ "map/0": [9] });
    expect(JSON.parse(encodeChannelState({ inputs: {}, outputs: {} }))).not.toHaveProperty("outputTimestamps");
  });

  it("keeps the watermarks among a channel's in-flight batches, in order", () => {
    const entries = ['["x"]', inFlightWatermark(1481, false), inFlightBatch('["a"]', "[1380]"), inFlightWatermark(null, true)];
    const back = decodeChannelState(encodeChannelState({ inputs: { "src/0": entries }, outputs: {} }));
    expect(back.inputs["src/0"].map(fromInFlight)).toEqual([
      { kind: "batch", records: '["x"]' },
      { kind: "watermark", watermarkMs: 1481, idle: false },
      { kind: "batch", records: '["a"]', timestamps: "[1380]" },
      { kind: "watermark", watermarkMs: null, idle: true },
    ]);
  });

  it("refuses a version it does not know", () => {
    expect(() => decodeChannelState(JSON.stringify({ version: 3, inputs: {}, outputs: {} }))).toThrow("unknown version 3");
  });
});

describe("CoInputKeyTypes", () => {
  const node = { id: 3, kind: "process", options: { uid: "enrich" }, inputs: [] } as unknown as LogicalNode;

  it("lets keys of one type through on both inputs, whichever comes first", () => {
    const check = new CoInputKeyTypes(node);
    check.check(2, { id: "a" }, "a");
    check.check(1, { user: "b" }, "b");
    check.check(1, { user: "c" }, "c");
    expect(() => check.check(2, { id: "d" }, "d")).not.toThrow();
  });

  it("fails at the first key of another type than the other input's, naming the operator and both types", () => {
    const check = new CoInputKeyTypes(node);
    check.check(1, { user: "7" }, "7");
    expect(() => check.check(2, { id: 7 }, 7)).toThrow(KeySelectorError);
    expect(() => check.check(2, { id: 7 }, 7)).toThrow(/keyBy into operator "enrich": input 2's key selector gave a number key \(7\), input 1's gave string keys/);
  });
});
