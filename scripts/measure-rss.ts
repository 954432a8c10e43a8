/**
 * The workerd process's resident memory with keyed state far larger than
 * the memory budget (issue 20's target; docs/state-backend.md, "Measured
 * memory"), measured from outside the process.
 *
 *   npx tsx scripts/measure-rss.ts [--budget-mb M] [--state-mb N] [--payload-bytes B] [--restore local|r2] [--blind] [--v8-heap-mb H] [--heap-profile-mb P] [--gc-probe] [--keep]
 *
 * Runs the test Worker's job `bench-rss-<M>` (bench/jobs.ts: a generator
 * source → a keyed operator on ONE subtask, each key's state a string of B
 * characters, `state.memoryBudgetBytes` M MiB, checkpoints every second)
 * in Miniflare with persisted state, as the benchmarks do. M is one of
 * RSS_BUDGETS_MIB in bench/rss.ts (default 16); N (MiB of state by the
 * backend's estimate, 80 + key + value bytes an entry) defaults to 10 × M,
 * B to 300. The first pass reads each key before writing it, as a
 * read-modify-write does; with `--blind` it writes without reading. With
 * `--v8-heap-mb H`, workerd runs with V8's old space capped at H MiB
 * (MINIFLARE_WORKERD_V8_FLAGS=--max-old-space-size=H), as an isolate's
 * memory is capped in production, instead of V8's default.
 *
 * With `--heap-profile-mb P`, when the floe isolate's heap first passes P
 * MiB used, it prints where the live objects were allocated (V8's sampling
 * heap profiler); with `--gc-probe`, every 10 s it collects the floe
 * isolate's garbage and samples its heap again: what of it is live.
 *
 * Every 250 ms it reads VmRSS, RssAnon, RssFile, RssShmem and VmHWM from
 * /proc/<pid>/status of the workerd process(es) Miniflare spawned (the
 * descendants of this process named workerd), and every second the job's
 * metrics and each isolate's V8 heap (through Miniflare's inspector port:
 * Runtime.getHeapUsage), through these phases:
 *
 *   baseline     the engine up, no job: the fixed overhead;
 *   load         the first pass writes every key once (dirty entries are
 *                cleaned by each checkpoint's write-back, then evicted);
 *   checkpoints  until 3 checkpoints triggered after the load completed,
 *                then until the estimate is within the budget (10 s at
 *                most: nothing evicts in an idle job but a write-back);
 *   restore      SIGKILL of workerd, then a new runtime over the same state
 *                (with `--restore r2`, the keyed subtask's SQLite deleted
 *                first, so that its state is imported from the run files
 *                in R2 instead of the local image), until the restored
 *                attempt processes its first record;
 *   read-back    the restored job reads every key once (a second pass of
 *                the source) and checks its value, which fails the job if
 *                wrong.
 *
 * Prints one JSON summary on stdout (progress on stderr): per phase the
 * peak of the samples and VmHWM, peak − baseline against the budget, and
 * the state's figures (keys, estimate, SQLite and R2 sizes, checkpoints,
 * evictions, read-backs). Memory only: the machine is shared, so no speed.
 */
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { RSS_BUDGETS_MIB, rssJobName } from "../bench/rss.js";
import { buildTestBundle } from "../bench/support/build.js";
import { InspectorSession } from "../bench/support/inspector.js";
import { descendantsNamed } from "../bench/support/proc.js";
import { type CheckpointEntry, checkpointHistory, isDroppedRequest, progress, sleep, until } from "../bench/workloads/common.js";
import { subtaskName } from "../src/runtime/names.js";
import { startEngine as startLocalEngine } from "../src/testing/local-engine.js";
import { loadBuiltWorker } from "../src/testing/worker-build.js";
import { TEST_BUNDLE_DIR } from "../test/support/build.js";
import { type Engine, TEST_TOKEN, tempDir } from "../test/support/engine.js";

const MiB = 1024 * 1024;
const SAMPLE_MS = 250;
const METRICS_MS = 1000;

