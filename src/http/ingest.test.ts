import { describe, expect, it } from "vitest";
import { FloeError } from "../errors.js";
import { Random } from "../../test/support/random.js";
import { job } from "../api/job.js";
import { httpSource } from "../connectors/sources/http-source.js";
import { tableSink } from "../connectors/sinks/table-sink.js";
import { hashKey } from "../graph/key-groups.js";
import { JobRegistry } from "../runtime/registry.js";
import { RECORD_BYTES_MAX } from "../storage/record-limits.js";
import { INGEST_RECORDS_MAX, ingestRoutes, parseRecords, partitionChooser } from "./ingest.js";

/** Expects parseRecords to refuse with `code`, a message matching `message`, and `status`. */
function expectRefused(fn: () => unknown, code: string, message: RegExp | string, status = 400): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(FloeError);
  const err = caught as FloeError;
  expect(err.code).toBe(code);
  expect(err.status).toBe(status);
  expect(err.message).toMatch(message);
}

const JSON_TYPE = "application/json";
const NDJSON_TYPE = "application/x-ndjson";

describe("parseRecords: JSON", () => {
  it("takes each element of an array as a record, in canonical JSON text", () => {
    expect(parseRecords('[{"user": "a"}, {"user":"b", "ts": 1}, 3, "s", [1, 2]]', JSON_TYPE)).toEqual([
      '{"user":"a"}',
      '{"user":"b","ts":1}',
      "3",
      '"s"',
      "[1,2]",
    ]);
  });

  it("takes a single object as one record", () => {
    expect(parseRecords('{ "user": "a" }', JSON_TYPE)).toEqual(['{"user":"a"}']);
  });

  it("takes a pretty-printed object spanning lines as one record", () => {
    expect(parseRecords('{\n  "user": "a",\n  "ts": 2\n}\n', JSON_TYPE)).toEqual(['{"user":"a","ts":2}']);
  });

  it("reads an array without content type", () => {
    expect(parseRecords('  \n [{"a":1},{"a":2}]', "")).toEqual(['{"a":1}', '{"a":2}']);
  });

  it("refuses a body that is not JSON", () => {
    expectRefused(() => parseRecords('[{"a":1},', JSON_TYPE), "invalid_json", /^the body is not JSON: /);
    expectRefused(() => parseRecords('{"a":1}\n{"a":2}', JSON_TYPE), "invalid_json", /^the body is not JSON/);
  });

  it("refuses null records, naming their index", () => {
    expectRefused(() => parseRecords("null", JSON_TYPE), "invalid_record", "record 0 is null");
    expectRefused(() => parseRecords('[{"a":1}, null]', JSON_TYPE), "invalid_record", "record 1 is null");
  });

  it("refuses an empty array", () => {
    expectRefused(() => parseRecords("[]", JSON_TYPE), "empty_body", "the body holds no records");
  });
});

