import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Engine, startEngine, waitFor } from "../support/engine.js";

describe("the clicks job", () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await startEngine();
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it("counts clicks per user from HTTP ingestion into the table", async () => {
    const start = await engine.api("/v1/jobs/clicks/start", { method: "POST", json: {} });
    expect(start.status).toBe(200);
    expect((await start.json()) as object).toMatchObject({ name: "clicks", status: "RUNNING", attempt: 1 });

    const expected = new Map<string, number>();
    for (let r = 0; r < 5; r++) {
      const lines: string[] = [];
      for (let i = 0; i < 400; i++) {
        const user = `user-${(r * 400 + i) % 37}`;
        expected.set(user, (expected.get(user) ?? 0) + 1);
        lines.push(JSON.stringify({ user, url: `/p/${i}` }));
      }
      const res = await engine.api("/v1/ingest/clicks", { method: "POST", body: lines.join("\n"), headers: { "content-type": "application/x-ndjson" } });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { count: number }).count).toBe(400);
    }
    await waitFor(async () => {
      const res = await engine.api("/v1/tables/clicks-per-user?limit=1000");
      const body = (await res.json()) as { rows: { key: string; value: number }[] };
      if (body.rows.length !== expected.size) return false;
      return body.rows.every((r) => expected.get(r.key) === r.value);
    }, 20_000, "all counts in the table");

    const one = await engine.api("/v1/tables/clicks-per-user/user-3");
    expect(await one.json()).toEqual({ key: "user-3", value: expected.get("user-3") });
    const missing = await engine.api("/v1/tables/clicks-per-user/nobody");
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("row_not_found");
  });
});
