/**
 * floe mounted under /floe in a Worker of the user's own (Hono), beside
 * the user's routes at `/`: the API, ingestion, tables and the dashboard
 * work under the base path, through the real bundle in workerd, and the
 * user's routes are untouched. Built and run with floe/testing's job
 * harness.
 */
import { type LocalEngine, buildWorker, startEngine, waitFor } from "floe/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../support/build.js";

describe("floe under /floe beside the user's own routes", () => {
  let engine: LocalEngine;
  beforeAll(async () => {
    const worker = await buildWorker({ root: ROOT, config: "test/fixtures/wrangler.toml", entry: "test/fixtures/mounted-worker.ts" });
    engine = await startEngine({ worker });
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it("leaves / and the user's routes to the user's app", async () => {
    const home = await fetch(`${engine.url}/`);
    expect(home.status).toBe(200);
    expect(await home.text()).toBe("the shop's home page");
    expect(await (await fetch(`${engine.url}/api/hello`)).json()).toEqual({ hello: "from the shop" });
    expect((await engine.api("/v1/jobs")).status, "nothing of floe's outside its base path").toBe(404);
    expect((await fetch(`${engine.url}/dashboard/app.js`)).status).toBe(404);
  });

  it("serves the dashboard at /floe, its files under /floe/dashboard/, and tells the page its base", async () => {
    const page = await fetch(`${engine.url}/floe`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).toContain('<meta name="floe-base" content="/floe">');
    expect(html).toContain('<script type="module" src="/floe/dashboard/app.js"></script>');
    for (const file of ["app.js", "api.js", "render.js", "helpers.js", "actions.js", "app.css"]) {
      const res = await fetch(`${engine.url}/floe/dashboard/${file}`);
      expect(res.status, file).toBe(200);
      expect((await res.text()).length, file).toBeGreaterThan(100);
    }
    const slash = await fetch(`${engine.url}/floe/`, { redirect: "manual" });
    expect(slash.status).toBe(308);
    expect(slash.headers.get("location")).toBe("/floe");
  });

  it("runs a job through /floe/v1: start, ingest, the table's rows", async () => {
    expect((await fetch(`${engine.url}/floe/v1/jobs`)).status, "the control API still needs the token").toBe(401);
    const start = await engine.api("/floe/v1/jobs/clicks/start", { method: "POST", json: {} });
    expect(start.status).toBe(200);
    expect(await start.json()).toMatchObject({ name: "clicks", status: "RUNNING" });
    const ingest = await engine.api("/floe/v1/ingest/clicks", { method: "POST", body: '{"user":"ada"}\n{"user":"bob"}\n{"user":"ada"}\n' });
    expect(ingest.status).toBe(200);
    await waitFor(async () => {
      const res = await engine.api("/floe/v1/tables/clicks-per-user");
      const body = (await res.json()) as { rows: { key: string; value: number }[] };
      return JSON.stringify(body.rows) === JSON.stringify([{ key: "ada", value: 2 }, { key: "bob", value: 1 }]);
    }, { what: "the counts under /floe/v1/tables" });
  });
});
