/**
 * `npx tsx scripts/stream-soak.ts [--seconds 120] [--record-bytes 1000] [--per-request 20] [--no-keys]`:
 * the measurement behind docs/streams.md's "the partition's database size
 * stays bounded under a sustained load". Runs the test Worker in Miniflare
 * (real workerd SQLite), starts job `streams-soak` (stream "soak", one
 * partition, retention 5 s or 4 MiB, checkpoints each 200 ms) and ingests
 * into it as fast as one producer can for the duration, each request with
 * an Idempotency-Key (`--no-keys`: without; the keys of a day are what the
 * database holds besides the records). Every few seconds it prints what the streams API says
 * of the partition: records and bytes kept, `database_bytes` (the SQLite
 * file as the platform counts it) and the job's lag. At the end it checks
 * that the job's output holds every acknowledged record exactly once, and
 * prints one JSON line with the figures.
 */
import { parseArgs } from "node:util";
import setupBuild from "../test/support/build.js";
import { startEngine } from "../test/support/engine.js";
import { SeqProducer, expectExactlyOnceInOrder, streamView } from "../test/support/streams.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "120" },
    "record-bytes": { type: "string", default: "1000" },
    "per-request": { type: "string", default: "20" },
    "sample-seconds": { type: "string", default: "10" },
    /** Without Idempotency-Keys, what stays is the records alone. */
    "no-keys": { type: "boolean", default: false },
  },
});
const seconds = Number(values.seconds);
const recordBytes = Number(values["record-bytes"]);
const perRequest = Number(values["per-request"]);
const sampleMs = Number(values["sample-seconds"]) * 1000;
for (const [name, v] of [["seconds", seconds], ["record-bytes", recordBytes], ["per-request", perRequest], ["sample-seconds", sampleMs]] as const) {
  if (!Number.isInteger(v) || v < 1) {
    console.error(`--${name}: expected a positive integer`);
    process.exit(2);
  }
}

await setupBuild();
const engine = await startEngine({ testJobs: true });
try {
  const started = await engine.api("/v1/jobs/streams-soak/start", { method: "POST", json: {} });
  if (started.status !== 200) throw new Error(`starting streams-soak answered ${started.status}: ${await started.text()}`);
  const producer = new SeqProducer("soak", ["k"], "soak");
  const pad = "s".repeat(recordBytes);
  const t0 = Date.now();
  let nextSampleMs = t0 + sampleMs;
  let sentBytes = 0;
  let requests = 0;
  /** One request without an Idempotency-Key, sent until acknowledged (only 429s are retried: nothing here kills the runtime). */
  const sendWithoutKey = async (records: { key: string; seq: number }[]) => {
    for (;;) {
      const res = await engine.api("/v1/ingest/soak", { method: "POST", json: records });
      const text = await res.text();
      if (res.status === 200) return producer.ack(records);
      if (res.status !== 429) throw new Error(`ingestion answered ${res.status}: ${text}`);
      producer.refused++;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const samples: { s: number; ingestedMB: number; records: number; bytes: number; databaseBytes: number; lag: number }[] = [];
  console.log("t (s)\tingested (MB)\trecords kept\tbytes kept\tdatabase_bytes\tlag");
  while (Date.now() < t0 + seconds * 1000) {
    const request = producer.next(perRequest, { pad });
    if (values["no-keys"]) await sendWithoutKey(request.records);
    else await producer.send(() => engine, request, 20, 60_000);
    sentBytes += request.records.length * (recordBytes + 30);
    requests++;
    if (Date.now() >= nextSampleMs) {
      nextSampleMs += sampleMs;
      const v = await streamView(engine, "soak");
      const [p] = v.partitions;
      const sample = { s: Math.round((Date.now() - t0) / 1000), ingestedMB: Math.round(sentBytes / 1e5) / 10, records: p.records, bytes: p.bytes, databaseBytes: p.database_bytes, lag: v.lag["streams-soak"] ?? 0 };
      samples.push(sample);
      console.log(`${sample.s}\t${sample.ingestedMB}\t${sample.records}\t${sample.bytes}\t${sample.databaseBytes}\t${sample.lag}`);
    }
  }
  await expectExactlyOnceInOrder(engine, "soak-out", producer.acked, 120_000);
  const half = samples.slice(Math.floor(samples.length / 2));
  console.log(
    JSON.stringify({
      seconds,
      keys: !values["no-keys"],
      requests,
      refused: producer.refused,
      recordsAcked: producer.acked.get("k"),
      ingestedBytes: sentBytes,
      maxBytesKept: Math.max(...samples.map((s) => s.bytes)),
      maxDatabaseBytes: Math.max(...samples.map((s) => s.databaseBytes)),
      maxDatabaseBytesFirstHalf: Math.max(...samples.slice(0, Math.floor(samples.length / 2)).map((s) => s.databaseBytes)),
      maxDatabaseBytesSecondHalf: Math.max(...half.map((s) => s.databaseBytes)),
      exactlyOnce: true,
    }),
  );
} finally {
  await engine.dispose();
}
