/**
 * `npm run bench`: floe's benchmarks, one JSON line per result on stdout.
 *
 *   npm run bench                       all workloads
 *   npm run bench -- --only ingest      one workload
 *   npm run bench -- --events 2000000   more events
 */
import { parseArgs } from "node:util";
import setupBuild from "../test/support/build.js";
import { benchIngestKeyedCount } from "./workloads/ingest-keyed-count.js";

const { values } = parseArgs({
  options: {
    only: { type: "string" },
    events: { type: "string" },
    keys: { type: "string" },
    batch: { type: "string" },
    concurrency: { type: "string" },
  },
});

setupBuild();
const workloads: Record<string, () => Promise<object>> = {
  ingest: () =>
    benchIngestKeyedCount({
      events: Number(values.events ?? 1_000_000),
      keys: Number(values.keys ?? 10_000),
      batch: Number(values.batch ?? 10_000),
      concurrency: Number(values.concurrency ?? 4),
    }),
};
for (const [name, run] of Object.entries(workloads)) {
  if (values.only && values.only !== name) continue;
  const result = await run();
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
