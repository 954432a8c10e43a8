/**
 * `npm run bench`: floe's benchmarks, one JSON line per result on stdout.
 *
 *   npm run bench                       all workloads
 *   npm run bench -- --only ingest      one workload
 *   npm run bench -- --events 2000000   more events
 */
import { parseArgs } from "node:util";
import setupBuild from "../test/support/build.js";
import { benchCheckpoints } from "./workloads/checkpoints.js";
import { benchIngestKeyedCount } from "./workloads/ingest-keyed-count.js";
import { benchUnaligned } from "./workloads/unaligned.js";

const { values } = parseArgs({
  options: {
    only: { type: "string" },
    events: { type: "string" },
    keys: { type: "string" },
    batch: { type: "string" },
    concurrency: { type: "string" },
    "state-keys": { type: "string" },
  },
});
const stateKeys = Number(values["state-keys"] ?? 1_000_000);

setupBuild();
const workloads: Record<string, () => Promise<object>> = {
  ingest: () =>
    benchIngestKeyedCount({
      events: Number(values.events ?? 1_000_000),
      keys: Number(values.keys ?? 10_000),
      batch: Number(values.batch ?? 10_000),
      concurrency: Number(values.concurrency ?? 4),
    }),
  "checkpoint-overhead": async () => {
    const o = { events: Number(values.events ?? 1_000_000), keys: 10_000, batch: 10_000, concurrency: 4 };
    const off = await benchIngestKeyedCount({ ...o, checkpointIntervalMs: 0 });
    const on = await benchIngestKeyedCount({ ...o, checkpointIntervalMs: 1000 });
    return {
      bench: "checkpoint_overhead",
      events: o.events,
      unchecked_events_per_s: off.processed_events_per_s,
      checkpointed_1s_events_per_s: on.processed_events_per_s,
      ratio: Math.round((on.processed_events_per_s / off.processed_events_per_s) * 1000) / 1000,
    };
  },
  unaligned: () => benchUnaligned({ events: 48_000, work: 100_000, intervalMs: 200, webhookDelayMs: 150 }),
  "checkpoint-incremental": () => benchCheckpoints({ keys: stateKeys, payloadBytes: 90, changedFraction: 0.01, incremental: true, localRecovery: true }),
  "checkpoint-full": () => benchCheckpoints({ keys: stateKeys, payloadBytes: 90, changedFraction: 0.01, incremental: false, localRecovery: false }),
};
for (const [name, run] of Object.entries(workloads)) {
  if (values.only && values.only !== name) continue;
  const result = await run();
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
