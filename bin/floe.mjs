#!/usr/bin/env node
// The floe command (src/cli/floe.ts), run through tsx so that it needs no build step.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/cli/floe.ts");
process.exitCode = await main(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
  stdin: process.stdin,
});
