/**
 * Durability of the ingestion log across a restart of the whole engine:
 * every append answered with a 200 is in the StreamPartition log at the
 * offsets the answer named, with the content sent, after a clean shutdown
 * and after a SIGKILL of workerd (a machine crash). The log is read
 * straight from the objects through Miniflare's API.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type Engine, startEngine, waitFor } from "../support/engine.js";
import { type IngestAnswer, ingest, ingestOk, ndjson, partitionInfo, processAlive, readPartition, workerdChildren } from "../support/http.js";

const STREAM = "clicks";
const PARTITIONS = 4;

interface Click {
  user: string;
  url: string;
  ts: number;
}

/** One acknowledged request: what was sent and where the answer put it. */
interface Ack {
  request: number;
  records: Click[];
  key?: string;
  answer: IngestAnswer;
}

/** The records of request `request`: each names its request and index in `url`. */
function requestRecords(request: number, n: number): Click[] {
  return Array.from({ length: n }, (_, i) => ({ user: `user-${(request * 31 + i) % 17}`, url: `/req/${request}/rec/${i}`, ts: request * 1_000_000 + i }));
}

/** Sends request `request` as NDJSON or a JSON array, with an Idempotency-Key when `key` is set. */
async function send(engine: Engine, request: number, n: number, form: "ndjson" | "array", key?: string): Promise<Ack> {
  const records = requestRecords(request, n);
  const headers: Record<string, string> = key ? { "idempotency-key": key } : {};
  const answer = await ingestOk(engine, STREAM, form === "ndjson" ? ndjson(records) : records, headers);
  expect(answer).toMatchObject({ stream: STREAM, count: n, duplicate: false });
  expect(answer.offsets).toHaveLength(1);
  const [o] = answer.offsets;
  expect(o.last_offset - o.first_offset + 1).toBe(n);
  return { request, records, key, answer };
}

/** A mix of requests: sizes across the 1000-record chunk boundary, both body forms, some keyed. */
const PLAN: { n: number; form: "ndjson" | "array"; keyed: boolean }[] = [
  { n: 1, form: "ndjson", keyed: false },
  { n: 10, form: "array", keyed: true },
  { n: 250, form: "ndjson", keyed: false },
  { n: 1500, form: "array", keyed: false },
  { n: 2500, form: "ndjson", keyed: true },
  { n: 999, form: "array", keyed: false },
  { n: 1001, form: "ndjson", keyed: false },
  { n: 7, form: "ndjson", keyed: true },
  { n: 3, form: "array", keyed: false },
  { n: 420, form: "array", keyed: true },
  { n: 64, form: "ndjson", keyed: false },
  { n: 1000, form: "ndjson", keyed: false },
];

async function ingestPlan(engine: Engine, firstRequest = 0): Promise<Ack[]> {
  const acks: Ack[] = [];
  for (let i = 0; i < PLAN.length; i++) {
    const { n, form, keyed } = PLAN[i];
    const request = firstRequest + i;
    acks.push(await send(engine, request, n, form, keyed ? `restart-test-${request}` : undefined));
  }
  return acks;
}

/** The whole log of the stream: per partition, record text by offset. */
async function readLog(engine: Engine): Promise<Map<number, string>[]> {
  const log: Map<number, string>[] = [];
  for (let p = 0; p < PARTITIONS; p++) log.push(await readPartition(engine, STREAM, p));
  return log;
}

/**
 * Checks that every acknowledged record is in the log at its offset with
 * the content sent. Returns the log for further checks.
 */
async function expectAcknowledged(engine: Engine, acks: readonly Ack[]): Promise<Map<number, string>[]> {
  const log = await readLog(engine);
  for (const ack of acks) {
    const [{ partition, first_offset }] = ack.answer.offsets;
    const part = log[partition];
    let missing = 0;
    let wrong = 0;
    ack.records.forEach((record, i) => {
      const text = part.get(first_offset + i);
      if (text === undefined) missing++;
      else if (JSON.stringify(JSON.parse(text)) !== JSON.stringify(record)) wrong++;
    });
    expect({ request: ack.request, partition, first_offset, missing, wrong }).toEqual({ request: ack.request, partition, first_offset, missing: 0, wrong: 0 });
  }
  return log;
}

/** Which request and index a logged record belongs to. */
function origin(text: string): { request: number; index: number } {
  const m = /^\/req\/(\d+)\/rec\/(\d+)$/.exec((JSON.parse(text) as Click).url);
  if (!m) throw new Error(`a record no test request sent: ${text}`);
  return { request: Number(m[1]), index: Number(m[2]) };
}

/**
 * Checks that the log holds whole requests only: each request's records
 * contiguous, in order, in one partition, and each request at most once.
 * Returns where each request is.
 */