const { values: args } = parseArgs({
  options: {
    "budget-mb": { type: "string", default: "16" },
    "state-mb": { type: "string" },
    "payload-bytes": { type: "string", default: "300" },
    restore: { type: "string", default: "local" },
    blind: { type: "boolean", default: false },
    "v8-heap-mb": { type: "string" },
    "heap-profile-mb": { type: "string" },
    "gc-probe": { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
  },
});
const budgetMiB = Number(args["budget-mb"]);
if (!(RSS_BUDGETS_MIB as readonly number[]).includes(budgetMiB)) throw new Error(`--budget-mb must be one of ${RSS_BUDGETS_MIB.join(", ")} (a job per budget in bench/jobs.ts), got ${args["budget-mb"]}`);
const stateMiB = Number(args["state-mb"] ?? 10 * budgetMiB);
const payloadBytes = Number(args["payload-bytes"]);
const restoreFrom = args.restore;
/** With `--heap-profile-mb M`: when the floe isolate's heap first passes M MiB used, where its live objects were allocated. */
const heapProfileMiB = args["heap-profile-mb"] === undefined ? undefined : Number(args["heap-profile-mb"]);
if (restoreFrom !== "local" && restoreFrom !== "r2") throw new Error(`--restore: local or r2, got ${restoreFrom}`);
const job = rssJobName(budgetMiB);
const v8HeapMiB = args["v8-heap-mb"] === undefined ? undefined : Number(args["v8-heap-mb"]);
if (v8HeapMiB !== undefined) {
  if (process.env.MINIFLARE_WORKERD_V8_FLAGS) throw new Error("--v8-heap-mb sets MINIFLARE_WORKERD_V8_FLAGS, which is set already");
  // Read by Miniflare each time it starts workerd.
  process.env.MINIFLARE_WORKERD_V8_FLAGS = `--max-old-space-size=${v8HeapMiB}`;
}
const budgetBytes = budgetMiB * MiB;

/** The backend's estimate of key i's entry (src/state/memory-budget.ts: 80 + key + value; a string value counts its length). */
const entryBytes = (i: number) => 80 + `k${i}`.length + payloadBytes;
/** Keys until their entries reach the state asked for, and those entries' sum. */
function keysFor(targetBytes: number): { keys: number; bytes: number } {
  let bytes = 0;
  let keys = 0;
  while (bytes < targetBytes) bytes += entryBytes(keys++);
  return { keys, bytes };
}
const { keys, bytes: stateEstimateBytes } = keysFor(stateMiB * MiB);

// ---- resident memory, from /proc ------------------------------------------------------------

interface MemSample {
  t_ms: number;
  phase: string;
  pids: number;
  rss: number;
  anon: number;
  file: number;
  shmem: number;
  hwm: number;
}

/** The memory fields of /proc/<pid>/status, in bytes; null once the process is gone. */
function readStatus(pid: number): { rss: number; anon: number; file: number; shmem: number; hwm: number } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return null;
  }
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0) * 1024;
  return { rss: kb("VmRSS"), anon: kb("RssAnon"), file: kb("RssFile"), shmem: kb("RssShmem"), hwm: kb("VmHWM") };
}

/** Samples the workerd processes below this one every SAMPLE_MS, tagging each sample with the current phase. */
class RssSampler {
  readonly samples: MemSample[] = [];
  phase = "baseline";
  private pids: number[] = [];
  private readonly t0 = performance.now();
  private readonly timer = setInterval(() => this.sample(), SAMPLE_MS);

  /** Every workerd process seen, in order (a new one after the kill, or after a crash that Miniflare restarted). */
  readonly seen: number[] = [];

  /** Looks the workerd processes up again (after a runtime started). */
  refresh(): number[] {
    this.pids = descendantsNamed("workerd");
    for (const pid of this.pids) if (!this.seen.includes(pid)) this.seen.push(pid);
    if (this.pids.length === 0) throw new Error("no workerd process below this one: did Miniflare start?");
    return this.pids;
  }

