/**
 * Keyed state that the engine must refuse, as a user meets it: jobs of the
 * test Worker (test/fixtures/bad-state-jobs.ts) started over HTTP whose key
 * selector gives another key after a batch's JSON round trip, whose
 * state for one key outgrows a SQLite row, or whose connected inputs are
 * keyed by keys of different types. Each job fails with an error in its
 * status naming the operator (and the input, the state and key, or both
 * key types), and nothing it should not have is committed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Engine, startEngine, waitFor } from "../support/engine.js";
import { ingestOk, ndjson, tableRows } from "../support/http.js";

interface JobStatus {
  status: string;
  restarts: number;
  last_error: string | null;
  latest_completed_checkpoint: number | null;
}

describe("keys and state the engine refuses", () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await startEngine({ testJobs: true });
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  async function start(job: string): Promise<void> {
    // No restarts: a key selector or a state that breaks the contract fails every attempt the same way.
    const res = await engine.api(`/v1/jobs/${job}/start`, { method: "POST", json: { config: { restart_strategy: { type: "none" } } } });
    expect(res.status, await res.clone().text()).toBe(200);
  }

  async function status(job: string): Promise<JobStatus> {
    return (await (await engine.api(`/v1/jobs/${job}`)).json()) as JobStatus;
  }

  async function failed(job: string): Promise<JobStatus> {
    return waitFor(async () => {
      const s = await status(job);
      return s.status === "FAILED" && s;
    }, 30_000, `${job} to fail`);
  }

  const days = (n: number) => Array.from({ length: n }, (_, i) => ({ user: `u${i}`, ts: Date.UTC(2026, 0, 1 + i) }));

  it("fails a job whose key selector returns a Date at its first record, naming the operator and the input", async () => {
    await start("bad-key-date");
    await ingestOk(engine, "bad-key-date-in", ndjson(days(5)));
    const s = await failed("bad-key-date");
    expect(s.last_error).toMatch(/keyBy into operator "count per day" \(uid "count-per-day"\): the key selector returned a Date, which is not a key \(a string or a finite number\), at bad-key-date-in\/0 offset 0; /);
    expect(s.last_error).toContain(`the key selector's input was {"user":"u0","at":"2026-01-01T00:00:00.000Z"}`);
    expect(s.last_error).toContain("same string or finite number for a record and for its JSON round trip");
    expect(s.restarts).toBe(0);
    expect((await tableRows(engine, "bad-key-date-out")).size).toBe(0);
  });

  it("fails a job whose string key changes across the round trip at the first record the receiver finds misrouted", async () => {
    // String(Date) on the sending side, the ISO text on the receiving side. Batches of one record:
    // the receiver checks each, and about half reach a subtask that does not own the key it computes.
    await start("bad-key-text-singles");
    await ingestOk(engine, "bad-key-text-singles-in", ndjson(days(40)));
    const s = await failed("bad-key-text-singles");
    expect(s.last_error).toMatch(
      /keyBy into operator "count per day" \(uid "count-per-day"\): the key selector gave key "(2026-\d\d-\d\dT00:00:00.000Z)" \(key group \d+\) for the record as subtask [12]\/2 received it, but that subtask owns key groups \d+\.\.\d+: the key changed across the batch's JSON round trip, and the sender routed the record by the key it computed before; the key selector's input was \{"user":"u\d+","at":"\1"\}/,
    );
    expect((await tableRows(engine, "bad-key-text-singles-out")).size).toBe(0);
  });

  it("fails a job whose string key changes across the round trip at the checkpoint that would hold its state, when no receiver check saw it", async () => {
    // 40 records in one batch per subtask: this input's first records land where they belong,
    // and the checkpoint finds the state of the others under key groups the subtask does not own.
    await start("bad-key-text");
    await ingestOk(engine, "bad-key-text-in", ndjson(days(40)));
    const s = await failed("bad-key-text");
    expect(s.last_error).toMatch(
      /checkpoint failure\(s\) in a row exceed the tolerable 0; last: subtask count per day → out \(subtask [12]\/2\) could not upload its snapshot: operator "count per day": state "count" has key "2026-\d\d-\d\dT00:00:00.000Z" in key group \d+, but this subtask owns key groups \d+\.\.\d+, so a restore or a rescale would not find it/,
    );
    expect(s.latest_completed_checkpoint).toBeNull();
    expect((await tableRows(engine, "bad-key-text-out")).size).toBe(0);
  });

  it("fails a job whose connected inputs are keyed by keys of different types, naming the operator and both types", async () => {
    await start("bad-co-key-types");
    // Clicks of twenty users first (string keys, so every subtask of the operator sees input 1's type), then
    // their profiles (number keys): the first profile batch a subtask gets is refused.
    const users = Array.from({ length: 20 }, (_, i) => i);
    await ingestOk(engine, "bad-co-key-clicks", ndjson(users.map((u) => ({ user: String(u), url: `/page/${u}` }))));
    await engine.caughtUp("bad-co-key-types", ["bad-co-key-clicks"]);
    await ingestOk(engine, "bad-co-key-profiles", ndjson(users.map((u) => ({ id: u, name: `User ${u}` }))));
    const s = await failed("bad-co-key-types");
    expect(s.last_error).toMatch(
      /keyBy into operator "enrich clicks" \(uid "enrich"\): input 2's key selector gave a number key \(\d+\), input 1's gave string keys: a number key never equals a string one, so records of one key from the two inputs would never meet; make both key selectors give the same type/,
    );
    expect(s.last_error).toMatch(/the key selector's input was \{"id":\d+,"name":"User \d+"\}/);
    expect(s.restarts).toBe(0);
  });

  it("fails a job whose state for one key outgrows a SQLite row, naming operator, state and key, and keeps what was committed before", async () => {
    await start("big-state");
    // 900,000 characters for "big" and a little for "small": both fit, and a checkpoint commits them.
    await ingestOk(engine, "big-state-in", ndjson([{ user: "small", kb: 1 }, { user: "big", kb: 900 }]));
    await waitFor(async () => {
      const rows = await tableRows(engine, "big-state-out");
      return rows.get("big") === 1 && rows.get("small") === 1;
    }, 30_000, "the first rows to be committed");
    const committed = (await status("big-state")).latest_completed_checkpoint;
    expect(committed).not.toBeNull();
    // Two more chunks: 2,700,000 characters under one key, more than a row of the image holds.
    await ingestOk(engine, "big-state-in", ndjson([{ user: "big", kb: 900 }, { user: "big", kb: 900 }, { user: "small", kb: 1 }]));
    const s = await failed("big-state");
    expect(s.last_error).toMatch(
      /operator "grow": state "chunks" for key "big" takes 2700019 bytes \(state name, key and value as JSON, in UTF-8\); a keyed-state entry may take at most 1999800 bytes, because each is one row of the subtask's SQLite/,
    );
    // The rows of the failed checkpoint were never committed.
    const rows = await tableRows(engine, "big-state-out");
    expect(Object.fromEntries(rows)).toEqual({ big: 1, small: 1 });
    const checkpoints = (await (await engine.api("/v1/jobs/big-state/checkpoints")).json()) as { latest: { completed: { id: number } | null } };
    expect(checkpoints.latest.completed?.id).toBe(s.latest_completed_checkpoint ?? committed);
  });
});
