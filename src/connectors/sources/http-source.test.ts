import { describe, expect, it } from "vitest";
import { job } from "../../api/job.js";
import { JobRegistry } from "../../runtime/registry.js";
import { DEFAULT_STREAM_LIMITS } from "../../storage/stream-options.js";
import { tableSink } from "../sinks/table-sink.js";
import { httpSource, parsePartitionKey, partitionConfig, partitionKey } from "./http-source.js";

describe("httpSource options", () => {
  it("takes retention, limits, a partition key and a starting position, with defaults for the rest", () => {
    const s = httpSource<{ user: string }>("clicks", { partitions: 4, retentionMs: 60_000, partitionKey: "user", startingOffsets: "latest" }).httpStreams![0];
    expect(s.limits).toEqual({ ...DEFAULT_STREAM_LIMITS, retentionMs: 60_000 });
    expect(s.startingOffsets).toBe("latest");
    expect(partitionConfig(s, 3)).toEqual({ stream: "clicks", partition: 3, ...DEFAULT_STREAM_LIMITS, retentionMs: 60_000 });
    expect(s.partitionKey!({ user: "ada" })).toEqual({ key: "ada" });
    expect(s.partitionKey!({ user: 7 })).toEqual({ key: "7" });
    expect(s.partitionKey!({ url: "/" })).toEqual({ problem: 'it has no field "user", the stream\'s partition key' });
    expect(s.partitionKey!({ user: null })).toEqual({ problem: 'its partition key "user" is null, not a string or number' });
    expect(s.partitionKey!("text")).toEqual({ problem: 'it has no field "user", the stream\'s partition key' });
  });

  it("takes a key function", () => {
    const s = httpSource<{ a: number; b: number }>("pairs", { partitionKey: (r) => r.a * 10 + r.b }).httpStreams![0];
    expect(s.partitionKey!({ a: 1, b: 2 })).toEqual({ key: "12" });
    expect(s.partitionKey!({})).toEqual({ problem: "its partition key function returned null" });
  });

  it("refuses bad options when the job is defined, naming the stream", () => {
    expect(() => httpSource("clicks", { retentionMs: 0 })).toThrow('stream "clicks": retentionMs must be a positive number, got 0');
    expect(() => httpSource("clicks", { retentionMs: -1 })).toThrow(/retentionMs must be a positive number/);
    expect(() => httpSource("clicks", { startingOffsets: { timestamp: -3 } })).toThrow(/stream "clicks": starting_offsets.timestamp must be a whole number/);
    expect(() => httpSource("clicks", { startingOffsets: "newest" as "latest" })).toThrow(/stream "clicks": starting_offsets must be/);
    expect(() => httpSource("clicks", { partitionKey: "" })).toThrow(/partitionKey must be a field name or a function/);
  });

  it("names partitions in source positions both ways", () => {
    expect(parsePartitionKey(partitionKey("clicks", 12))).toEqual({ stream: "clicks", partition: 12 });
    expect(parsePartitionKey("topic-x")).toBe(null);
  });

  it("refuses one stream declared twice with different retention", () => {
    const a = job("a");
    a.source(httpSource<{ k: string }>("shared", { retentionMs: 1000 }), { uid: "in" }).map((r) => ({ key: r.k, value: 1 }), { uid: "m" }).sink(tableSink("ta"), { uid: "out" });
    const b = job("b");
    b.source(httpSource<{ k: string }>("shared", { retentionMs: 2000 }), { uid: "in" }).map((r) => ({ key: r.k, value: 1 }), { uid: "m" }).sink(tableSink("tb"), { uid: "out" });
    expect(() => new JobRegistry([a, b])).toThrow('stream "shared" is declared twice with different retention, limits or partition key');
  });
});
