/**
 * One seed, start to finish: draw the scenario, build the world, feed the
 * input, start the job, inject faults for a while, stop injecting and let
 * the job quiesce, then ask the oracle. Nothing here reads the wall clock
 * except to report how long the run took.
 */
import { uniform } from "../../src/connectors/sources/generator-source.js";
import type { FaultKind } from "./faults.js";
import { type InRecord, JOB, generated } from "./jobs.js";
import { JOIN_APPEND_MAX, JOIN_FLUSH_KEY, JOIN_FLUSH_TS, type JRecord } from "./join-job.js";
import { type JoinStats, joinStats, joinsComplete } from "./join-oracle.js";
import { ASYNC_APPEND_MAX, ASYNC_SOURCE } from "./async-job.js";
import { type AsyncStats, asyncStats } from "./async-oracle.js";
import { Life } from "./loop.js";
import { Expected, Progress, checkRun, leftovers } from "./oracle.js";
import { Rng } from "./prng.js";
import { type KnownBug, type Scenario, type Signature, type Variant, describeScenario, drawScenario } from "./scenario.js";
import { APPEND_MAX, FLUSH_KEY, FLUSH_TS } from "./window-job.js";
import { type WindowStats, windowStats, windowsComplete } from "./window-oracle.js";
import { type LazyRestoreStats, World, lazyRestoreStats } from "./world.js";

/** Virtual time allowed for the job to quiesce once faults stop. */
const QUIESCE_MS = 120_000;
/** After the output is complete, run this long more: late duplicates must surface. */
const GRACE_MS = 400;
/** A run that needs more events than this is stuck in a loop. */
const MAX_EVENTS = 3_000_000;

export interface RunOptions {
  readonly variant?: Variant;
  /** Keep every trace line (replays). */
  readonly fullTrace?: boolean;
  /** Also draw the triggers of these engine bugs already reported. */
  readonly knownBugs?: readonly KnownBug[] | "all";
  /** Draw unaligned checkpoints in some runs (default true). */
  readonly unaligned?: boolean;
  /** The window branch in every run (true), none (false), or drawn (default). */
  readonly windows?: boolean;
  /** The join branch in every run (true), none (false), or drawn (default). */
  readonly joins?: boolean;
  /** The async I/O branch in every run (true), none (false), or drawn (default). */
  readonly async?: boolean;
  /** On failure, replay the seed to cut the trace at the first failure (default true). */
  readonly explain?: boolean;
  /** Virtual time allowed for quiescence once faults stop (default 120 s). */
  readonly quiesceMs?: number;
  /** Looks at the world once the run is over (debugging). */
  readonly inspect?: (w: World) => void;
}

export interface RunResult {
  readonly seed: number;
  readonly variant: Variant;
  readonly ok: boolean;
  readonly failures: string[];
  /** When the first failure became visible in the committed output, if it has a moment. */
  readonly firstFailureMs: number | null;
  readonly scenario: string;
  /** Signatures of bugs seen in the run (a failure with one is probably that bug). */
  readonly signatures: Map<Signature, { atMs: number; what: string }>;
  readonly faults: Map<FaultKind, number>;
  readonly checkpoints: number;
  readonly restarts: number;
  /** What the window branch did, when the run had one. */
  readonly windows?: WindowStats;
  /** What the join branch did, when the run had one. */
  readonly joins?: JoinStats;
  /** What the async I/O branch did, when the run had one. */
  readonly async?: AsyncStats;
  /** What lazy restores from R2 did. */
  readonly lazy: LazyRestoreStats;
  readonly events: number;
  readonly virtualMs: number;
  readonly wallMs: number;
  /** The events leading to the first failure (every line with fullTrace). */
  readonly trace: string[];
  /** A digest of the whole run, to check that a seed replays identically. */
  readonly digest: string;
}