  sample(): void {
    const s: MemSample = { t_ms: Math.round(performance.now() - this.t0), phase: this.phase, pids: 0, rss: 0, anon: 0, file: 0, shmem: 0, hwm: 0 };
    // A process that ended (a zombie has no VmRSS) is replaced by whatever workerd runs now.
    if (this.pids.some((pid) => !(readStatus(pid)?.rss ?? 0))) {
      try {
        this.refresh();
      } catch {
        return; // between two runtimes
      }
    }
    for (const pid of this.pids) {
      const m = readStatus(pid);
      if (!m) continue;
      s.pids++;
      s.rss += m.rss;
      s.anon += m.anon;
      s.file += m.file;
      s.shmem += m.shmem;
      s.hwm += m.hwm;
    }
    if (s.pids > 0) this.samples.push(s);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Whether the workerd processes differ from those the inspector was attached to (once per change). */
  pidsChanged(): boolean {
    const now = this.pids.join(",");
    const changed = now !== this.attachedTo;
    this.attachedTo = now;
    return changed;
  }

  private attachedTo = "";

  of(phase: string): MemSample[] {
    return this.samples.filter((s) => s.phase === phase);
  }
}

// ---- V8 heaps, through the inspector --------------------------------------------------------

interface HeapSample {
  phase: string;
  /** With `--gc-probe`: taken right after a full garbage collection of the floe isolate (what is live). */
  afterGc?: boolean;
  /** The floe Worker's isolate (every Durable Object of the job runs in it). */
  floe: { used: number; total: number; backing: number };
  /** Miniflare's own Workers in the same process (its R2 and cache simulators, the entry Worker…), summed. */
  miniflare: { used: number; total: number; backing: number };
}

/**
 * Every isolate's V8 heap (Runtime.getHeapUsage: used and allocated heap,
 * ArrayBuffer backing stores), every METRICS_MS through Miniflare's
 * inspector port: what of the resident memory is JavaScript heap, and whose.
 */
class HeapSampler {
  readonly samples: HeapSample[] = [];
  private sessions: { title: string; session: InspectorSession }[] = [];
  private stopped = false;

  constructor(private readonly rss: RssSampler) {
    void this.loop();
  }

  private port: number | undefined;

  /** Connects to the isolates of the runtime now listening on `port`. */
  async attach(port: number): Promise<void> {
    for (const s of this.sessions) s.session.close();
    this.sessions = [];
    this.port = port;
    this.sessions = await InspectorSession.connectAll(port);
    const floe = this.sessions.find((s) => s.title.endsWith("core:user:"));
    if (!floe) throw new Error(`the inspector on port ${port} lists no floe Worker: ${this.sessions.map((s) => s.title).join(", ")}`);
    if (heapProfileMiB !== undefined && !this.profiled) {
      await floe.session.send("HeapProfiler.enable");
      await floe.session.send("HeapProfiler.startSampling", { samplingInterval: 16384 });
    }
  }

  /** Whether the sampling heap profile was taken (once, when the floe heap first passes --heap-profile-mb). */
  private profiled = false;

  /** Where the floe heap's live objects were allocated, heaviest first (V8's sampling heap profiler). */
  private async heapProfile(session: InspectorSession, usedBytes: number): Promise<void> {
    this.profiled = true;
    interface Node {
      callFrame: { functionName: string; url: string; lineNumber: number };
      selfSize: number;
      children: Node[];
    }
    const { profile } = await session.send<{ profile: { head: Node } }>("HeapProfiler.getSamplingProfile");
    await session.send("HeapProfiler.stopSampling");
    const frame = (n: Node) => `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.split("/").pop()}:${n.callFrame.lineNumber + 1}`;
    const bySite = new Map<string, number>();
    const walk = (n: Node, stack: string[]) => {
      const here = n.callFrame.functionName === "(root)" ? stack : [...stack, frame(n)];
      if (n.selfSize > 0) {
        const site = here.slice(-4).reverse().join(" < ");
        bySite.set(site, (bySite.get(site) ?? 0) + n.selfSize);
      }
      for (const c of n.children) walk(c, here);
    };
    walk(profile.head, []);
    const total = sum([...bySite.values()]);
    const top = [...bySite.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25);
    progress(`heap profile at ${mib(usedBytes)} MiB used: ${mib(total)} MiB sampled live, by allocation site (innermost first):`);
    for (const [site, bytes] of top) progress(`  ${mib(bytes).toString().padStart(7)} MiB  ${site}`);
  }

