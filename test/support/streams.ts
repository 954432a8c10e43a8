/**
 * Helpers of the streams tests: a producer of per-key sequence numbers that
 * retries each request (same Idempotency-Key, same body) until it is
 * acknowledged, the streams API, and the check that the sequence job's
 * output holds every acknowledged record exactly once, in order.
 */
import { expect } from "vitest";
import type { SeqRecord, SeqRow } from "../fixtures/stream-jobs.js";
import type { PartitionBody } from "../../src/http/streams.js";
import { type Engine, readTable, waitFor } from "./engine.js";

/** A partition as `GET /v1/streams/:stream` shows it. */
export type PartitionView = PartitionBody;

/** `GET /v1/streams/:stream`. */
export async function streamView(engine: Engine, stream: string): Promise<{ records: number; bytes: number; lag: Record<string, number>; partitions: PartitionView[] }> {
  const res = await engine.api(`/v1/streams/${stream}`);
  expect(res.status).toBe(200);
  return res.json() as never;
}

/** Per key, the next sequence number to send and how many were acknowledged. */
export class SeqProducer {
  readonly acked = new Map<string, number>();
  refused = 0;
  /** Tries cut off without an answer (the runtime died under them). */
  cutOff = 0;
  private request = 0;

  constructor(
    private readonly stream: string,
    private readonly keys: readonly string[],
    private readonly prefix: string,
  ) {
    for (const k of keys) this.acked.set(k, 0);
  }

  /** The next request: `perKey` records of each key, continuing its sequence. */
  next(perKey: number, extra: Partial<SeqRecord> = {}): { key: string; records: SeqRecord[] } {
    const records: SeqRecord[] = [];
    for (let i = 0; i < perKey; i++) for (const k of this.keys) records.push({ key: k, seq: this.acked.get(k)! + i, ...extra });
    return { key: `${this.prefix}-${this.request++}`, records };
  }

  /** Marks a request's records acknowledged. */
  ack(records: readonly SeqRecord[]): void {
    for (const r of records) this.acked.set(r.key, Math.max(this.acked.get(r.key)!, r.seq + 1));
  }

  /** Sends one request until acknowledged; 429s wait `backoffMs` and count in `refused`. */
  async send(getEngine: () => Engine, request: { key: string; records: SeqRecord[] }, backoffMs = 50, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let status = 0;
      let text = "";
      try {
        const res = await getEngine().api(`/v1/ingest/${this.stream}`, { method: "POST", json: request.records, headers: { "idempotency-key": request.key } });
        status = res.status;
        text = await res.text();
      } catch (e) {
        text = String(e); // the runtime died under the request: retried
        this.cutOff++;
      }
      if (status === 200) return this.ack(request.records);
      if (status === 429) {
        this.refused++;
        expect(JSON.parse(text).error.code).toMatch(/^(stream_full|rate_limited)$/);
      } else if (status !== 0 && status < 500) throw new Error(`ingestion answered ${status}: ${text}`);
      if (Date.now() > deadline) throw new Error(`request ${request.key} was not acknowledged: ${status} ${text.slice(0, 300)}`);
      await new Promise((r) => setTimeout(r, backoffMs));
    }
  }
}

/** Waits until the table holds, per key, exactly the acknowledged records once and in order. */
export async function expectExactlyOnceInOrder(engine: Engine, table: string, acked: ReadonlyMap<string, number>, timeoutMs = 30_000): Promise<Map<string, SeqRow>> {
  let rows = new Map<string, SeqRow>();
  await waitFor(
    async () => {
      rows = await readTable<SeqRow>(engine, table);
      return [...acked].every(([k, n]) => n === 0 || rows.get(k)?.count === n);
    },
    timeoutMs,
    `${table} to hold every acknowledged record`,
  ).catch((e) => {
    throw new Error(`${(e as Error).message}\nexpected ${JSON.stringify([...acked])}\ngot ${JSON.stringify([...rows])}`);
  });
  for (const [k, n] of acked) if (n > 0) expect(rows.get(k), `key ${k}`).toEqual({ last: n - 1, count: n, violations: 0 });
  return rows;
}
