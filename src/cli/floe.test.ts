import { Readable } from "node:stream";
import { afterEach, describe, expect, it, vi } from "vitest";
import { main } from "./floe.js";

/** Runs `floe ingest` on `lines`, with fetch answering from `answers` in turn (a status, or a thrown network error). */
async function ingest(lines: string[], answers: (number | Error)[]) {
  const keys: string[] = [];
  vi.stubGlobal("fetch", async (_url: string, init: RequestInit) => {
    keys.push((init.headers as Record<string, string>)["idempotency-key"]);
    const a = answers.shift();
    if (a === undefined || a instanceof Error) throw a ?? new Error("no more answers");
    const body = a === 200 ? { count: lines.length } : { error: { code: "invalid_record", message: "line 1: bad" } };
    return new Response(JSON.stringify(body), { status: a });
  });
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(["ingest", "clicks"], {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    env: { FLOE_URL: "http://engine.test", FLOE_TOKEN: "t" },
    stdin: Readable.from(lines.map((l) => `${l}\n`)),
  });
  return { code, out, err, keys };
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("floe ingest", () => {
  it("sends a batch again, with the same Idempotency-Key, when the engine could not be reached", async () => {
    const r = await ingest(['{"a":1}', '{"a":2}'], [new TypeError("fetch failed"), 200]);
    expect(r.code).toBe(0);
    expect(r.out).toEqual(["2 records in 1 requests"]);
    expect(r.keys).toHaveLength(2);
    expect(r.keys[1]).toBe(r.keys[0]);
  });

  it("does not send again when the engine answered with an error", async () => {
    const r = await ingest(['{"a":1}'], [400, 200]);
    expect(r.code).toBe(1);
    expect(r.keys).toHaveLength(1);
    expect(r.err.join("\n")).toMatch(/invalid_record/);
  });
});

/** Runs `floe <argv>` with fetch answering `body` and recording the requests. */
async function run(argv: string[], body: unknown) {
  const requests: { url: string; method?: string; body?: string }[] = [];
  vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
    requests.push({ url, method: init.method, body: init.body as string | undefined });
    return new Response(JSON.stringify(body), { status: 200 });
  });
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l), env: { FLOE_URL: "http://engine.test", FLOE_TOKEN: "t" }, stdin: Readable.from([]) });
  return { code, out, err, requests };
}

describe("floe ingest against a full stream", () => {
  it("sends a batch again after a 429 (stream_full), with the same Idempotency-Key", async () => {
    const r = await ingest(['{"a":1}'], [429, 200]);
    expect(r.code).toBe(0);
    expect(r.keys).toHaveLength(2);
    expect(r.keys[1]).toBe(r.keys[0]);
  });
});

describe("floe streams", () => {
  const stream = {
    stream: "clicks",
    partition_count: 2,
    records: 30,
    bytes: 900,
    retention_ms: 1000,
    retention_bytes: 2000,
    max_bytes: 4000,
    lag: { clicks: 4 },
    partitions: [
      { partition: 0, earliest_offset: 5, next_offset: 20, records: 15, bytes: 450, jobs: [{ job: "clicks", checkpointed_offset: 16, lag: 4, active: true }] },
      { partition: 1, earliest_offset: 0, next_offset: 15, records: 15, bytes: 450, jobs: [] },
    ],
  };

  it("lists the streams with their sizes and each job's lag", async () => {
    const r = await run(["streams"], { streams: [stream] });
    expect(r.code).toBe(0);
    expect(r.requests[0].url).toBe("http://engine.test/v1/streams");
    expect(r.out).toEqual(["clicks\t2 partition(s)\t30 records\t900 B\tclicks lag 4"]);
  });

  it("shows one stream's partitions: offsets, size, and where each job checkpointed", async () => {
    const r = await run(["streams", "clicks"], stream);
    expect(r.requests[0].url).toBe("http://engine.test/v1/streams/clicks");
    expect(r.out[0].split("\n")).toEqual([
      "clicks: 30 records, 900 B in 2 partition(s); retention 1000 ms or 2000 B, limit 4000 B",
      "0\toffsets 5..20\t15 records\t450 B\tclicks at 16 (lag 4)",
      "1\toffsets 0..15\t15 records\t450 B",
    ]);
  });
});

describe("floe run --starting-offsets", () => {
  it("sends earliest, latest, or a time as starting_offsets", async () => {
    const status = { name: "clicks", status: "RUNNING", attempt: 1 };
    expect(JSON.parse((await run(["run", "clicks", "--starting-offsets", "latest"], status)).requests[0].body!)).toEqual({ starting_offsets: "latest" });
    expect(JSON.parse((await run(["run", "clicks", "--starting-offsets", "1700000000000"], status)).requests[0].body!)).toEqual({ starting_offsets: { timestamp: 1700000000000 } });
    expect((await run(["run", "clicks", "--starting-offsets", "yesterday"], status)).code).toBe(2);
  });
});
