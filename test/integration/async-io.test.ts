/**
 * Async I/O as a user writes it (issue 19): the `async-ordered` and
 * `async-unordered` jobs (test/fixtures/async-jobs.ts) look records up on a
 * real HTTP service on 127.0.0.1 that answers some ids slowly, refuses the
 * first request of others (retried with backoff) and hangs on the first
 * request of a few (past the timeout: the timeout handler answers). A
 * keyed counter behind numbers results in arrival order. Input comes in
 * two phases; during the second the runtime is SIGKILLed twice.
 *
 * - Ordered mode: every record's position equals its id (input order),
 *   across the crashes.
 * - Unordered mode: slow records are overtaken (a later record comes
 *   before them).
 * - Both: each record's result is committed exactly once (positions are a
 *   permutation), with its record's event time.
 * - The service sees a record requested again only when it was in flight
 *   in the checkpoint a crash restored (its `_metadata` lists it) or came
 *   after that checkpoint's source offset; every record listed in flight
 *   was requested again; nothing of the first phase, committed before the
 *   crashes, was requested twice.
 * - A stop-with-savepoint taken while records are in flight restores at
 *   another parallelism: the savepoint's records are dealt round-robin
 *   to the new subtasks and each is requested exactly once more.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { metadataKey, savepointMetadataKey } from "../../src/storage/layout.js";
import type { CheckpointMetadata } from "../../src/checkpoint/types.js";
import { decodeBatch, decodeChannelState, fromInFlight } from "../../src/runtime/batch-encoding.js";
import { type Engine, readTable, waitFor } from "../support/engine.js";
import { engineSet } from "../support/engines.js";
import { type LookupServer, startLookupServer } from "../support/lookup-server.js";

/** The async operator's timeout, as ASYNC_TIMEOUT_MS in test/fixtures/async-jobs.ts. */
const ASYNC_TIMEOUT_MS = 1000;

/** Records per partition of `async-bounded` (test/fixtures/async-jobs.ts; the fixture runs in workerd, not here). */
const ASYNC_BOUNDED_COUNT = 150;

interface AsyncRow {
  pos: number;
  value: number | null;
  timedOut: boolean;
  ts: number | null;
  itemTs: number;
}

const MODES = ["ordered", "unordered"] as const;
const PHASE1 = 150;
const TOTAL = 450;
const slow = (id: number) => id % 10 === 3;
const failsFirst = (id: number) => id < 1000 && id % 7 === 5;
const hangs = (id: number) => id < 1000 && id % 37 === 11;
/** Ids the rescale test keeps in flight across a savepoint: answered after 800 ms (within the timeout). */
const held = (id: number) => id >= 1000 && id < 1012;
const tsOf = (id: number) => 1_000_000 + id * 10;

let server: LookupServer;
beforeAll(async () => {
  server = await startLookupServer(
    { delayMs: (id) => (held(id) ? 800 : slow(id) ? 250 : 2), failsFirst, hangsFirstMs: (id) => (hangs(id) ? 3000 : 0) },
    // A hanging request is aborted by the operator's timeout; its close may reach the server after the next
    // request of its subtask. 100 ms before the timeout, the request is surely given up (every other answers
    // within 800 ms), yet no request started since the abort can have arrived yet.
    { abandonedAfterMs: ASYNC_TIMEOUT_MS - 100 },
  );
});
afterAll(async () => {
  await server.close();
});

const engines = engineSet();
const engineAt = engines.start;

async function ingest(engine: Engine, mode: string, from: number, to: number): Promise<void> {
  const body = Array.from({ length: to - from }, (_, i) => JSON.stringify({ id: from + i, ts: tsOf(from + i) })).join("\n");
  const res = await engine.api(`/v1/ingest/async-${mode}-in`, { method: "POST", body, headers: { "content-type": "application/x-ndjson" } });
  expect(res.status, await res.clone().text()).toBe(200);
}

async function rows(engine: Engine, mode: string): Promise<Map<string, AsyncRow>> {
  return readTable<AsyncRow>(engine, `async-${mode}-out`);
}

