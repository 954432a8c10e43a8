/**
 * `npm run chaos -- [--duration 10m] [--seed 1] [--events 100000]`: runs the
 * end-to-end exactly-once chaos test (test/support/sinks-chaos.ts) over
 * seed after seed until the duration is used up. Prints one JSON line per
 * run, a summary at the end, and exits 1 if any run's committed output
 * differed from the expected output (with the seed to replay it).
 */
import { parseArgs } from "node:util";
import setupBuild from "../test/support/build.js";
import { Random } from "../test/support/random.js";
import { runSinksChaos } from "../test/support/sinks-chaos.js";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "2m" },
    seed: { type: "string", default: String(Date.now() % 100_000) },
    events: { type: "string", default: "100000" },
    verbose: { type: "boolean", default: false },
  },
});

function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
  if (!m) {
    console.error(`--duration: expected e.g. 90s, 10m or 1h, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? "s") as "ms" | "s" | "m" | "h"];
}

const durationMs = parseDuration(values.duration!);
const events = Number(values.events);
if (!Number.isInteger(events) || events < 1) {
  console.error("--events: expected a positive integer");
  process.exit(2);
}
await setupBuild();
const until = Date.now() + durationMs;
let seed = Number(values.seed);
const totals = { runs: 0, failed: 0, events: 0, faults: 0, betweenPreCommitAndCommit: 0 };
while (Date.now() < until || totals.runs === 0) {
  const r = await runSinksChaos({
    random: new Random(seed),
    events,
    users: 300,
    perRequest: 1000,
    faultRate: 0.12,
    userFaultRate: 0.05,
    log: values.verbose ? (line) => console.error(`[seed ${seed}] ${line}`) : undefined,
  });
  const faults = Object.values(r.faults).reduce((a, b) => a + b, 0);
  totals.runs++;
  totals.events += r.events;
  totals.faults += faults;
  totals.betweenPreCommitAndCommit += r.betweenPreCommitAndCommit;
  if (r.problems.length > 0) totals.failed++;
  console.log(JSON.stringify({ seed, ...r }));
  if (r.problems.length > 0) console.error(`seed ${seed} FAILED; replay with: npm run chaos -- --seed ${seed} --duration 0s`);
  seed++;
}
console.log(JSON.stringify({ summary: totals }));
process.exit(totals.failed > 0 ? 1 : 0);