function expectWholeRequests(log: Map<number, string>[]): Map<number, { partition: number; first: number; count: number }> {
  const found = new Map<number, { partition: number; first: number; count: number }>();
  log.forEach((part, partition) => {
    const offsets = [...part.keys()].sort((a, b) => a - b);
    offsets.forEach((offset, i) => expect(offset, `partition ${partition} has a gap`).toBe(i));
    let at = 0;
    while (at < offsets.length) {
      const { request, index } = origin(part.get(at)!);
      expect(index, `partition ${partition} offset ${at}: request ${request} starts mid-way`).toBe(0);
      expect(found.has(request), `request ${request} is in the log twice`).toBe(false);
      let count = 1;
      while (at + count < offsets.length) {
        const next = origin(part.get(at + count)!);
        if (next.request !== request) break;
        expect(next.index, `partition ${partition} offset ${at + count}`).toBe(count);
        count++;
      }
      found.set(request, { partition, first: at, count });
      at += count;
    }
  });
  return found;
}

let engines: Engine[] = [];
afterEach(async () => {
  for (const e of engines) await e.dispose().catch(() => undefined);
  engines = [];
});
async function start(persistDir?: string): Promise<Engine> {
  const engine = await startEngine(persistDir ? { persistDir } : {});
  engines.push(engine);
  return engine;
}

describe("the ingestion log across a restart", () => {
  it("keeps every acknowledged append after a clean shutdown", async () => {
    const first = await start();
    const acks = await ingestPlan(first);
    const total = acks.reduce((n, a) => n + a.records.length, 0);
    const ends = await Promise.all(Array.from({ length: PARTITIONS }, (_, p) => partitionInfo(first, STREAM, p)));
    expect(ends.reduce((n, i) => n + i.endOffset - i.startOffset, 0)).toBe(total);
    await expectAcknowledged(first, acks);

    await first.dispose();
    const second = await start(first.persistDir);

    // Same offsets, same content, nothing more.
    for (let p = 0; p < PARTITIONS; p++) expect(await partitionInfo(second, STREAM, p)).toEqual(ends[p]);
    const log = await expectAcknowledged(second, acks);
    const found = expectWholeRequests(log);
    expect([...found.keys()].sort((a, b) => a - b)).toEqual(acks.map((a) => a.request));

    // Idempotency keys survive: a retried request is answered from the log.
    for (const ack of acks.filter((a) => a.key)) {
      const again = await ingestOk(second, STREAM, ack.records, { "idempotency-key": ack.key! });
      expect(again).toEqual({ ...ack.answer, duplicate: true });
    }
    // New appends continue after the old ones.
    const more: Ack[] = [];
    for (let r = 0; r < 2 * PARTITIONS; r++) more.push(await send(second, 100 + r, 5, r % 2 ? "array" : "ndjson"));
    const seenEnd = ends.map((e) => e.endOffset);
    for (const ack of more) {
      const [{ partition, first_offset, last_offset }] = ack.answer.offsets;
      expect(first_offset, `partition ${partition}`).toBe(seenEnd[partition]);
      seenEnd[partition] = last_offset + 1;
    }
    await expectAcknowledged(second, [...acks, ...more]);
    expectWholeRequests(await readLog(second));
  });

  it("keeps every acknowledged append after workerd is killed with SIGKILL", async () => {
    const first = await start();
    const acks = await ingestPlan(first);

    // A burst of concurrent requests, some still in flight at the kill.
    const burst = Array.from({ length: 40 }, (_, i) => ({ request: 1000 + i, records: requestRecords(1000 + i, 150) }));
    const burstAcks: Ack[] = [];
    let answered = 0;
    let killedReady!: () => void;
    const killTime = new Promise<void>((resolve) => (killedReady = resolve));
    const inFlight = burst.map(async ({ request, records }) => {
      try {
        const res = await ingest(first, STREAM, request % 2 ? records : ndjson(records));
        if (res.status === 200) {
          const answer = (await res.json()) as IngestAnswer;
          burstAcks.push({ request, records, answer });
        }
      } catch {
        // no answer: the engine died under it
      } finally {
        if (++answered >= 8) killedReady();
      }
    });

    const workerd = workerdChildren();
    expect(workerd.length, "a workerd child of this process").toBeGreaterThan(0);
    await killTime;
    for (const pid of workerd) process.kill(pid, "SIGKILL");
    await waitFor(async () => workerd.every((pid) => !processAlive(pid)), 5_000, "workerd to die");
    await Promise.all(inFlight);
    await first.dispose().catch(() => undefined);

    const second = await start(first.persistDir);
    const all = [...acks, ...burstAcks];
    const log = await expectAcknowledged(second, all);
    // Unacknowledged requests are all there or not there at all; nothing else is.
    const found = expectWholeRequests(log);
    for (const ack of all) expect(found.has(ack.request), `acknowledged request ${ack.request}`).toBe(true);
    for (const [request, where] of found) {
      const sent = request >= 1000 ? 150 : PLAN[request].n;
      expect(where.count, `request ${request} is whole`).toBe(sent);
    }
    // Keyed requests are still remembered.
    for (const ack of acks.filter((a) => a.key)) {
      const again = await ingestOk(second, STREAM, ack.records, { "idempotency-key": ack.key! });
      expect(again).toEqual({ ...ack.answer, duplicate: true });
    }
    // The restarted engine takes appends after what survived.
    const ends = log.map((part) => part.size);
    const after = await send(second, 2000, 3, "ndjson");
    expect(after.answer.offsets[0].first_offset).toBe(ends[after.answer.offsets[0].partition]);
  });
});