async function rowsAtLeast(engine: Engine, mode: string, n: number, timeoutMs = 60_000): Promise<Map<string, AsyncRow>> {
  let last = 0;
  return waitFor(
    async () => {
      const r = await rows(engine, mode);
      last = r.size;
      return r.size >= n ? r : undefined;
    },
    timeoutMs,
    `${n} results of async-${mode}`,
  ).catch(async (e: Error) => {
    const have = await rows(engine, mode);
    const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !have.has(String(i)));
    const status = await (await engine.api(`/v1/jobs/async-${mode}`)).text();
    const metrics = await (await engine.api(`/v1/jobs/async-${mode}/metrics`)).text();
    const asked = missing.slice(0, 20).map((id) => `${id}:${server.requests.get(mode)?.get(id) ?? 0}`);
    throw new Error(`${e.message} (had ${last}); missing ${missing.slice(0, 40)}; requests ${asked}; status ${status}; metrics ${metrics.slice(0, 3000)}`);
  });
}

/** The checkpoint the job restored last, once it restored more than `before` times: its id and metadata. */
async function restored(engine: Engine, mode: string, before: number): Promise<{ count: number; metadata: CheckpointMetadata }> {
  const overview = await waitFor(
    async () => {
      const o = (await (await engine.api(`/v1/jobs/async-${mode}/checkpoints`)).json()) as { counts: { restored: number }; latest: { restored: { id: number } | null } };
      return o.counts.restored > before && o.latest.restored ? o : undefined;
    },
    30_000,
    `async-${mode} restored`,
  );
  const object = await (await engine.mf.getR2Bucket("CHECKPOINTS")).get(metadataKey("", `async-${mode}`, overview.latest.restored!.id));
  return { count: overview.counts.restored, metadata: (await object!.json()) as CheckpointMetadata };
}

/** Ids of the records in a checkpoint's in-flight channel data (unaligned), input and output sides of every subtask. */
async function channelStateIds(engine: Engine, m: CheckpointMetadata): Promise<Set<number>> {
  const ids = new Set<number>();
  const bucket = await engine.mf.getR2Bucket("CHECKPOINTS");
  for (const handle of Object.values(m.channels ?? {})) {
    const data = decodeChannelState(await (await bucket.get(handle.file))!.text());
    for (const batches of Object.values(data.inputs)) {
      for (const text of batches) {
        const entry = fromInFlight(text);
        if (entry.kind === "batch") for (const r of decodeBatch(entry.records) as { id: number }[]) ids.add(r.id);
      }
    }
    for (const records of Object.values(data.outputs)) for (const r of records as { id: number }[]) ids.add(r.id);
  }
  return ids;
}

/** The source offset a checkpoint holds (one partition: the next id to read). */
function sourceOffset(m: CheckpointMetadata): number {
  return Math.min(...Object.values(m.operators.in.sources).flatMap((p) => Object.values(p)));
}

/** The metadata of the job's latest completed checkpoint, if any. */
async function latestCompleted(engine: Engine, mode: string): Promise<CheckpointMetadata | undefined> {
  const o = (await (await engine.api(`/v1/jobs/async-${mode}/checkpoints`)).json()) as { latest: { completed: { id: number } | null } };
  if (!o.latest.completed) return undefined;
  const object = await (await engine.mf.getR2Bucket("CHECKPOINTS")).get(metadataKey("", `async-${mode}`, o.latest.completed.id));
  return object ? ((await object.json()) as CheckpointMetadata) : undefined;
}

