/**
 * The web dashboard's routes: the HTML shell at `/` and its script and
 * stylesheet under `/dashboard/`. They need no token because they carry no
 * data; the page asks for the admin token and calls the `/v1` API with it.
 *
 * @example
 * app.route("/", dashboardRoutes());
 */
import { Hono } from "hono";
import { DASHBOARD_CSS } from "./app-css.js";
import { DASHBOARD_JS } from "./app-js.js";
import { DASHBOARD_HTML } from "./page.js";

/**
 * Script and style from this origin only, no inline code, fetches to this
 * origin only, no framing, no form submission (so a token typed into the
 * sign-in form can never end up in a URL), and no DOM sinks that parse HTML.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
].join("; ");

/** Headers of every dashboard response. */
function headers(contentType: string): Record<string, string> {
  return {
    "content-type": contentType,
    "content-security-policy": DASHBOARD_CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    // Small files: always revalidate, so a deploy shows at once.
    "cache-control": "no-cache",
  };
}

/** The dashboard as a Hono sub-app, to mount at `/`. */
export function dashboardRoutes() {
  const app = new Hono();
  app.get("/", (c) => c.body(DASHBOARD_HTML, 200, headers("text/html; charset=utf-8")));
  app.get("/dashboard/app.js", (c) => c.body(DASHBOARD_JS, 200, headers("text/javascript; charset=utf-8")));
  app.get("/dashboard/app.css", (c) => c.body(DASHBOARD_CSS, 200, headers("text/css; charset=utf-8")));
  return app;
}
