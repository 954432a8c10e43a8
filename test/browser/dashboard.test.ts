/**
 * The dashboard in a real Chromium (playwright-core, the system's
 * /usr/bin/chromium) against the bundled Worker in workerd: sign-in, the job
 * running, checkpoints and their charts, a savepoint through the confirm
 * dialog, stop and restart from it, and the token kept out of every URL;
 * then the windowed example job page-views: its watermarks and open windows,
 * per vertex and per subtask. Screenshots: test-output/dashboard.png and
 * test-output/dashboard-windows.png.
 */
import { existsSync, mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { type Browser, type Page, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../support/build.js";
import { type Engine, TEST_TOKEN, startEngine, waitFor } from "../support/engine.js";

/** CI installs Debian's chromium; a missing browser fails the run instead of skipping it. */
const CHROMIUM = process.env.FLOE_CHROMIUM ?? "/usr/bin/chromium";
const SCREENSHOT = resolve(ROOT, "test-output/dashboard.png");
const WINDOWS_SCREENSHOT = resolve(ROOT, "test-output/dashboard-windows.png");
const WRONG_TOKEN = "not-the-admin-token";

describe("the dashboard", () => {
  let engine: Engine;
  let browser: Browser;
  let page: Page;
  /** Every request the page made, with its Authorization header. */
  const requests: { url: string; authorization: string | undefined }[] = [];
  /** Script errors and console errors other than failed HTTP statuses (CSP violations land here). */
  const problems: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`no Chromium at ${CHROMIUM}: install it (apt-get install chromium) or set FLOE_CHROMIUM to a Chromium binary`);
    }
    [engine, browser] = await Promise.all([
      startEngine(),
      chromium.launch({
        executablePath: CHROMIUM,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      }),
    ]);
    page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    page.on("request", (r) => requests.push({ url: r.url(), authorization: r.headers().authorization }));
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(`console: ${m.text()}`);
    });
  });

  afterAll(async () => {
    await browser?.close();
    await engine?.dispose();
  });

  /** Waits until the text of `selector` matches `re`; returns that text. */
  const waitText = (selector: string, re: RegExp, timeoutMs = 20_000) =>
    waitFor(
      async () => {
        const text = (await page.locator(selector).first().textContent({ timeout: 1_000 })) ?? "";
        return re.test(text) ? text : false;
      },
      timeoutMs,
      `${selector} to match ${re}`,
    );

  const completedCount = async () => Number(((await page.locator("#stat-completed .tile-value").textContent()) ?? "").replace(/,/g, ""));

  /** Clicks an action button and confirms the in-page dialog. */
  const confirmAction = async (action: string, title: RegExp) => {
    await page.locator(`button[data-action="${action}"]`).click();
    await page.locator("#confirm").waitFor({ state: "visible" });
    expect(await page.locator("#confirm-title").textContent()).toMatch(title);
    await page.locator("#confirm-ok").click();
    await page.locator("#confirm").waitFor({ state: "hidden" });
  };

  let round = 0;
  const ingest = async (count: number) => {
    const r = round++;
    const lines = Array.from({ length: count }, (_, i) => JSON.stringify({ user: `user-${(r * count + i) % 23}`, url: `/p/${i}` }));
    const res = await engine.api("/v1/ingest/clicks", { method: "POST", body: lines.join("\n"), headers: { "content-type": "application/x-ndjson" } });
    expect(res.status).toBe(200);
  };

  it("serves a shell with no data and no token at /, under a strict CSP; the API still needs the token", async () => {
    const res = await fetch(`${engine.url}/`);
    expect(res.status).toBe(200);
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    const html = await res.text();
    expect(html).not.toContain("clicks");
    expect((await fetch(`${engine.url}/dashboard/app.js`)).status).toBe(200);
    expect((await fetch(`${engine.url}/dashboard/app.css`)).status).toBe(200);
    expect((await fetch(`${engine.url}/v1/jobs`)).status).toBe(401);
  });

  it("signs in, runs the job, charts its checkpoints, takes a savepoint, stops and restarts from it", async () => {
    await page.goto(`${engine.url}/`);
    await page.locator("#login").waitFor({ state: "visible" });

    // A wrong token: an error, and still the prompt.
    await page.locator("#token").fill(WRONG_TOKEN);
    await page.locator("#login-submit").click();
    await waitText("#login-error", /401/);
    expect(await page.locator("#app").isHidden()).toBe(true);

    await page.locator("#token").fill(TEST_TOKEN);
    await page.locator("#login-submit").click();
    await page.locator("#app").waitFor({ state: "visible" });
    await waitText("#jobs", /clicks/);
    await waitText("#job-status", /^CREATED$/);
    expect(await page.evaluate(() => sessionStorage.getItem("floe.adminToken"))).toBe(TEST_TOKEN);

    // A confirmation that is declined does nothing.
    await page.locator('button[data-action="start"]').click();
    await page.locator("#confirm").waitFor({ state: "visible" });
    await page.locator("#confirm-cancel").click();
    await page.locator("#confirm").waitFor({ state: "hidden" });
    expect(await page.locator("#job-status").textContent()).toBe("CREATED");

    await confirmAction("start", /Start the job/);
    await waitText("#job-status", /^RUNNING$/);

    let feeding = true;
    const feeder = (async () => {
      while (feeding) {
        await ingest(300);
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    try {
      // The operator graph: both vertices with their parallelism, and rates once two polls have passed.
      await waitText('.vertex[data-vertex="clicks-in"]', /parallelism 4/);
      await waitText('.vertex[data-vertex="count-per-user"]', /count-per-user → counts-out/);
      await waitText('.vertex[data-vertex="clicks-in"] .rate-in', /^[\d,.]+( M)?$/);
      await waitText("#stat-lag", /records/);
      // clicks has no watermark strategy: no event time anywhere, and no windows.
      await waitText('.vertex[data-vertex="count-per-user"] .watermark', /^no watermark$/);
      expect(await page.locator('.vertex[data-vertex="count-per-user"] .open-windows').count()).toBe(0);

      // Checkpoints complete, and their count grows.
      await waitFor(async () => (await completedCount()) >= 2, 20_000, "two completed checkpoints on the page");
      const before = await completedCount();
      await waitFor(async () => (await completedCount()) > before, 20_000, "the completed count to grow");

      // The charts: an SVG line through the checkpoints, with axes and labels.
      const d = await page.locator("#chart-duration svg.chart path.line").getAttribute("d");
      expect(d).toMatch(/^M[\d.]+ [\d.]+( L[\d.]+ [\d.]+)+$/);
      expect(await page.locator("#chart-duration svg.chart circle.dot").count()).toBeGreaterThanOrEqual(2);
      expect(await page.locator("#chart-size svg.chart path.line").getAttribute("d")).toMatch(/^M/);
      expect(await page.locator("#chart-duration svg.chart text.axis-label").allTextContents()).toEqual(["trigger time", "duration"]);
      expect(await page.locator("#chart-duration svg.chart text.tick").count()).toBeGreaterThanOrEqual(4);

      // Per-subtask detail of the latest checkpoint: 4 source and 4 keyed subtasks.
      await waitFor(async () => (await page.locator("#detail table tbody tr").count()) === 8, 10_000, "8 subtask rows in the detail");
      await waitText("#detail table tbody", /clicks-in\/0/);

      // A savepoint through the confirm dialog, listed once complete.
      await confirmAction("savepoint", /Take a savepoint/);
      const message = await waitText("#action-message", /Savepoint savepoint-\d+ completed/, 60_000);
      const savepointId = /savepoint-\d+/.exec(message)![0];
      await waitText(`#savepoints tr[data-savepoint="${savepointId}"]`, /COMPLETED/);
      await waitText("#history", /savepoint/);

      await page.locator("#job").scrollIntoViewIfNeeded();
      mkdirSync(resolve(ROOT, "test-output"), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });

      // A backpressured vertex is highlighted (the engine's answer, with full inputs on two subtasks).
      await page.route("**/v1/jobs/clicks/metrics", async (route) => {
        const res = await route.fetch();
        const body = (await res.json()) as { vertices: { id: string; backpressured_subtasks: number }[] };
        for (const v of body.vertices) if (v.id === "count-per-user") v.backpressured_subtasks = 2;
        await route.fulfill({ response: res, json: body });
      });
      await page.locator('.vertex.backpressured[data-vertex="count-per-user"]').waitFor({ timeout: 10_000 });
      expect(await page.locator('.vertex[data-vertex="count-per-user"] .badge.bp').getAttribute("title")).toBe("2 of 4 subtasks have full inputs");
      await page.unroute("**/v1/jobs/clicks/metrics");
      await page.locator('.vertex.backpressured[data-vertex="count-per-user"]').waitFor({ state: "detached", timeout: 10_000 });

      // Stop with a savepoint, then start again from it (chosen in the dialog).
      await confirmAction("stop", /Stop with a savepoint/);
      await waitText("#job-status", /^FINISHED$/, 60_000);
      const stopId = /savepoint-\d+/.exec(await waitText("#action-message", /with savepoint savepoint-\d+/))![0];
      await waitText(`#savepoints tr[data-savepoint="${stopId}"]`, /COMPLETED/);

      await page.locator('button[data-action="start"]').click();
      await page.locator("#confirm").waitFor({ state: "visible" });
      await page.locator("#start-from").selectOption(stopId);
      await page.locator("#confirm-ok").click();
      await waitText("#job-status", /^RUNNING$/, 30_000);
      await waitText("#action-message", new RegExp(`restored from ${stopId}`));
      await waitText("#stat-restored", new RegExp(stopId));
    } finally {
      feeding = false;
      await feeder;
    }

    // The token went only into Authorization headers: never into a URL.
    expect(page.url()).not.toContain(TEST_TOKEN);
    expect(requests.filter((r) => r.url.includes(TEST_TOKEN) || r.url.includes(WRONG_TOKEN))).toEqual([]);
    const apiCalls = requests.filter((r) => new URL(r.url).pathname.startsWith("/v1/"));
    expect(apiCalls.length).toBeGreaterThan(10);
    expect(apiCalls.filter((r) => !/^Bearer \S+$/.test(r.authorization ?? ""))).toEqual([]);
    expect(problems).toEqual([]);
  });

  it("shows a windowed job's watermark and open windows per vertex, and per subtask in the vertex detail", async () => {
    expect((await engine.api("/v1/jobs/page-views/start", { method: "POST", json: {} })).status).toBe(200);
    const minute0 = Date.UTC(2026, 0, 1);
    const views = async (list: { url: string; ts: number }[]) => {
      const res = await engine.api("/v1/ingest/page-views", { method: "POST", body: list.map((v) => JSON.stringify(v)).join("\n"), headers: { "content-type": "application/x-ndjson" } });
      expect(res.status).toBe(200);
    };
    // Five urls in the minute from 00:00 (event time), each seen last at 00:00:30: every partition's watermark
    // is 00:00:30 − 5 s − 1 ms, short of the window's end, so five windows stay open.
    const urls = ["/a", "/b", "/c", "/d", "/e"];
    await views(urls.flatMap((url) => [{ url, ts: minute0 + 10_000 }, { url, ts: minute0 + 30_000 }]));

    await page.evaluate("location.hash = '#/jobs/page-views'");
    await waitText("#job-name", /^page-views$/);
    await waitText("#job-status", /^RUNNING$/, 30_000);
    const windows = '.vertex[data-vertex="views-per-minute"]';
    await waitText(`${windows} .open-windows`, /^5$/, 30_000);
    await waitText(`${windows} .watermark`, /^2026-01-01T00:00:24\.999Z$/, 30_000);
    // Event time of 2026-01-01 trails the clock by far.
    expect(await page.locator(`${windows} .watermark-lag`).textContent()).toMatch(/^\d+d \d+h behind$/);
    // The source vertex shows its watermark too, and has no windows; the late counter downstream has none either.
    await waitText('.vertex[data-vertex="page-views-in"] .watermark', /^2026-01-01T00:00:24\.999Z$/);
    expect(await page.locator('.vertex[data-vertex="page-views-in"] .open-windows').count()).toBe(0);
    expect(await page.locator('.vertex[data-vertex="late-per-minute"] .open-windows').count()).toBe(0);

    // The vertex detail: its four subtasks, each with its watermark and open windows, adding up to the vertex's.
    await page.locator(windows).click();
    await page.locator("#vertex-detail").waitFor({ state: "visible" });
    await waitText("#vertex-detail h3", /Subtasks of views-per-minute/);
    const subtaskWindows = async () => (await page.locator("#vertex-detail tbody td.open-windows").allTextContents()).map(Number);
    await waitFor(async () => (await subtaskWindows()).length === 4 && (await subtaskWindows()).reduce((a, b) => a + b, 0) === 5, 10_000, "4 subtasks holding the 5 windows");
    await waitFor(
      async () => (await page.locator("#vertex-detail tbody td.watermark").allTextContents()).every((t) => t === "2026-01-01T00:00:24.999Z"),
      20_000,
      "every subtask at the watermark",
    );
    expect(await page.locator("#vertex-detail thead").textContent()).toMatch(/Watermark.*Output watermark.*Idle.*Timers pending.*Open windows/);
    mkdirSync(resolve(ROOT, "test-output"), { recursive: true });
    await page.screenshot({ path: WINDOWS_SCREENSHOT, fullPage: true });

    // Stopped with a savepoint (no drain: the windows stay open in it) and rescaled from 4 window subtasks to 3:
    // the restored subtasks count the windows of the key groups each got.
    const stop = await engine.api("/v1/jobs/page-views/stop", { method: "POST", json: { savepoint: true } });
    expect(stop.status).toBe(200);
    const { id: savepointId } = (await stop.json()) as { id: string };
    await waitText("#job-status", /^FINISHED$/, 30_000);
    const restart = await engine.api("/v1/jobs/page-views/start", { method: "POST", json: { fromSavepoint: savepointId, parallelism: { "views-per-minute": 3 } } });
    expect(restart.status).toBe(200);
    await waitText("#job-status", /^RUNNING$/, 30_000);
    await waitText(`${windows} .open-windows`, /^5$/, 30_000);
    await waitFor(async () => (await subtaskWindows()).length === 3 && (await subtaskWindows()).reduce((a, b) => a + b, 0) === 5, 10_000, "3 subtasks holding the 5 restored windows");

    // A view two minutes on moves the watermark past the first minute: its five windows fire and close, one opens.
    await views([{ url: "/a", ts: minute0 + 125_000 }]);
    await waitText(`${windows} .watermark`, /^2026-01-01T00:01:59\.999Z$/, 30_000);
    await waitText(`${windows} .open-windows`, /^1$/, 10_000);
    await waitFor(async () => (await subtaskWindows()).reduce((a, b) => a + b, 0) === 1, 10_000, "the subtasks to hold one window");
    await waitFor(
      async () => {
        const body = (await (await engine.api("/v1/tables/page-views-per-minute")).json()) as { rows: { key: string; value: { count: number } }[] };
        return body.rows.length === 5 && body.rows.every((r) => r.value.count === 2);
      },
      30_000,
      "the five windows' counts committed",
    );

    // Closing the detail hides it.
    await page.locator("#vertex-detail button.link").click();
    await page.locator("#vertex-detail").waitFor({ state: "hidden" });
    expect((await engine.api("/v1/jobs/page-views/cancel", { method: "POST", json: {} })).status).toBe(200);
    expect(problems).toEqual([]);
  });

  it("returns to the sign-in prompt when the API answers 401", async () => {
    await page.evaluate(() => sessionStorage.setItem("floe.adminToken", "a-token-that-was-revoked"));
    await page.locator("#login").waitFor({ state: "visible", timeout: 10_000 });
    await waitText("#login-error", /401/);
    expect(await page.locator("#app").isHidden()).toBe(true);
    expect(await page.evaluate(() => sessionStorage.getItem("floe.adminToken"))).toBeNull();
    expect(page.url()).not.toContain("a-token-that-was-revoked");
    expect(problems).toEqual([]);
  });
});