describe("async I/O", () => {
  it("keeps order (ordered), does not wait behind slow requests (unordered), and commits each result exactly once across SIGKILLs", async () => {
    let engine = await engineAt();
    await (await engine.mf.getR2Bucket("FILES")).put("async/server.json", JSON.stringify({ url: server.url }));
    for (const mode of MODES) expect((await engine.api(`/v1/jobs/async-${mode}/start`, { method: "POST", json: {} })).status).toBe(200);

    // Phase 1, no faults: committed before any crash.
    for (const mode of MODES) await ingest(engine, mode, 0, PHASE1);
    for (const mode of MODES) await rowsAtLeast(engine, mode, PHASE1);

    // Phase 2, with two SIGKILLs while requests are in flight: each once a job's latest completed checkpoint
    // holds records in flight (the first for the unordered job, the second for the ordered one).
    for (const mode of MODES) await ingest(engine, mode, PHASE1, TOTAL);
    /** Per mode: ids a restore was entitled to request again (in flight in its checkpoint, or after its source offset). */
    const mayRepeat = new Map<string, (id: number) => boolean>(MODES.map((m) => [m, () => false]));
    /** Per mode: ids listed in flight in a restored checkpoint. */
    const listedInFlight = new Map<string, Set<number>>(MODES.map((m) => [m, new Set<number>()]));
    const restores = new Map<string, number>(MODES.map((m) => [m, 0]));
    /** Per mode: the newest checkpoint restored so far (a crash waits for a newer one, taken since). */
    const lastRestored = new Map<string, number>(MODES.map((m) => [m, 0]));
    for (const crashMode of ["unordered", "ordered"] as const) {
      await waitFor(async () => {
        const m = await latestCompleted(engine, crashMode);
        return m && m.checkpointId > lastRestored.get(crashMode)! && Object.values(m.operators.lookup?.inFlight ?? {}).flat().length > 0;
      }, 60_000, `a checkpoint of async-${crashMode} with records in flight`);
      engine = await engines.crash(engine);
      for (const mode of MODES) {
        const { count, metadata } = await restored(engine, mode, restores.get(mode)!);
        restores.set(mode, count);
        const inFlight = Object.values(metadata.operators.lookup?.inFlight ?? {}).flat() as { value: { id: number } }[];
        const ids = new Set(inFlight.map((r) => r.value.id));
        for (const id of ids) listedInFlight.get(mode)!.add(id);
        lastRestored.set(mode, metadata.checkpointId);
        const offset = sourceOffset(metadata);
        // An unaligned checkpoint's in-flight channel data (records the barrier overtook) is replayed on restore: requested again.
        const onChannels = await channelStateIds(engine, metadata);
        console.log(`async-${mode} restored checkpoint ${metadata.checkpointId}: source offset ${offset}, in flight ${[...ids]}, on channels ${onChannels.size}`);
        const before = mayRepeat.get(mode)!;
        mayRepeat.set(mode, (id) => before(id) || ids.has(id) || onChannels.has(id) || id >= offset);
      }
    }

    for (const mode of MODES) {
      const out = await rowsAtLeast(engine, mode, TOTAL);
      expect(out.size, mode).toBe(TOTAL);
      const positions = [...out.values()].map((r) => r.pos).sort((a, b) => a - b);
      expect(positions, `${mode}: each result exactly once`).toEqual(Array.from({ length: TOTAL }, (_, i) => i));
      for (const [key, r] of out) {
        const id = Number(key);
        expect(r.ts, `${mode} ${id}: the result carries its record's event time`).toBe(tsOf(id));
        expect(r.itemTs).toBe(tsOf(id));
        // A record whose first request hung may be answered by a second request after a crash.
        if (!r.timedOut) expect(r.value, `${mode} ${id}`).toBe(id * 2);
        else expect(hangs(id), `${mode} ${id} timed out`).toBe(true);
        if (id < PHASE1) expect(r.timedOut, `${mode} ${id}: timed out exactly when the service hung`).toBe(hangs(id));
      }
      if (mode === "ordered") {
        const misplaced = [...out].filter(([key, r]) => r.pos !== Number(key));
        expect(misplaced, "ordered: every result in input order").toEqual([]);
      } else {
        // A slow record (250 ms) of phase 1 is overtaken by records after it.
        const overtaken = [...out].filter(([key, r]) => Number(key) < PHASE1 && slow(Number(key)) && r.pos > Number(key));
        expect(overtaken.length, "unordered: slow records were overtaken").toBeGreaterThan(5);
      }

      const first = server.firstAttempts.get(mode)!;
      const repeated = [...first].filter(([, n]) => n > 1).map(([id]) => id);
      expect(repeated.filter((id) => id < PHASE1), `${mode}: nothing committed before the crashes was requested again`).toEqual([]);
      expect(repeated.filter((id) => !mayRepeat.get(mode)!(id)), `${mode}: repeats only for records in flight at a restored checkpoint or after it`).toEqual([]);
      expect(listedInFlight.get(mode)!.size, `${mode}: the crashes restored records in flight`).toBeGreaterThan(0);
      // Retries: every id that fails first was asked at least twice.
      for (let id = 0; id < PHASE1; id++) if (failsFirst(id) && !hangs(id)) expect(server.requests.get(mode)!.get(id), `${mode} ${id} retried`).toBeGreaterThanOrEqual(2);
      console.log(`async-${mode}: ${repeated.length} records requested again, ${listedInFlight.get(mode)!.size} listed in flight in restored checkpoints`);
    }
    // The platform's limit is 6 outgoing connections per invocation: floe caps each subtask at 6 requests.
    const perSubtask = Object.fromEntries(server.maxOpenPerSubtask);
    console.log(`most requests open at once per subtask: ${JSON.stringify(perSubtask)}`);
    for (const mode of MODES) expect(Object.keys(perSubtask).some((k) => k.startsWith(`${mode}/0@`)), `${mode}: its subtask was seen`).toBe(true);
    expect(Math.max(...Object.values(perSubtask)), "requests of one subtask ran concurrently").toBeGreaterThan(1);
    for (const [subtask, n] of Object.entries(perSubtask)) expect(n, `${subtask}: never more than 6 requests open at once`).toBeLessThanOrEqual(6);
  }, 240_000);

  it("restores records in flight at a savepoint at another parallelism, dealt round-robin, each requested once more", async () => {
    const engine = await engineAt();
    await (await engine.mf.getR2Bucket("FILES")).put("async/server.json", JSON.stringify({ url: server.url }));
    expect((await engine.api("/v1/jobs/async-unordered/start", { method: "POST", json: {} })).status).toBe(200);
    await ingest(engine, "unordered", 0, 100);
    await rowsAtLeast(engine, "unordered", 100);

    // Twelve slow records among fast ones; stop with a savepoint while the slow ones are in flight.
    const ids = Array.from({ length: 31 }, (_, i) => 1000 + i);
    const res = await engine.api("/v1/ingest/async-unordered-in", { method: "POST", body: ids.map((id) => JSON.stringify({ id, ts: tsOf(id) })).join("\n"), headers: { "content-type": "application/x-ndjson" } });
    expect(res.status).toBe(200);
    await waitFor(async () => server.log.some((r) => r.job === "unordered" && r.id === 1005), 30_000, "slow requests in flight");
    const stop = await engine.api("/v1/jobs/async-unordered/stop", { method: "POST", json: { savepoint: true } });
    expect(stop.status, await stop.clone().text()).toBe(200);
    const { id: savepoint } = (await stop.json()) as { id: string };
    const checkpointId = Number(savepoint.replace("savepoint-", ""));
    const object = await (await engine.mf.getR2Bucket("CHECKPOINTS")).get(savepointMetadataKey("", "async-unordered", checkpointId));
    const metadata = (await object!.json()) as CheckpointMetadata;
    const listed = (Object.values(metadata.operators.lookup?.inFlight ?? {}).flat() as { value: { id: number } }[]).map((r) => r.value.id);
    expect(listed.length, "the savepoint holds records in flight").toBeGreaterThan(0);
    console.log(`savepoint ${savepoint}: in flight ${listed}`);

    // Start from it with the async operator at parallelism 2.
    const logFrom = server.log.length;
    const start = await engine.api("/v1/jobs/async-unordered/start", { method: "POST", json: { fromSavepoint: savepoint, parallelism: { lookup: 2 } } });
    expect(start.status, await start.clone().text()).toBe(200);
    const out = await rowsAtLeast(engine, "unordered", 100 + ids.length);
    expect(out.size).toBe(100 + ids.length);
    expect([...out.values()].map((r) => r.pos).sort((a, b) => a - b), "each result exactly once").toEqual(Array.from({ length: out.size }, (_, i) => i));
    for (const [key, r] of out) expect(r.timedOut || r.value === Number(key) * 2, key).toBe(true);

    // Each record of the savepoint was requested once more, by the subtask round-robin gives it (j mod 2).
    const after = server.log.slice(logFrom).filter((r) => r.job === "unordered" && r.attempt === 1);
    listed.forEach((id, j) => {
      const asks = after.filter((r) => r.id === id);
      expect(asks.map((r) => r.subtask), `record ${id}, ${j}-th in the savepoint`).toEqual([j % 2]);
    });
    // At parallelism 2, each subtask within the platform's 6 connections.
    const rescaled = [...server.maxOpenPerSubtask].filter(([k]) => k.startsWith("unordered/1@"));
    expect(rescaled.length, "subtask 1 of the rescaled job asked the service").toBeGreaterThan(0);
    for (const [subtask, n] of server.maxOpenPerSubtask) expect(n, `${subtask}: never more than 6 requests open at once`).toBeLessThanOrEqual(6);
    // The operator's counters, per vertex.
    const metrics = (await (await engine.api("/v1/jobs/async-unordered/metrics")).json()) as { vertices: { id: string; async_io: { in_flight: number; requests: number } | null }[] };
    const lookupMetrics = metrics.vertices.find((v) => v.id === "lookup")!.async_io!;
    expect(lookupMetrics.requests, "requests of this attempt: at least the restored ones").toBeGreaterThanOrEqual(listed.length);
    expect(lookupMetrics.in_flight).toBe(0);
    expect(metrics.vertices.find((v) => v.id === "in")!.async_io).toBeNull();
    // Nothing else was asked again: the rest of the records came before the savepoint's results or after its offset.
    const again = after.filter((r) => !listed.includes(r.id) && r.id < 1000);
    expect(again, "no record committed before the savepoint was asked again").toEqual([]);
  }, 120_000);

  it("waits for every request at the end of a bounded input, then finishes with each result once", async () => {
    const engine = await engineAt();
    expect((await engine.api("/v1/jobs/async-bounded/start", { method: "POST", json: {} })).status).toBe(200);
    const status = await waitFor(async () => {
      const s = (await (await engine.api("/v1/jobs/async-bounded")).json()) as { status: string; last_error: string | null };
      return ["FINISHED", "FAILED", "CANCELED"].includes(s.status) ? s : undefined;
    }, 60_000, "async-bounded to finish");
    expect(status.status, JSON.stringify(status)).toBe("FINISHED");
    const out = await readTable<number>(engine, "async-bounded-out");
    expect(out.size).toBe(2 * ASYNC_BOUNDED_COUNT);
    expect([...out.values()].every((n) => n === 1), "each result once").toBe(true);
  }, 90_000);

  /** Starts job `name`, ingests `records` into `<name>-in`, and waits for the job to fail: its last error, and where record `i` was read. */
  async function failedBy(name: string, records: object[], i: number): Promise<{ lastError: string; at: string }> {
    const engine = await engineAt();
    expect((await engine.api(`/v1/jobs/${name}/start`, { method: "POST", json: {} })).status).toBe(200);
    const res = await engine.api(`/v1/ingest/${name}-in`, {
      method: "POST",
      body: records.map((r) => JSON.stringify(r)).join("\n"),
      headers: { "content-type": "application/x-ndjson" },
    });
    expect(res.status).toBe(200);
    const { offsets } = (await res.json()) as { offsets: { partition: number; first_offset: number }[] };
    const status = await waitFor(async () => {
      const s = (await (await engine.api(`/v1/jobs/${name}`)).json()) as { status: string; last_error: string | null };
      return s.status === "FAILED" ? s : undefined;
    }, 30_000, `${name} to fail`);
    return { lastError: status.last_error ?? "", at: `${name}-in/${offsets[0].partition} offset ${offsets[0].first_offset + i}` };
  }

  it("fails the job when a record's last attempt rejects and there is no dead-letter output, naming the operator, the record, its event time, its source offset and attempts, and why no key", async () => {
    const { lastError, at } = await failedBy("async-strict", [{ id: "ok", ts: 1000 }, { id: "bad", ts: 2000, fail: true }], 1);
    // The record came to the async operator over a network edge, which carried where it was read.
    expect(lastError).toContain(
      `async operator "lookup" failed for record {"id":"bad","ts":2000,"fail":true} at event time 2000 from ${at}, after 3 attempts: Error: no profile for bad. ` +
        "It has no key (the operator's input is not a keyed stream). A deadLetters output would take such a record aside instead of failing the job",
    );
  }, 60_000);

  it("on a keyed stream two network edges from its source, a record that fails names its key and source offset", async () => {
    const { lastError, at } = await failedBy("async-keyed-strict", [{ id: "ok", ts: 1000 }, { id: "fine", ts: 1500 }, { id: "bad", ts: 2000, fail: true }], 2);
    expect(lastError).toContain(
      `async operator "lookup" failed for record {"id":"BAD","ts":2000,"fail":true} of key "BAD" from ${at}, after 2 attempts: Error: no profile for BAD. ` +
        "A deadLetters output would take such a record aside instead of failing the job",
    );
  }, 60_000);
});
