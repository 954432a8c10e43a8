import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { JobRegistry } from "../../runtime/registry.js";
import { createApp } from "../app.js";
import { DASHBOARD_CSP, DASHBOARD_FILES } from "./index.js";

const CLIENT_DIR = resolve(import.meta.dirname, "client");

const app = createApp(new JobRegistry([]));
const env = { FLOE_ADMIN_TOKEN: "secret-token" };
const get = (path: string, headers: Record<string, string> = {}) => app.request(path, { headers }, env);

describe("dashboard routes", () => {
  it("serves the shell at / without a token, under a strict CSP, with no inline script or style", async () => {
    const res = await get("/");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("content-security-policy")).toBe(DASHBOARD_CSP);
    expect(DASHBOARD_CSP).toContain("script-src 'self'");
    expect(DASHBOARD_CSP).toContain("style-src 'self'");
    expect(DASHBOARD_CSP).not.toContain("unsafe-inline");
    const html = await res.text();
    expect(html).toContain('<script type="module" src="/dashboard/app.js"></script>');
    expect(html).toContain('<link rel="stylesheet" href="/dashboard/app.css">');
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
  });

  it("serves the script modules exactly as they are in client/, and the stylesheet, as same-origin files", async () => {
    // Every script in client/ is served (a new module cannot be forgotten), and nothing else is.
    const scripts = readdirSync(CLIENT_DIR).filter((f) => f.endsWith(".js"));
    expect(Object.keys(DASHBOARD_FILES).sort()).toEqual([...scripts, "app.css"].sort());
    for (const name of scripts) {
      const res = await get(`/dashboard/${name}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
      expect(res.headers.get("content-security-policy")).toBe(DASHBOARD_CSP);
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      const text = await res.text();
      expect(text).toBe(readFileSync(resolve(CLIENT_DIR, name), "utf8"));
      expect(text).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|eval\(|new Function|setAttribute\("style"/);
    }

    const css = await get("/dashboard/app.css");
    expect(css.status).toBe(200);
    expect(css.headers.get("content-type")).toBe("text/css; charset=utf-8");
    expect(await css.text()).toContain(".vertex.backpressured");
  });

  it("leaves the API's auth as it was", async () => {
    expect((await get("/v1/jobs")).status).toBe(401);
    expect((await get("/v1/jobs", { authorization: "Bearer wrong" })).status).toBe(401);
    const ok = await get("/v1/jobs", { authorization: "Bearer secret-token" });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ jobs: [] });
    const missing = await get("/dashboard/nothing");
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("not_found");
  });
});