  detach(): void {
    for (const s of this.sessions) s.session.close();
    this.sessions = [];
    this.port = undefined;
  }

  stop(): void {
    this.stopped = true;
    this.detach();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const phase = this.rss.phase;
      const sessions = this.sessions;
      const zero = () => ({ used: 0, total: 0, backing: 0 });
      const sample: HeapSample = { phase, floe: zero(), miniflare: zero() };
      try {
        const usages = await Promise.all(
          sessions.map(async ({ title, session }) => {
            const u = await Promise.race([
              session.send<{ usedSize: number; totalSize: number; backingStorageSize: number }>("Runtime.getHeapUsage"),
              sleep(5000).then(() => undefined),
            ]);
            return { title, u };
          }),
        );
        if (usages.some((x) => x.u === undefined) && this.port !== undefined && this.rss.pidsChanged()) {
          // workerd crashed and Miniflare started it again, on the same inspector port.
          await this.attach(this.port);
          continue;
        }
        if (sessions.length > 0 && usages.every((x) => x.u !== undefined) && sessions === this.sessions) {
          for (const { title, u } of usages) {
            const into = title.endsWith("core:user:") ? sample.floe : sample.miniflare;
            into.used += u!.usedSize;
            into.total += u!.totalSize;
            into.backing += u!.backingStorageSize;
          }
          this.samples.push(sample);
          if (args["gc-probe"] && this.samples.length % 10 === 0) {
            // Every 10th sample, a full collection first, then the floe isolate again: the live part of its heap and buffers.
            const floe = sessions.find((x) => x.title.endsWith("core:user:"));
            if (floe) {
              await floe.session.send("HeapProfiler.collectGarbage");
              const u = await floe.session.send<{ usedSize: number; totalSize: number; backingStorageSize: number }>("Runtime.getHeapUsage");
              this.samples.push({ phase, afterGc: true, floe: { used: u.usedSize, total: u.totalSize, backing: u.backingStorageSize }, miniflare: sample.miniflare });
            }
          }
          if (heapProfileMiB !== undefined && !this.profiled && sample.floe.used >= heapProfileMiB * MiB) {
            const floe = sessions.find((x) => x.title.endsWith("core:user:"));
            if (floe) await this.heapProfile(floe.session, sample.floe.used);
          }
        }
      } catch {
        // The runtime went away meanwhile (killed for the restore, or crashed).
        if (this.port !== undefined && this.rss.pidsChanged()) await this.attach(this.port).catch(() => undefined);
      }
      await sleep(METRICS_MS);
    }
  }
}

// ---- the job, through the API ---------------------------------------------------------------

interface SubtaskMetrics {
  vertex: string;
  attempt: number;
  records_in: number;
  records_out: number;
  positions: Record<string, number> | null;
  state_keys: number;
  state_bytes_in_memory: number;
  state_entries_evicted: number;
  state_readbacks: number;
  state_stalled_ms: number;
}

interface KeyedSample extends SubtaskMetrics {
  phase: string;
}

const mb = (b: number) => Math.round((b / 1e6) * 10) / 10;
const mib = (b: number) => Math.round((b / MiB) * 10) / 10;

/** The keyed operator's vertex and the source's (their uids in bench/jobs.ts). */
const KEYED_VERTEX = "store";
const SOURCE_VERTEX = "gen";

/** The source subtask's and the keyed subtask's metrics. */
async function jobMetrics(engine: Engine): Promise<{ source?: SubtaskMetrics; keyed?: SubtaskMetrics }> {
  const res = await engine.api(`/v1/jobs/${job}/metrics`);
  if (res.status !== 200) {
    await res.arrayBuffer();
    return {};
  }
  const subtasks = ((await res.json()) as { subtasks: SubtaskMetrics[] }).subtasks;
  return { source: subtasks.find((s) => s.vertex === SOURCE_VERTEX), keyed: subtasks.find((s) => s.vertex === KEYED_VERTEX) };
}

