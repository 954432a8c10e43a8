import { describe, expect, it } from "vitest";
import { keyGroupOf, keyGroupRange, murmur3, subtaskForKeyGroup, hashKey } from "./key-groups.js";

const utf8 = (s: string) => new TextEncoder().encode(s);

describe("murmur3", () => {
  it("matches the reference vectors of MurmurHash3_x86_32", () => {
    expect(murmur3(utf8(""))).toBe(0);
    expect(murmur3(utf8(""), 1)).toBe(0x514e28b7);
    expect(murmur3(utf8("hello"))).toBe(0x248bfa47);
    expect(murmur3(utf8("The quick brown fox jumps over the lazy dog"))).toBe(0x2e4ff723);
  });

  it("hashes non-ASCII keys through UTF-8", () => {
    expect(hashKey("héllo")).toBe(murmur3(utf8("héllo")));
    expect(hashKey("x".repeat(300))).toBe(murmur3(utf8("x".repeat(300))));
  });

  it("keeps numbers and their text apart", () => {
    expect(hashKey(7)).not.toBe(hashKey("7"));
  });
});

describe("key groups", () => {
  it("ranges are contiguous, disjoint and cover every key group", () => {
    for (const maxParallelism of [1, 7, 128, 1000]) {
      for (const parallelism of [1, 2, 3, 7].filter((p) => p <= maxParallelism)) {
        let next = 0;
        for (let i = 0; i < parallelism; i++) {
          const r = keyGroupRange(maxParallelism, parallelism, i);
          expect(r.start).toBe(next);
          expect(r.end).toBeGreaterThanOrEqual(r.start);
          for (let kg = r.start; kg <= r.end; kg++) expect(subtaskForKeyGroup(maxParallelism, parallelism, kg)).toBe(i);
          next = r.end + 1;
        }
        expect(next).toBe(maxParallelism);
      }
    }
  });

  it("matches Flink's ranges for 128 key groups over 3 subtasks", () => {
    expect([0, 1, 2].map((i) => keyGroupRange(128, 3, i))).toEqual([
      { start: 0, end: 42 },
      { start: 43, end: 85 },
      { start: 86, end: 127 },
    ]);
  });

  it("spreads keys evenly over key groups", () => {
    const counts = new Array(16).fill(0);
    for (let i = 0; i < 16000; i++) counts[keyGroupOf(`user-${i}`, 16)]++;
    for (const c of counts) expect(c).toBeGreaterThan(800);
  });

  it("refuses parallelism above maxParallelism", () => {
    expect(() => keyGroupRange(4, 5, 0)).toThrow(/maxParallelism/);
    expect(() => keyGroupRange(4, 2, 2)).toThrow(/outside/);
  });
});
