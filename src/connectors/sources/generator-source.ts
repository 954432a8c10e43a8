/**
 * A deterministic generator source for tests and benchmarks: record i of
 * partition p is a pure function of (seed, p, i), so any position can be
 * replayed exactly. Bounded (count) or unbounded.
 */
import type { SourceBatch, SourceDefinition, SourceReader } from "../../api/types.js";

/** Options of {@link generatorSource}. */
export interface GeneratorOptions<T> {
  /** Builds record `index` of `partition`; `random` is a seeded value in [0, 1). */
  make: (index: number, partition: number, random: number) => T;
  partitions?: number;
  /** Records per partition; unbounded when absent. */
  count?: number;
  seed?: number;
  /** Wait this long before each batch: stands in for a slow external system (tests, benchmarks). */
  pollDelayMs?: number;
}

/** @example generatorSource({ count: 1e6, make: (i, p, r) => ({ user: `u${Math.floor(r * 1e4)}` }) }) */
export function generatorSource<T>(options: GeneratorOptions<T>): SourceDefinition<T> {
  const partitions = options.partitions ?? 1;
  const seed = options.seed ?? 1;
  return {
    kind: "generator",
    defaultParallelism: partitions,
    replayable: true,
    createReader: (ctx) => {
      const owned: { key: string; partition: number; offset: number }[] = [];
      for (let p = ctx.subtaskIndex; p < partitions; p += ctx.parallelism) owned.push({ key: `generator/${p}`, partition: p, offset: 0 });
      let cursor = 0;
      const reader: SourceReader = {
        positions: () => Object.fromEntries(owned.map((o) => [o.key, o.offset])),
        seek: (positions) => {
          for (const o of owned) if (positions[o.key] !== undefined) o.offset = positions[o.key];
        },
        poll: async (maxRecords): Promise<SourceBatch | "end" | null> => {
          if (options.pollDelayMs) await ctx.sleep(options.pollDelayMs);
          for (let i = 0; i < owned.length; i++) {
            const o = owned[(cursor + i) % owned.length];
            const n = options.count === undefined ? maxRecords : Math.min(maxRecords, options.count - o.offset);
            if (n <= 0) continue;
            cursor = (cursor + i + 1) % owned.length;
            const records = new Array<T>(n);
            for (let j = 0; j < n; j++) records[j] = options.make(o.offset + j, o.partition, uniform(seed, o.partition, o.offset + j));
            const batch = { partition: o.key, firstOffset: o.offset, records };
            o.offset += n;
            return batch;
          }
          return "end";
        },
      };
      return reader;
    },
  };
}

/** A uniform value in [0, 1) from (seed, partition, index): splitmix-style mixing. */
export function uniform(seed: number, partition: number, index: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(partition + 1, 0xc2b2ae35) ^ index;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}
