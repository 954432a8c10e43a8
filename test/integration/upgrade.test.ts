/**
 * Upgrades: a new version of the job's code, deployed over the same
 * storage, restores a savepoint by uid. Version 2 adds and reorders
 * operators and changes parallelism; version 3 drops a stateful operator,
 * which is refused unless allowNonRestoredState.
 */
import { afterEach, describe, expect, it } from "vitest";
import { UPGRADE_BUNDLES } from "../support/build.js";
import { type Engine, readTable, startEngine, waitFor } from "../support/engine.js";
import { expectError } from "../support/http.js";

let engine: Engine | undefined;
afterEach(async () => {
  await engine?.dispose().catch(() => undefined);
  engine = undefined;
});

type Row = { count: number; max: number };

async function ingest(e: Engine, records: { k: string; v: number }[]) {
  const res = await e.api("/v1/ingest/upgrade-in", { method: "POST", body: records.map((r) => JSON.stringify(r)).join("\n"), headers: { "content-type": "application/x-ndjson" } });
  expect(res.status).toBe(200);
}

async function tableIs(e: Engine, expected: Record<string, Row>) {
  const rows = await readTable<Row>(e, "upgrade-out");
  return Object.entries(expected).every(([k, v]) => JSON.stringify(rows.get(k)) === JSON.stringify(v));
}

describe("upgrades", () => {
  it("a new version with the same uids keeps the state; dropping a stateful uid needs allowNonRestoredState", async () => {
    engine = await startEngine({ script: UPGRADE_BUNDLES[0] });
    const dir = engine.persistDir;
    expect((await engine.api("/v1/jobs/upgrade/start", { method: "POST", json: {} })).status).toBe(200);
    await ingest(engine, [{ k: "a", v: 5 }, { k: "a", v: 9 }, { k: "b", v: 1 }]);
    await waitFor(() => tableIs(engine!, { a: { count: 2, max: 9 }, b: { count: 1, max: 1 } }), 20_000, "version 1's rows");
    const stop = await engine.api("/v1/jobs/upgrade/stop", { method: "POST", json: { savepoint: true } });
    expect(stop.status).toBe(200);
    const { id } = (await stop.json()) as { id: string };

    // Version 2: deployed over the same storage.
    await engine.dispose();
    engine = await startEngine({ script: UPGRADE_BUNDLES[1], persistDir: dir });
    const v2 = await engine.api("/v1/jobs/upgrade/start", { method: "POST", json: { fromSavepoint: id } });
    expect(v2.status, await v2.clone().text()).toBe(200);
    expect(((await v2.json()) as { parallelism: Record<string, number> }).parallelism).toMatchObject({ count: 3, max: 1, normalize: 2 });
    await ingest(engine, [{ k: "a", v: 2 }, { k: "b", v: 7 }]);
    await waitFor(() => tableIs(engine!, { a: { count: 3, max: 9 }, b: { count: 2, max: 7 } }), 20_000, "version 2 continuing version 1's state");
    const stop2 = await engine.api("/v1/jobs/upgrade/stop", { method: "POST", json: { savepoint: true } });
    const { id: id2 } = (await stop2.json()) as { id: string };

    // Version 3 has no "max" operator: refused, then accepted with allowNonRestoredState.
    await engine.dispose();
    engine = await startEngine({ script: UPGRADE_BUNDLES[2], persistDir: dir });
    await expectError(
      await engine.api("/v1/jobs/upgrade/start", { method: "POST", json: { fromSavepoint: id2 } }),
      400,
      "non_restored_state",
      /operators the job no longer has: max\b/,
    );
    expect(((await (await engine.api("/v1/jobs/upgrade")).json()) as { status: string }).status).toBe("FINISHED");
    const v3 = await engine.api("/v1/jobs/upgrade/start", { method: "POST", json: { fromSavepoint: id2, allowNonRestoredState: true } });
    expect(v3.status, await v3.clone().text()).toBe(200);
    await ingest(engine, [{ k: "a", v: 1 }]);
    await waitFor(() => tableIs(engine!, { a: { count: 4, max: -1 } }), 20_000, "version 3 keeping the count");
  });
});
