import { describe, expect, it } from "vitest";
import { JobRegistry } from "../../runtime/registry.js";
import { createApp } from "../app.js";
import { DASHBOARD_CSP } from "./index.js";

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
    expect(html).toContain('<script src="/dashboard/app.js" defer></script>');
    expect(html).toContain('<link rel="stylesheet" href="/dashboard/app.css">');
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
  });

  it("serves the script and the stylesheet as same-origin files", async () => {
    const js = await get("/dashboard/app.js");
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(js.headers.get("x-content-type-options")).toBe("nosniff");
    // It parses (a syntax error in the embedded text would otherwise show up only in a browser).
    const text = await js.text();
    expect(() => new Function(text)).not.toThrow();
    expect(text).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|eval\(|setAttribute\("style"/);

    const css = await get("/dashboard/app.css");
    expect(css.status).toBe(200);
    expect(css.headers.get("content-type")).toBe("text/css; charset=utf-8");
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