describe("parseRecords: NDJSON", () => {
  it("takes one record per line", () => {
    expect(parseRecords('{"a":1}\n{"a":2}\n', NDJSON_TYPE)).toEqual(['{"a":1}', '{"a":2}']);
  });

  it("skips blank lines and trims CRLF and spaces", () => {
    expect(parseRecords('\r\n{"a":1}\r\n\r\n   \n  {"a":2}  \r\n', NDJSON_TYPE)).toEqual(['{"a":1}', '{"a":2}']);
  });

  it("accepts every NDJSON content type, with parameters and in any case", () => {
    for (const type of ["application/x-ndjson", "application/jsonl", "application/ndjson", "Application/X-NDJSON; charset=utf-8"]) {
      expect(parseRecords('{"a":1}\n{"a":2}', type)).toEqual(['{"a":1}', '{"a":2}']);
    }
  });

  it("reads lines as records even when a line is an array, under an NDJSON type", () => {
    expect(parseRecords("[1,2]\n[3]", NDJSON_TYPE)).toEqual(["[1,2]", "[3]"]);
  });

  it("refuses a line that is not JSON, naming its line number", () => {
    expectRefused(() => parseRecords('{"a":1}\n\n{"a":\n{"a":3}', NDJSON_TYPE), "invalid_json", /^line 3 is not JSON: /);
    expectRefused(() => parseRecords('{"a":1}\r\n{oops}\r\n', NDJSON_TYPE), "invalid_json", /^line 2 is not JSON/);
  });

  it("refuses a null line, naming its line number", () => {
    expectRefused(() => parseRecords('{"a":1}\nnull\n', NDJSON_TYPE), "invalid_record", "line 2 is null");
  });

  it("refuses a body of blank lines only", () => {
    expectRefused(() => parseRecords("\n\r\n  \n", NDJSON_TYPE), "empty_body", /no records/);
  });

  it("refuses a record larger than a stored record may be, counting UTF-8 bytes, and takes one of exactly that size", () => {
    // Each "é" is 2 bytes: the record's text is RECORD_BYTES_MAX bytes with its quotes, then one byte over.
    const exact = JSON.stringify("é".repeat((RECORD_BYTES_MAX - 2) / 2));
    expect(parseRecords(`{"a":1}\n${exact}`, NDJSON_TYPE)).toHaveLength(2);
    expectRefused(() => parseRecords(`{"a":1}\n${JSON.stringify(`${"é".repeat((RECORD_BYTES_MAX - 2) / 2)}x`)}`, NDJSON_TYPE), "record_too_large", /^line 2 is larger than/, 413);
    // Fewer characters than bytes allowed, more bytes than allowed: counted.
    expectRefused(() => parseRecords(JSON.stringify(["€".repeat(RECORD_BYTES_MAX / 2)]), JSON_TYPE), "record_too_large", /^record 0 is larger than/, 413);
  });
});

describe("parseRecords: content-type sniffing", () => {
  it("reads JSON under application/json, with parameters and in any case", () => {
    expect(parseRecords('{"a":1}', "Application/JSON; charset=utf-8")).toEqual(['{"a":1}']);
  });

  it("reads NDJSON when the type is neither JSON nor NDJSON and the body is not an array", () => {
    for (const type of ["", "text/plain", "application/octet-stream"]) {
      expect(parseRecords('{"a":1}\n{"a":2}', type)).toEqual(['{"a":1}', '{"a":2}']);
    }
  });

  it("reads an array as JSON when the type says nothing", () => {
    expect(parseRecords('[{"a":1}]', "text/plain")).toEqual(['{"a":1}']);
  });
});

describe("parseRecords: validation", () => {
  const validate = (r: unknown) =>
    typeof r === "object" && r !== null && typeof (r as { user?: unknown }).user === "string" ? undefined : 'a click needs "user"';

  it("passes every record to the validator and keeps them when it finds no problem", () => {
    const seen: unknown[] = [];
    const out = parseRecords('[{"user":"a"},{"user":"b"}]', JSON_TYPE, (r) => {
      seen.push(r);
      return undefined;
    });
    expect(out).toHaveLength(2);
    expect(seen).toEqual([{ user: "a" }, { user: "b" }]);
  });

  it("refuses the whole body when one record is invalid, naming where", () => {
    expectRefused(() => parseRecords('[{"user":"a"},{"url":"x"}]', JSON_TYPE, validate), "invalid_record", 'record 1: a click needs "user"');
    expectRefused(() => parseRecords('{"user":"a"}\n\n{"url":"x"}\n', NDJSON_TYPE, validate), "invalid_record", 'line 3: a click needs "user"');
  });

  it("checks for null before calling the validator", () => {
    let calls = 0;
    expectRefused(
      () =>
        parseRecords("[null]", JSON_TYPE, () => {
          calls++;
          return undefined;
        }),
      "invalid_record",
      "record 0 is null",
    );
    expect(calls).toBe(0);
  });
});

