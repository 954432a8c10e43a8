/**
 * Helpers for integration tests that talk to the engine over HTTP, read the
 * ingestion log straight from the StreamPartition objects, and crash the
 * engine's workerd process.
 */
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { expect } from "vitest";
import type { ReadResult } from "../../src/runtime/stream-partition.js";
import { streamPartitionName } from "../../src/runtime/names.js";
import { type Engine, TEST_TOKEN, readTable } from "./engine.js";

/** The contract's error body. */
export interface ErrorBody {
  error: { code: string; message: string };
}

/** What `POST /v1/ingest/:stream` answers. */
export interface IngestAnswer {
  stream: string;
  count: number;
  duplicate: boolean;
  offsets: { partition: number; first_offset: number; last_offset: number }[];
}

/** A row of a table sink. */
export interface Row {
  key: string;
  value: number;
}

/**
 * Asserts that `res` is an error in the contract's shape,
 * `{ error: { code, message } }` with a JSON content type and `status`, and
 * that the message matches `message` when given. Returns the body.
 */
export async function expectError(res: Response, status: number, code: string, message?: RegExp | string): Promise<ErrorBody> {
  const text = await res.text();
  const where = `${res.url}: ${res.status} ${text.slice(0, 500)}`;
  expect(res.status, where).toBe(status);
  expect(res.headers.get("content-type") ?? "", where).toMatch(/^application\/json/);
  let body: ErrorBody;
  try {
    body = JSON.parse(text) as ErrorBody;
  } catch {
    throw new Error(`the error body is not JSON: ${where}`);
  }
  expect(Object.keys(body), where).toEqual(["error"]);
  expect(typeof body.error.code, where).toBe("string");
  expect(typeof body.error.message, where).toBe("string");
  expect(body.error.message.length, where).toBeGreaterThan(0);
  expect(body.error.code, where).toBe(code);
  if (message !== undefined) expect(body.error.message, where).toMatch(message);
  return body;
}

/** Sends one ingestion request (the admin token unless `headers` says otherwise). */
export function ingest(
  engine: Engine,
  stream: string,
  body: string | unknown[],
  headers: Record<string, string> = {},
): Promise<Response> {
  if (typeof body === "string") {
    return engine.api(`/v1/ingest/${stream}`, { method: "POST", body, headers: { "content-type": "application/x-ndjson", ...headers } });
  }
  return engine.api(`/v1/ingest/${stream}`, { method: "POST", json: body, headers });
}

/** Ingests and expects a 200; returns the answer. */
export async function ingestOk(engine: Engine, stream: string, body: string | unknown[], headers: Record<string, string> = {}): Promise<IngestAnswer> {
  const res = await ingest(engine, stream, body, headers);
  const text = await res.text();
  expect(res.status, text.slice(0, 500)).toBe(200);
  return JSON.parse(text) as IngestAnswer;
}

/**
 * POSTs a large body with node:http, for requests the server refuses
 * before reading the whole body, without racing the connection reset that
 * follows when the server closes with request bytes still unread (the
 * reset can discard its answer before the client reads it).
 *
 * With `bytes` the body goes with a Content-Length and
 * `Expect: 100-continue`, and is only sent if the server has not answered
 * within `continueMs`: a server that refuses on the Content-Length alone
 * answers before any of the body is on the wire. With `chunks` the body
 * goes chunked (no Content-Length), every chunk at once, and the
 * terminating chunk only if the server has not answered within
 * `continueMs`: a server that refuses once it has read past its limit has
 * then read everything sent. Resolves with the first response; a socket
 * error after it is ignored.
 */
