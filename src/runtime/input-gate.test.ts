import { describe, expect, it } from "vitest";
import { InputGate, MAX_EARLY_MESSAGES } from "./input-gate.js";
import type { ChannelMessage, DeliveryResult } from "./messages.js";

const batch = (channel: string, seq: number, tag = `${channel}#${seq}`): ChannelMessage => ({
  kind: "batch",
  attempt: 1,
  channel,
  seq,
  count: 1,
  records: JSON.stringify([tag]),
});
const end = (channel: string, seq: number): ChannelMessage => ({ kind: "end", attempt: 1, channel, seq });

/** Lets every already-settled promise run its reactions. */
const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** Tracks a pending offer's outcome without awaiting it. */
function track(result: DeliveryResult | Promise<DeliveryResult>) {
  const t: { value: DeliveryResult | undefined } = { value: undefined };
  void Promise.resolve(result).then((v) => (t.value = v));
  return t;
}

const tag = (m: ChannelMessage | undefined) => (m?.kind === "batch" ? (JSON.parse(m.records)[0] as string) : m?.kind === "end" ? `${m.channel}:end` : undefined);

function drain(gate: InputGate): (string | undefined)[] {
  const out: (string | undefined)[] = [];
  for (let m = gate.poll(); m !== undefined; m = gate.poll()) out.push(tag(m));
  return out;
}

describe("InputGate sequence numbers", () => {
  it("accepts seq 1, 2, 3 in order and delivers them in order", async () => {
    const gate = new InputGate(["a/0"]);
    expect(gate.size).toBe(1);
    const results = [1, 2, 3].map((seq) => gate.offer(batch("a/0", seq)));
    for (const r of results) expect(r).toBeInstanceOf(Promise);
    expect(gate.queued()).toBe(3);
    expect(drain(gate)).toEqual(["a/0#1", "a/0#2", "a/0#3"]);
    expect(await Promise.all(results)).toEqual(["accepted", "accepted", "accepted"]);
  });

  it("answers a repeated or older sequence number with duplicate, at once, and does not queue it", () => {
    const gate = new InputGate(["a/0"]);
    void gate.offer(batch("a/0", 1));
    void gate.offer(batch("a/0", 2));
    expect(gate.offer(batch("a/0", 2, "retry"))).toBe("duplicate");
    expect(gate.offer(batch("a/0", 1, "retry"))).toBe("duplicate");
    expect(gate.offer(batch("a/0", 0, "retry"))).toBe("duplicate");
    expect(gate.queued()).toBe(2);
    expect(drain(gate)).toEqual(["a/0#1", "a/0#2"]);
    // Still a duplicate once taken.
    expect(gate.offer(batch("a/0", 2, "retry"))).toBe("duplicate");
  });

  it("holds a message that overtook an earlier one until that one arrives, then delivers both in order", async () => {
    const gate = new InputGate(["a/0"]);
    const third = track(gate.offer(batch("a/0", 3)));
    const second = track(gate.offer(batch("a/0", 2)));
    expect(gate.offer(batch("a/0", 3))).toBe("duplicate");
    expect(drain(gate)).toEqual([]);
    const first = gate.offer(batch("a/0", 1));
    expect(drain(gate)).toEqual(["a/0#1", "a/0#2", "a/0#3"]);
    expect(await first).toBe("accepted");
    await settle();
    expect(second.value).toBe("accepted");
    expect(third.value).toBe("accepted");
  });

  it("answers gap once too many messages wait for a missing one (it was lost)", async () => {
    const gate = new InputGate(["a/0"]);
    const waiting = Array.from({ length: MAX_EARLY_MESSAGES }, (_, i) => track(gate.offer(batch("a/0", i + 2))));
    expect(gate.offer(batch("a/0", MAX_EARLY_MESSAGES + 2))).toBe("gap");
    gate.close();
    await settle();
    expect(waiting.every((w) => w.value === "closed")).toBe(true);
  });

  it("numbers each channel on its own", async () => {
    const gate = new InputGate(["a/0", "a/1"]);
    void gate.offer(batch("a/0", 1));
    void gate.offer(batch("a/0", 2));
    // a/1 has had nothing: its 2 waits for its 1, whatever a/0 received.
    const early = track(gate.offer(batch("a/1", 2)));
    expect(gate.offer(batch("a/1", 1))).toBeInstanceOf(Promise);
    expect(drain(gate)).toEqual(["a/0#1", "a/1#1", "a/0#2", "a/1#2"]);
    await settle();
    expect(early.value).toBe("accepted");
  });

  it("answers not-deployed for a channel it does not have", () => {
    const gate = new InputGate(["a/0"]);
    expect(gate.offer(batch("b/0", 1))).toBe("not-deployed");
    expect(gate.queued()).toBe(0);
  });
});

