/**
 * Where floe's time goes: CPU profiles of the workerd isolate while a
 * benchmark job runs, through the V8 inspector (see support/inspector.ts).
 *
 *   npx tsx bench/profile.ts --job bench-count --events 4000000 --keys 10000 --checkpoint-ms 1000
 *   npx tsx bench/profile.ts --job bench-tumbling --local-recovery false     (checkpoints without the local image)
 *   npx tsx bench/profile.ts --job bench-map --events 20000000
 *   npx tsx bench/profile.ts --job clicks            (HTTP ingestion → keyed count → table)
 *   npx tsx bench/profile.ts --job bench-latency --checkpoint-ms 100
 *                                                    HTTP ingestion → keyed count → exactly-once webhook
 *                                                    (a local receiver), fed as the latency-load bench feeds it
 *   npx tsx bench/profile.ts --keep-names false      the same Worker bundled with esbuild's keepNames off
 *   npx tsx bench/profile.ts --job bench-state --keys 1000000 [--incremental true]
 *                                                    fills keys × 100 bytes of keyed state, then profiles
 *                                                    a full checkpoint and one after 1% of the keys changed
 *
 * Writes bench/out/profile-<job>.cpuprofile (open it in Chrome DevTools,
 * Performance tab) and prints one JSON line: the heaviest functions by self
 * time and the time per category (serialization, SQLite, RPC, GC, idle).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Miniflare } from "miniflare";
import { TEST_BUNDLE } from "../test/support/build.js";
import { tempDir } from "../test/support/engine.js";
import { payload } from "./generator.js";
import { buildTestBundle, buildTestBundleWithoutKeepNames } from "./support/build.js";
import { type CpuProfile, InspectorSession, categorize, hotSpots } from "./support/inspector.js";
import { progress, sleep } from "./workloads/common.js";
import { SATURATE_EVENTS, SATURATE_REQUESTS, latencyBody } from "./workloads/latency.js";

/**
 * Categories by the innermost frame that matches: workerd's native calls
 * show up as frames with no URL under the JS function that made them.
 */
const CATEGORIES: [string, (fn: string, url: string) => boolean][] = [
  ["gc", (fn) => fn === "(garbage collector)"],
  ["idle", (fn) => fn === "(idle)"],
  ["json_parse", (fn, url) => fn === "parse" && url === ""],
  ["json_stringify", (fn, url) => fn === "stringify" && url === ""],
  ["sqlite", (fn, url) => (fn === "exec" || fn === "toArray" || fn === "one" || fn === "next") && url === ""],
  ["rpc_and_io_native", (fn) => fn === "(program)"],
  ["keyed_state", (fn) => /^(getState|read|write|touch|table|setCurrentKey|keyText|value|update)$/.test(fn)],
  ["key_groups_and_partitioning", (fn) => /^(hashKey|select|keyGroupOf|keyGroupOfText|murmur|emit)$/.test(fn)],
  // encodeBatch is the data plane's batch encoding (runtime_loop, as when it was inlined in flush), not a snapshot's.
  ["snapshot", (fn) => /^(prepare|upload|takeDirty|forEachEntry|entry|writeImage|encode(?!Batch))/.test(fn)],
  ["generator_and_user_code", (fn) => /^(make|benchEvent|eventHash|mix32|uniform|mapEvent|keepEvent|processElement|poll)$/.test(fn)],
  ["runtime_loop", (fn, url) => url !== "" && /worker\.js$/.test(url)],
];

const { values } = parseArgs({
  options: {
    job: { type: "string", default: "bench-count" },
    events: { type: "string", default: "4000000" },
    keys: { type: "string", default: "10000" },
    "checkpoint-ms": { type: "string", default: "1000" },
    seconds: { type: "string", default: "6" },
    "warmup-ms": { type: "string", default: "1500" },
    "no-build": { type: "boolean", default: false },
    "keep-names": { type: "string", default: "true" },
    incremental: { type: "string", default: "false" },
    "local-recovery": { type: "string", default: "true" },
  },
});

