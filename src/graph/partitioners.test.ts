import { describe, expect, it } from "vitest";
import { inRange, keyGroupOf, keyGroupRange, subtaskForKeyGroup } from "./key-groups.js";
import { createPartitioner, upstreamSenders } from "./partitioners.js";

const pick = (n: number, select: () => number) => Array.from({ length: n }, select);

describe("forward", () => {
  it("keeps subtask i on subtask i", () => {
    for (let sender = 0; sender < 4; sender++) {
      const p = createPartitioner("forward", sender, 4, 128);
      expect(pick(5, () => p.select(undefined))).toEqual([sender, sender, sender, sender, sender]);
      expect(p.select("any key")).toBe(sender);
    }
  });

  it("refuses a sender without a matching receiver", () => {
    expect(() => createPartitioner("forward", 2, 2, 128)).toThrow(RangeError);
    expect(() => createPartitioner("forward", 2, 2, 128)).toThrow("forward from subtask 2 to parallelism 2");
  });
});

describe("rebalance", () => {
  it("deals records round-robin, starting at the sender's own index", () => {
    const p = createPartitioner("rebalance", 1, 3, 128);
    expect(pick(7, () => p.select(undefined))).toEqual([1, 2, 0, 1, 2, 0, 1]);
  });

  it("wraps the start index when the sender's index exceeds the target parallelism", () => {
    const p = createPartitioner("rebalance", 5, 3, 128);
    expect(pick(4, () => p.select(undefined))).toEqual([2, 0, 1, 2]);
  });

  it("ignores keys and sends everything to a single receiver", () => {
    const p = createPartitioner("rebalance", 3, 1, 128);
    expect(pick(3, () => p.select("k"))).toEqual([0, 0, 0]);
  });

  it("spreads records evenly, and senders start on different receivers", () => {
    const counts = [0, 0, 0, 0];
    for (let sender = 0; sender < 4; sender++) {
      const p = createPartitioner("rebalance", sender, 4, 128);
      expect(p.select(undefined)).toBe(sender);
      for (let i = 1; i < 100; i++) counts[p.select(undefined)]++;
    }
    // 4 senders × 99 further records: 99 each.
    expect(counts).toEqual([99, 99, 99, 99]);
  });

  it("keeps a separate cursor per partitioner", () => {
    const a = createPartitioner("rebalance", 0, 2, 128);
    const b = createPartitioner("rebalance", 0, 2, 128);
    expect([a.select(undefined), a.select(undefined), b.select(undefined)]).toEqual([0, 1, 0]);
  });
});

describe("hash", () => {
  const keys = [...Array.from({ length: 500 }, (_, i) => `user-${i}`), ...Array.from({ length: 100 }, (_, i) => i * 7919), "", "héllo"];

  it("routes a key to the subtask that owns its key group", () => {
    for (const [maxParallelism, parallelism] of [
      [128, 1],
      [128, 3],
      [128, 128],
      [7, 4],
      [1000, 13],
    ]) {
      const p = createPartitioner("hash", 0, parallelism, maxParallelism);
      for (const key of keys) {
        const target = p.select(key);
        const keyGroup = keyGroupOf(key, maxParallelism);
        expect(target).toBe(subtaskForKeyGroup(maxParallelism, parallelism, keyGroup));
        expect(inRange(keyGroupRange(maxParallelism, parallelism, target), keyGroup)).toBe(true);
      }
    }
  });

  it("routes a key to the same subtask from every sender", () => {
    const senders = [0, 1, 2, 3].map((i) => createPartitioner("hash", i, 5, 64));
    for (const key of keys) {
      const targets = new Set(senders.map((s) => s.select(key)));
      expect(targets.size).toBe(1);
    }
  });

  it("uses every receiver", () => {
    const p = createPartitioner("hash", 0, 4, 128);
    const used = new Set(keys.map((k) => p.select(k)));
    expect([...used].sort()).toEqual([0, 1, 2, 3]);
  });

  it("keeps a number key apart from its text", () => {
    // The two may land on one subtask by chance, but each lands where its own key group says.
    const p = createPartitioner("hash", 0, 128, 128);
    expect(p.select(7)).toBe(keyGroupOf(7, 128));
    expect(p.select("7")).toBe(keyGroupOf("7", 128));
    expect(keyGroupOf(7, 128)).not.toBe(keyGroupOf("7", 128));
  });

  it("needs a key", () => {
    const p = createPartitioner("hash", 0, 2, 128);
    expect(() => p.select(undefined)).toThrow(TypeError);
    expect(() => p.select(undefined)).toThrow("hash partitioning needs a key");
  });
});

describe("upstreamSenders", () => {
  it("is the one subtask of the same index on a forward edge", () => {
    expect(upstreamSenders("forward", 4, 0)).toEqual([0]);
    expect(upstreamSenders("forward", 4, 3)).toEqual([3]);
  });

  it("is every upstream subtask on rebalance and hash edges", () => {
    expect(upstreamSenders("rebalance", 3, 0)).toEqual([0, 1, 2]);
    expect(upstreamSenders("rebalance", 3, 5)).toEqual([0, 1, 2]);
    expect(upstreamSenders("hash", 2, 1)).toEqual([0, 1]);
    expect(upstreamSenders("hash", 1, 0)).toEqual([0]);
  });

  it("agrees with the partitioners: a sender only reaches receivers that list it", () => {
    for (const kind of ["forward", "rebalance", "hash"] as const) {
      const upstream = 3;
      const downstream = kind === "forward" ? 3 : 4;
      for (let sender = 0; sender < upstream; sender++) {
        const p = createPartitioner(kind, sender, downstream, 32);
        for (let i = 0; i < 50; i++) {
          const target = p.select(`k${i}`);
          expect(upstreamSenders(kind, upstream, target)).toContain(sender);
        }
      }
    }
  });
});
