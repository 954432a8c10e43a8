import { describe, expect, it } from "vitest";
import { createQueue, type QueueOutput, type QueueSlot } from "./stream-element-queue.js";

type Out = QueueOutput<string, string, number>;
const names = (outs: Out[]) => outs.map((o) => (o.kind === "record" ? `${o.input}:${o.result}` : `wm${o.mark}`));

describe("ordered queue", () => {
  it("emits results in input order: a slow request holds back the ones behind it", () => {
    const q = createQueue<string, string, number>("ordered", 10);
    const a = q.addRecord("a");
    const b = q.addRecord("b");
    const c = q.addRecord("c");
    c.complete("C");
    b.complete("B");
    expect(q.poll()).toEqual([]);
    a.complete("A");
    expect(names(q.poll())).toEqual(["a:A", "b:B", "c:C"]);
    expect(q.isEmpty()).toBe(true);
  });

  it("keeps watermarks in place and counts only records against the capacity", () => {
    const q = createQueue<string, string, number>("ordered", 2);
    const a = q.addRecord("a");
    q.addWatermark(1);
    const b = q.addRecord("b");
    expect(q.hasCapacity()).toBe(false);
    expect(() => q.addRecord("c")).toThrow(/full/);
    b.complete("B");
    expect(q.poll()).toEqual([]);
    a.complete("A");
    expect(names(q.poll())).toEqual(["a:A", "wm1", "b:B"]);
    expect(q.hasCapacity()).toBe(true);
  });

  it("lets a watermark at the head leave at once", () => {
    const q = createQueue<string, string, number>("ordered", 1);
    q.addWatermark(5);
    expect(names(q.poll())).toEqual(["wm5"]);
  });
});

describe("unordered queue", () => {
  it("does not wait behind a slow request", () => {
    const q = createQueue<string, string, number>("unordered", 10);
    q.addRecord("slow");
    const fast = q.addRecord("fast");
    fast.complete("F");
    expect(names(q.poll())).toEqual(["fast:F"]);
    expect(q.size).toBe(1);
  });

  it("emits in completion order within a segment, and never across a watermark", () => {
    const q = createQueue<string, string, number>("unordered", 10);
    const a = q.addRecord("a");
    const b = q.addRecord("b");
    q.addWatermark(10);
    const c = q.addRecord("c");
    const d = q.addRecord("d");
    q.addWatermark(20);
    const e = q.addRecord("e");
    // c, d and e are done but behind watermark 10, whose segment waits for a.
    e.complete("E");
    d.complete("D");
    c.complete("C");
    b.complete("B");
    expect(names(q.poll())).toEqual(["b:B"]);
    a.complete("A");
    expect(names(q.poll())).toEqual(["a:A", "wm10", "d:D", "c:C", "wm20", "e:E"]);
    expect(q.isEmpty()).toBe(true);
  });

  it("holds a watermark until the records before it have left", () => {
    const q = createQueue<string, string, number>("unordered", 10);
    const a = q.addRecord("a");
    q.addWatermark(1);
    q.addWatermark(2);
    expect(q.poll()).toEqual([]);
    a.complete("A");
    expect(names(q.poll())).toEqual(["a:A", "wm1", "wm2"]);
  });
});

describe("pending inputs (what a checkpoint keeps)", () => {
  it.each(["ordered", "unordered"] as const)("lists the records not emitted yet in arrival order (%s)", (mode) => {
    const q = createQueue<string, string, number>(mode, 10);
    const slots: QueueSlot<string, string>[] = ["a", "b", "c", "d"].map((x) => q.addRecord(x));
    slots[1].complete("B");
    slots[3].complete("D");
    q.poll();
    // Ordered: b and d wait behind a and c; unordered: they left.
    expect(q.pendingInputs()).toEqual(mode === "ordered" ? ["a", "b", "c", "d"] : ["a", "c"]);
    slots[0].complete("A");
    slots[2].complete("C");
    q.poll();
    expect(q.pendingInputs()).toEqual([]);
  });

  it("ignores a second completion (a late answer after a timeout)", () => {
    const q = createQueue<string, string, number>("ordered", 1);
    const a = q.addRecord("a");
    a.complete("timeout");
    a.complete("late");
    expect(names(q.poll())).toEqual(["a:timeout"]);
  });
});
