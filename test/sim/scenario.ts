/**
 * One run's world, drawn from its seed: the job's shape and checkpoint
 * configuration, the input, how long faults are injected, and which faults
 * at which rates. A broken variant changes the simulator's side (the job's
 * options, or the transport), or turns on one of the core's test seams
 * (`SubtaskFaultSeams`: the real code path with one step broken).
 */
import type { ProcessingCost } from "./cost.js";
import { type FaultRates, drawRates } from "./faults.js";
import type { JobShape } from "./jobs.js";
import { Rng } from "./prng.js";
import { describeJoin, drawJoinShape } from "./join-job.js";
import { describeAsync, drawAsyncShape } from "./async-job.js";
import { describeWindows, drawWindowShape } from "./window-job.js";

/**
 * Deliberately broken variants the oracle must catch:
 * - no-alignment: checkpoints in at_least_once mode (barriers are not aligned);
 * - commit-before-metadata: sinks with the at_least_once guarantee (they
 *   publish at the barrier, before the checkpoint's _metadata exists);
 * - no-fencing: the transport rewrites a zombie's attempt to the current one;
 * - merge-deletes-first: the state image's merge deletes a chunk in one turn
 *   and applies it in the next (a crash in between loses it);
 * - drop-before-publish: a sink's staging rows are deleted when read for the
 *   publish, before it landed (a crash in between loses the transaction);
 * - no-deploy-fencing: a deploy does not check that a newer attempt
 *   superseded it (an older attempt's restore runs on after it).
 */
export type Variant = "none" | "no-alignment" | "commit-before-metadata" | "no-fencing" | "merge-deletes-first" | "drop-before-publish" | "no-deploy-fencing";

export const VARIANTS: readonly Variant[] = ["none", "no-alignment", "commit-before-metadata", "no-fencing", "merge-deletes-first", "drop-before-publish", "no-deploy-fencing"];

export interface Scenario {
  readonly seed: number;
  readonly variant: Variant;
  readonly shape: JobShape;
  readonly rates: FaultRates;
  /** Records per partition of each HTTP stream (unbounded runs). */
  readonly recordsA: number;
  readonly recordsB: number;
  /** Input arrives until this time. */
  readonly ingestEndMs: number;
  readonly faultStartMs: number;
  readonly faultEndMs: number;
  readonly r2PageSize: number;
  /** Faults are injected while the job starts, too (a client retries a failed start). */
  readonly faultyStart: boolean;
  /** Engine bugs already reported whose triggers this run may draw (the others are avoided, so they do not mask everything else). */
  readonly knownBugs: ReadonlySet<KnownBug>;
  /** Virtual processing time per record of some subtasks (cost.ts); none in drawn runs: every turn is instant. */
  readonly costs?: readonly ProcessingCost[];
}

/**
 * Engine bugs this simulator found that are still open (README.md has the
 * details, and the fixed ones). Until one is fixed, runs avoid what triggers
 * it unless asked (--known), so that it does not mask every other failure.
 */
export const KNOWN_BUGS: Record<string, string> = {
  W: "(fixed: checkpoints keep each keyed subtask's watermark, and a source's covers the batch an unaligned barrier overtook) a restore started the watermark afresh: a record dropped as late before a failover could be counted after it; the window branch now always draws records later than the allowed lateness",
};

export type KnownBug = keyof typeof KNOWN_BUGS;

/**
 * What the simulator notices that only a bug does: an open known bug, or the
 * pattern of one already fixed (A: an older checkpoint restored; D: restores
 * of two attempts overlapping, or a stale task installed; E: one attempt
 * deployed twice; G: a failed start that left the job RUNNING). A failing
 * run names what it saw.
 */
export type Signature =
  | KnownBug
  | "older-checkpoint-restored"
  | "overlapping-restores"
  | "stale-restore"
  | "stale-task"
  | "attempt-deployed-twice"
  | "start-left-running";

/** Options of {@link drawScenario}. */
export interface ScenarioOptions {
  /** Known bugs whose triggers to draw anyway ("all" for every one). */
  readonly knownBugs?: readonly KnownBug[] | "all";
  /** Draw unaligned checkpoints in a quarter of the runs (default true). */
  readonly unaligned?: boolean;
  /** The window branch in every run (true), in none (false), or drawn in three runs of ten (default). */
  readonly windows?: boolean;
  /** The join branch in every run (true), in none (false), or drawn in two runs of ten (default). */
  readonly joins?: boolean;
  /** The async I/O branch in every run (true), in none (false), or drawn in two runs of ten (default). */
  readonly async?: boolean;
}

