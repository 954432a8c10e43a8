/**
 * Backpressure to producers: a job that cannot keep up pins its records,
 * the partition reaches its size limit, and ingestion answers 429
 * `stream_full` with Retry-After; producers that retry lose nothing and
 * duplicate nothing: the committed output holds every acknowledged record
 * exactly once, in order.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type Engine, startEngine } from "../support/engine.js";
import { SeqProducer, expectExactlyOnceInOrder, streamView } from "../support/streams.js";

let engine: Engine | undefined;
afterEach(async () => {
  await engine?.dispose();
  engine = undefined;
});

describe("stream_full", () => {
  it("refuses producers with 429 while a slow job holds a full partition, and the output equals every acknowledged record exactly once", async () => {
    const e = (engine = await startEngine({ testJobs: true }));
    expect((await e.api("/v1/jobs/streams-full/start", { method: "POST", json: {} })).status).toBe(200);
    // One look at the answer itself: status, code, Retry-After.
    let seen429: Response | null = null;
    const producer = new SeqProducer("full", ["p", "q"], "full");
    const until = Date.now() + 3_000;
    while (Date.now() < until) {
      const request = producer.next(20, { pad: "y".repeat(500), slowMs: 4 });
      if (seen429 === null) {
        const res = await e.api("/v1/ingest/full", { method: "POST", json: request.records, headers: { "idempotency-key": request.key } });
        if (res.status === 429) {
          seen429 = res;
          producer.refused++;
        }
        else if (res.status === 200) producer.ack(request.records);
        if (res.status !== 200) await producer.send(() => e, request, 20);
      } else await producer.send(() => e, request, 20);
    }
    expect(seen429, "a 429 while the job was behind").not.toBeNull();
    expect(seen429!.headers.get("retry-after")).toBe("1");
    const body = (await seen429!.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("stream_full");
    expect(body.error.message).toMatch(/stream "full" partition 0 holds \d+ bytes of records a job has not checkpointed past \(limit 49152\)/);
    console.log(`streams-backpressure: ${producer.refused} refusals, ${producer.acked.get("p")! * 2} records acknowledged`);
    expect(producer.refused).toBeGreaterThan(0);
    const rows = await expectExactlyOnceInOrder(e, "full-out", producer.acked, 40_000);
    expect(rows.size).toBe(2);
    const [p] = (await streamView(e, "full")).partitions;
    expect(p.bytes).toBeLessThanOrEqual(48 * 1024);
    expect(p.earliest_offset).toBeGreaterThan(0);
  });
});
