/**
 * Bad input to the ingestion log's options, as a user meets it: a record
 * without the stream's partition key, an Idempotency-Key reused with
 * another body, a starting position in the future or not a number (in the
 * start request or in the job's definition), and retention that cannot be.
 * Each answers a 4xx in the contract's shape `{ error: { code, message } }`
 * naming what is wrong, and nothing already accepted changes: the
 * partitions' offsets, records and bytes stay as they were, no refused
 * start pins anything, and the job's output holds every accepted record
 * exactly once, in order.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { httpSource } from "../../src/connectors/sources/http-source.js";
import { type Engine, startEngine } from "../support/engine.js";
import { expectError, ingest, ndjson } from "../support/http.js";
import { type PartitionView, SeqProducer, expectExactlyOnceInOrder, streamView } from "../support/streams.js";

const STREAM = "strict";
const KEYS = ["a", "b", "c", "d"];
/** The Idempotency-Key of a refused request: still free for a new one. */
const UNUSED_KEY = "refused-1";

/** What must not change: each partition's offsets and size, and the jobs pinning it. */
const figures = (ps: PartitionView[]) => ps.map((p) => ({ partition: p.partition, earliest_offset: p.earliest_offset, next_offset: p.next_offset, records: p.records, bytes: p.bytes, jobs: p.jobs.map((j) => j.job) }));

