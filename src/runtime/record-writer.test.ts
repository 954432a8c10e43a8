import { describe, expect, it } from "vitest";
import { keyGroupOf, subtaskForKeyGroup } from "../graph/key-groups.js";
import type { ChannelMessage, DeliveryResult } from "./messages.js";
import { decodeBatch, KeySelectorError } from "./batch-encoding.js";
import { ChannelError, type OutputEdge, RecordWriter, type SendFn } from "./record-writer.js";

interface Sent {
  vertex: string;
  index: number;
  message: ChannelMessage;
  /** Settles the send: the receiver's answer, or an error thrown by the RPC. */
  answer(result: DeliveryResult | Error): void;
  settled: boolean;
}

/** A SendFn whose calls stay in flight until the test answers them (or answers "accepted" at once). */
function fakeSend(auto?: DeliveryResult | ((s: Sent) => DeliveryResult | Error)) {
  const sent: Sent[] = [];
  const send: SendFn = (vertex, index, message) =>
    new Promise<DeliveryResult>((resolve, reject) => {
      const s: Sent = {
        vertex,
        index,
        message,
        settled: false,
        answer: (r) => {
          s.settled = true;
          if (r instanceof Error) reject(r);
          else resolve(r);
        },
      };
      sent.push(s);
      if (auto !== undefined) s.answer(typeof auto === "function" ? auto(s) : auto);
    });
  const inFlight = (vertex: string, index: number) => sent.filter((s) => s.vertex === vertex && s.index === index && !s.settled).length;
  return { send, sent, inFlight };
}

const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** The values a batch carries (keys do not travel). */
const records = (m: ChannelMessage): unknown[] => (m.kind === "batch" ? decodeBatch(m.records) : []);

const sender = { vertex: "src", index: 0, attempt: 3 };

function writer(edges: OutputEdge[], send: SendFn, options: { batchSize?: number; credits?: number; index?: number; now?: () => number } = {}) {
  return new RecordWriter(
    edges,
    { ...sender, index: options.index ?? 0 },
    128,
    send,
    options.batchSize ?? 100,
    options.now ?? (() => 0),
    options.credits,
  );
}

async function expectChannelError(p: Promise<unknown>, stale: boolean, ...patterns: string[]): Promise<void> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ChannelError);
  expect((e as ChannelError).stale).toBe(stale);
  for (const pattern of patterns) expect((e as ChannelError).message).toContain(pattern);
}

