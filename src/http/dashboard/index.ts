/**
 * The web dashboard's routes: the HTML shell at `/`, and its script
 * modules and stylesheet under `/dashboard/`. They need no token because
 * they carry no data; the page asks for the admin token and calls the `/v1`
 * API with it.
 *
 * The browser scripts live in `client/` as they are served: each is
 * imported here as text (`?raw`), so the Worker's bundle carries them
 * verbatim. The stylesheet stays a string in `app-css.ts`: vitest empties
 * every `.css` import, `?raw` included, unless its config opts in.
 *
 * @example
 * app.route("/", dashboardRoutes(""));
 */
import { Hono } from "hono";
import ACTIONS_JS from "./client/actions.js?raw";
import API_JS from "./client/api.js?raw";
import APP_JS from "./client/app.js?raw";
import HELPERS_JS from "./client/helpers.js?raw";
import RENDER_JS from "./client/render.js?raw";
import { DASHBOARD_CSS } from "./app-css.js";
import { dashboardHtml } from "./page.js";

/**
 * Script and style from this origin only, no inline code, fetches to this
 * origin only, no framing, no form submission (so a token typed into the
 * sign-in form can never end up in a URL), and no DOM sinks that parse HTML
 * (Trusted Types required, and no policy may be created to get around it).
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
  "trusted-types 'none'",
].join("; ");

const JS = "text/javascript; charset=utf-8";

/** The files under `/dashboard/`: the page script, the modules it imports, and the stylesheet. */
export const DASHBOARD_FILES: Readonly<Record<string, { readonly contentType: string; readonly body: string }>> = {
  "app.js": { contentType: JS, body: APP_JS },
  "api.js": { contentType: JS, body: API_JS },
  "actions.js": { contentType: JS, body: ACTIONS_JS },
  "render.js": { contentType: JS, body: RENDER_JS },
  "helpers.js": { contentType: JS, body: HELPERS_JS },
  "app.css": { contentType: "text/css; charset=utf-8", body: DASHBOARD_CSS },
};

/** Headers of every dashboard response. */
function headers(contentType: string): Record<string, string> {
  return {
    "content-type": contentType,
    "content-security-policy": DASHBOARD_CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    // Small files: always revalidate, so a deploy shows at once.
    "cache-control": "no-cache",
  };
}

/** The dashboard as a Hono sub-app, to mount at floe's base path (`basePath`: "" at the root). */
export function dashboardRoutes(basePath = "") {
  const app = new Hono();
  const html = dashboardHtml(basePath);
  app.get("/", (c) => c.body(html, 200, headers("text/html; charset=utf-8")));
  for (const [name, file] of Object.entries(DASHBOARD_FILES)) {
    app.get(`/dashboard/${name}`, (c) => c.body(file.body, 200, headers(file.contentType)));
  }
  return app;
}
