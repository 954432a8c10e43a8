/**
 * The simulator's command line.
 *
 *   npm run sim -- --seeds 100000 [--from N] [--jobs N]   many seeds, a summary (--jobs 0, the default: one process per core)
 *   npm run sim -- --seed N --trace                       replay one seed, every trace line
 *   npm run sim -- --variant no-fencing --seeds 200       a deliberately broken variant
 *   npm run sim -- --known all --seeds 1000               also draw the triggers of open bugs
 *   npm run sim -- --aligned --seeds 1000                 no unaligned checkpoints (a quarter of the runs otherwise)
 *   npm run sim -- --windows --seeds 2000                 the window branch in every run (three in ten otherwise)
 *   npm run sim -- --joins --seeds 1000                   the join branch in every run (two in ten otherwise)
 *   npm run sim -- --async --seeds 2000                   the async I/O branch in every run (two in ten otherwise)
 *
 * Exit status 1 when a seed failed (for the broken variants: when none did).
 */
import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import type { FaultKind } from "./faults.js";
import { describeFailure, replayCommand } from "./report.js";
import { type RunResult, runSeed } from "./run.js";
import { KNOWN_BUGS, type KnownBug, type Signature, VARIANTS, type Variant, parseKnownBugs } from "./scenario.js";

interface Args {
  seeds: number;
  from: number;
  seed?: number;
  trace: boolean;
  variant: Variant;
  known: readonly KnownBug[] | "all";
  jobs: number;
  /** Internal: this process runs a slice and prints JSON lines. */
  worker: boolean;
  quiet: boolean;
  unaligned: boolean;
  /** The window branch in every run (true), none (false), or drawn. */
  windows?: boolean;
  /** The join branch in every run (true), none (false), or drawn. */
  joins?: boolean;
  /** The async I/O branch in every run (true), none (false), or drawn. */
  async?: boolean;
}

