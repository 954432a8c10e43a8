import { describe, expect, it } from "vitest";
import { job } from "../../api/job.js";
import { JobRegistry } from "../../runtime/registry.js";
import { DEFAULT_STREAM_LIMITS } from "../../storage/stream-options.js";
import { tableSink } from "../sinks/table-sink.js";
import { doStorage } from "../../../test/support/do-storage.js";
import { StreamLog } from "../../storage/stream-log.js";
import { NOT_STARTED, httpSource, parsePartitionKey, partitionConfig, partitionKey } from "./http-source.js";

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

  /** Job `name` reading stream "shared" with `options`. */
  const reader = (name: string, options: Parameters<typeof httpSource<{ k: string; j: string }>>[1]) => {
    const j = job(name);
    j.source(httpSource<{ k: string; j: string }>("shared", options), { uid: "in" }).map((r) => ({ key: r.k, value: 1 }), { uid: "m" }).sink(tableSink(`t-${name}`), { uid: "out" });
    return j;
  };

  it("refuses one stream declared twice with different retention, partition key or ingest token, naming what differs", () => {
    expect(() => new JobRegistry([reader("a", { retentionMs: 1000 }), reader("b", { retentionMs: 2000 })])).toThrow(
      /stream "shared" is declared twice with a different retention or limits \(\{"retentionMs":1000,.*\} and \{"retentionMs":2000,.*\}\): declare it once and share the source/,
    );
    expect(() => new JobRegistry([reader("a", { partitionKey: "k" }), reader("b", { partitionKey: "j" })])).toThrow('a different partition key (field "k" and field "j")');
    expect(() => new JobRegistry([reader("a", { partitionKey: "k" }), reader("b", {})])).toThrow('a different partition key (field "k" and none)');
    expect(() => new JobRegistry([reader("a", { partitionKey: (r) => r.k }), reader("b", { partitionKey: (r) => r.j })])).toThrow(/a different partition key \(function .*r\.k and function .*r\.j\)/);
    expect(() => new JobRegistry([reader("a", { ingestTokenVar: "A" }), reader("b", {})])).toThrow("a different ingest token variable (A and none)");
  });

  it("takes one stream declared alike by two jobs, or one source shared", () => {
    const registry = new JobRegistry([reader("a", { retentionMs: 1000, partitionKey: "k" }), reader("b", { retentionMs: 1000, partitionKey: "k" })]);
    expect(registry.streamNames()).toEqual(["shared"]);
    const key = (r: { k: string }) => r.k;
    expect(new JobRegistry([reader("a", { partitionKey: key }), reader("b", { partitionKey: key })]).stream("shared")!.partitionKeySource).toMatch(/^function /);
  });
});

describe("the HTTP source's reader", () => {
  /** A reader of all three partitions of "s" over real logs; partition p holds `p + 1` records, and the run started each at 1. */
  function reader() {
    const logs = [0, 1, 2].map((p) => {
      const l = new StreamLog(doStorage(), () => 1_000);
      l.append(Array.from({ length: p + 1 }, (_, i) => JSON.stringify({ p, i })));
      l.startRun("j", 1, { offset: Math.min(1, p), orEarliest: false });
      return l;
    });
    const env = {
      STREAM_PARTITION: {
        idFromName: (name: string) => Number(/partition:(\d+)/.exec(name)![1]),
        get: (p: number) => ({ startOffset: async (job: string) => logs[p].consumers.startOffset(job), read: async (from: number, max: number) => logs[p].read(from, max) }),
      },
    };
    return httpSource("s", { partitions: 3 }).createReader({ jobName: "j", subtaskIndex: 0, parallelism: 1, env, now: () => 0, sleep: async () => {} });
  }

  it("names every partition it owns in its positions, those not started yet at NOT_STARTED", async () => {
    const r = reader();
    // Before any read: the task learns every partition (each holds the watermark back), none started.
    expect(r.positions()).toEqual({ "s/0": NOT_STARTED, "s/1": NOT_STARTED, "s/2": NOT_STARTED });
    expect(await r.poll(10)).toMatchObject({ partition: "s/0", firstOffset: 0, records: [{ p: 0, i: 0 }] });
    expect(r.positions()).toEqual({ "s/0": 1, "s/1": NOT_STARTED, "s/2": NOT_STARTED });
    expect(await r.poll(10)).toMatchObject({ partition: "s/1", firstOffset: 1, records: [{ p: 1, i: 1 }] });
  });

  it("restores NOT_STARTED as not started: the run's start is asked for again", async () => {
    const r = reader();
    r.seek({ "s/0": NOT_STARTED, "s/1": NOT_STARTED, "s/2": 2 });
    expect(await r.poll(10)).toMatchObject({ partition: "s/0", firstOffset: 0 });
    expect(await r.poll(10)).toMatchObject({ partition: "s/1", firstOffset: 1 });
    expect(await r.poll(10)).toMatchObject({ partition: "s/2", firstOffset: 2, records: [{ p: 2, i: 2 }] });
    expect(await r.poll(10)).toBe(null);
  });
});