/** Parses "A,D" or "all". */
export function parseKnownBugs(text: string): readonly KnownBug[] | "all" {
  if (text === "all") return "all";
  const out = text.split(",").map((x) => x.trim().toUpperCase()).filter((x) => x.length > 0);
  for (const x of out) if (!(x in KNOWN_BUGS)) throw new Error(`unknown bug ${x}; known: ${Object.keys(KNOWN_BUGS).join(", ")}`);
  return out as KnownBug[];
}

export function drawScenario(seed: number, variant: Variant = "none", options: ScenarioOptions = {}): Scenario {
  const rng = new Rng(seed).fork("scenario");
  const knownBugs = new Set<KnownBug>(options.knownBugs === "all" ? (Object.keys(KNOWN_BUGS) as KnownBug[]) : (options.knownBugs ?? []));
  // Bounded jobs end with a final checkpoint (bug B, fixed: they used to publish without one).
  const bounded = rng.chance(0.2) && variant === "none";
  const partitionsA = rng.range(1, 3);
  const partitionsB = rng.range(1, 2);
  const keys = rng.pick([1, 2, 3, 5, 8, 13, 40]);
  const processParallelism = rng.range(1, 3);
  const records = bounded ? rng.range(20, 120) : rng.range(20, 150);
  const shape: JobShape = {
    bounded,
    partitionsA,
    parallelismA: rng.range(1, partitionsA),
    partitionsB,
    countA: records,
    countB: rng.range(10, records),
    keys,
    processParallelism,
    keyedSink: rng.chance(0.3),
    sinkParallelism: rng.range(1, 3),
    withTotals: rng.chance(0.5),
    tablePartitions: rng.range(1, 3),
    sinkGuarantee: variant === "commit-before-metadata" ? "at_least_once" : "exactly_once",
    batchSize: bounded ? rng.pick([1, 2, 3]) : rng.pick([1, 2, 5, 10, 25]),
    maxParallelism: rng.pick([4, 8, 16, 128]),
    checkpoint: {
      intervalMs: bounded ? rng.pick([5, 10, 20]) : rng.pick([20, 50, 100, 200]),
      mode: variant === "no-alignment" ? "at_least_once" : "exactly_once",
      timeoutMs: rng.pick([200, 500, 2000, 10_000]),
      maxConcurrent: rng.range(1, 3),
      minPauseMs: rng.chance(0.3) ? rng.pick([5, 20, 50]) : 0,
      tolerableFailures: rng.range(0, 5),
      retained: rng.range(1, 3),
      incremental: rng.chance(0.5),
      fullEvery: rng.range(2, 5),
      localRecovery: rng.chance(0.7),
      unaligned: rng.chance(0.25) && variant !== "no-alignment" && (options.unaligned ?? true),
    },
    restartStrategy: rng.chance(0.8)
      ? { type: "fixed-delay", delayMs: rng.pick([10, 50, 200]) }
      : { type: "exponential-delay", initialDelayMs: 20, maxDelayMs: 1000, multiplier: 2, resetBackoffThresholdMs: 5000 },
  };
  // Unaligned checkpoints run one at a time; a third of them start aligned and switch after a timeout.
  // (Drawn from their own stream, so the draws above stay what they were for every seed.)
  if (shape.checkpoint.unaligned) {
    const u = rng.fork("unaligned");
    shape.checkpoint.maxConcurrent = 1;
    shape.checkpoint.alignedCheckpointTimeoutMs = u.chance(0.35) ? u.pick([1, 5, 20, 60]) : 0;
  }
  // Event-time watermarks in some runs, from their own stream too.
  const wm = rng.fork("watermarks");
  if (wm.chance(0.4)) {
    (shape as { watermarks?: JobShape["watermarks"] }).watermarks = {
      boundMs: wm.pick([0, 10, 50]),
      idlenessMs: wm.chance(0.5) ? wm.pick([20, 100, 500]) : undefined,
      sources: wm.pick(["a", "b", "both"] as const),
    };
  }
  // The timer branch in half the runs, from its own stream.
  const timers = rng.fork("timers");
  if (timers.chance(0.5)) (shape as { timers?: JobShape["timers"] }).timers = { parallelism: timers.range(1, 3) };
  // The window branch in three runs of ten (or as asked), from its own stream; not in the broken variants' runs,
  // whose seeds and time budgets (variants.test.ts) are the checkpoint protocol's.
  const windows = rng.fork("windows");
  if ((windows.chance(0.3) ? options.windows !== false : options.windows === true) && variant === "none") {
    (shape as { windows?: JobShape["windows"] }).windows = drawWindowShape(windows, { bounded, batchSize: shape.batchSize, dropLate: true });
  }
  // The join branch (a two-input operator over two sources of its own) in two runs of ten, or as asked; its own stream too.
  const joins = rng.fork("joins");
  if ((joins.chance(0.2) ? options.joins !== false : options.joins === true) && variant === "none") {
    (shape as { joins?: JobShape["joins"] }).joins = drawJoinShape(joins);
  }
  // The async I/O branch (a source of its own, an async operator asking a simulated slow service) in two runs of ten, or as asked.
  const asyncIo = rng.fork("async");
  if ((asyncIo.chance(0.2) ? options.async !== false : options.async === true) && variant === "none") {
    (shape as { async?: JobShape["async"] }).async = drawAsyncShape(asyncIo, { bounded });
    // An aligned barrier reaches the async operator only once every record before it is in its queue: behind up to
    // a few hundred records at one connection and a service that hangs, that takes seconds, and a shorter checkpoint
    // timeout expires every checkpoint, for ever (as it would in Flink: a configuration error, not a fault). Not
    // longer than the longest drawn otherwise: a coordinator reset during start() leaves the sources unstarted until
    // tolerable + 1 checkpoints expired (README, bug G), which must fit in the time the run allows to quiesce.
    shape.checkpoint.timeoutMs = Math.max(shape.checkpoint.timeoutMs ?? 0, 10_000);
  }
  const rates = drawRates(rng.fork("rates"));
  // Every run lands at least one reset.
  rates.randomResets = Math.max(1, rates.randomResets);
  if (variant === "no-fencing") rates.rpc.zombie = Math.max(rates.rpc.zombie, 0.3);
  // Each broken seam shows only where its window opens: aim the faults there.
  if (variant === "merge-deletes-first") rates.subtaskReset["image-merge"] = Math.max(rates.subtaskReset["image-merge"], 0.1);
  if (variant === "drop-before-publish") rates.rpc["rpc-drop"] = Math.max(rates.rpc["rpc-drop"], 0.03);
  if (variant === "no-deploy-fencing") {
    rates.r2["r2-slow"] = Math.max(rates.r2["r2-slow"], 0.3);
    rates.subtaskReset.restore = Math.max(rates.subtaskReset.restore, 0.1);
  }
  if (variant !== "none") rates.resetBudget = Math.max(rates.resetBudget, 6);
  const faultEndMs = bounded ? rng.range(200, 1500) : rng.range(1500, 5000);
  return {
    seed,
    variant,
    shape,
    rates,
    recordsA: records,
    recordsB: rng.range(10, records),
    ingestEndMs: rng.range(300, Math.max(400, faultEndMs - 200)),
    faultStartMs: bounded ? 2 : rng.range(20, 200),
    faultEndMs,
    r2PageSize: rng.pick([2, 5, 1000]),
    // Half the runs start with faults on: a start that fails midway must not wedge the job.
    faultyStart: rng.chance(0.5),
    knownBugs,
  };
}