async function keyedMetrics(engine: Engine): Promise<SubtaskMetrics | undefined> {
  return (await jobMetrics(engine)).keyed;
}

/**
 * Whether the keyed subtask has processed every record the source emitted
 * up to `offset`: the source is past it, and in the same attempt (a
 * failover starts the counters again) the keyed subtask took in as many
 * records as the source sent.
 */
async function processedUpTo(engine: Engine, offset: number): Promise<SubtaskMetrics | undefined> {
  const { source, keyed } = await jobMetrics(engine);
  if (!source || !keyed || source.attempt !== keyed.attempt) return undefined;
  return (source.positions?.["rss/0"] ?? 0) >= offset && keyed.records_in >= source.records_out ? keyed : undefined;
}

interface JobStatus {
  status: string;
  attempt: number;
  restarts: number;
  last_error: string | null;
}

async function jobStatus(engine: Engine): Promise<JobStatus> {
  return (await (await engine.api(`/v1/jobs/${job}`)).json()) as JobStatus;
}

/** Failovers seen (the job restarted from its last checkpoint), with their causes. */
const failovers: { phase: string; restarts: number; cause: string | null }[] = [];

/**
 * Throws the job's error when it failed; notes each failover (a checkpoint
 * failure, a lost subtask, a key read back wrong), after which the job goes
 * on from its last checkpoint.
 */
async function checkAlive(engine: Engine, phase: string): Promise<JobStatus> {
  const s = await jobStatus(engine);
  if (s.status === "FAILED" || s.status === "FAILING") throw new Error(`${job} ${s.status}: ${s.last_error}`);
  if (s.restarts > (failovers.at(-1)?.restarts ?? 0)) {
    failovers.push({ phase, restarts: s.restarts, cause: s.last_error });
    progress(`${phase}: the job failed over (${s.restarts} restarts): ${s.last_error}`);
  }
  return s;
}

/** Polls the keyed subtask's metrics every METRICS_MS into `into`, tagged with the sampler's phase. */
function pollMetrics(engine: () => Engine, rss: RssSampler, into: KeyedSample[]): () => void {
  let stopped = false;
  void (async () => {
    while (!stopped) {
      try {
        const m = await keyedMetrics(engine());
        if (m && !stopped) into.push({ ...m, phase: rss.phase });
      } catch (e) {
        // A dropped request (the runtime busy, or killed meanwhile) is no sample.
        if (!isDroppedRequest(e) && !/not running/.test(String(e))) throw e;
      }
      await sleep(METRICS_MS);
    }
  })();
  return () => {
    stopped = true;
  };
}

/** The keyed subtask's Durable Object id, as Miniflare names its SQLite file. */
async function keyedObjectId(engine: Engine, vertex: string): Promise<string> {
  const ns = await engine.mf.getDurableObjectNamespace("SUBTASK");
  return ns.idFromName(subtaskName(job, vertex, 0)).toString();
}

/** Files below `dir` (recursively) and their sizes. */
function filesUnder(dir: string): { path: string; bytes: number }[] {
  if (!existsSync(dir)) return [];
  const out: { path: string; bytes: number }[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...filesUnder(p));
    else out.push({ path: p, bytes: st.size });
  }
  return out;
}

/** The keyed subtask's SQLite files (database and WAL). */
const sqliteFiles = (persistDir: string, objectId: string) => filesUnder(join(persistDir, "do")).filter((f) => f.path.includes(objectId));

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const max = (xs: readonly number[]) => (xs.length === 0 ? 0 : Math.max(...xs));
const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.floor(s.length / 2)];
};

// ---- the run ---------------------------------------------------------------------------------