describe("InputGate delivery", () => {
  it("takes from channels round-robin, skipping empty ones", () => {
    const gate = new InputGate(["a/0", "a/1", "b/0"]);
    for (let s = 1; s <= 3; s++) void gate.offer(batch("a/0", s));
    void gate.offer(batch("a/1", 1));
    for (let s = 1; s <= 2; s++) void gate.offer(batch("b/0", s));
    expect(drain(gate)).toEqual(["a/0#1", "a/1#1", "b/0#1", "a/0#2", "b/0#2", "a/0#3"]);
  });

  it("does not let a busy channel starve the others", () => {
    const gate = new InputGate(["busy", "quiet"]);
    for (let s = 1; s <= 10; s++) void gate.offer(batch("busy", s));
    expect(tag(gate.poll())).toBe("busy#1");
    // A message arriving later on the quiet channel is next, not after the backlog.
    void gate.offer(batch("quiet", 1));
    expect(tag(gate.poll())).toBe("quiet#1");
    expect(tag(gate.poll())).toBe("busy#2");
  });

  it("answers undefined when nothing is queued", () => {
    const gate = new InputGate(["a/0"]);
    expect(gate.poll()).toBeUndefined();
    expect(new InputGate([]).poll()).toBeUndefined();
  });

  it("resolves a sender's call only when the consumer takes its message", async () => {
    const gate = new InputGate(["a/0"]);
    const first = track(gate.offer(batch("a/0", 1)));
    const second = track(gate.offer(batch("a/0", 2)));
    await settle();
    expect(first.value).toBeUndefined();
    expect(second.value).toBeUndefined();

    expect(tag(gate.poll())).toBe("a/0#1");
    await settle();
    expect(first.value).toBe("accepted");
    expect(second.value).toBeUndefined();

    expect(tag(gate.poll())).toBe("a/0#2");
    await settle();
    expect(second.value).toBe("accepted");
  });

  it("waitForInput resolves at once when a message is ready, else on the next offer", async () => {
    const gate = new InputGate(["a/0"]);
    let woken = false;
    void gate.waitForInput().then(() => (woken = true));
    await settle();
    expect(woken).toBe(false);
    void gate.offer(batch("a/0", 1));
    await settle();
    expect(woken).toBe(true);
    // Now a message is ready: no waiting.
    await expect(gate.waitForInput()).resolves.toBeUndefined();
  });
});

describe("InputGate blocking", () => {
  it("skips a blocked channel until unblockAll", () => {
    const gate = new InputGate(["a/0", "a/1"]);
    void gate.offer(batch("a/0", 1));
    void gate.offer(batch("a/0", 2));
    void gate.offer(batch("a/1", 1));
    gate.block("a/0");
    expect(drain(gate)).toEqual(["a/1#1"]);
    expect(gate.queued()).toBe(2);
    gate.unblockAll();
    expect(drain(gate)).toEqual(["a/0#1", "a/0#2"]);
  });

  it("still accepts messages on a blocked channel", async () => {
    const gate = new InputGate(["a/0"]);
    gate.block("a/0");
    const r = track(gate.offer(batch("a/0", 1)));
    expect(gate.queued()).toBe(1);
    expect(gate.poll()).toBeUndefined();
    await settle();
    expect(r.value).toBeUndefined();
    gate.unblockAll();
    expect(tag(gate.poll())).toBe("a/0#1");
    await settle();
    expect(r.value).toBe("accepted");
  });

  it("a consumer waiting while only blocked channels hold messages wakes on unblockAll", async () => {
    const gate = new InputGate(["a/0", "a/1"]);
    gate.block("a/0");
    void gate.offer(batch("a/0", 1));
    let woken = false;
    void gate.waitForInput().then(() => (woken = true));
    await settle();
    expect(woken).toBe(false);
    gate.unblockAll();
    await settle();
    expect(woken).toBe(true);
    expect(tag(gate.poll())).toBe("a/0#1");
  });

  it("ignores block of an unknown channel", () => {
    const gate = new InputGate(["a/0"]);
    gate.block("nope");
    void gate.offer(batch("a/0", 1));
    expect(tag(gate.poll())).toBe("a/0#1");
  });
});

