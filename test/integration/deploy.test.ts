/**
 * `wrangler deploy --dry-run` bundles the Worker and names the bindings
 * the engine needs: the four Durable Object classes and the R2 bucket for
 * checkpoints.
 */
import { execFile } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { tempDir } from "../support/engine.js";
import { ROOT } from "../support/build.js";

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      args,
      {
        cwd: ROOT,
        env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1", FORCE_COLOR: "0" },
        maxBuffer: 16 * 1024 * 1024,
        timeout: 50_000,
      },
      (error, stdout, stderr) => done({ code: error ? (typeof error.code === "number" ? error.code : null) : 0, stdout, stderr }),
    );
  });
}

describe("wrangler deploy --dry-run", () => {
  const outdir = tempDir("floe-deploy-");
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  it("bundles the Worker and names every binding", async () => {
    const r = await run([resolve(ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", outdir]);
    const output = `${r.stdout}\n${r.stderr}`;
    expect(r.code, output).toBe(0);
    expect(output).toMatch(/--dry-run: exiting now/);

    for (const [binding, className] of [
      ["COORDINATOR", "Coordinator"],
      ["SUBTASK", "Subtask"],
      ["STREAM_PARTITION", "StreamPartition"],
      ["TABLE_PARTITION", "TablePartition"],
    ]) {
      expect(output, `Durable Object binding ${binding}`).toMatch(new RegExp(`env\\.${binding} \\(${className}\\)\\s+Durable Object`));
    }
    expect(output, "R2 binding CHECKPOINTS").toMatch(/env\.CHECKPOINTS \([^)]+\)\s+R2 Bucket/);

    expect(existsSync(join(outdir, "index.js")), "the bundle").toBe(true);
  });
});
