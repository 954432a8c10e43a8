/**
 * Rich functions as a user writes them (issue 17): the `rich-lookup` test
 * job loads a table of user names from the R2 bucket FILES in `open`, once
 * per parallel instance, and enriches counts with it. After a SIGKILL of
 * the runtime each instance opens again (a new attempt) and the counts go
 * on exactly. A job whose `open` fails names the operator and the cause.
 */
import { describe, expect, it } from "vitest";
import { type Engine, readTable, waitFor } from "../support/engine.js";
import { engineSet } from "../support/engines.js";

interface NamedCount {
  name: string | null;
  count: number;
  openedBy: string;
}

const engines = engineSet();
const engineAt = engines.start;

async function visit(engine: Engine, stream: string, users: readonly string[]): Promise<void> {
  const res = await engine.api(`/v1/ingest/${stream}`, { method: "POST", body: users.map((user) => JSON.stringify({ user })).join("\n"), headers: { "content-type": "application/x-ndjson" } });
  expect(res.status, await res.clone().text()).toBe(200);
}

async function rowsWhen(engine: Engine, done: (rows: Map<string, NamedCount>) => boolean, what: string): Promise<Map<string, NamedCount>> {
  let last = "";
  return waitFor(
    async () => {
      const rows = await readTable<NamedCount>(engine, "rich-out");
      last = JSON.stringify([...rows]);
      return done(rows) ? rows : undefined;
    },
    30_000,
    what,
  ).catch((e: Error) => {
    throw new Error(`${e.message}; table: ${last}`);
  });
}

describe("rich functions", () => {
  it("load a lookup table from a binding in open, per instance, again after a SIGKILL, with exact counts", async () => {
    let engine = await engineAt();
    await (await engine.mf.getR2Bucket("FILES")).put("lookup/users.json", JSON.stringify({ ada: "Ada Lovelace", bob: "Bob Kahn" }));
    expect((await engine.api("/v1/jobs/rich-lookup/start", { method: "POST", json: {} })).status).toBe(200);
    await visit(engine, "rich-in", ["ada", "bob", "ada", "zoe"]);
    const first = await rowsWhen(engine, (r) => r.get("ada")?.count === 2 && r.has("bob") && r.has("zoe"), "the first counts");
    expect(first.get("ada")).toMatchObject({ name: "Ada Lovelace", count: 2 });
    expect(first.get("zoe")).toMatchObject({ name: null, count: 1 });
    expect(new Set([...first.values()].map((r) => r.openedBy.split("@")[1])), "opened by attempt 1").toEqual(new Set(["1"]));

    engine = await engines.crash(engine);
    await visit(engine, "rich-in", ["ada", "bob"]);
    const after = await rowsWhen(engine, (r) => r.get("ada")?.count === 3 && r.get("bob")?.count === 2, "the counts after the crash");
    expect(after.get("ada")).toMatchObject({ name: "Ada Lovelace", count: 3 });
    expect(after.get("bob")).toMatchObject({ name: "Bob Kahn", count: 2 });
    // The rows written after the restart come from instances that opened again, in a later attempt.
    expect(Number(after.get("ada")!.openedBy.split("@")[1])).toBeGreaterThan(1);
    expect(after.get("zoe")).toMatchObject({ count: 1 });
  }, 90_000);

  it("fail the job naming the operator when open throws", async () => {
    const engine = await engineAt();
    await engine.api("/v1/jobs/rich-missing/start", { method: "POST", json: {} });
    const status = await waitFor(async () => {
      const s = (await (await engine.api("/v1/jobs/rich-missing")).json()) as { status: string; last_error: string | null };
      return s.status === "FAILED" ? s : undefined;
    }, 30_000, "the job failed");
    expect(status.last_error).toMatch(/operator "enrich" failed to open: Error: lookup table lookup\/missing.json is not in FILES/);
  }, 60_000);
});
