/**
 * `POST /v1/ingest/:stream`: parses a JSON array or NDJSON body, checks
 * every record, and appends it to the stream: the whole request to one
 * partition, or, for a stream with a partition key, each record to its
 * key's partition (see ingest-split.ts). One bad record refuses the
 * request, and nothing of it is stored.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { FloeError } from "../errors.js";
import { hashKey } from "../graph/key-groups.js";
import type { FloeEnv } from "../runtime/env.js";
import type { JobRegistry } from "../runtime/registry.js";
import { RECORD_BYTES_MAX, fitsUtf8 } from "../storage/record-limits.js";
import { requireToken } from "./auth.js";
import { errorResponse } from "./errors.js";
import { appendRequest, bodyHash, splitByKey } from "./ingest-split.js";

/** Largest accepted request body. */
export const INGEST_BODY_BYTES_MAX = 8 * 1024 * 1024;
/** Most records accepted in one request. */
export const INGEST_RECORDS_MAX = 100_000;
/** Longest accepted Idempotency-Key. */
export const IDEMPOTENCY_KEY_LENGTH_MAX = 256;

/** Options of {@link ingestRoutes}. */
export interface IngestOptions {
  /** Uniform in [0, 1): where the round robin of keyless requests starts. Default `Math.random`; tests pass a seeded source. */
  readonly random?: () => number;
}

/**
 * Which partition a request lands in. A request with an Idempotency-Key
 * goes to `hashKey(key) mod partitions`, so that a retry reaches the
 * partition that remembers the key; one without goes to the next partition
 * of a round robin that starts at a random place (so that isolates that
 * start together do not all fill partition 0 first).
 *
 * @example const choose = partitionChooser(); choose(4, undefined) // 0..3, then the next one
 */
export function partitionChooser(random: () => number = Math.random): (partitions: number, idempotencyKey?: string) => number {
  let next = Math.floor(random() * 1024);
  return (partitions, idempotencyKey) => (idempotencyKey !== undefined ? hashKey(idempotencyKey) % partitions : next++ % partitions);
}

/** Parses a request body into one JSON text per record. */
export function parseRecords(
  text: string,
  contentType: string,
  validate?: (r: unknown) => string | undefined,
  /** Called with each record that passed its checks (`where` names it: "record 3", "line 4"); may refuse it by throwing. */
  onRecord?: (record: unknown, where: string) => void,
): string[] {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const type = contentType.split(";")[0].trim().toLowerCase();
  const trimmed = body.trimStart();
  if (trimmed.length === 0) throw new FloeError("empty_body", "the body holds no records: send a JSON array or NDJSON");
  const ndjson = type === "application/x-ndjson" || type === "application/jsonl" || type === "application/ndjson" || (type !== "application/json" && trimmed[0] !== "[");
  const out: string[] = [];
  const check = (record: unknown, where: string, text?: string) => {
    if (record === null || record === undefined) throw new FloeError("invalid_record", `${where} is null`);
    if (text !== undefined && !fitsUtf8(text, RECORD_BYTES_MAX)) {
      throw new FloeError("record_too_large", `${where} is larger than ${RECORD_BYTES_MAX} bytes, the most one record may hold`, 413);
    }
    const problem = validate?.(record);
    if (problem !== undefined) throw new FloeError("invalid_record", `${where}: ${problem}`);
    onRecord?.(record, where);
  };
  if (ndjson) {
    const lines = body.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].trim();
      if (line.length === 0) continue;
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch (e) {
        throw new FloeError("invalid_json", `line ${i + 1} is not JSON: ${(e as Error).message}`);
      }
      check(record, `line ${i + 1}`, line);
      out.push(line);
      if (out.length > INGEST_RECORDS_MAX) break;
    }
  } else {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (e) {
      throw new FloeError("invalid_json", `the body is not JSON: ${(e as Error).message}`);
    }
    const records = Array.isArray(parsed) ? parsed : [parsed];
    for (let i = 0; i < records.length && out.length <= INGEST_RECORDS_MAX; i++) {
      const text = JSON.stringify(records[i]);
      check(records[i], `record ${i}`, text);
      out.push(text);
    }
  }
  if (out.length === 0) throw new FloeError("empty_body", "the body holds no records");
  if (out.length > INGEST_RECORDS_MAX) {
    throw new FloeError("too_many_records", `at most ${INGEST_RECORDS_MAX} records per request; split the body`, 413);
  }
  return out;
}

/** The ingestion routes. */
export function ingestRoutes(registry: JobRegistry, options: IngestOptions = {}) {
  const choosePartition = partitionChooser(options.random);
  const app = new Hono<{ Bindings: FloeEnv }>();
  // Reading a stream is the streams API's job: say so rather than answer 404.
  app.on(["GET", "HEAD", "PUT", "PATCH", "DELETE"], "/:stream", (c) => {
    c.header("Allow", "POST");
    const name = c.req.param("stream");
    return errorResponse(c, 405, "method_not_allowed", `ingestion into "${name}" takes POST; GET /v1/streams/${name} shows the stream`);
  });
  app.post(
    "/:stream",
    bodyLimit({
      maxSize: INGEST_BODY_BYTES_MAX,
      onError: () => {
        throw new FloeError("body_too_large", `the body exceeds ${INGEST_BODY_BYTES_MAX} bytes; split it into several requests`, 413);
      },
    }),
    async (c) => {
      const name = c.req.param("stream");
      const stream = registry.stream(name);
      const env = c.env as FloeEnv & Record<string, unknown>;
      const streamToken = stream?.ingestTokenVar ? (env[stream.ingestTokenVar] as string | undefined) : undefined;
      requireToken(c.req.header("authorization"), [env.FLOE_ADMIN_TOKEN, streamToken], `ingestion into "${name}"`);
      if (!stream) throw new FloeError("stream_not_found", `no stream named "${name}"`, 404);
      const idempotencyKey = c.req.header("idempotency-key");
      if (idempotencyKey !== undefined && (idempotencyKey.length === 0 || idempotencyKey.length > IDEMPOTENCY_KEY_LENGTH_MAX)) {
        throw new FloeError("invalid_idempotency_key", `Idempotency-Key must be 1..${IDEMPOTENCY_KEY_LENGTH_MAX} characters`);
      }
      const keys: string[] = [];
      const keyOf = stream.partitionKey;
      const records = parseRecords(
        await c.req.text(),
        c.req.header("content-type") ?? "",
        stream.validate,
        keyOf &&
          ((record, where) => {
            const k = keyOf(record);
            if ("problem" in k) throw new FloeError("invalid_partition_key", `${where}: ${k.problem}`);
            keys.push(k.key);
          }),
      );
      const parts = keyOf ? splitByKey(records, keys, stream.partitions) : new Map([[choosePartition(stream.partitions, idempotencyKey), records]]);
      const outcome = await appendRequest(c.env, stream, parts, idempotencyKey, idempotencyKey === undefined ? undefined : bodyHash(records));
      if (!outcome.ok) {
        if (outcome.retryAfterMs > 0) c.header("Retry-After", String(Math.max(1, Math.ceil(outcome.retryAfterMs / 1000))));
        return errorResponse(c, outcome.status, outcome.code, outcome.message);
      }
      return c.json({
        stream: name,
        count: records.length,
        duplicate: outcome.duplicate,
        offsets: outcome.offsets.map((o) => ({ partition: o.partition, first_offset: o.firstOffset, last_offset: o.endOffset - 1 })),
      });
    },
  );
  return app;
}