/** The input: records appended to the streams over time, or the bounded generators' output. */
function feed(w: World, s: Scenario): Expected {
  const expected = new Expected();
  const j = s.shape;
  if (j.bounded) {
    for (const [src, parts, count, seed] of [["a", j.partitionsA, j.countA, 11], ["b", j.partitionsB, j.countB, 23]] as const) {
      const make = generated(src, j.keys);
      for (let p = 0; p < parts; p++) for (let i = 0; i < count; i++) expected.add(make(i, p, uniform(seed, p, i)));
    }
    return expected;
  }
  const rng = new Rng(s.seed).fork("input");
  for (const [src, stream, parts, count] of [["a", "in-a", j.partitionsA, s.recordsA], ["b", "in-b", j.partitionsB, s.recordsB]] as const) {
    for (let p = 0; p < parts; p++) {
      const partition = w.streams.get(`stream:${stream}/partition:${p}`)!;
      let off = 0;
      let at = 0;
      while (off < count) {
        const n = Math.min(count - off, rng.range(1, 15));
        const records: InRecord[] = [];
        for (let i = 0; i < n; i++) records.push({ key: `k${rng.int(j.keys)}`, v: rng.int(100), src, part: p, off: off + i });
        for (const r of records) expected.add(r);
        off += n;
        at += rng.range(0, Math.max(1, Math.floor((2 * s.ingestEndMs) / Math.max(1, count / 7))));
        w.loop.at(Math.min(at, s.ingestEndMs), () => partition.append(records));
      }
    }
  }
  // The window branch's source: its records in order, a few at a time, over the same span (its oracle reads them from the shape).
  if (j.windows) {
    const partition = w.streams.get("stream:in-w/partition:0")!;
    const input = j.windows.input;
    const wr = new Rng(s.seed).fork("window-input");
    let at = 0;
    for (let off = 0; off < input.length; ) {
      const n = Math.min(input.length - off, wr.range(1, APPEND_MAX));
      const records = input.slice(off, off + n);
      off += n;
      at += wr.range(0, Math.max(1, Math.floor((2 * s.ingestEndMs) / Math.max(1, input.length / 3.5))));
      w.loop.at(Math.min(at, s.ingestEndMs), () => partition.append(records));
    }
    // A restore starts the watermark afresh from the records read after it (bug W): one that restored past the
    // last record (or replayed it as in-flight data of an unaligned checkpoint, without the watermark that followed)
    // leaves the last windows waiting for the next record. The stream keeps flowing, as a real one would: another
    // flush record (same time: it moves no watermark that the first one reached) while windows are missing.
    if (!j.bounded) {
      let off = input.length;
      const flush = () => {
        if (windowsComplete(w) || w.loop.now() > s.faultEndMs + 60_000) return;
        partition.append([{ key: FLUSH_KEY, v: 0, off: off++, ts: FLUSH_TS }]);
        w.loop.after(500, flush);
      };
      w.loop.at(Math.max(s.ingestEndMs, s.faultEndMs) + 500, flush);
    }
  }
  // The join branch's two sources: each side's records in order, a few at a time, over the same span; then, in
  // unbounded runs, a flush record on each side (its time moves the watermark, the minimum of both, past every
  // bucket and window), appended again while rows are missing, as a stream that keeps flowing would (a restore whose
  // offsets are past the last record has no watermark until the next one).
  if (j.joins) {
    const jr = new Rng(s.seed).fork("join-input");
    for (const [side, input] of [["l", j.joins.left], ["r", j.joins.right]] as const) {
      if (j.bounded) continue;
      const partition = w.streams.get(`stream:in-${side}/partition:0`)!;
      let at = 0;
      for (let off = 0; off < input.length; ) {
        const n = Math.min(input.length - off, jr.range(1, JOIN_APPEND_MAX));
        const records = input.slice(off, off + n);
        off += n;
        at += jr.range(0, Math.max(1, Math.floor((2 * s.ingestEndMs) / Math.max(1, input.length / 3.5))));
        w.loop.at(Math.min(at, s.ingestEndMs), () => partition.append(records));
      }
      let off = input.length;
      const flushRecord = (): JRecord => ({ key: JOIN_FLUSH_KEY, v: 0, side, off: off++, ts: JOIN_FLUSH_TS });
      w.loop.at(s.ingestEndMs, () => partition.append([flushRecord()]));
      const flush = () => {
        if (joinsComplete(w) || w.loop.now() > s.faultEndMs + 60_000) return;
        partition.append([flushRecord()]);
        w.loop.after(500, flush);
      };
      w.loop.at(Math.max(s.ingestEndMs, s.faultEndMs) + 500, flush);
    }
  }
  // The async branch's source: each partition's records in order, a few at a time, over the same span.
  if (j.async && !j.bounded) {
    const ar = new Rng(s.seed).fork("async-input");
    j.async.input.forEach((input, p) => {
      const partition = w.streams.get(`stream:${ASYNC_SOURCE}/partition:${p}`)!;
      let at = 0;
      for (let off = 0; off < input.length; ) {
        const n = Math.min(input.length - off, ar.range(1, ASYNC_APPEND_MAX));
        const records = input.slice(off, off + n);
        off += n;
        at += ar.range(0, Math.max(1, Math.floor((2 * s.ingestEndMs) / Math.max(1, input.length / 3.5))));
        w.loop.at(Math.min(at, s.ingestEndMs), () => partition.append(records));
      }
    });
  }
  return expected;
}