export function postLarge(
  engine: Engine,
  path: string,
  body: { bytes: Uint8Array } | { chunks: Uint8Array[] },
  headers: Record<string, string> = {},
  continueMs = 1000,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  const url = new URL(`${engine.url}${path}`);
  return new Promise((resolve, reject) => {
    let answered = false;
    const all: Record<string, string | number> = { authorization: `Bearer ${TEST_TOKEN}`, ...headers };
    if ("bytes" in body) {
      all["content-length"] = body.bytes.length;
      all.expect = "100-continue";
    }
    const req = request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method: "POST", headers: all });
    let timer: NodeJS.Timeout | undefined;
    const sendBody = () => {
      clearTimeout(timer);
      if (answered || req.writableEnded) return;
      if ("bytes" in body) req.end(body.bytes);
      else {
        for (const c of body.chunks) req.write(c);
        timer = setTimeout(() => {
          if (!answered) req.end();
        }, continueMs);
      }
    };
    req.on("response", (res) => {
      answered = true;
      clearTimeout(timer);
      const parts: Buffer[] = [];
      res.on("data", (d: Buffer) => parts.push(d));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(parts).toString("utf8") });
        req.destroy();
      });
      res.on("error", (e) => reject(e));
    });
    req.on("continue", sendBody);
    req.on("error", (e) => {
      if (!answered) reject(e);
    });
    if ("bytes" in body) {
      req.flushHeaders();
      timer = setTimeout(sendBody, continueMs);
    } else sendBody();
  });
}

/** Like {@link expectError}, for an answer of {@link postLarge}. */
export async function expectLargeError(answer: { status: number; headers: Record<string, string | string[] | undefined>; text: string }, status: number, code: string, message?: RegExp | string): Promise<ErrorBody> {
  return expectError(new Response(answer.text, { status: answer.status, headers: { "content-type": String(answer.headers["content-type"] ?? "") } }), status, code, message);
}

/** NDJSON text of `records`. */
export function ndjson(records: readonly unknown[]): string {
  return records.map((r) => JSON.stringify(r)).join("\n") + "\n";
}

/** All rows of a table, following `next_cursor`. */
export async function tableRows(engine: Engine, table: string): Promise<Map<string, number>> {
  return readTable<number>(engine, table);
}

/** The RPC methods of a StreamPartition object that tests call. */
export interface StreamPartitionStub {
  read(fromOffset: number, maxRecords: number): Promise<ReadResult>;
  info(): Promise<{ startOffset: number; endOffset: number }>;
}

/** A stub of one partition of an ingestion stream, through Miniflare's API. */
export async function streamPartition(engine: Engine, stream: string, partition: number): Promise<StreamPartitionStub> {
  const ns = await engine.mf.getDurableObjectNamespace("STREAM_PARTITION");
  return ns.get(ns.idFromName(streamPartitionName(stream, partition))) as unknown as StreamPartitionStub;
}

/** The offsets of a partition. */
export async function partitionInfo(engine: Engine, stream: string, partition: number): Promise<{ startOffset: number; endOffset: number }> {
  const info = await (await streamPartition(engine, stream, partition)).info();
  return { startOffset: info.startOffset, endOffset: info.endOffset };
}

/** Every record of a partition, as JSON text by offset, read in pages of `page`. */
export async function readPartition(engine: Engine, stream: string, partition: number, page = 700): Promise<Map<number, string>> {
  const stub = await streamPartition(engine, stream, partition);
  const info = await partitionInfo(engine, stream, partition);
  const out = new Map<number, string>();
  let offset = info.startOffset;
  while (offset < info.endOffset) {
    const r = await stub.read(offset, page);
    const count = r.count;
    const first = r.firstOffset;
    const text = r.lines;
    if (count === 0) throw new Error(`partition ${partition}: read(${offset}) returned nothing before the end offset ${info.endOffset}`);
    const lines = text.split("\n");
    expect(lines.length, `partition ${partition}: read(${offset}) lines vs count`).toBe(count);
    expect(first, `partition ${partition}: read(${offset}) starts at ${first}`).toBe(offset);
    lines.forEach((line, i) => out.set(first + i, line));
    offset = first + count;
  }
  return out;
}

/** Total records in all partitions of a stream. */
export async function streamLength(engine: Engine, stream: string, partitions: number): Promise<number> {
  let n = 0;
  for (let p = 0; p < partitions; p++) {
    const info = await partitionInfo(engine, stream, p);
    n += info.endOffset - info.startOffset;
  }
  return n;
}

export { workerdChildren } from "../../src/testing/processes.js";

/** Whether a process is still there (and not a zombie). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
