import { describe, expect, it } from "vitest";
import { type Click, counter, fakeSink, fakeSource } from "../../test/support/plan-fixtures.js";
import { job } from "../api/job.js";
import { keyGroupOf, keyGroupRange, inRange } from "../graph/key-groups.js";
import { buildPlan } from "../graph/plan.js";
import { decodeChannelState, encodeBatch, encodeChannelState, fromInFlightBatch, inFlightBatch, inputKeys } from "./batch-encoding.js";
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
      for (const value of JSON.parse(message.records) as Click[]) {
        expect(keyOf(value)).toBe(byUser(value));
        expect(inRange(range, keyGroupOf(keyOf(value), plan.maxParallelism))).toBe(true);
        received++;
      }
    }
    expect(received).toBe(200);
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

  it("refuses a version it does not know", () => {
    expect(() => decodeChannelState(JSON.stringify({ version: 3, inputs: {}, outputs: {} }))).toThrow("unknown version 3");
  });
});