/** One line about the scenario, for reports. */
export function describeScenario(s: Scenario): string {
  const j = s.shape;
  const c = j.checkpoint;
  return [
    `variant=${s.variant}`,
    j.bounded ? `bounded A=${j.countA}x${j.partitionsA} B=${j.countB}x${j.partitionsB}` : `stream A=${s.recordsA}x${j.partitionsA} B=${s.recordsB}x${j.partitionsB}`,
    `keys=${j.keys} p(A)=${j.parallelismA} p(sum)=${j.processParallelism} sink=${j.keyedSink ? `keyed p=${j.sinkParallelism}` : "chained"}${j.withTotals ? "+totals" : ""}`,
    `batch=${j.batchSize} maxP=${j.maxParallelism}`,
    `cp ${c.unaligned ? `unaligned${c.alignedCheckpointTimeoutMs ? ` after ${c.alignedCheckpointTimeoutMs} ms` : ""} ` : ""}interval=${c.intervalMs} timeout=${c.timeoutMs} concurrent=${c.maxConcurrent} pause=${c.minPauseMs} tolerable=${c.tolerableFailures} retained=${c.retained} ${c.incremental ? `incremental/${c.fullEvery}` : "full"} local=${c.localRecovery}`,
    `restart=${j.restartStrategy.type}`,
    ...(j.watermarks ? [`watermarks(${j.watermarks.sources}) bound=${j.watermarks.boundMs}${j.watermarks.idlenessMs ? ` idle=${j.watermarks.idlenessMs}` : ""}`] : []),
    ...(j.timers ? [`timers p=${j.timers.parallelism}`] : []),
    ...(j.windows ? [describeWindows(j.windows)] : []),
    ...(j.joins ? [describeJoin(j.joins)] : []),
    ...(j.async ? [describeAsync(j.async)] : []),
    `faults ${s.faultyStart ? "0" : s.faultStartMs}-${s.faultEndMs}ms budget=${s.rates.resetBudget}`,
    ...(s.knownBugs.size > 0 ? [`known=${[...s.knownBugs].join("")}`] : []),
  ].join(" ");
}
