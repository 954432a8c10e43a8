import { describe, expect, it } from "vitest";
import type { SourceReaderContext } from "../../api/types.js";
import { generatorSource, uniform } from "./generator-source.js";

/** A reader context whose sleep records its waits and returns at once. */
function context(subtaskIndex: number, parallelism: number, waits: number[] = []): SourceReaderContext {
  return { jobName: "job", subtaskIndex, parallelism, env: {}, now: () => 0, sleep: async (ms) => void waits.push(ms) };
}

describe("generatorSource", () => {
  it("waits pollDelayMs on the subtask's clock before each batch, never on a timer", async () => {
    const waits: number[] = [];
    const reader = generatorSource({ count: 3, pollDelayMs: 150, make: (i) => i }).createReader(context(0, 1, waits));
    expect(await reader.poll(2)).toEqual({ partition: "generator/0", firstOffset: 0, records: [0, 1] });
    expect(await reader.poll(2)).toEqual({ partition: "generator/0", firstOffset: 2, records: [2] });
    expect(await reader.poll(2)).toBe("end");
    expect(waits).toEqual([150, 150, 150]);
  });

  it("gives the same records at a position after a seek, in its own partitions only", async () => {
    const make = (i: number, p: number, r: number) => ({ i, p, r });
    const def = generatorSource({ partitions: 3, count: 10, seed: 5, make });
    const reader = def.createReader(context(1, 2));
    expect(reader.positions()).toEqual({ "generator/1": 0 });
    reader.seek({ "generator/1": 4, "generator/0": 9 });
    const batch = await reader.poll(2);
    expect(batch).toEqual({ partition: "generator/1", firstOffset: 4, records: [make(4, 1, uniform(5, 1, 4)), make(5, 1, uniform(5, 1, 5))] });
  });
});