describe("parseRecords: size", () => {
  it("refuses an empty or whitespace-only body", () => {
    expectRefused(() => parseRecords("", JSON_TYPE), "empty_body", /send a JSON array or NDJSON/);
    expectRefused(() => parseRecords(" \r\n\t", NDJSON_TYPE), "empty_body", /no records/);
  });

  it(`accepts ${INGEST_RECORDS_MAX} records and refuses one more, with 413`, () => {
    expect(parseRecords("1\n".repeat(INGEST_RECORDS_MAX), NDJSON_TYPE)).toHaveLength(INGEST_RECORDS_MAX);
    expectRefused(() => parseRecords("1\n".repeat(INGEST_RECORDS_MAX + 1), NDJSON_TYPE), "too_many_records", /at most 100000 records/, 413);

    const array = (n: number) => `[${new Array(n).fill("1").join(",")}]`;
    expect(parseRecords(array(INGEST_RECORDS_MAX), JSON_TYPE)).toHaveLength(INGEST_RECORDS_MAX);
    expectRefused(() => parseRecords(array(INGEST_RECORDS_MAX + 5), JSON_TYPE), "too_many_records", /split the body/, 413);
  });
});

describe("partitionChooser", () => {
  it("sends a keyless request to the next partition, from a start the random source picks", () => {
    const r = new Random(42);
    const choose = partitionChooser(() => r.next());
    const start = Math.floor(new Random(42).next() * 1024);
    expect(Array.from({ length: 6 }, () => choose(4))).toEqual([0, 1, 2, 3, 4, 5].map((i) => (start + i) % 4));
  });

  it("replays the same choices from the same seed, and other ones from another", () => {
    const run = (seed: number) => {
      const r = new Random(seed);
      const choose = partitionChooser(() => r.next());
      return Array.from({ length: 5 }, () => choose(7));
    };
    expect(run(3)).toEqual(run(3));
    expect(new Set([1, 2, 3, 4, 5, 6, 7, 8].map((s) => run(s)[0])).size).toBeGreaterThan(1);
  });

  it("sends a request with an Idempotency-Key where its retry goes, whatever the round robin did meanwhile", () => {
    const r = new Random(9);
    const choose = partitionChooser(() => r.next());
    const first = choose(8, "batch-17");
    choose(8);
    choose(8);
    expect(choose(8, "batch-17")).toBe(first);
    expect(first).toBe(hashKey("batch-17") % 8);
  });
});

describe("POST /v1/ingest/:stream", () => {
  const registry = new JobRegistry([
    (() => {
      const j = job("ingest-test");
      j.source(httpSource("clicks", { partitions: 3 }), { uid: "in" }).sink(tableSink("out"), { uid: "out" });
      return j;
    })(),
  ]);
  /** The routes with a seeded random source, over partitions that record what they were asked to append. */
  function routes(seed: number) {
    const appended: { partition: string; records: string[]; key?: string }[] = [];
    const env = {
      FLOE_ADMIN_TOKEN: "t",
      STREAM_PARTITION: {
        idFromName: (name: string) => name,
        get: (name: string) => ({
          append: async (records: string[], key?: string) => {
            appended.push({ partition: name, records, key });
            return { firstOffset: 0, endOffset: records.length, count: records.length, duplicate: false };
          },
        }),
      },
    };
    const r = new Random(seed);
    const app = ingestRoutes(registry, { random: () => r.next() });
    const post = (body: string, key?: string) =>
      app.request("/clicks", { method: "POST", body, headers: { authorization: "Bearer t", "content-type": JSON_TYPE, ...(key ? { "idempotency-key": key } : {}) } }, env);
    return { post, appended };
  }

  it("appends keyless requests round robin from the seeded start, and answers the partition", async () => {
    const { post, appended } = routes(5);
    const answers: number[] = [];
    for (let i = 0; i < 4; i++) answers.push(((await (await post(`[{"i":${i}}]`)).json()) as { offsets: { partition: number }[] }).offsets[0].partition);
    const start = Math.floor(new Random(5).next() * 1024);
    expect(answers).toEqual([0, 1, 2, 3].map((i) => (start + i) % 3));
    expect(appended.map((a) => a.partition)).toEqual(answers.map((p) => `stream:clicks/partition:${p}`));
  });

  it("passes the Idempotency-Key to the partition it hashes to", async () => {
    const { post, appended } = routes(1);
    const res = await post('{"i":1}', "req-1");
    expect(res.status).toBe(200);
    expect(appended).toEqual([{ partition: `stream:clicks/partition:${hashKey("req-1") % 3}`, records: ['{"i":1}'], key: "req-1" }]);
  });
});