describe("bad input to the ingestion log", () => {
  let engine: Engine;
  const producer = new SeqProducer(STREAM, KEYS, "ok");
  /** The first accepted request, sent again below. */
  let first: { key: string; records: { key: string; seq: number }[] };
  let before: ReturnType<typeof figures>;

  beforeAll(async () => {
    engine = await startEngine({ testJobs: true });
    expect((await engine.api("/v1/jobs/streams-strict/start", { method: "POST", json: {} })).status).toBe(200);
    first = producer.next(3);
    await producer.send(() => engine, first);
    await producer.send(() => engine, producer.next(2));
    before = figures((await streamView(engine, STREAM)).partitions);
    expect(before.reduce((n, p) => n + p.records, 0)).toBe(KEYS.length * 5);
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it("refuses a record without the partition key with 400 invalid_partition_key, naming the record, and stores nothing of its request", async () => {
    const json = (records: unknown[]) => ingest(engine, STREAM, JSON.stringify(records), { "content-type": "application/json" });
    await expectError(await json([{ key: "a", seq: 5 }, { seq: 6 }]), 400, "invalid_partition_key", 'record 1: it has no field "key", the stream\'s partition key');
    await expectError(await json([{ key: null, seq: 5 }]), 400, "invalid_partition_key", 'record 0: its partition key "key" is null, not a string or number');
    await expectError(await json([{ key: "a", seq: 5 }, { key: "b", seq: 5 }, { key: { id: 1 }, seq: 5 }]), 400, "invalid_partition_key", /^record 2: its partition key "key" is \{"id":1\}/);
    await expectError(await ingest(engine, STREAM, ndjson([{ key: "a", seq: 5 }, { key: "b", seq: 5 }, { user: "c", seq: 5 }])), 400, "invalid_partition_key", /^line 3: it has no field "key"/);
    // With an Idempotency-Key: refused before any partition takes a part, so the key stays unused.
    await expectError(await ingest(engine, STREAM, JSON.stringify([{ key: "c", seq: 5 }, { seq: 6, user: "c" }]), { "content-type": "application/json", "idempotency-key": UNUSED_KEY }), 400, "invalid_partition_key", /^record 1: /);
    expect(figures((await streamView(engine, STREAM)).partitions)).toEqual(before);
  });

  it("refuses an Idempotency-Key reused with another body with 422 idempotency_key_reused, and still answers the same body as a duplicate", async () => {
    const send = (records: unknown[], key: string) => ingest(engine, STREAM, JSON.stringify(records), { "content-type": "application/json", "idempotency-key": key });
    // Other records, one record fewer, and the same records in another order: each is another body.
    const other = first.records.map((r) => ({ ...r, seq: r.seq + 100 }));
    for (const body of [other, first.records.slice(1), [...first.records].reverse()]) {
      await expectError(await send(body, first.key), 422, "idempotency_key_reused", `Idempotency-Key "${first.key}" was used for a request with another body; use a new key for a new request`);
    }
    const again = await send(first.records, first.key);
    expect(again.status).toBe(200);
    const answer = (await again.json()) as { duplicate: boolean; count: number; offsets: { partition: number; first_offset: number }[] };
    expect(answer).toMatchObject({ duplicate: true, count: first.records.length });
    // The first request's offsets: every part of the split request at the start of its partition.
    expect(answer.offsets.map((o) => o.first_offset)).toEqual(answer.offsets.map(() => 0));
    expect(figures((await streamView(engine, STREAM)).partitions)).toEqual(before);
  });

  it("refuses starting positions in the future or not numbers with 400 invalid_starting_offsets, and starts and pins nothing", async () => {
    const start = (json: unknown) => engine.api("/v1/jobs/streams-future/start", { method: "POST", json });
    // The job's definition starts in 2100: refused when started, unless the request says otherwise.
    await expectError(await start({}), 400, "invalid_starting_offsets", /^stream "strict": startingOffsets.timestamp 4102444800000 in the job's definition is in the future \(now is \d+\)/);
    await expectError(await start({ starting_offsets: { timestamp: Date.now() + 60_000 } }), 400, "invalid_starting_offsets", /is in the future/);
    await expectError(await start({ starting_offsets: { timestamp: "yesterday" } }), 400, "invalid_starting_offsets", 'starting_offsets.timestamp must be a whole number of epoch ms, got "yesterday"');
    await expectError(await start({ starting_offsets: { timestamp: "1700000000000" } }), 400, "invalid_starting_offsets", /whole number of epoch ms, got "1700000000000"/);
    await expectError(await start({ starting_offsets: { timestamp: 1.5 } }), 400, "invalid_starting_offsets", /whole number/);
    await expectError(await start({ starting_offsets: { timestamp: -1 } }), 400, "invalid_starting_offsets", /whole number/);
    await expectError(await start({ starting_offsets: { timestamp: null } }), 400, "invalid_starting_offsets", /whole number/);
    await expectError(await start({ starting_offsets: 1_700_000_000_000 }), 400, "invalid_starting_offsets", /must be "earliest", "latest" or \{ "timestamp": <epoch ms> \}, got 1700000000000/);
    await expectError(await start({ starting_offsets: "newest" }), 400, "invalid_starting_offsets", /got "newest"/);
    await expectError(await start({ starting_offsets: { timestamp: 1, from: "now" } }), 400, "invalid_starting_offsets", /must be/);
    const status = (await (await engine.api("/v1/jobs/streams-future")).json()) as { status: string; attempt: number };
    expect(status).toMatchObject({ status: "CREATED", attempt: 0 });
    expect(figures((await streamView(engine, STREAM)).partitions)).toEqual(before);
  });

  it("answers GET on the ingestion path with 405 method_not_allowed and Allow: POST, pointing at the streams API", async () => {
    const res = await engine.api(`/v1/ingest/${STREAM}`);
    expect(res.headers.get("allow")).toBe("POST");
    await expectError(res, 405, "method_not_allowed", `ingestion into "${STREAM}" takes POST; GET /v1/streams/${STREAM} shows the stream`);
    expect(figures((await streamView(engine, STREAM)).partitions)).toEqual(before);
  });

  it("refuses zero, negative and non-numeric retention when the job is defined, naming the stream and the option", () => {
    // Options are compiled into the Worker: a bad one fails the Worker's start (`wrangler deploy` shows the message), never a running stream.
    expect(() => httpSource("strict", { retentionMs: 0 })).toThrow('stream "strict": retentionMs must be a positive number, got 0');
    expect(() => httpSource("strict", { retentionMs: -60_000 })).toThrow('stream "strict": retentionMs must be a positive number, got -60000');
    expect(() => httpSource("strict", { retentionBytes: 0 })).toThrow('stream "strict": retentionBytes must be a positive number, got 0');
    expect(() => httpSource("strict", { retentionMs: Number.NaN })).toThrow(/retentionMs must be a positive number, got null/);
    expect(() => httpSource("strict", { startingOffsets: { timestamp: 1.5 } })).toThrow(/stream "strict": starting_offsets.timestamp must be a whole number/);
  });

  it("kept every accepted record exactly once and in order, and the partitions as they were", async () => {
    // One more accepted request after the refusals: the stream takes records as before.
    await producer.send(() => engine, { key: UNUSED_KEY, records: producer.next(1).records });
    await expectExactlyOnceInOrder(engine, "strict-out", producer.acked);
    const after = figures((await streamView(engine, STREAM)).partitions);
    expect(after.map((p) => p.earliest_offset)).toEqual(before.map((p) => p.earliest_offset));
    expect(after.reduce((n, p) => n + p.records, 0)).toBe(KEYS.length * 6);
    expect(after.every((p) => p.jobs.length === 1 && p.jobs[0] === "streams-strict")).toBe(true);
  });
});
