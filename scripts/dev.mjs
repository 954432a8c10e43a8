#!/usr/bin/env node
// `npm start`: runs the engine locally with wrangler dev and persisted state.
// On first run it copies .dev.vars.example to .dev.vars (the local admin token).
import { spawn } from "node:child_process";
import { copyFileSync, existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
if (!existsSync(resolve(root, ".dev.vars"))) {
  copyFileSync(resolve(root, ".dev.vars.example"), resolve(root, ".dev.vars"));
  console.log("created .dev.vars from .dev.vars.example (admin token: floe-local-dev-token)");
}
const extra = process.argv.slice(2);
const args = ["dev", "--ip", "127.0.0.1", "--port", process.env.PORT ?? "8787"];
if (!extra.some((a) => a === "--persist-to" || a.startsWith("--persist-to="))) args.push("--persist-to", ".wrangler/state");
args.push(...extra);
const child = spawn(process.execPath, [resolve(root, "node_modules/wrangler/bin/wrangler.js"), ...args], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" },
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