function parse(argv: string[]): Args {
  const a: Args = { seeds: 1000, from: 1, trace: false, variant: "none", known: [], jobs: 0, worker: false, quiet: false, unaligned: true };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === "--seeds") a.seeds = Number(v());
    else if (k === "--from") a.from = Number(v());
    else if (k === "--seed") a.seed = Number(v());
    else if (k === "--trace") a.trace = true;
    else if (k === "--variant") {
      const x = v() as Variant;
      if (!VARIANTS.includes(x)) throw new Error(`--variant is one of ${VARIANTS.join(", ")}`);
      a.variant = x;
    } else if (k === "--known") a.known = parseKnownBugs(v());
    else if (k === "--jobs") a.jobs = Number(v());
    else if (k === "--worker") a.worker = true;
    else if (k === "--quiet") a.quiet = true;
    else if (k === "--unaligned") a.unaligned = true;
    else if (k === "--aligned") a.unaligned = false;
    else if (k === "--windows") a.windows = true;
    else if (k === "--no-windows") a.windows = false;
    else if (k === "--joins") a.joins = true;
    else if (k === "--no-joins") a.joins = false;
    else if (k === "--async") a.async = true;
    else if (k === "--no-async") a.async = false;
    else if (k === "--help" || k === "-h") {
      console.log(`npm run sim -- [--seeds N] [--from N] [--seed N --trace] [--variant ${VARIANTS.join("|")}] [--known B|all] [--aligned] [--windows|--no-windows] [--joins|--no-joins] [--async|--no-async] [--jobs N]`);
      console.log(`known bugs:\n${Object.entries(KNOWN_BUGS).map(([k2, d]) => `  ${k2}: ${d}`).join("\n")}`);
      process.exit(0);
    } else throw new Error(`unknown argument ${k} (see --help)`);
  }
  for (const [name, n] of [["--seeds", a.seeds], ["--from", a.from], ["--jobs", a.jobs]] as const) {
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer`);
  }
  return a;
}

/** What one seed contributes to a summary (a worker's JSON line). */
interface Line {
  seed: number;
  ok: boolean;
  failures: string[];
  signatures: [Signature, { atMs: number; what: string }][];
  firstFailureMs: number | null;
  virtualMs: number;
  digest: string;
  scenario: string;
  faults: [string, number][];
  checkpoints: number;
  restarts: number;
  windows?: RunResult["windows"];
  joins?: RunResult["joins"];
  async?: RunResult["async"];
  lazy: RunResult["lazy"];
  events: number;
  wallMs: number;
  trace: string[];
  variant: Variant;
}

function toLine(r: RunResult): Line {
  return { seed: r.seed, ok: r.ok, failures: r.failures, signatures: [...r.signatures], firstFailureMs: r.firstFailureMs, virtualMs: r.virtualMs, digest: r.digest, scenario: r.scenario, faults: [...r.faults], checkpoints: r.checkpoints, restarts: r.restarts, windows: r.windows, joins: r.joins, async: r.async, lazy: r.lazy, events: r.events, wallMs: r.wallMs, trace: r.ok ? [] : r.trace.slice(-40), variant: r.variant };
}

/** A line back as the run result the report functions take. */
function fromLine(l: Line): RunResult {
  return { ...l, signatures: new Map(l.signatures), faults: new Map(l.faults as [FaultKind, number][]) };
}

function reportOptions(a: Args) {
  return { known: a.known === "all" ? "all" : a.known.length > 0 ? a.known.join(",") : undefined, unaligned: a.unaligned, windows: a.windows, joins: a.joins, async: a.async };
}

async function runRange(a: Args, from: number, count: number, onLine: (l: Line) => void): Promise<void> {
  for (let s = from; s < from + count; s++) onLine(toLine(await runSeed(s, { variant: a.variant, knownBugs: a.known, unaligned: a.unaligned, windows: a.windows, joins: a.joins, async: a.async })));
}

/** Runs the seeds in `jobs` child processes and collects their lines. */
function runParallel(a: Args, onLine: (l: Line) => void): Promise<void> {
  const self = fileURLToPath(import.meta.url);
  const per = Math.ceil(a.seeds / a.jobs);
  const children: Promise<void>[] = [];
  for (let j = 0; j < a.jobs; j++) {
    const from = a.from + j * per;
    const count = Math.min(per, a.from + a.seeds - from);
    if (count <= 0) break;
    const args = [...process.execArgv, self, "--worker", "--from", String(from), "--seeds", String(count), "--variant", a.variant, "--known", a.known === "all" ? "all" : a.known.join(","), ...(a.unaligned ? [] : ["--aligned"]), ...(a.windows === undefined ? [] : [a.windows ? "--windows" : "--no-windows"]), ...(a.joins === undefined ? [] : [a.joins ? "--joins" : "--no-joins"]), ...(a.async === undefined ? [] : [a.async ? "--async" : "--no-async"])];
    children.push(
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
        let rest = "";
        child.stdout.on("data", (chunk: Buffer) => {
          const text = rest + chunk.toString("utf8");
          const lines = text.split("\n");
          rest = lines.pop()!;
          for (const l of lines) if (l.startsWith("{")) onLine(JSON.parse(l) as Line);
        });
        child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`worker exited with ${code}`))));
      }),
    );
  }
  return Promise.all(children).then(() => undefined);
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  if (a.worker) {
    await runRange(a, a.from, a.seeds, (l) => process.stdout.write(`${JSON.stringify(l)}\n`));
    return;
  }
  if (a.seed !== undefined) {
    const r = await runSeed(a.seed, { variant: a.variant, knownBugs: a.known, unaligned: a.unaligned, windows: a.windows, joins: a.joins, async: a.async, fullTrace: a.trace });
    if (a.trace) for (const t of r.trace) console.log(t);
    console.log(`\nseed ${r.seed}: ${r.ok ? "ok" : "FAILED"} (${r.scenario})`);
    console.log(`checkpoints completed ${r.checkpoints}, restarts ${r.restarts}, events ${r.events}, virtual ${r.virtualMs} ms, wall ${r.wallMs.toFixed(1)} ms`);
    console.log(`faults: ${[...r.faults].map(([k, v]) => `${k}=${v}`).join(" ") || "none"}`);
    if (!r.ok) console.log(a.trace ? r.failures.map((f) => `  ${f}`).join("\n") : describeFailure(r, reportOptions(a)));
    process.exitCode = r.ok ? 0 : 1;
    return;
  }
  const started = performance.now();
  const faults = new Map<string, number>();
  const failed: Line[] = [];
  const attributed = new Map<string, number[]>();
  let runs = 0;
  let checkpoints = 0;
  let restarts = 0;
  let events = 0;
  let wallMs = 0;
  const win = { runs: 0, windows: 0, refired: 0, beyondBound: 0, dropped: 0, runsRefired: 0, runsDropped: 0 };
  const joins = { runs: 0, rows: 0, records: 0, byKind: new Map<string, number>() };
  const asyncIo = { runs: 0, ordered: 0, keyed: 0, records: 0, requests: 0, retries: 0, timeouts: 0, deadLetters: 0, deadLettersWithSource: 0, requestedAgain: 0, runsRequestedAgain: 0, restoredInFlight: 0, runsRestoredInFlight: 0, overtaking: 0 };
  const lazy = { runs: 0, restores: 0, blocks: 0, demandReads: 0 };
  let lastReport = started;
  const onLine = (l: Line) => {
    runs++;
    if (l.lazy.restores > 0) lazy.runs++;
    lazy.restores += l.lazy.restores;
    lazy.blocks += l.lazy.blocks;
    lazy.demandReads += l.lazy.demandReads;
    checkpoints += l.checkpoints;
    restarts += l.restarts;
    events += l.events;
    wallMs += l.wallMs;
    for (const [k, v] of l.faults) faults.set(k, (faults.get(k) ?? 0) + v);
    if (l.windows) {
      win.runs++;
      win.windows += l.windows.windows;
      win.refired += l.windows.refired;
      win.beyondBound += l.windows.beyondBound;
      win.dropped += l.windows.dropped;
      if (l.windows.refired > 0) win.runsRefired++;
      if (l.windows.dropped > 0) win.runsDropped++;
    }
    if (l.joins) {
      joins.runs++;
      joins.rows += l.joins.rows;
      joins.records += l.joins.records;
      joins.byKind.set(l.joins.kind, (joins.byKind.get(l.joins.kind) ?? 0) + 1);
    }
    if (l.async) {
      const x = l.async;
      asyncIo.runs++;
      if (x.mode === "ordered") asyncIo.ordered++;
      if (x.keyed) asyncIo.keyed++;
      asyncIo.records += x.records;
      asyncIo.requests += x.requests;
      asyncIo.retries += x.retries;
      asyncIo.timeouts += x.timeouts;
      asyncIo.deadLetters += x.deadLetters;
      asyncIo.deadLettersWithSource += x.deadLettersWithSource;
      asyncIo.requestedAgain += x.requestedAgain;
      asyncIo.restoredInFlight += x.restoredInFlight;
      asyncIo.overtaking += x.overtaking;
      if (x.requestedAgain > 0) asyncIo.runsRequestedAgain++;
      if (x.restoredInFlight > 0) asyncIo.runsRestoredInFlight++;
    }
    if (!l.ok) {
      failed.push(l);
      const bugs = l.signatures.map(([b]) => b).join("+") || "new";
      attributed.set(bugs, [...(attributed.get(bugs) ?? []), l.seed]);
      if (failed.length <= 5) console.log(`\nFAIL ${describeFailure(fromLine(l), reportOptions(a))}`);
      else console.log(`FAIL seed ${l.seed} (${bugs === "new" ? "no known signature" : `signature ${bugs}`}): ${l.failures[0]}`);
    }
    const now = performance.now();
    if (!a.quiet && now - lastReport > 10_000) {
      lastReport = now;
      console.log(`… ${runs}/${a.seeds} seeds, ${failed.length} failed`);
    }
  };
  const jobs = a.jobs > 0 ? a.jobs : Math.min(availableParallelism(), 8);
  if (jobs > 1 && a.seeds >= 2 * jobs) await runParallel({ ...a, jobs }, onLine);
  else await runRange(a, a.from, a.seeds, onLine);
  const elapsed = performance.now() - started;
  const totalFaults = [...faults.values()].reduce((x, y) => x + y, 0);
  console.log(`\nseeds ${a.from}..${a.from + runs - 1}${a.variant !== "none" ? ` (variant ${a.variant})` : ""}: ${runs - failed.length} passed, ${failed.length} failed`);
  console.log(`checkpoints completed ${checkpoints}, restarts ${restarts}, faults injected ${totalFaults}, events ${events}`);
  console.log(`lazy restores from R2 in ${lazy.runs} runs: ${lazy.restores} tasks, ${lazy.blocks} blocks, ${lazy.demandReads} reads records waited for`);
  if (win.runs > 0) {
    console.log(`window branch in ${win.runs} runs: ${win.windows} windows, ${win.refired} re-fired by allowed lateness (in ${win.runsRefired} runs), ${win.beyondBound} records later than the bound, ${win.dropped} dropped as late (in ${win.runsDropped} runs)`);
  }
  if (joins.runs > 0) {
    console.log(`join branch in ${joins.runs} runs (${[...joins.byKind].map(([k, n]) => `${k} ${n}`).join(", ")}): ${joins.records} records, ${joins.rows} expected rows, each committed exactly once`);
  }
  if (asyncIo.runs > 0) {
    const x = asyncIo;
    console.log(
      `async branch in ${x.runs} runs (ordered ${x.ordered}, unordered ${x.runs - x.ordered}; on a keyed stream ${x.keyed}): ${x.records} records, ${x.requests} requests (${x.retries} retries), ${x.timeouts} timed out, ${x.deadLetters} dead letters (${x.deadLettersWithSource} naming their source offset), ${x.overtaking} results overtook (unordered); ${x.requestedAgain} records taken again after a failover (in ${x.runsRequestedAgain} runs), ${x.restoredInFlight} restored in flight (in ${x.runsRestoredInFlight} runs)`,
    );
  }
  console.log(`faults by kind: ${[...faults].sort((x, y) => y[1] - x[1]).map(([k, v]) => `${k}=${v}`).join(" ")}`);
  console.log(`time: ${(elapsed / 1000).toFixed(1)} s, ${(wallMs / Math.max(1, runs)).toFixed(1)} ms per seed`);
  for (const [bugs, seeds] of attributed) {
    const what = bugs === "new" ? "without a known signature" : `with the signature ${bugs}`;
    console.log(`failed seeds ${what}: ${seeds.sort((x, y) => x - y).join(" ")}`);
  }
  if (failed.length > 0) console.log(`replay one: ${replayCommand(failed[0], reportOptions(a))}`);
  // A broken variant is expected to fail: the run "succeeds" when the oracle caught it.
  process.exitCode = a.variant === "none" ? (failed.length > 0 ? 1 : 0) : failed.length > 0 ? 0 : 1;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(2);
});
