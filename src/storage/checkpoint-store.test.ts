import { describe, expect, it } from "vitest";
import type { CheckpointMetadata } from "../checkpoint/types.js";
import { CheckpointStore, CheckpointUnreadableError } from "./checkpoint-store.js";
import { metadataKey, runFileKey } from "./layout.js";

/** The part of R2 a read uses, over a map, listing pages of three keys; calls counted. */
function bucket() {
  const objects = new Map<string, string>();
  const calls = { head: 0, list: 0 };
  const r2 = {
    get: async (key: string) => (objects.has(key) ? { text: async () => objects.get(key)! } : null),
    head: async (key: string) => (calls.head++, objects.has(key) ? { key } : null),
    list: async (o: { prefix: string; cursor?: string }) => {
      calls.list++;
      const keys = [...objects.keys()].filter((k) => k.startsWith(o.prefix) && (o.cursor === undefined || k > o.cursor)).sort();
      const page = keys.slice(0, 3);
      return { objects: page.map((key) => ({ key })), truncated: keys.length > 3, cursor: page.at(-1) };
    },
  };
  return { objects, calls, r2: r2 as unknown as R2Bucket };
}

function checkpoint(files: string[]): CheckpointMetadata {
  return {
    version: 1,
    job: "j",
    checkpointId: 9,
    kind: "CHECKPOINT",
    triggerTimestamp: 0,
    completedTimestamp: 0,
    attempt: 1,
    maxParallelism: 128,
    operators: {
      op: {
        parallelism: 1,
        keyed: { "op/0": { files, runs: files.map((file) => ({ file, store: "states" as const, bytes: 1, entries: 1 })), keyGroups: { start: 0, end: 127 }, stateBytes: files.length, checkpointedBytes: 0, entries: files.length } },
        sources: {},
        sinks: {},
      },
    },
  };
}

describe("CheckpointStore.read", () => {
  it("checks many files by listing the job's folder, not one HEAD each, and names a missing one", async () => {
    const { objects, calls, r2 } = bucket();
    const files = Array.from({ length: 40 }, (_, i) => runFileKey("", "j", "op", 0, i + 1, "states", i));
    for (const f of files) objects.set(f, "run");
    objects.set(metadataKey("", "j", 9), JSON.stringify(checkpoint(files)));
    const store = new CheckpointStore(r2, "", "j");
    expect((await store.read(9)).checkpointId).toBe(9);
    expect(calls.head).toBe(0);
    expect(calls.list).toBe(Math.ceil(41 / 3));

    objects.delete(files[17]);
    const e = await store.read(9).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CheckpointUnreadableError);
    expect((e as CheckpointUnreadableError).reason).toBe("missing_files");
    expect((e as Error).message).toContain(files[17]);
  });

  it("checks a few files with a HEAD each", async () => {
    const { objects, calls, r2 } = bucket();
    const files = [runFileKey("", "j", "op", 0, 3, "states", 1), runFileKey("", "j", "op", 0, 5, "timers", 2)];
    for (const f of files) objects.set(f, "run");
    objects.set(metadataKey("", "j", 9), JSON.stringify(checkpoint(files)));
    await new CheckpointStore(r2, "", "j").read(9);
    expect(calls).toEqual({ head: 2, list: 0 });
  });
});