async function main() {
  progress(`measure-rss: ${job}, ${keys} keys of ${payloadBytes}-character values (${mib(stateEstimateBytes)} MiB by the estimate), budget ${budgetMiB} MiB, ${args.blind ? "blind writes" : "read before write"}, restore from ${restoreFrom}${v8HeapMiB ? `, V8 old space ${v8HeapMiB} MiB` : ""}`);
  await buildTestBundle();
  const persistDir = tempDir("floe-rss-");
  const bindings = (passes: number) => ({ RSS_KEYS: String(keys), RSS_PAYLOAD_BYTES: String(payloadBytes), RSS_PASSES: String(passes), RSS_BLIND: args.blind ? "1" : "0" });
  const rss = new RssSampler();
  const heaps = new HeapSampler(rss);
  const metricSamples: KeyedSample[] = [];
  const load0 = loadavg()[0];
  /** The engine over `persistDir`, its source at `passes` passes, with an inspector port for the heap figures. */
  const startRuntime = async (passes: number) => {
    const inspectorPort = 9300 + Math.floor(Math.random() * 500);
    const e = await startLocalEngine({
      worker: loadBuiltWorker(TEST_BUNDLE_DIR),
      persistDir,
      adminToken: TEST_TOKEN,
      bindings: bindings(passes),
      miniflare: { inspectorPort },
    });
    await heaps.attach(inspectorPort);
    return e;
  };
  let engine = await startRuntime(1);
  const pidsFirst = rss.refresh();
  const stopMetrics = pollMetrics(() => engine, rss, metricSamples);
  const phaseMs: Record<string, number> = {};
  let phaseStart = performance.now();
  const enter = (phase: string) => {
    phaseMs[rss.phase] = Math.round(performance.now() - phaseStart);
    phaseStart = performance.now();
    rss.phase = phase;
    progress(`phase ${phase}`);
  };
  try {
    // Baseline: the runtime up and idle, before the job starts.
    await sleep(4000);

    enter("load");
    const started = await engine.api(`/v1/jobs/${job}/start`, { method: "POST", json: { config: { restart_strategy: { type: "fixed-delay", delay_ms: 0 } } } });
    if (started.status !== 200) throw new Error(`starting ${job} answered ${started.status}: ${await started.text()}`);
    const objectId = await keyedObjectId(engine, KEYED_VERTEX);
    let lastLog = 0;
    await until(
      "the first pass over every key",
      async () => {
        await checkAlive(engine, "load");
        const m = await keyedMetrics(engine);
        if (m && performance.now() - lastLog > 10_000) {
          lastLog = performance.now();
          progress(`load: ${m.state_keys}/${keys} keys, ${mib(m.state_bytes_in_memory)} MiB in memory, ${m.state_entries_evicted} evicted; RSS ${mib(rss.samples.at(-1)?.rss ?? 0)} MiB`);
        }
        return (await processedUpTo(engine, keys)) !== undefined;
      },
      3_600_000,
      500,
    );
    const loadedAtMs = Date.now();

    enter("checkpoints");
    await until(
      "3 checkpoints after the load",
      async () => {
        await checkAlive(engine, "checkpoints");
        return (await checkpointHistory(engine, job)).filter((c) => c.status === "COMPLETED" && c.trigger_timestamp > loadedAtMs).length >= 3;
      },
      1_200_000,
      500,
    );
    const withinBudget = await until("the estimate within the budget", async () => ((await keyedMetrics(engine))?.state_bytes_in_memory ?? Infinity) <= budgetBytes, 10_000, 500).then(
      () => true,
      () => false,
    );
    const history: CheckpointEntry[] = await checkpointHistory(engine, job);
    const completed = history.filter((c) => c.status === "COMPLETED");
    const loaded = (await keyedMetrics(engine))!;
    const sqliteLoaded = sum(sqliteFiles(persistDir, objectId).map((f) => f.bytes));
    const firstAttempt = (await jobStatus(engine)).attempt;

    enter("restore");
    heaps.detach();
    await engine.kill();
    if (restoreFrom === "r2") {
      const files = sqliteFiles(persistDir, objectId);
      if (files.length === 0) throw new Error(`no SQLite file of object ${objectId} under ${persistDir}/do`);
      for (const f of files) rmSync(f.path);
      progress(`deleted the keyed subtask's SQLite (${files.map((f) => f.path.split("/").pop()).join(", ")}): its restore imports the run files from R2`);
    }
    engine = await startRuntime(2);
    const pidsSecond = rss.refresh();
    await until(
      "the restored attempt's first record",
      async () => {
        const s = await checkAlive(engine, "restore");
        if (s.status !== "RUNNING" || s.attempt === firstAttempt) return false;
        const m = await keyedMetrics(engine);
        return m !== undefined && m.attempt === s.attempt && m.records_in > 0;
      },
      1_200_000,
      100,
    );

    enter("read-back");
    lastLog = performance.now();
    let readBack: SubtaskMetrics | undefined;
    await until(
      "the second pass over every key",
      async () => {
        await checkAlive(engine, "read-back");
        const m = await keyedMetrics(engine);
        if (m && performance.now() - lastLog > 10_000) {
          lastLog = performance.now();
          progress(`read-back: ${m.records_in}/${keys} records, ${m.state_readbacks} read back; RSS ${mib(rss.samples.at(-1)?.rss ?? 0)} MiB`);
        }
        readBack = await processedUpTo(engine, 2 * keys);
        return readBack !== undefined;
      },
      3_600_000,
      500,
    );
    const final = await checkAlive(engine, "read-back");
    const allCheckpoints = await checkpointHistory(engine, job);
    enter("done");
    stopMetrics();
    rss.stop();
    heaps.stop();

    // ---- the summary ----
    const baselineRss = median(rss.of("baseline").map((s) => s.rss));
    const baselineHeap = heaps.samples.filter((h) => h.phase === "baseline");
    const phases = ["load", "checkpoints", "restore", "read-back"].map((phase) => {
      const ss = rss.of(phase);
      const ms = metricSamples.filter((m) => m.phase === phase);
      const hs = heaps.samples.filter((h) => h.phase === phase && !h.afterGc);
      const gc = heaps.samples.filter((h) => h.phase === phase && h.afterGc);
      const peak = ss.reduce((a, s) => (s.rss > a.rss ? s : a), ss[0]);
      return {
        phase,
        duration_s: Math.round(phaseMs[phase] / 100) / 10,
        samples: ss.length,
        peak_rss_mib: mib(peak?.rss ?? 0),
        peak_minus_baseline_mib: mib((peak?.rss ?? 0) - baselineRss),
        peak_over_budget: Math.round((((peak?.rss ?? 0) - baselineRss) / budgetBytes) * 100) / 100,
        // The breakdown of the peak sample: anonymous memory (heaps, SQLite's caches), file-backed (the binary), shared.
        at_peak: peak ? { anon_mib: mib(peak.anon), file_mib: mib(peak.file), shmem_mib: mib(peak.shmem) } : null,
        end_rss_mib: mib(ss.at(-1)?.rss ?? 0),
        vm_hwm_at_end_mib: mib(ss.at(-1)?.hwm ?? 0),
        peak_state_bytes_in_memory_mib: mib(max(ms.map((m) => m.state_bytes_in_memory))),
        // V8 heaps, sampled every second: the largest used and allocated heap and ArrayBuffer backing stores.
        heap_samples: hs.length,
        floe_heap_used_max_mib: mib(max(hs.map((h) => h.floe.used))),
        floe_heap_total_max_mib: mib(max(hs.map((h) => h.floe.total))),
        floe_array_buffers_max_mib: mib(max(hs.map((h) => h.floe.backing))),
        floe_heap_used_end_mib: mib(hs.at(-1)?.floe.used ?? 0),
        floe_heap_total_end_mib: mib(hs.at(-1)?.floe.total ?? 0),
        // With --gc-probe: the largest live heap and buffers of the floe isolate, right after a full collection.
        ...(args["gc-probe"] ? { gc_probes: gc.length, floe_heap_live_max_mib: mib(max(gc.map((h) => h.floe.used))), floe_array_buffers_live_max_mib: mib(max(gc.map((h) => h.floe.backing))) } : {}),
        miniflare_heaps_total_max_mib: mib(max(hs.map((h) => h.miniflare.total))),
        miniflare_array_buffers_max_mib: mib(max(hs.map((h) => h.miniflare.backing))),
      };
    });
    const r2Bytes = sum(filesUnder(join(persistDir, "r2")).map((f) => f.bytes));
    const summary = {
      bench: "workerd_rss",
      job,
      machine: { cpus: cpus().length, total_memory_mib: mib(totalmem()), load_average_start: Math.round(load0 * 10) / 10, load_average_end: Math.round(loadavg()[0] * 10) / 10 },
      restore_from: restoreFrom,
      first_pass: args.blind ? "blind writes" : "read, then write",
      v8_max_old_space_mib: v8HeapMiB ?? null,
      budget_mib: budgetMiB,
      block_cache_mib: mib(Math.min(16 * MiB, Math.max(MiB, budgetBytes / 4))),
      keys,
      payload_bytes: payloadBytes,
      state_estimate_mib: mib(stateEstimateBytes),
      state_over_budget: Math.round((stateEstimateBytes / budgetBytes) * 10) / 10,
      state_keys: loaded.state_keys,
      // The state's own bytes: each key and value as characters (no per-entry overhead).
      state_key_value_mb: mb(sum(Array.from({ length: keys }, (_, i) => `k${i}`.length + payloadBytes))),
      sqlite_after_load_mb: mb(sqliteLoaded),
      sqlite_end_mb: mb(sum(sqliteFiles(persistDir, objectId).map((f) => f.bytes))),
      r2_dir_mb: mb(r2Bytes),
      // The kill for the restore starts a new one; so does a crash, which Miniflare answers by starting workerd again.
      workerd_pids: { first: pidsFirst, after_restore: pidsSecond, all_seen: rss.seen },
      baseline_rss_mib: mib(baselineRss),
      baseline_rss_max_mib: mib(max(rss.of("baseline").map((s) => s.rss))),
      baseline_floe_heap_total_mib: mib(median(baselineHeap.map((h) => h.floe.total))),
      baseline_miniflare_heaps_total_mib: mib(median(baselineHeap.map((h) => h.miniflare.total))),
      phases,
      peak_rss_mib: max(phases.map((p) => p.peak_rss_mib)),
      peak_minus_baseline_mib: max(phases.map((p) => p.peak_minus_baseline_mib)),
      checkpoints: {
        completed_before_restore: completed.length,
        failed_before_restore: history.filter((c) => c.status === "FAILED").length,
        completed_in_all: allCheckpoints.filter((c) => c.status === "COMPLETED").length,
        last_state_size_mb: mb(completed.at(-1)?.state_size ?? 0),
        max_checkpointed_mb: mb(max(completed.map((c) => c.checkpointed_size))),
        max_end_to_end_ms: max(completed.map((c) => c.end_to_end_duration)),
      },
      after_load: {
        within_budget: withinBudget,
        state_bytes_in_memory_mib: mib(loaded.state_bytes_in_memory),
        state_entries_evicted: loaded.state_entries_evicted,
        state_readbacks: loaded.state_readbacks,
        // The load's time the keyed subtask took no input, waiting for a seal (over budget, nothing to evict).
        state_stalled_s: Math.round(loaded.state_stalled_ms / 100) / 10,
      },
      // The counters of the last attempt (a failover during the read-back starts them again).
      after_read_back: {
        attempt: readBack!.attempt,
        records_in: readBack!.records_in,
        state_keys: readBack!.state_keys,
        state_bytes_in_memory_mib: mib(readBack!.state_bytes_in_memory),
        state_entries_evicted: readBack!.state_entries_evicted,
        state_readbacks: readBack!.state_readbacks,
      },
      // The restore's own failover (the runtime killed) is one of them.
      failovers,
      job_status: { status: final.status, attempt: final.attempt, restarts: final.restarts, last_error: final.last_error },
    };
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  } finally {
    stopMetrics();
    rss.stop();
    heaps.stop();
    await engine.dispose().catch(() => undefined);
    if (!args.keep) rmSync(persistDir, { recursive: true, force: true });
    else progress(`state kept in ${persistDir}`);
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`measure-rss failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
