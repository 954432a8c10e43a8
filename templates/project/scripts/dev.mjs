#!/usr/bin/env node
// `npm start`: the Worker locally with wrangler dev, its state kept in .wrangler/state (a restart, even after
// kill -9, picks up running jobs from their last checkpoint). The first start copies .dev.vars.example to
// .dev.vars (the local admin token). PORT sets the port; arguments after `npm start --` go to wrangler dev.
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
  env: { CLOUDFLARE_CF_FETCH_ENABLED: "false", ...process.env },
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