describe("RecordWriter batching", () => {
  it("buffers records per target and sends one batch per target on flush", async () => {
    const f = fakeSend("accepted");
    const w = writer([{ vertex: "map", parallelism: 2, partitioner: "rebalance" }], f.send);
    for (const v of ["a", "b", "c", "d", "e"]) w.emit(v);
    expect(f.sent).toEqual([]);
    await w.flush();
    expect(f.sent.map((s) => [s.vertex, s.index, s.message])).toEqual([
      ["map", 0, { kind: "batch", count: 3, records: JSON.stringify(["a", "c", "e"]), attempt: 3, channel: "src/0", seq: 1 }],
      ["map", 1, { kind: "batch", count: 2, records: JSON.stringify(["b", "d"]), attempt: 3, channel: "src/0", seq: 1 }],
    ]);
    expect(w.emitted).toBe(5);
  });

  it("sends records' event times beside them, only in batches where some record has one", async () => {
    const f = fakeSend("accepted");
    const w = writer([{ vertex: "map", parallelism: 1, partitioner: "forward" }], f.send, { batchSize: 2 });
    w.emit("a", 10);
    w.emit("b");
    w.emit("c");
    await w.flush();
    expect(f.sent.map((s) => (s.message as { timestamps?: string }).timestamps)).toEqual(["[10,null]", undefined]);
  });

  it("sends where records were read only on edges that carry origins, in batches where some record has one; preloaded output has none", async () => {
    const f = fakeSend("accepted");
    let origin: { partition: string; offset: number } | null = null;
    const w = new RecordWriter(
      [
        { vertex: "lookup", parallelism: 1, partitioner: "forward", origins: true },
        { vertex: "log", parallelism: 1, partitioner: "forward" },
      ],
      sender,
      128,
      f.send,
      2,
      () => 0,
      undefined,
      () => origin,
    );
    w.preload("lookup/0", ["replayed"]);
    origin = { partition: "clicks/1", offset: 7 };
    w.emit("a");
    origin = null;
    w.emit("b");
    w.emit("c");
    await w.flush();
    const batches = (vertex: string) => f.sent.filter((s) => s.vertex === vertex).map((s) => [records(s.message), (s.message as { origins?: string }).origins]);
    expect(batches("lookup")).toEqual([
      [["replayed", "a"], JSON.stringify([null, ["clicks/1", 7]])],
      [["b", "c"], undefined],
    ]);
    expect(batches("log")).toEqual([
      [["a", "b"], undefined],
      [["c"], undefined],
    ]);
  });

  it("keeps event times of buffered output for in-flight data, and of output preloaded on restore", async () => {
    const f = fakeSend("accepted");
    const w = writer([{ vertex: "map", parallelism: 1, partitioner: "forward" }], f.send);
    w.emit("a", 5);
    w.emit("b");
    expect(w.bufferedOutput()).toEqual({ records: { "map/0": ["a", "b"] }, timestamps: { "map/0": [5, null] } });
    const restored = writer([{ vertex: "map", parallelism: 1, partitioner: "forward" }], f.send);
    restored.preload("map/0", ["a", "b"], [5, null]);
    restored.emit("c", 7);
    await restored.flush();
    expect((f.sent[0].message as { timestamps?: string }).timestamps).toBe("[5,null,7]");
  });

  it("sends nothing when nothing is buffered", async () => {
    const f = fakeSend("accepted");
    const w = writer([{ vertex: "map", parallelism: 2, partitioner: "rebalance" }], f.send);
    await w.flush();
    w.emit(1);
    await w.flush();
    await w.flush();
    expect(f.sent).toHaveLength(1);
    expect(f.sent[0].index).toBe(0);
  });

  it("keeps a forward edge on the sender's own index", async () => {
    const f = fakeSend("accepted");
    const w = writer([{ vertex: "map", parallelism: 3, partitioner: "forward" }], f.send, { index: 2 });
    for (let i = 0; i < 4; i++) w.emit(i);
    await w.flush();
    expect(f.sent.map((s) => [s.index, s.message.channel, records(s.message)])).toEqual([[2, "src/2", [0, 1, 2, 3]]]);
  });

  it("hash-partitions by the edge's key selector and ships values only, whose key the receiver computes again", async () => {
    const f = fakeSend("accepted");
    const keySelector = (v: unknown) => (v as { user: string }).user;
    const w = writer([{ vertex: "count", parallelism: 4, partitioner: "hash", keySelector }], f.send);
    const users = Array.from({ length: 40 }, (_, i) => `user-${i % 13}`);
    for (const user of users) w.emit({ user });
    await w.flush();
    let total = 0;
    for (const s of f.sent) {
      for (const value of records(s.message)) {
        expect(value).toEqual({ user: expect.any(String) });
        expect(s.index).toBe(subtaskForKeyGroup(128, 4, keyGroupOf(keySelector(value), 128)));
        total++;
      }
    }
    expect(total).toBe(40);
    expect(new Set(f.sent.map((s) => s.index)).size).toBeGreaterThan(1);
  });

  it("fails on a hash edge without key selector", () => {
    const f = fakeSend("accepted");
    const w = writer([{ vertex: "count", parallelism: 2, partitioner: "hash" }], f.send);
    expect(() => w.emit("x")).toThrow("hash partitioning needs a key");
  });

  it("refuses, at the first record, a key that is not a string or a finite number, naming the operator, the input and why", async () => {
    class Point {
      constructor(readonly x: number) {}
    }
    const cases: [unknown, RegExp][] = [
      [new Date(Date.UTC(2026, 0, 2)), /returned a Date, which is not a key/],
      [new Point(3), /returned an instance of class Point/],
      [new Map([["a", 1]]), /returned a Map/],
      [{ id: "a" }, /returned an object/],
      [undefined, /returned undefined/],
      [NaN, /returned NaN/],
      [null, /returned null/],
    ];
    for (const [key, why] of cases) {
      const f = fakeSend("accepted");
      const edge: OutputEdge = { vertex: "count", parallelism: 2, partitioner: "hash", keySelector: () => key as string, operator: 'operator "count" (uid "count-per-user")' };
      const w = writer([edge], f.send);
      let thrown: unknown;
      try {
        w.emit({ user: "ann", n: 1 });
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(KeySelectorError);
      const message = (thrown as Error).message;
      expect(message).toMatch(/^keyBy into operator "count" \(uid "count-per-user"\): /);
      expect(message).toMatch(why);
      expect(message).toContain(`the key selector's input was {"user":"ann","n":1}`);
      expect(message).toContain("same string or finite number for a record and for its JSON round trip");
      // Nothing was buffered, so nothing is sent.
      await w.flush();
      expect(f.sent).toEqual([]);
    }
  });

  it("names the operator and the input when the key selector throws", () => {
    const f = fakeSend("accepted");
    const w = writer([{ vertex: "count", parallelism: 2, partitioner: "hash", keySelector: (v) => (v as { at: Date }).at.toISOString(), operator: 'operator "count"' }], f.send);
    expect(() => w.emit({ at: "2026-01-02T00:00:00.000Z" })).toThrow(
      /^keyBy into operator "count": the key selector threw TypeError: .*toISOString.*; the key selector's input was \{"at":"2026-01-02T00:00:00.000Z"\}/,
    );
  });

  it("takes number keys and routes them as the receiver will", async () => {
    const f = fakeSend("accepted");
    const keySelector = (v: unknown) => (v as { n: number }).n;
    const w = writer([{ vertex: "count", parallelism: 3, partitioner: "hash", keySelector }], f.send);
    for (let n = -5; n < 20; n++) w.emit({ n: n / 2 });
    await w.flush();
    for (const s of f.sent) for (const v of records(s.message)) expect(s.index).toBe(subtaskForKeyGroup(128, 3, keyGroupOf(keySelector(v), 128)));
    expect(f.sent.flatMap((s) => records(s.message))).toHaveLength(25);
  });

  it("sends every record on every output edge", async () => {
    const f = fakeSend("accepted");
    const w = writer(
      [
        { vertex: "left", parallelism: 1, partitioner: "rebalance" },
        { vertex: "right", parallelism: 1, partitioner: "forward" },
      ],
      f.send,
    );
    expect(w.hasOutputs).toBe(true);
    w.emit(1);
    w.emit(2);
    await w.flush();
    expect(f.sent.map((s) => [s.vertex, records(s.message)])).toEqual([
      ["left", [1, 2]],
      ["right", [1, 2]],
    ]);
    expect(w.emitted).toBe(2);
  });

  it("has no outputs without edges, and flushing is a no-op", async () => {
    const f = fakeSend("accepted");
    const w = writer([], f.send);
    expect(w.hasOutputs).toBe(false);
    w.emit(1);
    await w.flush();
    await w.endOfInput();
    expect(f.sent).toEqual([]);
  });

  it("splits a target's buffer into batches of at most batchSize, in order, with consecutive seqs", async () => {
    const f = fakeSend("accepted");
    const w = writer([{ vertex: "map", parallelism: 1, partitioner: "forward" }], f.send, { batchSize: 2 });
    for (let i = 0; i < 5; i++) w.emit(i);
    await w.flush();
    expect(f.sent.map((s) => [s.message.seq, s.message.kind === "batch" && s.message.count, records(s.message)])).toEqual([
      [1, 2, [0, 1]],
      [2, 2, [2, 3]],
      [3, 1, [4]],
    ]);
    w.emit(5);
    await w.flush();
    expect(f.sent[3].message.seq).toBe(4);
  });
});

describe("RecordWriter credits", () => {
  it("keeps at most `credits` sends in flight per channel and waits for the oldest", async () => {
    const f = fakeSend();
    let nowMs = 1000;
    const w = writer([{ vertex: "map", parallelism: 1, partitioner: "forward" }], f.send, { batchSize: 1, credits: 2, now: () => nowMs });
    for (let i = 0; i < 5; i++) w.emit(i);
    let flushed = false;
    const flush = w.flush().then(() => (flushed = true));
    await settle();
    expect(f.sent).toHaveLength(2);
    expect(flushed).toBe(false);

    nowMs += 30;
    f.sent[0].answer("accepted");
    await settle();
    expect(f.sent).toHaveLength(3);
    expect(f.inFlight("map", 0)).toBe(2);

    f.sent[1].answer("accepted");
    await settle();
    expect(f.sent).toHaveLength(4);
    f.sent[2].answer("accepted");
    await settle();
    expect(f.sent).toHaveLength(5);
    await flush;
    expect(flushed).toBe(true);
    // flush waited for credits, not for the last two deliveries.
    expect(f.inFlight("map", 0)).toBe(2);
    expect(f.sent.map((s) => s.message.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(w.backpressuredMs).toBe(30);
  });

  it("counts credits per channel", async () => {
    const f = fakeSend();
    const w = writer([{ vertex: "map", parallelism: 3, partitioner: "rebalance" }], f.send, { credits: 1 });
    for (let i = 0; i < 3; i++) w.emit(i);
    await w.flush(); // one batch per channel: no channel is out of credits
    expect(f.sent.map((s) => s.index)).toEqual([0, 1, 2]);
    expect([0, 1, 2].map((i) => f.inFlight("map", i))).toEqual([1, 1, 1]);
    expect(w.backpressuredMs).toBe(0);
  });

  it("defaults to 4 credits", async () => {
    const f = fakeSend();
    const w = writer([{ vertex: "map", parallelism: 1, partitioner: "forward" }], f.send, { batchSize: 1 });
    for (let i = 0; i < 6; i++) w.emit(i);
    void w.flush().catch(() => undefined);
    await settle();
    expect(f.sent).toHaveLength(4);
    f.sent[0].answer("accepted");
    await settle();
    expect(f.sent).toHaveLength(5);
  });

  it("drain waits until every message was taken", async () => {
    const f = fakeSend();
    const w = writer([{ vertex: "map", parallelism: 2, partitioner: "rebalance" }], f.send);
    w.emit("a");
    w.emit("b");
    await w.flush();
    let drained = false;
    const d = w.drain().then(() => (drained = true));
    await settle();
    expect(drained).toBe(false);
    f.sent[1].answer("accepted");
    await settle();
    expect(drained).toBe(false);
    f.sent[0].answer("duplicate");
    await d;
    expect(drained).toBe(true);
  });
});

describe("RecordWriter failures", () => {
  for (const [result, stale] of [
    ["stale-attempt", true],
    ["gap", false],
    ["closed", false],
    ["not-deployed", false],
  ] as const) {
    it(`surfaces a "${result}" answer as a ChannelError (stale: ${stale}) on the next flush`, async () => {
      const f = fakeSend(result);
      const w = writer([{ vertex: "map", parallelism: 2, partitioner: "rebalance" }], f.send);
      w.emit("a");
      await w.flush(); // the answer arrives after the send was started
      await settle();
      w.emit("b");
      await expectChannelError(w.flush(), stale, "channel to map/0 refused message 1", result);
      // Nothing more was sent once the failure was known.
      expect(f.sent).toHaveLength(1);
      await expectChannelError(w.drain(), stale, result);
    });
  }

  it("accepts duplicate as delivered", async () => {
    const f = fakeSend("duplicate");
    const w = writer([{ vertex: "map", parallelism: 1, partitioner: "forward" }], f.send);
    w.emit("a");
    await w.flush();
    await w.drain();
    w.emit("b");
    await w.flush();
    expect(f.sent).toHaveLength(2);
  });

  it("surfaces a thrown RPC error as a ChannelError that is not stale", async () => {
    const f = fakeSend(() => new Error("connection reset"));
    const w = writer([{ vertex: "map", parallelism: 1, partitioner: "forward" }], f.send);
    w.emit("a");
    await w.flush();
    await settle();
    await expectChannelError(w.flush(), false, "channel to map/0 failed: connection reset");
  });

  it("fails a flush that is waiting for credits when a message is refused", async () => {
    const f = fakeSend();
    const w = writer([{ vertex: "map", parallelism: 1, partitioner: "forward" }], f.send, { batchSize: 1, credits: 1 });
    w.emit("a");
    w.emit("b");
    const flush = w.flush();
    await settle();
    expect(f.sent).toHaveLength(1);
    f.sent[0].answer("gap");
    await expectChannelError(flush, false, "refused message 1: gap");
    expect(f.sent).toHaveLength(1);
  });

  it("keeps the first failure", async () => {
    const f = fakeSend();
    const w = writer([{ vertex: "map", parallelism: 2, partitioner: "rebalance" }], f.send);
    w.emit("a");
    w.emit("b");
    await w.flush();
    f.sent[1].answer("stale-attempt");
    await settle();
    f.sent[0].answer(new Error("later"));
    await settle();
    await expectChannelError(w.flush(), true, "channel to map/1 refused message 1: stale-attempt");
  });
});

describe("RecordWriter endOfInput", () => {
  it("flushes buffered records, then sends end on every channel with the next seq", async () => {
    const f = fakeSend("accepted");
    const w = writer(
      [
        { vertex: "map", parallelism: 2, partitioner: "rebalance" },
        { vertex: "sink", parallelism: 1, partitioner: "rebalance" },
      ],
      f.send,
      { index: 1 },
    );
    w.emit("a");
    await w.endOfInput();
    expect(f.sent.map((s) => [s.vertex, s.index, s.message.kind, s.message.seq, s.message.channel, s.message.attempt])).toEqual([
      ["map", 1, "batch", 1, "src/1", 3],
      ["sink", 0, "batch", 1, "src/1", 3],
      ["map", 0, "end", 1, "src/1", 3],
      ["map", 1, "end", 2, "src/1", 3],
      ["sink", 0, "end", 2, "src/1", 3],
    ]);
    expect(f.sent[2].message).toEqual({ kind: "end", attempt: 3, channel: "src/1", seq: 1 });
  });

  it("reports a failure instead of ending", async () => {
    const f = fakeSend("closed");
    const w = writer([{ vertex: "map", parallelism: 1, partitioner: "forward" }], f.send);
    w.emit("a");
    await w.flush();
    await settle();
    await expectChannelError(w.endOfInput(), false, "closed");
    expect(f.sent.map((s) => s.message.kind)).toEqual(["batch"]);
  });
});

describe("RecordWriter.broadcastBarrierUntil (aligned barrier with a timeout)", () => {
  const kinds = (sent: Sent[]) => sent.map((s) => (s.message.kind === "barrier" ? `barrier${s.message.priority ? "!" : ""}` : records(s.message).join(",")));

  it("sends buffered records, then the barrier, in order, when credits come before the deadline", async () => {
    const f = fakeSend("accepted");
    const w = writer([{ vertex: "map", parallelism: 1, partitioner: "forward" }], f.send, { batchSize: 1 });
    w.emit("a");
    w.emit("b");
    const { overtaken, done } = w.broadcastBarrierUntil(5, 0, new Promise(() => undefined));
    expect(await overtaken).toBeNull();
    await done;
    expect(kinds(f.sent)).toEqual(["a", "b", "barrier"]);
  });

  it("at the deadline, the barrier overtakes what waits for credits; that is answered as in-flight data and still sent after it", async () => {
    const f = fakeSend();
    const w = writer([{ vertex: "map", parallelism: 1, partitioner: "forward" }], f.send, { batchSize: 1, credits: 1 });
    w.emit("a");
    w.emit("b");
    w.emit("c");
    let fire!: () => void;
    const { overtaken, done } = w.broadcastBarrierUntil(5, 0, new Promise<void>((resolve) => (fire = resolve)));
    await settle();
    // "a" is out and holds the only credit; "b" and "c" wait.
    expect(kinds(f.sent)).toEqual(["a"]);
    fire();
    expect(await overtaken).toEqual({ records: { "map/0": ["b", "c"] }, timestamps: {} });
    expect(kinds(f.sent)).toEqual(["a", "barrier!"]);
    for (let i = 0; i < 4; i++) {
      for (const s of f.sent) if (!s.settled) s.answer("accepted");
      await settle();
    }
    await done;
    // Sequence numbers follow the send order: the receiver sees the barrier before "b" and "c".
    expect(kinds(f.sent)).toEqual(["a", "barrier!", "b", "c"]);
    expect(f.sent.map((s) => s.message.seq)).toEqual([1, 2, 3, 4]);
  });

  it("sends an unaligned barrier only on the channels that have not had the aligned one", async () => {
    const f = fakeSend();
    const w = writer([{ vertex: "sum", parallelism: 2, partitioner: "rebalance" }], f.send, { batchSize: 10, credits: 1 });
    let fire!: () => void;
    const { overtaken, done } = w.broadcastBarrierUntil(9, 0, new Promise<void>((resolve) => (fire = resolve)));
    await settle();
    // Nothing buffered: the barrier went to sum/0 and waits there; sum/1's barrier is sent too (credits free).
    f.sent[0].answer("accepted");
    await settle();
    expect(f.sent.map((s) => `${s.index}:${s.message.kind}`)).toEqual(["0:barrier", "1:barrier"]);
    fire();
    // Every channel had its barrier: the checkpoint went out aligned.
    expect(await overtaken).toBeNull();
    f.sent[1].answer("accepted");
    await done;
    expect(f.sent.filter((s) => s.message.kind === "barrier" && s.message.priority)).toHaveLength(0);
  });
});

describe("RecordWriter watermarks", () => {
  it("sends buffered records first, then the watermark on every channel, in sequence", async () => {
    const f = fakeSend("accepted");
    const w = writer([{ vertex: "map", parallelism: 2, partitioner: "rebalance" }], f.send);
    w.emit("a");
    await w.broadcastWatermark(1000, false);
    await w.broadcastWatermark(null, true);
    expect(f.sent.map((s) => [s.index, s.message.seq, s.message.kind === "watermark" ? [s.message.watermarkMs, s.message.idle] : records(s.message)])).toEqual([
      [0, 1, ["a"]],
      [0, 2, [1000, false]],
      [1, 1, [1000, false]],
      [0, 3, [null, true]],
      [1, 2, [null, true]],
    ]);
  });

  it("sends a forward edge's watermark on its one channel only", async () => {
    const f = fakeSend("accepted");
    const w = writer([{ vertex: "map", parallelism: 3, partitioner: "forward" }], f.send, { index: 1 });
    await w.broadcastWatermark(5, false);
    expect(f.sent.map((s) => [s.vertex, s.index, s.message.kind])).toEqual([["map", 1, "watermark"]]);
  });

  it("waits for a credit like any other message", async () => {
    const f = fakeSend();
    const w = writer([{ vertex: "map", parallelism: 1, partitioner: "forward" }], f.send, { credits: 1 });
    w.emit("a");
    await w.flush();
    const sending = w.broadcastWatermark(7, false);
    await settle();
    expect(f.sent.map((s) => s.message.kind)).toEqual(["batch"]);
    f.sent[0].answer("accepted");
    await sending;
    expect(f.sent.map((s) => s.message.kind)).toEqual(["batch", "watermark"]);
  });
});

describe("RecordWriter side outputs", () => {
  const edges: OutputEdge[] = [
    { vertex: "main", parallelism: 1, partitioner: "forward" },
    { vertex: "late", parallelism: 1, partitioner: "forward", tag: "late" },
    { vertex: "late-copy", parallelism: 2, partitioner: "rebalance", tag: "late" },
  ];

  it("sends the main output only on untagged edges, and a side output only on the edges of its tag, with event times", async () => {
    const f = fakeSend("accepted");
    const w = writer(edges, f.send);
    w.emit("m", 1);
    w.emitSide("late", "l", 2);
    w.emitSide("nobody-reads-this", "x", 3);
    await w.flush();
    expect(f.sent.map((s) => [s.vertex, records(s.message), (s.message as { timestamps?: string }).timestamps])).toEqual([
      ["main", ["m"], "[1]"],
      ["late", ["l"], "[2]"],
      ["late-copy", ["l"], "[2]"],
    ]);
    expect(w.emitted).toBe(2);
  });

  it("sends barriers, watermarks and end-of-input on every edge, main and side", async () => {
    const f = fakeSend("accepted");
    const w = writer(edges, f.send);
    await w.broadcastWatermark(10, false);
    await w.broadcastBarrier(1, 0, false);
    await w.endOfInput();
    for (const kind of ["watermark", "barrier", "end"]) {
      expect(f.sent.filter((s) => s.message.kind === kind).map((s) => `${s.vertex}/${s.index}`)).toEqual(["main/0", "late/0", "late-copy/0", "late-copy/1"]);
    }
  });
});

describe("RecordWriter lanes (one upstream vertex feeding two inputs of one vertex)", () => {
  it("sends each edge's records, sequence numbers, barriers and in-flight data on its own lane", async () => {
    const f = fakeSend("accepted");
    const w = writer(
      [
        { vertex: "join", parallelism: 1, partitioner: "forward" },
        { vertex: "join", parallelism: 1, partitioner: "forward", tag: "late", lane: 1 },
      ],
      f.send,
    );
    w.emit("a");
    w.emitSide("late", "b");
    w.emit("c");
    expect(w.bufferedRecords()).toEqual({ "join/0": ["a", "c"], "join/0#1": ["b"] });
    await w.broadcastBarrier(7, 0, false);
    expect(f.sent.map((s) => [s.message.channel, s.message.seq, s.message.kind, records(s.message)])).toEqual([
      ["src/0", 1, "batch", ["a", "c"]],
      ["src/0#1", 1, "batch", ["b"]],
      ["src/0", 2, "barrier", []],
      ["src/0#1", 2, "barrier", []],
    ]);
    w.preload("join/0#1", ["restored"]);
    await w.flush();
    expect(f.sent.at(-1)!.message).toMatchObject({ channel: "src/0#1", seq: 3 });
    expect(records(f.sent.at(-1)!.message)).toEqual(["restored"]);
  });
});