const job = values.job!;
const inspectorPort = 9300 + Math.floor(Math.random() * 500);
const keepNames = values["keep-names"] !== "false";
const script = keepNames ? TEST_BUNDLE : await buildTestBundleWithoutKeepNames();
if (keepNames && !values["no-build"]) await buildTestBundle();
const persist = tempDir("floe-profile-");
// The latency job's webhook: answers every post at once.
const hook = createServer((req, res) => {
  req.resume();
  req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end("{}"));
});
await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r));
const mf = new Miniflare({
  modules: true,
  // wrangler.toml's Text rule (`?raw` imports: the dashboard's browser files) puts text modules beside the bundle;
  // wrangler bundles all code into the entry, so every other .js there is one of them.
  modulesRules: [{ type: "Text", include: ["**/*.js"] }],
  scriptPath: script,
  compatibilityDate: "2026-08-01",
  compatibilityFlags: ["nodejs_compat"],
  durableObjects: {
    COORDINATOR: { className: "Coordinator", useSQLite: true },
    SUBTASK: { className: "Subtask", useSQLite: true },
    STREAM_PARTITION: { className: "StreamPartition", useSQLite: true },
    TABLE_PARTITION: { className: "TablePartition", useSQLite: true },
  },
  r2Buckets: ["CHECKPOINTS", "FILES"],
  bindings: {
    FLOE_ADMIN_TOKEN: "profile-token",
    BENCH_EVENTS: values.events!,
    BENCH_KEYS: values.keys!,
    BENCH_SEED: "42",
    BENCH_WEBHOOK_URL: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`,
  },
  durableObjectsPersist: join(persist, "do"),
  r2Persist: join(persist, "r2"),
  host: "127.0.0.1",
  port: 0,
  inspectorPort,
  handleRuntimeStdio: (out: NodeJS.ReadableStream, err: NodeJS.ReadableStream) => {
    out.resume();
    err.resume();
  },
});
const url = (await mf.ready).toString().replace(/\/$/, "");
const api = (path: string, init: RequestInit = {}) =>
  fetch(`${url}${path}`, { ...init, headers: { authorization: "Bearer profile-token", "content-type": "application/json", ...(init.headers ?? {}) } });

try {
  const session = await InspectorSession.connect(inspectorPort);
  if (job === "bench-state") {
    await profileCheckpoints(session);
    process.exit(0);
  }
  const start = await api(`/v1/jobs/${job}/start`, { method: "POST", body: JSON.stringify({ config: { checkpoint: { interval_ms: Number(values["checkpoint-ms"]), local_recovery: values["local-recovery"] !== "false" } } }) });
  if (start.status !== 200) throw new Error(`start: ${start.status} ${await start.text()}`);
  let feeding: Promise<void> | undefined;
  let stop = false;
  if (job === "clicks") feeding = feedClicks(api, () => stop, Number(values.keys));
  if (job === "bench-latency") feeding = feedLatency(api, () => stop, Number(values.keys));
  await sleep(Number(values["warmup-ms"]));
  progress(`profiling ${job} for ${values.seconds} s`);
  const before = await eventsIn(job);
  const t0 = performance.now();
  const profile: CpuProfile = await session.profile(Number(values.seconds) * 1000);
  const rate = Math.round(((await eventsIn(job)) - before) / ((performance.now() - t0) / 1000));
  stop = true;
  await feeding;
  session.close();
  const out = resolve(import.meta.dirname, "out");
  mkdirSync(out, { recursive: true });
  report(profile, `profile-${job}`, {
    events: Number(values.events),
    checkpoint_interval_ms: Number(values["checkpoint-ms"]),
    keep_names: keepNames,
    events_per_s_while_profiling: rate,
  });
} finally {
  await mf.dispose();
  hook.close();
}

/** Writes the .cpuprofile and prints one JSON line: hot spots and categories. */
function report(profile: CpuProfile, name: string, figures: Record<string, unknown>): void {
  const out = resolve(import.meta.dirname, "out");
  mkdirSync(out, { recursive: true });
  const file = join(out, `${name}.cpuprofile`);
  writeFileSync(file, JSON.stringify(profile));
  const { total_ms, functions, byNode } = hotSpots(profile);
  const categories = categorize(profile, byNode, CATEGORIES);
  const busy = total_ms - (categories.idle ?? 0);
  process.stdout.write(
    `${JSON.stringify({
      bench: "profile",
      job,
      keys: Number(values.keys),
      ...figures,
      sampled_ms: total_ms,
      busy_ms: busy,
      categories_ms: categories,
      categories_share_of_busy: Object.fromEntries(Object.entries(categories).filter(([k]) => k !== "idle").map(([k, v]) => [k, Math.round((v / busy) * 1000) / 1000])),
      top_self: functions.slice(0, 30),
      cpuprofile: file,
    })}\n`,
  );
}

/**
 * The checkpoint-size workload under the profiler: fills `--keys` keys of
 * the "bench-state" job with 100 bytes each over HTTP, then profiles its
 * first (full) checkpoint and, after 1% of the keys changed, the second.
 */
async function profileCheckpoints(session: InspectorSession): Promise<void> {
  const keys = Number(values.keys);
  const incremental = values.incremental === "true";
  const start = await api(`/v1/jobs/bench-state/start`, {
    method: "POST",
    body: JSON.stringify({ config: { checkpoint: { interval_ms: 3_600_000, incremental, full_every: 100, local_recovery: true } } }),
  });
  if (start.status !== 200) throw new Error(`start: ${start.status} ${await start.text()}`);
  const ingest = async (records: string[]) => {
    for (let i = 0; i < records.length; i += 10_000) {
      for (let tries = 1; ; tries++) {
        try {
          const res = await api("/v1/ingest/bench-state", {
            method: "POST",
            body: records.slice(i, i + 10_000).join("\n"),
            headers: { "content-type": "application/x-ndjson", "idempotency-key": `profile-${records.length}-${i}` },
          });
          if (res.status !== 200) throw new Error(`ingest: ${res.status} ${await res.text()}`);
          await res.arrayBuffer();
          break;
        } catch (e) {
          if (tries >= 20) throw e;
          await sleep(500);
        }
      }
    }
  };
  const processed = async (n: number) => {
    while ((await recordsIn("bench-state").catch(() => 0)) < n) await sleep(200);
  };
  const checkpoint = async (label: string, figures: Record<string, unknown>) => {
    let entry: { status: string; end_to_end_duration: number; sync_duration: number; checkpointed_size: number } | undefined;
    const profile = await session.profileWhile(async () => {
      const res = await api("/v1/jobs/bench-state/checkpoints", { method: "POST" });
      if (res.status !== 202) throw new Error(`trigger: ${res.status} ${await res.text()}`);
      const { id } = (await res.json()) as { id: number };
      for (;;) {
        // A busy runtime's local proxy may drop a request: ask again.
        entry = await api(`/v1/jobs/bench-state/checkpoints/${id}`).then(
          (r) => r.json() as Promise<typeof entry>,
          () => ({ status: "IN_PROGRESS", end_to_end_duration: 0, sync_duration: 0, checkpointed_size: 0 }),
        );
        if (entry!.status === "COMPLETED" || entry!.status === "FAILED") break;
        await sleep(100);
      }
    });
    progress(`${label} checkpoint: ${entry!.status} in ${entry!.end_to_end_duration} ms, sync ${entry!.sync_duration} ms, ${entry!.checkpointed_size} bytes`);
    if (entry!.status === "FAILED") progress(JSON.stringify(entry));
    report(profile, `profile-bench-state-${label}`, {
      ...figures,
      incremental,
      checkpoint: label,
      end_to_end_ms: entry!.end_to_end_duration,
      sync_ms: entry!.sync_duration,
      checkpointed_bytes: entry!.checkpointed_size,
    });
  };
  await ingest(Array.from({ length: keys }, (_, i) => `{"k":"key-${i}","p":"${payload(1, i, 100)}"}`));
  await processed(keys);
  progress(`filled ${keys} keys`);
  await checkpoint("first", {});
  const changed = Math.round(keys / 100);
  await ingest(Array.from({ length: changed }, (_, i) => `{"k":"key-${(i * 97) % keys}","p":"${payload(2, i, 100)}"}`));
  await processed(keys + changed);
  await checkpoint("second", { changed_keys: changed });
}

/** Records into the job's keyed (or, without one, its source) vertex so far. */
async function recordsIn(name: string): Promise<number> {
  const m = (await (await api(`/v1/jobs/${name}/metrics`)).json()) as { vertices: { id: string; records_in: number }[] };
  const v = m.vertices[m.vertices.length - 1];
  return v?.records_in ?? 0;
}

/**
 * The events a job has taken in: the most records any vertex received. The last vertex is not it: a window's tally
 * receives a result per key and window, a tenth of the events in the bench's windows.
 */
async function eventsIn(name: string): Promise<number> {
  const m = (await (await api(`/v1/jobs/${name}/metrics`)).json()) as { vertices: { id: string; records_in: number }[] };
  return Math.max(0, ...m.vertices.map((v) => v.records_in));
}

/** Keeps NDJSON clicks flowing into the "clicks" stream (10,000 per request, 4 in flight). */
async function feedClicks(api: (p: string, i?: RequestInit) => Promise<Response>, stopped: () => boolean, keys: number): Promise<void> {
  let i = 0;
  const body = () => {
    const lines: string[] = [];
    for (let j = 0; j < 10_000; j++, i++) lines.push(`{"user":"user-${(i * 7919) % keys}","url":"/p/${i % 100}"}`);
    return lines.join("\n");
  };
  const loop = async () => {
    while (!stopped()) {
      const res = await api("/v1/ingest/clicks", { method: "POST", body: body(), headers: { "content-type": "application/x-ndjson" } });
      await res.arrayBuffer();
    }
  };
  await Promise.all([loop(), loop(), loop(), loop()]);
}

/** Keeps the latency job's stream fed as bench/workloads/latency.ts's saturating client does. */
async function feedLatency(api: (p: string, i?: RequestInit) => Promise<Response>, stopped: () => boolean, keys: number): Promise<void> {
  let sent = 0;
  const loop = async () => {
    while (!stopped()) {
      const body = latencyBody(sent, SATURATE_EVENTS, keys, Date.now());
      sent += SATURATE_EVENTS;
      const res = await api("/v1/ingest/bench-lat", { method: "POST", body, headers: { "content-type": "application/x-ndjson" } });
      await res.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: SATURATE_REQUESTS }, loop));
}