describe("InputGate end of input", () => {
  it("has ended only when every channel's end was taken", () => {
    const gate = new InputGate(["a/0", "a/1"]);
    void gate.offer(batch("a/0", 1));
    void gate.offer(end("a/0", 2));
    expect(gate.allEnded()).toBe(false);
    expect(drain(gate)).toEqual(["a/0#1", "a/0:end"]);
    expect(gate.allEnded()).toBe(false);
    void gate.offer(end("a/1", 1));
    // Offered but not yet taken.
    expect(gate.allEnded()).toBe(false);
    expect(drain(gate)).toEqual(["a/1:end"]);
    expect(gate.allEnded()).toBe(true);
  });

  it("never reports the end of a gate without channels", () => {
    expect(new InputGate([]).allEnded()).toBe(false);
  });
});

describe("InputGate close", () => {
  it("releases every waiting sender with closed and refuses further messages", async () => {
    const gate = new InputGate(["a/0", "a/1"]);
    const waiting = [gate.offer(batch("a/0", 1)), gate.offer(batch("a/0", 2)), gate.offer(batch("a/1", 1))];
    gate.close();
    expect(await Promise.all(waiting)).toEqual(["closed", "closed", "closed"]);
    expect(gate.queued()).toBe(0);
    expect(gate.poll()).toBeUndefined();
    expect(gate.offer(batch("a/0", 3))).toBe("closed");
    expect(gate.offer(batch("nope/0", 1))).toBe("closed");
  });

  it("does not change the outcome of messages already taken", async () => {
    const gate = new InputGate(["a/0"]);
    const taken = gate.offer(batch("a/0", 1));
    const pending = gate.offer(batch("a/0", 2));
    gate.poll();
    gate.close();
    expect(await taken).toBe("accepted");
    expect(await pending).toBe("closed");
  });

  it("wakes a waiting consumer, and later waits return at once", async () => {
    const gate = new InputGate(["a/0"]);
    let woken = false;
    void gate.waitForInput().then(() => (woken = true));
    await settle();
    expect(woken).toBe(false);
    gate.close();
    await settle();
    expect(woken).toBe(true);
    await expect(gate.waitForInput()).resolves.toBeUndefined();
  });
});

describe("InputGate.takeBarrier (an aligned checkpoint turning unaligned)", () => {
  const barrier = (channel: string, seq: number, checkpointId: number): ChannelMessage => ({ kind: "barrier", attempt: 1, channel, seq, checkpointId, triggerMs: 0, isSavepoint: false });

  it("takes a queued barrier out, answers the batches before it and leaves those after it queued", async () => {
    const gate = new InputGate(["a"]);
    gate.offer(batch("a", 1));
    gate.offer(batch("a", 2));
    const b = track(gate.offer(barrier("a", 3, 7)));
    gate.offer(batch("a", 4));
    const before = gate.takeBarrier("a", 7);
    expect(before?.map(tag)).toEqual(["a#1", "a#2"]);
    await settle();
    // The barrier's sender gets its credit back.
    expect(b.value).toBe("accepted");
    expect(drain(gate)).toEqual(["a#1", "a#2", "a#4"]);
  });

  it("answers undefined when the barrier has not arrived, or for another checkpoint", () => {
    const gate = new InputGate(["a", "b"]);
    gate.offer(batch("a", 1));
    gate.offer(barrier("a", 2, 7));
    expect(gate.takeBarrier("b", 7)).toBeUndefined();
    expect(gate.takeBarrier("a", 8)).toBeUndefined();
    expect(gate.takeBarrier("c", 7)).toBeUndefined();
    expect(gate.queued()).toBe(2);
  });

  it("hasBarrier answers whether takeBarrier would find the barrier", () => {
    const gate = new InputGate(["a", "b"]);
    gate.offer(batch("a", 1));
    gate.offer(barrier("a", 2, 7));
    expect(gate.hasBarrier("a", 7)).toBe(true);
    expect(gate.hasBarrier("a", 8)).toBe(false);
    expect(gate.hasBarrier("b", 7)).toBe(false);
    expect(gate.hasBarrier("c", 7)).toBe(false);
    gate.takeBarrier("a", 7);
    expect(gate.hasBarrier("a", 7)).toBe(false);
  });
});

