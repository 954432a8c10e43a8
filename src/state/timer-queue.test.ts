import { describe, expect, it } from "vitest";
import { HeapTimerQueue, type TimerEntries, checkTimerTimestamp, timerDomainOf, timerStateName } from "./timer-queue.js";

/** Entries in a plain map, recording each write as the backend's dirty marks would. */
function mapEntries(initial: [string, number[]][] = []): TimerEntries & { map: Map<string, number[]>; writes: string[] } {
  const map = new Map(initial);
  const writes: string[] = [];
  return {
    map,
    writes,
    get: (key) => map.get(key),
    set: (key, ts) => {
      writes.push(key);
      if (ts === undefined) map.delete(key);
      else map.set(key, ts);
    },
    all: () => map.entries(),
  };
}

describe("HeapTimerQueue", () => {
  it("deduplicates per key and timestamp", () => {
    const e = mapEntries();
    const q = new HeapTimerQueue(e);
    expect(q.register("a", 10)).toBe(true);
    expect(q.register("a", 10)).toBe(false);
    expect(q.register("b", 10)).toBe(true);
    expect(q.register("a", 5)).toBe(true);
    expect(q.size()).toBe(3);
    expect(e.map.get("a")).toEqual([5, 10]);
  });

  it("polls every timer at or below the time, in timestamp order, and leaves the rest", () => {
    const q = new HeapTimerQueue(mapEntries());
    for (const [k, ts] of [["a", 30], ["b", 10], ["c", 20], ["a", 10], ["d", 40]] as const) q.register(k, ts);
    expect(q.peek()).toBe(10);
    const due = q.poll(30);
    expect(due.map((t) => t.timestampMs)).toEqual([10, 10, 20, 30]);
    expect(new Set(due.filter((t) => t.timestampMs === 10).map((t) => t.key))).toEqual(new Set(["a", "b"]));
    expect(q.size()).toBe(1);
    expect(q.peek()).toBe(40);
    expect(q.poll(39)).toEqual([]);
    expect(q.poll(Number.MAX_SAFE_INTEGER)).toEqual([{ key: "d", timestampMs: 40 }]);
    expect(q.peek()).toBeUndefined();
    expect(q.size()).toBe(0);
  });

  it("deletes a timer so it never fires, and tells whether there was one", () => {
    const e = mapEntries();
    const q = new HeapTimerQueue(e);
    q.register("a", 10);
    q.register("a", 20);
    q.register("b", 10);
    expect(q.delete("a", 10)).toBe(true);
    expect(q.delete("a", 10)).toBe(false);
    expect(q.delete("zz", 10)).toBe(false);
    expect(q.poll(100)).toEqual([{ key: "b", timestampMs: 10 }, { key: "a", timestampMs: 20 }]);
    expect(e.map.size).toBe(0);
  });

  it("skips timestamps whose timers were all deleted, and registers them again", () => {
    const q = new HeapTimerQueue(mapEntries());
    q.register("a", 10);
    q.delete("a", 10);
    expect(q.peek()).toBeUndefined();
    q.register("a", 10);
    q.register("a", 10);
    expect(q.poll(10)).toEqual([{ key: "a", timestampMs: 10 }]);
    expect(q.poll(10)).toEqual([]);
  });

  it("keeps each key's entry sorted and marks it changed on every change", () => {
    const e = mapEntries();
    const q = new HeapTimerQueue(e);
    q.register("k", 30);
    q.register("k", 10);
    q.register("k", 20);
    expect(e.map.get("k")).toEqual([10, 20, 30]);
    e.writes.length = 0;
    q.poll(15);
    expect(e.map.get("k")).toEqual([20, 30]);
    q.delete("k", 30);
    expect(e.writes).toEqual(["k", "k"]);
  });

  it("rebuilds its index from the entries (a restore)", () => {
    const e = mapEntries([
      ["a", [5, 50]],
      ["b", [7]],
    ]);
    const q = new HeapTimerQueue(e);
    expect(q.size()).toBe(3);
    expect(q.poll(10).map((t) => `${t.key}@${t.timestampMs}`)).toEqual(["a@5", "b@7"]);
    e.map.set("c", [1]);
    q.rebuild();
    expect(q.poll(100).map((t) => `${t.key}@${t.timestampMs}`)).toEqual(["c@1", "a@50"]);
  });

  it("polls at most `max` timers, in timestamp order, leaving the rest of a time's keys for the next poll", () => {
    const e = mapEntries();
    const q = new HeapTimerQueue(e);
    for (let i = 0; i < 10; i++) q.register(`k${i}`, 10);
    q.register("k0", 20);
    q.register("early", 5);
    const first = q.poll(20, 4);
    expect(first.map((t) => t.timestampMs)).toEqual([5, 10, 10, 10]);
    expect(q.size()).toBe(8);
    expect(q.peek()).toBe(10);
    const rest = q.poll(20, 100);
    expect(rest.map((t) => t.timestampMs)).toEqual([10, 10, 10, 10, 10, 10, 10, 20]);
    // Every key of time 10 fired once across the two polls, and k0's later timer after them.
    expect(new Set([...first, ...rest].filter((t) => t.timestampMs === 10).map((t) => t.key)).size).toBe(10);
    expect(rest.at(-1)).toEqual({ key: "k0", timestampMs: 20 });
    expect(q.size()).toBe(0);
    expect(e.map.size).toBe(0);
    expect(q.poll(20, 1)).toEqual([]);
  });

  it("stays in order under many random operations (against a sorted list)", () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const q = new HeapTimerQueue(mapEntries());
    const ref = new Set<string>();
    let now = 0;
    for (let i = 0; i < 5000; i++) {
      const op = rnd(10);
      const key = `k${rnd(20)}`;
      const ts = now + rnd(200);
      if (op < 5) expect(q.register(key, ts)).toBe(!ref.has(`${key}@${ts}`)), ref.add(`${key}@${ts}`);
      else if (op < 8) expect(q.delete(key, ts)).toBe(ref.delete(`${key}@${ts}`));
      else {
        now += rnd(50);
        const due = q.poll(now);
        const want = [...ref].map((s) => Number(s.split("@")[1])).filter((t) => t <= now).sort((a, b) => a - b);
        expect(due.map((t) => t.timestampMs)).toEqual(want);
        for (const t of due) ref.delete(`${t.key}@${t.timestampMs}`);
      }
      expect(q.size()).toBe(ref.size);
    }
  });
});

describe("timer state names and timestamps", () => {
  it("names each domain's state apart from any user state name", () => {
    expect(timerStateName("event")).toBe("timer:event");
    expect(timerDomainOf(timerStateName("processing"))).toBe("processing");
    expect(timerDomainOf("count")).toBeUndefined();
  });

  it("refuses timestamps that are not finite numbers, naming the operator", () => {
    expect(checkTimerTimestamp(5, "op", "event")).toBe(5);
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, "5", undefined]) {
      expect(() => checkTimerTimestamp(bad, "sessions", "event")).toThrow(/operator "sessions": a timer in event time needs a finite timestamp/);
    }
  });
});
