/**
 * Every bad input answers a clear 4xx in the contract's error shape,
 * `{ "error": { "code", "message" } }`, and changes nothing: records
 * accepted before the bad requests are all still there, counted exactly
 * once, and no record of a refused request is stored.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Engine, TEST_TOKEN, startEngine, waitFor } from "../support/engine.js";
import { type IngestAnswer, type Row, expectError, expectLargeError, ingest, ingestOk, ndjson, partitionInfo, postLarge, streamLength, tableRows } from "../support/http.js";

const STREAM = "clicks";
const PARTITIONS = 4;
const TABLE = "clicks-per-user";
const MIB = 1024 * 1024;

describe("bad input to a running engine", () => {
  let engine: Engine;
  /** Counts the table must end up with: only accepted records. */
  const expected = new Map<string, number>();
  /** Records acknowledged with a 200 (duplicates excluded). */
  let accepted = 0;
  const count = (records: { user: string }[]) => {
    for (const r of records) expected.set(r.user, (expected.get(r.user) ?? 0) + 1);
    accepted += records.length;
  };
  const clicks = (user: (i: number) => string, n: number, tag: string) =>
    Array.from({ length: n }, (_, i) => ({ user: user(i), url: `/${tag}/${i}`, ts: 1_700_000_000_000 + i }));

  beforeAll(async () => {
    engine = await startEngine();
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it("refuses to cancel a job that is not running (409) and leaves it CREATED", async () => {
    await expectError(await engine.api("/v1/jobs/clicks/cancel", { method: "POST" }), 409, "job_not_running", /clicks.*CREATED/);
    const status = (await (await engine.api("/v1/jobs/clicks")).json()) as { status: string; attempt: number };
    expect(status).toMatchObject({ status: "CREATED", attempt: 0 });
  });

  it("refuses bad start bodies with 400 and starts nothing", async () => {
    const start = (init: RequestInit & { json?: unknown }) => engine.api("/v1/jobs/clicks/start", { method: "POST", ...init });
    await expectError(await start({ json: { parallelism: 2, bogus: true } }), 400, "invalid_request", /bogus/);
    await expectError(await start({ json: { parallelism: 0 } }), 400, "invalid_request", /parallelism/);
    await expectError(await start({ json: { parallelism: -3 } }), 400, "invalid_request", /parallelism/);
    await expectError(await start({ json: { parallelism: 1.5 } }), 400, "invalid_request", /parallelism/);
    await expectError(await start({ json: { parallelism: "4" } }), 400, "invalid_request", /parallelism/);
    // Above the job's maxParallelism (128).
    await expectError(await start({ json: { parallelism: 129 } }), 400, "invalid_job", /128.*129/);
    await expectError(await start({ json: { parallelism: { "count-per-user": 200 } } }), 400, "invalid_job", /count-per-user.*128.*200/);
    await expectError(await start({ json: { parallelism: { "no-such-uid": 2 } } }), 400, "invalid_job", /no-such-uid/);
    await expectError(await start({ json: { parallelism: { "count-per-user": 0 } } }), 400, "invalid_request", /parallelism/);
    await expectError(await start({ json: [] }), 400, "invalid_request");
    await expectError(await start({ json: null }), 400, "invalid_request");
    await expectError(await start({ body: "{ not json", headers: { "content-type": "application/json" } }), 400, "bad_request", /JSON/);
    await expectError(await start({ json: { fromSavepoint: "sp-1" } }), 400, "invalid_request", /savepoint id/);
    await expectError(await start({ json: { fromSavepoint: "savepoint-99" } }), 404, "savepoint_not_found", /savepoint 99/);
    await expectError(await start({ json: { fromCheckpoint: 99 } }), 404, "checkpoint_not_found", /checkpoint 99/);
    await expectError(await start({ json: { fromCheckpoint: "x" } }), 400, "invalid_request", /fromCheckpoint/);
    // A bad `config` is a 400 invalid_config naming the key or option and the value.
    await expectError(await start({ json: { config: { state: {} } } }), 400, "invalid_config", /unknown config section "state" \(known: checkpoint, restart_strategy\)/);
    await expectError(await start({ json: { config: { checkpoint: { intervall_ms: 5 } } } }), 400, "invalid_config", /unknown checkpoint option "intervall_ms" \(known: interval_ms, /);
    await expectError(await start({ json: { config: { checkpoint: { interval_ms: -1 } } } }), 400, "invalid_config", /checkpoint\.interval_ms \(intervalMs\) must be an integer ≥ 0, got -1/);
    await expectError(await start({ json: { config: { checkpoint: { mode: "at-least-once" } } } }), 400, "invalid_config", /checkpoint\.mode must be "exactly_once" or "at_least_once", got "at-least-once"/);
    await expectError(await start({ json: { config: { restart_strategy: { type: "fixed-delay", delay: 5 } } } }), 400, "invalid_config", /fixed-delay: unknown option "delay" \(known: attempts, delay_ms\)/);
    await expectError(await start({ json: { config: { restart_strategy: { type: "always" } } } }), 400, "invalid_config", /unknown restart strategy "always"/);

    const status = (await (await engine.api("/v1/jobs/clicks")).json()) as { status: string; attempt: number };
    expect(status).toMatchObject({ status: "CREATED", attempt: 0 });
  });

  it("starts the job, and refuses to start it again while RUNNING (409)", async () => {
    const res = await engine.api("/v1/jobs/clicks/start", { method: "POST", json: {} });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ name: "clicks", status: "RUNNING", attempt: 1 });

    await expectError(await engine.api("/v1/jobs/clicks/start", { method: "POST", json: {} }), 409, "job_running", /RUNNING/);
    await expectError(await engine.api("/v1/jobs/clicks/start", { method: "POST", json: { parallelism: 2 } }), 409, "job_running");
    const status = (await (await engine.api("/v1/jobs/clicks")).json()) as { status: string; attempt: number };
    expect(status).toMatchObject({ status: "RUNNING", attempt: 1 });
  });

  it("accepts good records (NDJSON and JSON arrays)", async () => {
    const a = clicks((i) => `user-${i % 7}`, 300, "a");
    expect((await ingestOk(engine, STREAM, ndjson(a))).count).toBe(300);
    count(a);
    const b = clicks((i) => `user-${i % 5}`, 120, "b");
    expect((await ingestOk(engine, STREAM, b)).count).toBe(120);
    count(b);
    // A single JSON object is one record; only "user" is required.
    expect((await ingestOk(engine, STREAM, [{ user: "solo" }])).count).toBe(1);
    count([{ user: "solo" }]);
    // NDJSON with CRLF line ends and blank lines.
    const c = clicks((i) => `user-${i % 3}`, 9, "c");
    expect((await ingestOk(engine, STREAM, `\r\n${c.map((r) => JSON.stringify(r)).join("\r\n\r\n")}\r\n`)).count).toBe(9);
    count(c);
  });

  it("refuses missing and wrong tokens with 401", async () => {
    const body = ndjson([{ user: "intruder" }]);
    const noAuth = (path: string, init: RequestInit = {}) => fetch(`${engine.url}${path}`, init);
    await expectError(await noAuth("/v1/ingest/clicks", { method: "POST", body }), 401, "unauthorized", /Authorization: Bearer/);
    await expectError(await ingest(engine, STREAM, body, { authorization: "Bearer wrong-token" }), 401, "unauthorized", /not valid/);
    await expectError(await ingest(engine, STREAM, body, { authorization: `Bearer ${TEST_TOKEN}x` }), 401, "unauthorized");
    await expectError(await ingest(engine, STREAM, body, { authorization: `Basic ${btoa(`admin:${TEST_TOKEN}`)}` }), 401, "unauthorized");
    await expectError(await ingest(engine, STREAM, body, { authorization: "Bearer " }), 401, "unauthorized");
    // Auth comes before the existence of the stream.
    await expectError(await noAuth("/v1/ingest/no-such-stream", { method: "POST", body }), 401, "unauthorized");

    for (const [method, path] of [
      ["GET", "/v1/jobs"],
      ["GET", "/v1/jobs/clicks"],
      ["POST", "/v1/jobs/clicks/start"],
      ["POST", "/v1/jobs/clicks/cancel"],
      ["GET", "/v1/jobs/clicks/metrics"],
      ["GET", "/v1/tables/clicks-per-user"],
      ["GET", "/v1/tables/clicks-per-user/user-1"],
    ] as const) {
      await expectError(await noAuth(path, { method }), 401, "unauthorized", /Authorization: Bearer/);
      await expectError(await engine.api(path, { method, headers: { authorization: "Bearer wrong-token" } }), 401, "unauthorized", /not valid/);
    }
    // The unauthenticated cancel did not cancel.
    const status = (await (await engine.api("/v1/jobs/clicks")).json()) as { status: string };
    expect(status.status).toBe("RUNNING");
  });

  it("answers 404 for unknown streams, jobs, tables and routes", async () => {
    await expectError(await ingest(engine, "no-such-stream", ndjson([{ user: "x" }])), 404, "stream_not_found", /no-such-stream/);
    await expectError(await engine.api("/v1/jobs/no-such-job"), 404, "job_not_found", /no-such-job.*clicks/);
    await expectError(await engine.api("/v1/jobs/no-such-job/start", { method: "POST", json: {} }), 404, "job_not_found", /no-such-job/);
    await expectError(await engine.api("/v1/jobs/no-such-job/cancel", { method: "POST" }), 404, "job_not_found", /no-such-job/);
    await expectError(await engine.api("/v1/jobs/no-such-job/metrics"), 404, "job_not_found", /no-such-job/);
    await expectError(await engine.api("/v1/tables/no-such-table"), 404, "table_not_found", /no-such-table/);
    await expectError(await engine.api("/v1/tables/no-such-table/user-1"), 404, "table_not_found", /no-such-table/);
    await expectError(await engine.api("/v1/tables/clicks-per-user/never-seen"), 404, "row_not_found", /never-seen/);

    await expectError(await engine.api("/v1/no-such-route"), 404, "not_found", /GET \/v1\/no-such-route/);
    await expectError(await engine.api("/no-such-route", { method: "POST" }), 404, "not_found", /POST \/no-such-route/);
    // Issue 21: GET on the ingestion path is a known path with the wrong method.
    await expectError(await engine.api("/v1/ingest/clicks"), 405, "method_not_allowed", /takes POST; GET \/v1\/streams\/clicks shows the stream/);
    await expectError(await engine.api("/v1/jobs/clicks/no-such-action", { method: "POST" }), 404, "not_found");
    await expectError(await engine.api("/v1/jobs/clicks", { method: "DELETE" }), 404, "not_found");
  });

  it("refuses malformed and invalid bodies with 400 and stores none of them", async () => {
    // A JSON array that does not parse.
    await expectError(
      await engine.api("/v1/ingest/clicks", { method: "POST", body: '[{"user":"bad-array"},{"user":', headers: { "content-type": "application/json" } }),
      400,
      "invalid_json",
      /not JSON/,
    );
    // The same without a content type: the leading "[" makes it a JSON array.
    await expectError(await engine.api("/v1/ingest/clicks", { method: "POST", body: '[{"user":"bad-array"},' }), 400, "invalid_json");
    // NDJSON whose third line does not parse: the message names the line.
    await expectError(
      await ingest(engine, STREAM, '{"user":"bad-ndjson"}\n{"user":"bad-ndjson"}\n{"user": bad-ndjson}\n{"user":"bad-ndjson"}\n'),
      400,
      "invalid_json",
      /line 3\b/,
    );
    // A blank line still counts in the numbering.
    await expectError(await ingest(engine, STREAM, '{"user":"bad-ndjson"}\n\n{oops\n'), 400, "invalid_json", /line 3\b/);
    // Records that parse but fail the clicks stream's validation.
    await expectError(
      await ingest(engine, STREAM, '{"user":"bad-record"}\n{"url":"/no-user"}\n'),
      400,
      "invalid_record",
      /line 2.*"user"/,
    );
    await expectError(await ingest(engine, STREAM, [{ user: "bad-record" }, { url: "/no-user" }]), 400, "invalid_record", /record 1.*"user"/);
    await expectError(await ingest(engine, STREAM, [{ user: "" }]), 400, "invalid_record", /record 0.*"user"/);
    await expectError(await ingest(engine, STREAM, [{ user: 42 }]), 400, "invalid_record", /"user"/);
    await expectError(await ingest(engine, STREAM, [{ user: "bad-record", url: 5 }]), 400, "invalid_record", /"url"/);
    await expectError(await ingest(engine, STREAM, [{ user: "bad-record", ts: "yesterday" }]), 400, "invalid_record", /"ts"/);
    await expectError(await ingest(engine, STREAM, [{ user: "bad-record" }, "just a string"]), 400, "invalid_record", /record 1.*object/);
    await expectError(await ingest(engine, STREAM, [{ user: "bad-record" }, [1, 2]]), 400, "invalid_record", /record 1/);
    await expectError(await ingest(engine, STREAM, [{ user: "bad-record" }, null]), 400, "invalid_record", /record 1 is null/);
    await expectError(await ingest(engine, STREAM, '{"user":"bad-record"}\nnull\n'), 400, "invalid_record", /line 2 is null/);
    // Empty bodies.
    await expectError(await ingest(engine, STREAM, ""), 400, "empty_body");
    await expectError(await ingest(engine, STREAM, " \n\r\n  \n"), 400, "empty_body");
    await expectError(await ingest(engine, STREAM, []), 400, "empty_body");
    await expectError(await engine.api("/v1/ingest/clicks", { method: "POST" }), 400, "empty_body");
    await expectError(await engine.api("/v1/ingest/clicks", { method: "POST", body: "", headers: { "content-type": "application/json" } }), 400, "empty_body");
  });

  it("refuses a body over 8 MiB with 413 body_too_large", async () => {
    const record = JSON.stringify({ user: "too-large", url: `/${"x".repeat(1000)}` });
    const lines = Math.ceil((8 * MIB + 1) / (record.length + 1)) + 1;
    const bytes = new TextEncoder().encode(`${record}\n`.repeat(lines));
    expect(bytes.length).toBeGreaterThan(8 * MIB);
    // With a Content-Length: refused on the header alone.
    await expectLargeError(await postLarge(engine, "/v1/ingest/clicks", { bytes }, { "content-type": "application/x-ndjson" }), 413, "body_too_large", /8388608/);
    // Without a Content-Length (chunked): refused once the limit is passed
    // while reading. The last chunk carries the excess byte, so that the
    // server has read nearly all of it when it answers.
    const exact = bytes.subarray(0, 8 * MIB + 1);
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < 8 * MIB; i += 256 * 1024) chunks.push(exact.subarray(i, Math.min(i + 256 * 1024, 8 * MIB)));
    chunks.push(exact.subarray(8 * MIB));
    await expectLargeError(await postLarge(engine, "/v1/ingest/clicks", { chunks }, { "content-type": "application/x-ndjson" }), 413, "body_too_large");
    // Too large and unauthenticated: still a clean 4xx.
    const noAuth = await postLarge(engine, "/v1/ingest/clicks", { bytes }, { authorization: "Bearer wrong-token" });
    expect([401, 413]).toContain(noAuth.status);
    expect(JSON.parse(noAuth.text)).toMatchObject({ error: { code: expect.any(String), message: expect.any(String) } });
  });

  it("refuses more than 100000 records with 413 too_many_records", async () => {
    const line = '{"user":"too-many"}\n';
    await expectError(await ingest(engine, STREAM, line.repeat(100_001)), 413, "too_many_records", /100000/);
    const array = `[${Array.from({ length: 100_001 }, () => '{"user":"too-many"}').join(",")}]`;
    await expectError(
      await engine.api("/v1/ingest/clicks", { method: "POST", body: array, headers: { "content-type": "application/json" } }),
      413,
      "too_many_records",
      /100000/,
    );
  });

  it("refuses a bad Idempotency-Key with 400", async () => {
    const body = ndjson([{ user: "bad-key" }]);
    await expectError(await ingest(engine, STREAM, body, { "idempotency-key": "k".repeat(257) }), 400, "invalid_idempotency_key", /1\.\.256/);
    await expectError(await ingest(engine, STREAM, body, { "idempotency-key": "" }), 400, "invalid_idempotency_key");
  });

  it("refuses a bad ?limit and ?cursor on a table listing with 400", async () => {
    for (const limit of ["0", "-1", "1001", "1.5", "abc", ""]) {
      await expectError(await engine.api(`/v1/tables/clicks-per-user?limit=${limit}`), 400, "invalid_request", /limit.*1\.\.1000/);
    }
    const b64 = (v: unknown) => btoa(JSON.stringify(v)).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
    for (const cursor of ["%%%", "not-a-cursor", b64(null), b64(7), b64({ p: PARTITIONS, k: null }), b64({ p: -1, k: null }), b64({ p: 0.5, k: null }), b64({ p: 0, k: 5 })]) {
      await expectError(await engine.api(`/v1/tables/clicks-per-user?cursor=${encodeURIComponent(cursor)}`), 400, "invalid_cursor");
    }
  });

  it("applies a request sent twice with the same Idempotency-Key once, and answers the same offsets", async () => {
    const records = clicks((i) => (i % 2 ? "idem-a" : "idem-b"), 10, "idem");
    const headers = { "idempotency-key": "retry-me-0001" };
    const first = await ingestOk(engine, STREAM, ndjson(records), headers);
    expect(first).toMatchObject({ stream: STREAM, count: 10, duplicate: false });
    count(records);
    const [{ partition, first_offset, last_offset }] = first.offsets;
    expect(last_offset - first_offset + 1).toBe(10);
    const end = (await partitionInfo(engine, STREAM, partition)).endOffset;
    expect(end).toBe(last_offset + 1);

    const second = await ingestOk(engine, STREAM, ndjson(records), headers);
    expect(second).toEqual({ ...first, duplicate: true } satisfies IngestAnswer);
    // As a JSON array too: the key decides, so the answer is the same.
    const third = await ingestOk(engine, STREAM, records, headers);
    expect(third).toEqual({ ...first, duplicate: true });
    // The partition holds the request once: nothing was appended by the retries.
    expect((await partitionInfo(engine, STREAM, partition)).endOffset).toBe(end);

    // A key of the longest allowed length (256) works the same.
    const long = clicks(() => "idem-long", 2, "long");
    const l1 = await ingestOk(engine, STREAM, long, { "idempotency-key": "k".repeat(256) });
    count(long);
    const l2 = await ingestOk(engine, STREAM, long, { "idempotency-key": "k".repeat(256) });
    expect(l2).toEqual({ ...l1, duplicate: true });
  });

  it("kept every accepted record exactly once, and stored nothing of the refused requests", async () => {
    // The log holds exactly the acknowledged records.
    expect(await streamLength(engine, STREAM, PARTITIONS)).toBe(accepted);

    let rows = new Map<string, number>();
    await waitFor(
      async () => {
        rows = await tableRows(engine, TABLE);
        return rows.size === expected.size && [...expected].every(([k, v]) => rows.get(k) === v);
      },
      20_000,
      "the exact counts in the table",
    ).catch((e: Error) => {
      throw new Error(`${e.message}\nexpected ${JSON.stringify([...expected].sort())}\ngot ${JSON.stringify([...rows].sort())}`);
    });
    expect(Object.fromEntries(rows)).toEqual(Object.fromEntries(expected));
    for (const never of ["intruder", "bad-array", "bad-ndjson", "bad-record", "too-large", "too-many", "bad-key"]) {
      await expectError(await engine.api(`/v1/tables/clicks-per-user/${never}`), 404, "row_not_found");
    }

    // Paging with a small limit walks the same rows, each once.
    const paged: Row[] = [];
    let cursor: string | null = null;
    do {
      const res: Response = await engine.api(`/v1/tables/clicks-per-user?limit=3${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.status).toBe(200);
      const page = (await res.json()) as { rows: Row[]; next_cursor: string | null };
      expect(page.rows.length).toBeLessThanOrEqual(3);
      paged.push(...page.rows);
      cursor = page.next_cursor;
    } while (cursor);
    expect(paged.length).toBe(expected.size);
    expect(Object.fromEntries(paged.map((r) => [r.key, r.value]))).toEqual(Object.fromEntries(expected));

    const status = (await (await engine.api("/v1/jobs/clicks")).json()) as { status: string; attempt: number; last_error: string | null };
    expect(status).toMatchObject({ status: "RUNNING", attempt: 1, last_error: null });
  });
});

describe("ingestion limits, at and over the edge, with no job running", () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await startEngine();
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it("accepts exactly 100000 records and a body of exactly 8 MiB", async () => {
    const r = await ingestOk(engine, STREAM, '{"user":"many"}\n'.repeat(100_000));
    expect(r.count).toBe(100_000);
    expect(r.offsets[0].last_offset - r.offsets[0].first_offset + 1).toBe(100_000);

    // Records padded so that the body is exactly 8 MiB.
    const n = 8000;
    const base = JSON.stringify({ user: "exact", url: "" }).length + 1; // with its newline
    const pad = Math.floor(8 * MIB / n) - base;
    const lines = Array.from({ length: n }, () => JSON.stringify({ user: "exact", url: "x".repeat(pad) }));
    let body = `${lines.join("\n")}\n`;
    body += " ".repeat(8 * MIB - body.length); // trailing whitespace is allowed
    expect(body.length).toBe(8 * MIB);
    expect((await ingestOk(engine, STREAM, body)).count).toBe(n);
    expect(await streamLength(engine, STREAM, PARTITIONS)).toBe(100_000 + n);
  });

  it("refuses a single record too large to store with a 4xx, leaves nothing of it behind, and keeps the partition usable", async () => {
    // 3 MB in one record: under the 8 MiB body limit, over what one stored chunk can hold.
    const small = { user: "before-huge" };
    const huge = { user: "huge", url: `/${"x".repeat(3_000_000)}` };
    const key = "huge-record-request";
    const before = await streamLength(engine, STREAM, PARTITIONS);
    const res = await ingest(engine, STREAM, ndjson([small, huge]), { "idempotency-key": key });
    const text = await res.text();
    // Each facet is checked softly, so that a failure reports all of them.
    expect.soft(res.status >= 400 && res.status < 500, `a record over the storage limit is the client's error, not a ${res.status}: ${text.slice(0, 300)}`).toBe(true);
    expect.soft(text, "the error names the record").toMatch(/"error":\{"code":"[a-z_]+","message":"[^"]*(record|line 2)/);

    // The same key reaches the same partition; it must still take appends.
    const retry = await ingest(engine, STREAM, ndjson([small]), { "idempotency-key": key });
    const retryText = await retry.text();
    expect.soft(retry.status, `the partition takes appends after the refused one: ${retryText.slice(0, 300)}`).toBe(200);
    const retried = retry.status === 200 ? 1 : 0;
    expect.soft(await streamLength(engine, STREAM, PARTITIONS)).toBe(before + retried);

    // All or nothing, also after a restart over the same state: nothing of
    // the refused request (its small first record) appears in the log.
    await engine.dispose();
    engine = await startEngine({ persistDir: engine.persistDir });
    expect.soft(await streamLength(engine, STREAM, PARTITIONS), "records in the log after a restart (a refused request's records leaked in)").toBe(before + retried);
    const again = await ingest(engine, STREAM, ndjson([{ user: "after-restart" }]));
    expect(again.status).toBe(200);
  });
});

describe("a job whose sink lacks its Worker variable", () => {
  let engine: Engine;
  afterAll(async () => {
    await engine?.dispose();
  });

  it("is refused at start (409 sink_not_configured, naming the variable) and stays CREATED", async () => {
    engine = await startEngine({ testJobs: true });
    await expectError(
      await engine.api("/v1/jobs/sinks/start", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }),
      409,
      "sink_not_configured",
      /webhook sink "webhook-out".*WEBHOOK_URL.*not set/,
    );
    const status = (await (await engine.api("/v1/jobs/sinks")).json()) as { status: string; attempt: number };
    expect(status).toMatchObject({ status: "CREATED", attempt: 0 });
  });

  it("is refused when the variable is not an http(s) URL", async () => {
    await engine.dispose();
    engine = await startEngine({ testJobs: true, bindings: { WEBHOOK_URL: "ftp://127.0.0.1/hook" } });
    await expectError(
      await engine.api("/v1/jobs/sinks/start", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }),
      409,
      "sink_not_configured",
      /WEBHOOK_URL must be an http\(s\) URL/,
    );
  });
});
