/**
 * The `floe` command, run as a subprocess against a running local engine,
 * the way a shell script uses it.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ROOT } from "../support/build.js";
import { type Engine, TEST_TOKEN, readTable, startEngine, tempDir, waitFor } from "../support/engine.js";

let engine: Engine | undefined;
afterEach(async () => {
  await engine?.dispose().catch(() => undefined);
  engine = undefined;
});

/** Runs `floe <args>`; resolves its exit code and output. */
function floe(args: string[], stdin?: string): Promise<{ code: number; out: string; err: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [resolve(ROOT, "bin/floe.mjs"), ...args], {
      env: { ...process.env, FLOE_TOKEN: TEST_TOKEN, FLOE_URL: engine!.url },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", fail);
    child.on("close", (code) => done({ code: code ?? -1, out, err }));
    child.stdin.end(stdin ?? "");
  });
}

type Totals = { count: number; sum: number; a: number; b: number };

function events(from: number, n: number, expected: Map<string, Totals>): string {
  const lines: string[] = [];
  for (let i = from; i < from + n; i++) {
    const key = `k${i % 30}`;
    const t = expected.get(key) ?? { count: 0, sum: 0, a: 0, b: 0 };
    expected.set(key, { count: t.count + 1, sum: t.sum + i, a: t.a + 1, b: t.b });
    lines.push(JSON.stringify({ key, value: i }));
  }
  return `${lines.join("\n")}\n`;
}

async function tableIs(expected: Map<string, Totals>) {
  const rows = await readTable<Totals>(engine!, "chaos-out");
  return rows.size === expected.size && [...expected].every(([k, v]) => JSON.stringify(rows.get(k)) === JSON.stringify(v));
}

describe("the floe command", () => {
  it("runs, ingests, lists, takes savepoints, stops, rescales from a savepoint and cancels", async () => {
    engine = await startEngine({ testJobs: true });
    const expected = new Map<string, Totals>();

    const run = await floe(["run", "chaos", "-p", "sum-per-key=2"]);
    expect(run, run.err).toMatchObject({ code: 0 });
    expect(run.out).toMatch(/^chaos RUNNING \(attempt 1\)/);

    const file = join(tempDir("floe-cli-"), "part1.ndjson");
    writeFileSync(file, events(0, 2500, expected));
    const ingested = await floe(["ingest", "chaos-a", file]);
    expect(ingested.out.trim()).toBe("2500 records in 1 requests");

    const list = await floe(["list", "--json"]);
    expect((JSON.parse(list.out) as { name: string; status: string }[]).find((j) => j.name === "chaos")?.status).toBe("RUNNING");
    await waitFor(() => tableIs(expected), 20_000, "the first part");

    const sp = await floe(["savepoint", "chaos"]);
    expect(sp.code, sp.err).toBe(0);
    expect(sp.out).toMatch(/^savepoint-\d+\tr2:\/\/savepoints\/chaos\/savepoint-\d+\/$/m);

    const stop = await floe(["stop", "chaos", "--savepoint", "--drain", "--json"]);
    expect(stop.code, stop.err).toBe(0);
    const stopped = JSON.parse(stop.out) as { id: string; status: { status: string } };
    expect(stopped.status.status).toBe("FINISHED");

    // Issue 22: the CLI accepts the location it prints as well as the id.
    const rerun = await floe(["run", "chaos", "-s", `r2://savepoints/chaos/${stopped.id}/`, "-p", "sum-per-key=3"]);
    expect(rerun.code, rerun.err).toBe(0);
    expect(rerun.out).toContain(`from r2://savepoints/chaos/${stopped.id}/`);
    const piped = await floe(["ingest", "chaos-a"], events(2500, 1500, expected));
    expect(piped.out.trim()).toBe("1500 records in 1 requests");
    await waitFor(() => tableIs(expected), 20_000, "both parts, at parallelism 3");

    const checkpoints = await floe(["checkpoints", "chaos"]);
    expect(checkpoints.code).toBe(0);
    expect(checkpoints.out).toMatch(/^completed \d+, failed \d+, in progress \d+, restored 1/);

    const cancel = await floe(["cancel", "chaos", "--with-savepoint"]);
    expect(cancel.code, cancel.err).toBe(0);
    expect(cancel.out).toMatch(/^savepoint-\d+\t.*\tCANCELED$/m);
  });

  it("fails with a clear message and exit code for what cannot be done", async () => {
    engine = await startEngine({ testJobs: true });
    const missing = await floe(["run", "chaos", "-s", "savepoint-424242"]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^floe: savepoint_not_found: savepoint 424242 has no _metadata/);
    const foreign = await floe(["run", "chaos", "-s", "r2://savepoints/clicks/savepoint-3/"]);
    expect(foreign.code).toBe(1);
    expect(foreign.err).toMatch(/^floe: invalid_request: "r2:\/\/savepoints\/clicks\/savepoint-3\/" is a savepoint of job "clicks"; job "chaos" restores only its own/);
    const garbled = await floe(["run", "chaos", "-s", "r2://elsewhere/savepoint-3"]);
    expect(garbled.code).toBe(1);
    expect(garbled.err).toMatch(/is not a savepoint id \(savepoint-<number>\) or location/);
    const usage = await floe(["stop", "chaos"]);
    expect(usage.code).toBe(2);
    expect(usage.err).toMatch(/stop takes a final savepoint/);
    const unknown = await floe(["launch"]);
    expect(unknown.code).toBe(2);
    const badP = await floe(["run", "chaos", "-p", "lots"]);
    expect(badP.code).toBe(2);
    const json = await floe(["status", "nope", "--json"]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.err)).toMatchObject({ error: { status: 404, code: "job_not_found" } });
  });
});
