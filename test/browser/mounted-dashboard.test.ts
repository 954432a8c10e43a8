/**
 * The dashboard of floe mounted under /floe beside a user's own app
 * (test/fixtures/mounted-worker.ts), in a real Chromium: the page at /floe
 * signs in, lists and starts the job, and every request it makes goes
 * under /floe; the user's page at / stays the user's.
 */
import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";
import { type LocalEngine, buildWorker, startEngine, waitFor } from "floe/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../support/build.js";

const CHROMIUM = process.env.FLOE_CHROMIUM ?? "/usr/bin/chromium";

describe("the dashboard under /floe", () => {
  let engine: LocalEngine;
  let browser: Browser;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: install it (apt-get install chromium) or set FLOE_CHROMIUM to a Chromium binary`);
    const worker = await buildWorker({ root: ROOT, config: "test/fixtures/wrangler.toml", entry: "test/fixtures/mounted-worker.ts" });
    [engine, browser] = await Promise.all([
      startEngine({ worker }),
      chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"] }),
    ]);
  });

  afterAll(async () => {
    await browser?.close();
    await engine?.dispose();
  });

  it("signs in, lists and starts the job through /floe/v1, and leaves / to the user", async () => {
    const page = await browser.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("request", (r) => requests.push(new URL(r.url()).pathname));
    await page.goto(`${engine.url}/floe`);
    await page.locator("#login").waitFor({ state: "visible" });
    await page.locator("#token").fill(engine.adminToken);
    await page.locator("#login-submit").click();
    await page.locator("#app").waitFor({ state: "visible" });
    const text = (selector: string, re: RegExp) =>
      waitFor(async () => re.test((await page.locator(selector).first().textContent({ timeout: 1_000 })) ?? ""), { what: `${selector} to match ${re}` });
    await text("#jobs", /clicks/);
    await text("#job-status", /^CREATED$/);
    await page.locator('button[data-action="start"]').click();
    await page.locator("#confirm-ok").click();
    await text("#job-status", /^RUNNING$/);
    expect(problems).toEqual([]);
    const outside = requests.filter((p) => !p.startsWith("/floe"));
    expect(outside, "every request of the page under /floe").toEqual([]);
    expect(requests.some((p) => p.startsWith("/floe/v1/jobs"))).toBe(true);
    await page.goto(`${engine.url}/`);
    expect(await page.textContent("body")).toContain("the shop's home page");
  });
});