function hash(lines: readonly string[], seed: number): string {
  let h = seed >>> 0;
  for (const l of lines) for (let i = 0; i < l.length; i++) h = Math.imul(h ^ l.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16);
}

/** The trace lines leading to the first failure (or, when it has no moment, to the last job transition). */
function excerpt(lines: readonly string[], firstFailureMs: number | null, n = 45): string[] {
  const timeOf = (l: string) => Number(l.slice(0, 8).trim().replace(/ms$/, ""));
  let cut = firstFailureMs ?? Number.NaN;
  if (Number.isNaN(cut)) {
    const last = [...lines].reverse().find((l) => / job +job /.test(l));
    cut = last ? timeOf(last) + 50 : Number.POSITIVE_INFINITY;
  }
  const before = lines.filter((l) => timeOf(l) <= cut && !/ push batch | ack cp=/.test(l));
  return [...before.slice(-n), `(first failure at ${Number.isFinite(cut) ? `${cut}ms` : "the end"}; batches and acks omitted — the replay shows every line)`];
}

export async function runSeed(seed: number, options: RunOptions = {}): Promise<RunResult> {
  const wallStart = performance.now();
  const variant = options.variant ?? "none";
  const scenario = drawScenario(seed, variant, { knownBugs: options.knownBugs, unaligned: options.unaligned, windows: options.windows, joins: options.joins, async: options.async });
  const w = new World(scenario, { fullTrace: options.fullTrace });
  const failures: string[] = [];
  let firstFailureMs: number | null = null;
  const expected = feed(w, scenario);
  w.trace.log("sim", `seed ${seed}: ${describeScenario(scenario)}`);

  // The engine logs to console.error (e.g. a failed garbage collection): into the trace instead.
  const consoleError = console.error;
  // Node's one-time ExperimentalWarning (node:sqlite, first run of a process) is not the run's: a replay would miss it.
  console.error = (...args: unknown[]) => {
    const text = args.map(String).join(" ");
    if (!text.includes("ExperimentalWarning")) w.trace.log("log", text.slice(0, 200));
  };
  let digestLines: string[] = [];
  try {
    // Start the job (faults off, unless the run starts faulty: then a client retries as one would).
    let started: "yes" | "no" | undefined;
    const client = { name: "client", life: new Life("client", 0) };
    const faultyStart = scenario.faultyStart;
    if (faultyStart) {
      w.faults.enabled = true;
      w.trace.log("sim", "faults on (during the start)");
    }
    const start = () => {
      w.net.call(w.net.channel(client, w.coordinator.name), "start", [JOB, {}]).then(
        (r) => {
          const res = r as { ok: boolean; error?: { code: string; message: string } };
          // A retried start that finds the job running: the client takes it as started.
          if (res.ok || (faultyStart && res.error?.code === "job_running")) started = "yes";
          else {
            failures.push(`start: ${res.error?.message}`);
            started = "no";
          }
        },
        (e: unknown) => {
          if (faultyStart) {
            w.trace.log("sim", `start failed (${(e as Error)?.message ?? e}); the client retries`);
            // The job record says RUNNING, yet the start did not finish and no alarm will look after it (bug G).
            const wedged = w.coordinator.store.job().status === "RUNNING" && !w.coordinator.alarm.scheduled;
            if (wedged) w.signature("start-left-running", `start() failed (${(e as Error)?.message ?? e}) and left the job RUNNING with no alarm`);
            w.loop.after(100, startUnlessStarted);
            return;
          }
          failures.push(`start: ${(e as Error)?.message ?? e}`);
          started = "no";
        },
      );
    };
    // A client that lost the answer asks before it starts again: a bounded job may have run to its end
    // meanwhile, and a start of a FINISHED job is a new run (its input all over again).
    const startUnlessStarted = () => {
      w.net.call(w.net.channel(client, w.coordinator.name), "status", [JOB]).then(
        (r: unknown) => {
          const res = r as { ok: boolean; value?: { status: string } };
          if (res.ok && res.value && res.value.status !== "CREATED") started = "yes";
          else start();
        },
        () => w.loop.after(100, startUnlessStarted),
      );
    };
    w.loop.at(0, start);
    await w.loop.run(5_000, () => started !== undefined, MAX_EVENTS);
    if (started !== "yes") {
      if (started === undefined) failures.push("start: the job did not start within 5 s");
    } else {
      const from = Math.max(w.loop.now(), scenario.faultStartMs);
      const to = Math.max(from + 1, scenario.faultEndMs);
      w.loop.at(from, () => {
        w.faults.enabled = true;
        w.trace.log("sim", "faults on");
      });
      w.loop.at(to, () => {
        w.faults.enabled = false;
        w.trace.log("sim", "faults off: quiescing");
      });
      w.scheduleRandomResets(from, to);
      await w.loop.run(to, () => false, MAX_EVENTS);

      // Quiesce: no more faults; wait for the whole input to be committed and nothing left staged.
      const progress = new Progress(w, expected);
      const settled = () => {
        const s = w.coordinator.store.job().status;
        return scenario.shape.bounded ? s === "FINISHED" : s === "RUNNING";
      };
      const quiesceMs = options.quiesceMs ?? QUIESCE_MS;
      const deadline = to + quiesceMs;
      const quiet = () => progress.complete() && settled() && leftovers(w).length === 0;
      let end = await w.loop.run(deadline, quiet, MAX_EVENTS);
      if (end === "stopped") {
        await w.loop.run(w.loop.now() + GRACE_MS, () => false, MAX_EVENTS);
        // Within the grace, idle inputs may have moved the watermark on (their idle timeout ran out) and
        // fired timers the quiet moment did not yet owe: wait for those to be committed too.
        end = await w.loop.run(w.loop.now() + 10_000, quiet, MAX_EVENTS);
      }
      if (end === "events") failures.push(`stuck: more than ${MAX_EVENTS} events`);
      else if (end !== "stopped") {
        const s = w.coordinator.store.job();
        failures.push(`quiesce: not quiescent ${quiesceMs} ms after the faults stopped (job ${s.status} attempt ${s.attempt}${s.lastError ? `, last error: ${s.lastError.slice(0, 160)}` : ""})`);
      }
      const found = checkRun(w, expected);
      failures.push(...found.map((f) => f.text));
      const moments = found.map((f) => f.atMs).filter((t): t is number => t !== undefined && Number.isFinite(t));
      if (moments.length > 0) firstFailureMs = Math.min(...moments);
    }
    for (const e of w.loop.errors) failures.push(`simulator error: ${(e as Error)?.stack ?? e}`);
    digestLines = w.trace.tail(400);
  } finally {
    console.error = consoleError;
  }
  options.inspect?.(w);
  const job = w.coordinator.store.job();
  let trace = w.trace.all ?? w.trace.tail(60);
  if (failures.length > 0 && !options.fullTrace && (options.explain ?? true)) {
    // Replay with every line kept, and cut the story at the first failure (a seed replays exactly).
    const full = await runSeed(seed, { ...options, fullTrace: true });
    const digest = `${hash(digestLines, seed)}-${w.loop.events}-${w.trace.lines}`;
    if (full.digest !== digest) failures.push(`nondeterminism: the replay of seed ${seed} took another course (${full.digest} vs ${digest})`);
    // The story ends at the first failure, or earlier where a known bug's signature showed.
    const sightings = [...w.signatures.values()].map((k) => k.atMs);
    const cut = sightings.length > 0 ? Math.min(firstFailureMs ?? Number.POSITIVE_INFINITY, ...sightings) : firstFailureMs;
    trace = excerpt(full.trace, cut);
  }
  return {
    seed,
    variant,
    ok: failures.length === 0,
    failures,
    firstFailureMs,
    scenario: describeScenario(scenario),
    signatures: w.signatures,
    faults: w.faults.counts,
    checkpoints: w.completedAt.size,
    restarts: job.restarts,
    windows: windowStats(w),
    joins: joinStats(w),
    async: asyncStats(w),
    lazy: lazyRestoreStats(w),
    events: w.loop.events,
    virtualMs: w.loop.now(),
    wallMs: performance.now() - wallStart,
    trace,
    digest: `${hash(digestLines, seed)}-${w.loop.events}-${w.trace.lines}`,
  };
}