describe("InputGate in-flight data of unaligned checkpoints", () => {
  const barrier = (channel: string, seq: number, checkpointId: number): ChannelMessage => ({ kind: "barrier", attempt: 1, channel, seq, checkpointId, triggerMs: 0, isSavepoint: false });

  it("queuedBatches answers one channel's queued batches, without barriers or end, and takes nothing", () => {
    const gate = new InputGate(["a", "b"]);
    gate.offer(batch("a", 1));
    gate.offer(barrier("a", 2, 3));
    gate.offer(batch("a", 3));
    gate.offer(end("a", 4));
    expect(gate.queuedBatches("a").map(tag)).toEqual(["a#1", "a#3"]);
    expect(gate.queuedBatches("b")).toEqual([]);
    expect(gate.queuedBatches("nope")).toEqual([]);
    expect(gate.queued()).toBe(4);
  });

  it("records the batches that arrive on a channel between startRecording and stopRecording, and only batches", () => {
    const gate = new InputGate(["a", "b"]);
    gate.offer(batch("a", 1));
    gate.startRecording("a");
    gate.offer(batch("a", 2));
    gate.offer(batch("b", 1));
    gate.offer(barrier("a", 3, 5));
    gate.offer(batch("a", 4));
    expect(gate.stopRecording("a").map(tag)).toEqual(["a#2", "a#4"]);
    gate.offer(batch("a", 5));
    expect(gate.stopRecording("a")).toEqual([]);
    // Recorded batches are still delivered.
    expect(drain(gate)).toEqual(["a#1", "b#1", "a#2", undefined, "a#4", "a#5"]);
  });
});

describe("InputGate watermarks", () => {
  const watermark = (channel: string, seq: number, watermarkMs: number): ChannelMessage => ({ kind: "watermark", attempt: 1, channel, seq, watermarkMs, idle: false });
  const label = (m: ChannelMessage | undefined) => (m?.kind === "watermark" ? `${m.channel}:wm${m.watermarkMs}` : tag(m));

  it("delivers watermarks in order with batches, and a blocked channel holds its own", () => {
    const gate = new InputGate(["a/0", "b/0"]);
    void gate.offer(batch("a/0", 1));
    void gate.offer(watermark("a/0", 2, 10));
    void gate.offer(batch("a/0", 3));
    void gate.offer(watermark("b/0", 1, 20));
    gate.block("b/0");
    const out: (string | undefined)[] = [];
    for (let m = gate.poll(); m !== undefined; m = gate.poll()) out.push(label(m));
    expect(out).toEqual(["a/0#1", "a/0:wm10", "a/0#3"]);
    gate.unblockAll();
    expect(label(gate.poll())).toBe("b/0:wm20");
  });

  it("keeps the watermarks among a channel's batches in its in-flight data, in order (a restore replays records behind them)", () => {
    const gate = new InputGate(["a/0"]);
    void gate.offer(batch("a/0", 1));
    void gate.offer(watermark("a/0", 2, 10));
    gate.startRecording("a/0");
    void gate.offer(watermark("a/0", 3, 11));
    void gate.offer(batch("a/0", 4));
    expect(gate.queuedBatches("a/0").map(label)).toEqual(["a/0#1", "a/0:wm10", "a/0:wm11", "a/0#4"]);
    expect(gate.stopRecording("a/0").map(label)).toEqual(["a/0:wm11", "a/0#4"]);
    expect(gate.queued()).toBe(4);
  });
});
