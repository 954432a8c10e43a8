import { describe, expect, it } from "vitest";
import { JobRegistry } from "../runtime/registry.js";
import { createApp, normalizeBasePath } from "./app.js";

const env = { FLOE_ADMIN_TOKEN: "secret-token" };

describe("floe under a base path", () => {
  const app = createApp(new JobRegistry([]), { basePath: "/floe" });
  const get = (path: string) => app.request(path, {}, env);

  it("serves the API under <base>/v1 and nothing at /v1", async () => {
    const inside = await get("/floe/v1/jobs");
    expect(inside.status, "the route exists: it asks for the token").toBe(401);
    const outside = await get("/v1/jobs");
    expect(outside.status).toBe(404);
    expect(((await outside.json()) as { error: { code: string } }).error.code).toBe("not_found");
    const listed = await app.request("/floe/v1/jobs", { headers: { authorization: "Bearer secret-token" } }, env);
    expect(listed.status).toBe(200);
    expect(await listed.json()).toEqual({ jobs: [] });
  });

  it("serves the dashboard at <base>, its files under <base>/dashboard/, and tells the page its base", async () => {
    const page = await get("/floe");
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('<meta name="floe-base" content="/floe">');
    expect(html).toContain('<script type="module" src="/floe/dashboard/app.js"></script>');
    expect(html).toContain('<link rel="stylesheet" href="/floe/dashboard/app.css">');
    expect((await get("/floe/dashboard/app.js")).status).toBe(200);
    expect((await get("/dashboard/app.js")).status).toBe(404);
    const slash = await get("/floe/");
    expect(slash.status).toBe(308);
    expect(slash.headers.get("location")).toBe("/floe");
    expect((await get("/")).status, "the root is the user's app's").toBe(404);
  });

  it("leaves the dashboard out when asked", async () => {
    const bare = createApp(new JobRegistry([]), { dashboard: false });
    expect((await bare.request("/", {}, env)).status).toBe(404);
    expect((await bare.request("/v1/jobs", {}, env)).status).toBe(401);
  });

  it("serves the root as before by default", async () => {
    const rootApp = createApp(new JobRegistry([]));
    const html = await (await rootApp.request("/", {}, env)).text();
    expect(html).toContain('<meta name="floe-base" content="">');
    expect(html).toContain('src="/dashboard/app.js"');
  });

  it("mounts into an app of the user's own", async () => {
    const { Hono } = await import("hono");
    const mine = new Hono();
    mine.get("/", (c) => c.text("my app"));
    mine.route("/", app);
    expect(await (await mine.request("/", {}, env)).text()).toBe("my app");
    expect((await mine.request("/floe/v1/jobs", {}, env)).status).toBe(401);
  });

  it("refuses a base path that is not plain segments", () => {
    expect(normalizeBasePath("/")).toBe("");
    expect(normalizeBasePath("/floe/")).toBe("/floe");
    expect(normalizeBasePath("/a/b")).toBe("/a/b");
    for (const bad of ["floe", "/a//b", "/a b", '/"><script>', "/a?x"]) expect(() => normalizeBasePath(bad), bad).toThrow(/basePath must be/);
  });
});
