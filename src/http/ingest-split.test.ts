import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { doStorage } from "../../test/support/do-storage.js";
import { job } from "../api/job.js";
import { httpSource } from "../connectors/sources/http-source.js";
import { tableSink } from "../connectors/sinks/table-sink.js";
import { hashKey } from "../graph/key-groups.js";
import { JobRegistry } from "../runtime/registry.js";
import type { PartitionConfig } from "../storage/stream-log.js";
import { StreamLog } from "../storage/stream-log.js";
import type { StreamLimits } from "../storage/stream-options.js";
import { bodyHash, splitByKey } from "./ingest-split.js";
import { onError } from "./errors.js";
import { ingestRoutes } from "./ingest.js";
import { streamRoutes } from "./streams.js";

interface Ev {
  user: string;
  n: number;
}

/** Routes over real logs (one StreamLog per partition, as the objects run it), with a clock and a switch that fails appends. */
function world(limits: Partial<StreamLimits> = {}, partitions = 4) {
  const j = job("split-test");
  j.source(httpSource<Ev>("ev", { partitions, partitionKey: "user", ...limits }), { uid: "in" })
    .map((e) => ({ key: e.user, value: e.n }), { uid: "to-row" })
    .sink(tableSink("out"), { uid: "out" });
  const registry = new JobRegistry([j]);
  const clock = { ms: 1_000 };
  const logs = new Map<string, StreamLog>();
  const failing = new Set<string>();
  const log = (name: string) => {
    let l = logs.get(name);
    if (!l) logs.set(name, (l = new StreamLog(doStorage(), () => clock.ms)));
    return l;
  };
  const env = {
    FLOE_ADMIN_TOKEN: "t",
    STREAM_PARTITION: {
      idFromName: (name: string) => name,
      get: (name: string) => ({
        append: async (records: string[], key?: string, o: { config?: PartitionConfig; bodyHash?: string } = {}) => {
          if (failing.has(name)) throw new Error(`${name} is unreachable`);
          if (o.config) log(name).configure(o.config);
          return log(name).append(records, key, o.bodyHash);
        },
        stats: async (config: PartitionConfig) => {
          log(name).configure(config);
          return { ...log(name).stats(), databaseBytes: 0 };
        },
      }),
    },
  };
  // Mounted as the app mounts them: its error handler turns FloeErrors into the contract's bodies.
  const ingest = new Hono().onError(onError).route("/", ingestRoutes(registry));
  const streams = new Hono().onError(onError).route("/", streamRoutes(registry));
  const post = (records: unknown[], key?: string) =>
    ingest.request(
      "/ev",
      { method: "POST", body: JSON.stringify(records), headers: { authorization: "Bearer t", "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) } },
      env,
    );
  const partitionOf = (user: string) => hashKey(user) % partitions;
  const read = (p: number) => {
    const l = log(`stream:ev/partition:${p}`);
    const lines = l.read(l.info().startOffset, 1e6).lines;
    return lines === "" ? [] : lines.split("\n").map((x) => JSON.parse(x) as Ev);
  };
  return { post, env, streams, clock, failing, partitionOf, read, log };
}

/** Users that land in different partitions of 4. */
const users = ["ann", "bob", "cy", "dee", "eve", "fay", "gus"];

describe("splitByKey", () => {
  it("keeps each key's records in request order in its partition", () => {
    const parts = splitByKey(["a1", "b1", "a2", "b2"], ["a", "b", "a", "b"], 8);
    expect(parts.get(hashKey("a") % 8)).toEqual(hashKey("a") % 8 === hashKey("b") % 8 ? ["a1", "b1", "a2", "b2"] : ["a1", "a2"]);
  });
});

describe("bodyHash", () => {
  it("tells bodies apart, record boundaries included", () => {
    expect(bodyHash(["a", "b"])).toBe(bodyHash(["a", "b"]));
    expect(bodyHash(["a", "b"])).not.toBe(bodyHash(["ab"]));
    expect(bodyHash(["a", "b"])).not.toBe(bodyHash(["b", "a"]));
  });
});

describe("POST /v1/ingest/:stream with a partition key", () => {
  it("sends each record to its key's partition, one key's records in order, and answers every part's offsets", async () => {
    const w = world();
    const records = users.flatMap((user) => [1, 2, 3].map((n) => ({ user, n })));
    const res = await w.post(records, "req-1");
    expect(res.status).toBe(200);
    const body = (await res.json()) as { count: number; duplicate: boolean; offsets: { partition: number; first_offset: number; last_offset: number }[] };
    expect(body.count).toBe(21);
    const used = [...new Set(users.map(w.partitionOf))].sort();
    expect(body.offsets.map((o) => o.partition)).toEqual(used);
    for (const user of users) expect(w.read(w.partitionOf(user)).filter((e) => e.user === user).map((e) => e.n)).toEqual([1, 2, 3]);
  });

  it("refuses a record without the key field with 400 naming it, and stores nothing", async () => {
    const w = world();
    const res = await w.post([{ user: "ann", n: 1 }, { n: 2 }]);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: { code: "invalid_partition_key", message: 'record 1: it has no field "user", the stream\'s partition key' } });
    for (let p = 0; p < 4; p++) expect(w.read(p)).toEqual([]);
  });

  it("completes a request that failed partway when retried with the same key, without duplicating a part", async () => {
    const w = world();
    const records = users.map((user, n) => ({ user, n }));
    const down = `stream:ev/partition:${w.partitionOf("bob")}`;
    w.failing.add(down);
    const home = hashKey("req-2") % 4;
    expect(`stream:ev/partition:${home}`).not.toBe(down);
    expect((await w.post(records, "req-2")).status).toBe(500);
    const stored = [0, 1, 2, 3].flatMap((p) => w.read(p)).length;
    expect(stored).toBeGreaterThan(0);
    expect(stored).toBeLessThan(records.length);
    w.failing.clear();
    const again = await w.post(records, "req-2");
    expect(again.status).toBe(200);
    expect(((await again.json()) as { duplicate: boolean }).duplicate).toBe(false);
    const third = await w.post(records, "req-2");
    expect(((await third.json()) as { duplicate: boolean }).duplicate).toBe(true);
    const all = [0, 1, 2, 3].flatMap((p) => w.read(p));
    expect(all.map((e) => e.user).sort()).toEqual([...users].sort());
  });

  it("refuses a reused Idempotency-Key with another body with 422, before any partition takes a part", async () => {
    const w = world();
    expect((await w.post([{ user: "ann", n: 1 }], "k")).status).toBe(200);
    const res = await w.post(users.map((user) => ({ user, n: 9 })), "k");
    expect(res.status).toBe(422);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("idempotency_key_reused");
    expect(body.error.message).toMatch(/Idempotency-Key "k" was used for a request with another body/);
    expect([0, 1, 2, 3].flatMap((p) => w.read(p))).toEqual([{ user: "ann", n: 1 }]);
  });

  it("answers 429 stream_full with Retry-After when a job pins a full partition, storing nothing of the request", async () => {
    const w = world({ retentionBytes: 40, maxBytes: 60 }, 1);
    w.log("stream:ev/partition:0").startRun("slow", 1, "earliest");
    expect((await w.post([{ user: "ann", n: 1 }, { user: "ann", n: 2 }])).status).toBe(200);
    const res = await w.post([{ user: "ann", n: 3 }, { user: "ann", n: 4 }]);
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("stream_full");
    expect(w.read(0).length).toBe(2);
  });

  it("answers 429 rate_limited with Retry-After past the partition's request rate", async () => {
    const w = world({ maxRequestsPerSecond: 1 }, 1);
    expect((await w.post([{ user: "ann", n: 1 }])).status).toBe(200);
    const res = await w.post([{ user: "ann", n: 2 }]);
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("rate_limited");
    w.clock.ms += 1000;
    expect((await w.post([{ user: "ann", n: 2 }])).status).toBe(200);
  });

  it("answers GET on the ingestion path with 405 and Allow: POST", async () => {
    const registry = new JobRegistry([]);
    const res = await ingestRoutes(registry).request("/ev", { method: "GET" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST");
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("method_not_allowed");
  });
});

describe("GET /v1/streams", () => {
  it("shows each partition's offsets, size, earliest time and every job's checkpointed offset and lag", async () => {
    const w = world({}, 2);
    await w.post(users.map((user, n) => ({ user, n })));
    const p0 = w.log("stream:ev/partition:0");
    p0.startRun("reader", 3, "earliest");
    p0.consumers.checkpointed("reader", 3, 1);
    const res = await w.streams.request("/ev", {}, w.env);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { records: number; lag: Record<string, number>; partitions: { partition: number; records: number; next_offset: number; jobs: unknown[]; earliest_timestamp: number }[] };
    expect(body.records).toBe(users.length);
    expect(body.partitions[0]).toMatchObject({ partition: 0, earliest_offset: 0, earliest_timestamp: 1_000 });
    expect(body.partitions[0].jobs).toEqual([{ job: "reader", run_id: 3, checkpointed_offset: 1, lag: body.partitions[0].next_offset - 1, active: true }]);
    expect(body.lag).toEqual({ reader: body.partitions[0].next_offset - 1 });
    const list = (await (await w.streams.request("/", {}, w.env)).json()) as { streams: { stream: string; records: number; partition_count: number }[] };
    expect(list.streams).toEqual([expect.objectContaining({ stream: "ev", records: users.length, partition_count: 2 })]);
    expect((await w.streams.request("/nope", {}, w.env)).status).toBe(404);
  });
});
