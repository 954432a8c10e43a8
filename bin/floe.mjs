#!/usr/bin/env node
// The floe command (src/cli/floe.ts). Installed from the package, it runs the built dist/cli/floe.js; in floe's
// own repository (src/ is there) it runs the sources through tsx, so that it needs no build step.
import { existsSync } from "node:fs";

const source = new URL("../src/cli/floe.ts", import.meta.url);
let cli;
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  cli = await import(source.href);
} else {
  cli = await import("../dist/cli/floe.js");
}
process.exitCode = await cli.main(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
  stdin: process.stdin,
});
