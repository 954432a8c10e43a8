/**
 * Retention of the ingestion log, end to end: with checkpoints completing,
 * each partition's earliest offset advances and its size stays bounded,
 * and the job still gets every record exactly once. A job stopped longer
 * than the retention is refused with `offsets_truncated` from its last
 * checkpoint, and starts from the earliest retained offset when asked.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type Engine, readTable, startEngine, waitFor } from "../support/engine.js";
import { expectError } from "../support/http.js";
import { SeqProducer, expectExactlyOnceInOrder, streamView } from "../support/streams.js";
import type { SeqRow } from "../fixtures/stream-jobs.js";

const JOB = "streams-retention";
const STREAM = "retained";
const KEYS = ["a", "b", "c", "d", "e", "f"];
const PAD = "x".repeat(400);

let engine: Engine | undefined;
afterEach(async () => {
  await engine?.dispose();
  engine = undefined;
});

describe("stream retention", () => {
  it("advances each partition's earliest offset and bounds its size while checkpoints complete; a stale checkpoint is refused, earliest is not", async () => {
    const e = (engine = await startEngine({ testJobs: true }));
    expect((await e.api(`/v1/jobs/${JOB}/start`, { method: "POST", json: {} })).status).toBe(200);
    const producer = new SeqProducer(STREAM, KEYS, "ret");
    const samples: { earliest: number[]; bytes: number[]; db: number[] }[] = [];
    const until = Date.now() + 2_500;
    let sentBytes = 0;
    while (Date.now() < until) {
      const request = producer.next(5, { pad: PAD });
      await producer.send(() => e, request);
      sentBytes += request.records.length * (PAD.length + 30);
      if (producer.acked.get("a")! % 25 === 0) {
        const v = await streamView(e, STREAM);
        samples.push({ earliest: v.partitions.map((p) => p.earliest_offset), bytes: v.partitions.map((p) => p.bytes), db: v.partitions.map((p) => p.database_bytes) });
      }
    }
    await expectExactlyOnceInOrder(e, "retained-out", producer.acked);
    const view = await streamView(e, STREAM);
    const last = samples.at(-1)!;
    for (const p of view.partitions) {
      // Retention deleted the head of every partition while the job ran.
      expect(p.earliest_offset, `partition ${p.partition}`).toBeGreaterThan(0);
      expect(p.records).toBe(p.next_offset - p.earliest_offset);
      expect(p.jobs).toEqual([expect.objectContaining({ job: JOB, active: true })]);
    }
    for (let p = 0; p < 2; p++) expect(samples.map((s) => s.earliest[p])).toEqual([...samples.map((s) => s.earliest[p])].sort((x, y) => x - y));
    // 400 ms or 64 KiB of records, whichever deletes more: each partition holds a small part of what was sent.
    const maxBytes = Math.max(...samples.flatMap((s) => s.bytes));
    const maxDb = Math.max(...samples.slice(Math.floor(samples.length / 2)).flatMap((s) => s.db));
    console.log(`streams-retention: sent ${sentBytes} bytes in ${samples.length} samples; largest partition ${maxBytes} bytes of records, database ${maxDb} bytes in the second half (last ${last.db.join(", ")})`);
    expect(maxBytes).toBeLessThan(sentBytes / 4);
    expect(maxDb).toBeLessThan(sentBytes / 2);

    // The last checkpoint holds everything acknowledged: then the job is canceled, and its pins go.
    // A trigger is refused (409 too_many_checkpoints) while a periodic checkpoint (every 100 ms) is in progress: again until one is taken.
    const triggered = await waitFor(async () => {
      const res = await e.api(`/v1/jobs/${JOB}/checkpoints`, { method: "POST" });
      return res.status === 202 ? ((await res.json()) as { id: number }).id : undefined;
    }, 10_000, "a triggered checkpoint");
    const latestCompleted = async () => ((await (await e.api(`/v1/jobs/${JOB}/checkpoints`)).json()) as { latest: { completed: { id: number } | null } }).latest.completed?.id ?? 0;
    await waitFor(async () => (await latestCompleted()) >= triggered, 10_000, "the checkpoint");
    const countsAtCheckpoint = await readTable<SeqRow>(e, "retained-out");
    expect((await e.api(`/v1/jobs/${JOB}/cancel`, { method: "POST", json: {} })).status).toBe(200);
    // Periodic checkpoints (every 100 ms) may complete after the triggered one, until the cancel, and subsume it:
    // the job's last completed checkpoint holds the same (nothing was sent meanwhile).
    const id = await latestCompleted();
    await waitFor(async () => (await streamView(e, STREAM)).partitions.every((p) => p.jobs.every((j) => !j.active)), 5_000, "the pins released");

    // Records sent while the job is stopped, then past the retention: deleted, the checkpoint's offsets with them.
    const lost = producer.next(3);
    await producer.send(() => e, lost);
    await new Promise((r) => setTimeout(r, 600));
    const kept = producer.next(2);
    await producer.send(() => e, kept);
    await waitFor(async () => (await streamView(e, STREAM)).partitions.every((p) => p.records === p.next_offset - p.earliest_offset && p.earliest_timestamp !== null && Date.now() - p.earliest_timestamp < 400), 5_000, "retention");

    const refused = await e.api(`/v1/jobs/${JOB}/start`, { method: "POST", json: { fromCheckpoint: id } });
    const body = await expectError(refused, 409, "offsets_truncated");
    expect(body.error.message).toMatch(/stream "retained" partition \d: offset \d+ is needed but retention deleted it \(the earliest offset is \d+\)/);
    expect((await (await e.api(`/v1/jobs/${JOB}`)).json()) as { status: string }).toMatchObject({ status: "CANCELED" });

    // Bad starting positions are refused before anything starts.
    await expectError(await e.api(`/v1/jobs/${JOB}/start`, { method: "POST", json: { fromCheckpoint: id, starting_offsets: "latest" } }), 400, "invalid_starting_offsets");
    await expectError(await e.api(`/v1/jobs/${JOB}/start`, { method: "POST", json: { starting_offsets: { timestamp: Date.now() + 60_000 } } }), 400, "invalid_starting_offsets", /in the future/);
    await expectError(await e.api(`/v1/jobs/${JOB}/start`, { method: "POST", json: { starting_offsets: { timestamp: "yesterday" } } }), 400, "invalid_starting_offsets");
    await expectError(await e.api(`/v1/jobs/${JOB}/start`, { method: "POST", json: { starting_offsets: "newest" } }), 400, "invalid_starting_offsets");

    // Asked to, it starts from the checkpoint's state at the earliest retained offsets: the stopped-time records are gone.
    const started = await e.api(`/v1/jobs/${JOB}/start`, { method: "POST", json: { fromCheckpoint: id, starting_offsets: "earliest" } });
    expect(started.status, await started.clone().text()).toBe(200);
    await waitFor(async () => {
      const rows = await readTable<SeqRow>(e, "retained-out");
      return KEYS.every((k) => rows.get(k)?.count === countsAtCheckpoint.get(k)!.count + 2);
    }, 20_000, "the kept records");
    const rows = await readTable<SeqRow>(e, "retained-out");
    for (const k of KEYS) expect(rows.get(k)).toEqual({ last: producer.acked.get(k)! - 1, count: countsAtCheckpoint.get(k)!.count + 2, violations: 1 });
  });
});
