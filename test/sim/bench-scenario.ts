/**
 * The backpressure scenario (issue 7), in virtual time: a fast and a slow
 * HTTP source feed the keyed two-input operator `sum` (their union), which
 * costs virtual time per record (cost.ts), so that the input outruns it and
 * a backlog builds. No faults. One run per checkpoint mode — aligned,
 * unaligned, aligned with an alignment timeout — records every checkpoint
 * as the coordinator's statistics report it, next to the backlog at its
 * trigger, and ends with the oracle's exactly-once check of the committed
 * output. Unlike the local workerd, where every object shares one thread,
 * objects here work concurrently, as on Cloudflare.
 */
import { historyEntry } from "../../src/checkpoint/checkpoint-stats.js";
import { subtaskName } from "../../src/runtime/names.js";
import { NO_FAULTS } from "./faults.js";
import { type InRecord, JOB, type JobShape } from "./jobs.js";
import { Life } from "./loop.js";
import { Expected, Progress, checkRun, leftovers } from "./oracle.js";
import { Rng } from "./prng.js";
import type { Scenario } from "./scenario.js";
import { World } from "./world.js";

/** How a run takes its checkpoints. */
export type CheckpointMode = "aligned" | "unaligned" | "alignment-timeout";

export const MODES: readonly CheckpointMode[] = ["aligned", "unaligned", "alignment-timeout"];

/** The scenario's knobs; {@link DEFAULT_BACKPRESSURE} holds the ones the benchmark and the test use. */
export interface BackpressureOptions {
  readonly seed: number;
  /** Virtual time per record the operator `sum` spends. */
  readonly perRecordMs: number;
  /** Records per second into each partition of the fast source (2 partitions, 2 subtasks) and of the slow one (1), before and after `overloadFromMs`. */
  readonly fastRatePerS: readonly [before: number, after: number];
  readonly slowRatePerS: readonly [before: number, after: number];
  readonly overloadFromMs: number;
  /** Input arrives until this time; then the job drains its backlog. */
  readonly ingestEndMs: number;
  readonly keys: number;
  /** Records per channel message (the job's batchSize). */
  readonly batchSize: number;
  readonly intervalMs: number;
  /** The third mode's `aligned_checkpoint_timeout_ms`. */
  readonly alignmentTimeoutMs: number;
  /** Virtual time allowed, after the input ended, to commit everything. */
  readonly drainLimitMs: number;
  /** Reset the operator's object here (its memory lost): the job fails over and restores the latest checkpoint. */
  readonly resetAtMs?: number;
}

/**
 * `sum` takes 1 ms per record: 1,000 records/s. The input is 625/s for 3 s
 * (no backpressure), then 1,200/s until 15 s: 200/s more than it can take,
 * so the backlog grows by about that much every second. A batch of 25 costs
 * 25 ms, about the duration of an idle checkpoint.
 */
export const DEFAULT_BACKPRESSURE: BackpressureOptions = {
  seed: 7,
  perRecordMs: 1,
  fastRatePerS: [250, 500],
  slowRatePerS: [125, 200],
  overloadFromMs: 3_000,
  ingestEndMs: 15_000,
  keys: 40,
  batchSize: 25,
  intervalMs: 250,
  alignmentTimeoutMs: 50,
  drainLimitMs: 60_000,
};

/**
 * The same job, failed over 4 s into the overload: it restores the latest
 * checkpoint (in the unaligned modes, one with in-flight data, replayed
 * before new input), and its output must still be exactly once.
 */
export const RESTORE_CHECK: BackpressureOptions = { ...DEFAULT_BACKPRESSURE, ingestEndMs: 9_000, resetAtMs: 7_000 };

/** The records waiting for `sum` at one moment. */
export interface Backlog {
  /** Appended to the streams and not processed by `sum`. */
  readonly records: number;
  /** Not read by the sources yet (it waits in the ingestion log). */
  readonly unread: number;
  /** Read by the sources and not processed: in their output buffers, on the wire, or queued in `sum`'s input gate. */
  readonly inFlight: number;
}

/** One checkpoint, as the coordinator's statistics report it, and the backlog at its trigger. */
export interface CheckpointSample {
  readonly id: number;
  readonly status: string;
  readonly type: string;
  readonly triggerMs: number;
  readonly durationMs: number;
  readonly alignmentMs: number;
  readonly startDelayMs: number;
  readonly persistedBytes: number;
  readonly backlog: Backlog;
}

/** One mode's run. */
export interface ModeRun {
  readonly mode: CheckpointMode;
  readonly checkpoints: CheckpointSample[];
  /** Records in the input, and what the oracle found wrong with the committed output (empty: exactly once). */
  readonly records: number;
  readonly failures: string[];
  /** The checkpoint a failover restored, and the in-flight data it held. */
  readonly restored: { readonly id: number; readonly persistedBytes: number } | null;
  /** Virtual time when everything was committed (or the limit). */
  readonly endMs: number;
  /** Virtual time `sum` spent working. */
  readonly busyMs: number;
  readonly events: number;
  readonly wallMs: number;
}

/** The job of every mode: 2 fast channels and 1 slow one into `sum` (parallelism 1), the log sink chained. */
function shape(o: BackpressureOptions, mode: CheckpointMode): JobShape {
  return {
    bounded: false,
    partitionsA: 2,
    parallelismA: 2,
    partitionsB: 1,
    countA: 0,
    countB: 0,
    keys: o.keys,
    processParallelism: 1,
    keyedSink: false,
    sinkParallelism: 1,
    withTotals: false,
    tablePartitions: 1,
    sinkGuarantee: "exactly_once",
    batchSize: o.batchSize,
    maxParallelism: 128,
    checkpoint: {
      intervalMs: o.intervalMs,
      mode: "exactly_once",
      timeoutMs: 120_000,
      maxConcurrent: 1,
      minPauseMs: 0,
      tolerableFailures: 1_000,
      retained: 1,
      incremental: false,
      localRecovery: true,
      unaligned: mode !== "aligned",
      alignedCheckpointTimeoutMs: mode === "alignment-timeout" ? o.alignmentTimeoutMs : 0,
    },
    restartStrategy: { type: "fixed-delay", delayMs: 50 },
  };
}

function scenario(o: BackpressureOptions, mode: CheckpointMode): Scenario {
  return {
    seed: o.seed,
    variant: "none",
    shape: shape(o, mode),
    rates: NO_FAULTS,
    recordsA: 0,
    recordsB: 0,
    ingestEndMs: o.ingestEndMs,
    faultStartMs: 0,
    faultEndMs: 0,
    r2PageSize: 1000,
    faultyStart: false,
    knownBugs: new Set(),
    costs: [{ vertex: "sum", perRecordMs: o.perRecordMs }],
  };
}

/** Appends the input every 10 ms of virtual time, at the rates of the moment; the same records in every mode. */
function feed(w: World, o: BackpressureOptions): Expected {
  const expected = new Expected();
  const rng = new Rng(o.seed).fork("backpressure-input");
  const STEP_MS = 10;
  const streams: { src: string; stream: string; part: number; rate: readonly [number, number] }[] = [
    { src: "a", stream: "in-a", part: 0, rate: o.fastRatePerS },
    { src: "a", stream: "in-a", part: 1, rate: o.fastRatePerS },
    { src: "b", stream: "in-b", part: 0, rate: o.slowRatePerS },
  ];
  for (const s of streams) {
    const partition = w.streams.get(`stream:${s.stream}/partition:${s.part}`)!;
    let off = 0;
    let due = 0;
    for (let at = STEP_MS; at <= o.ingestEndMs; at += STEP_MS) {
      due += ((at <= o.overloadFromMs ? s.rate[0] : s.rate[1]) * STEP_MS) / 1000;
      const records: InRecord[] = [];
      for (; off < Math.floor(due); off++) records.push({ key: `k${rng.int(o.keys)}`, v: rng.int(100), src: s.src, part: s.part, off });
      for (const r of records) expected.add(r);
      if (records.length > 0) w.loop.at(at, () => partition.append(records));
    }
  }
  return expected;
}

/** What waits for `sum` now. */
function backlogNow(w: World): Backlog {
  let appended = 0;
  for (const p of w.streams.values()) appended += p.endOffset;
  let read = 0;
  let processed = 0;
  for (const s of w.subtasks.values()) {
    const task = s.instance.task;
    if (!task) continue;
    if (task.isSource) for (const offset of Object.values(task.metrics().positions ?? {})) read += offset;
    else if (task.vertex.id === "sum") processed += task.chain.recordsIn;
  }
  return { records: appended - processed, unread: appended - read, inFlight: read - processed };
}

/** Runs the scenario in one mode, start to finish, then checks exactly-once. */
export async function runBackpressure(mode: CheckpointMode, o: BackpressureOptions = DEFAULT_BACKPRESSURE): Promise<ModeRun> {
  const wallStart = performance.now();
  const w = new World(scenario(o, mode));
  const expected = feed(w, o);
  const backlogAt = new Map<number, Backlog>();
  const store = w.coordinator.store;
  const insertPending = store.insertPending.bind(store);
  store.insertPending = (id, ...rest) => {
    backlogAt.set(id, backlogNow(w));
    insertPending(id, ...rest);
  };
  const failures: string[] = [];
  const consoleError = console.error;
  console.error = (...args: unknown[]) => w.trace.log("log", args.map(String).join(" ").slice(0, 200));
  try {
    let started: boolean | undefined;
    const client = { name: "client", life: new Life("client", 0) };
    w.loop.at(0, () => {
      w.net.call(w.net.channel(client, w.coordinator.name), "start", [JOB, {}]).then(
        (r) => {
          started = (r as { ok: boolean }).ok;
          if (!started) failures.push(`start: ${JSON.stringify(r)}`);
        },
        (e: unknown) => {
          started = false;
          failures.push(`start: ${(e as Error)?.message ?? e}`);
        },
      );
    });
    await w.loop.run(5_000, () => started !== undefined);
    if (started) {
      const reset = o.resetAtMs;
      if (reset !== undefined) w.loop.at(reset, () => w.subtasks.get(subtaskName(JOB, "sum", 0))?.reset("the scenario's failure"));
      await w.loop.run(o.ingestEndMs);
      const progress = new Progress(w, expected);
      const done = () => progress.complete() && leftovers(w).length === 0;
      const end = await w.loop.run(o.ingestEndMs + o.drainLimitMs, done);
      if (end !== "stopped") failures.push(`drain: not everything committed ${o.drainLimitMs} ms after the input ended`);
      // Late duplicates must have time to show.
      await w.loop.run(w.loop.now() + 400);
      // No faults are injected here, so the oracle's "none landed" is expected.
      failures.push(...checkRun(w, expected).map((f) => f.text).filter((t) => !t.startsWith("faults:")));
    }
    for (const e of w.loop.errors) failures.push(`simulator error: ${(e as Error)?.stack ?? e}`);
    const s = w.coordinator.store.job();
    const failovers = o.resetAtMs === undefined ? 0 : 1;
    if (s.restarts !== failovers) failures.push(`the job failed over ${s.restarts} time(s), not ${failovers} (last error: ${s.lastError})`);
  } finally {
    console.error = consoleError;
  }
  const checkpoints = w.coordinator.store
    .records()
    .filter((r) => !r.isSavepoint)
    .sort((a, b) => a.id - b.id)
    .map((r): CheckpointSample => {
      const h = historyEntry(r);
      return {
        id: r.id,
        status: h.status,
        type: h.checkpoint_type,
        triggerMs: h.trigger_timestamp,
        durationMs: h.end_to_end_duration,
        alignmentMs: h.alignment_duration,
        startDelayMs: h.start_delay,
        persistedBytes: h.persisted_data,
        backlog: backlogAt.get(r.id) ?? { records: 0, unread: 0, inFlight: 0 },
      };
    });
  const sum = [...w.subtasks.values()].find((s) => s.cpu);
  const restore = w.coordinator.store.job().restores.at(-1);
  return {
    mode,
    checkpoints,
    records: expected.size,
    failures,
    restored: restore ? { id: restore.id, persistedBytes: checkpoints.find((c) => c.id === restore.id)?.persistedBytes ?? 0 } : null,
    endMs: w.loop.now(),
    busyMs: sum?.cpu?.busyMsTotal ?? 0,
    events: w.loop.events,
    wallMs: performance.now() - wallStart,
  };
}

/** The nearest-rank quantile; 0 when empty. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

/** The figures of one mode the benchmark prints and the test asserts on. */
export interface ModeSummary {
  readonly mode: CheckpointMode;
  readonly completed: number;
  readonly failed: number;
  readonly unaligned: number;
  /** Median duration of the checkpoints triggered before the overload, and of those triggered in its last third (the largest backlog). */
  readonly earlyMsP50: number;
  readonly lateMsP50: number;
  readonly durationMsP50: number;
  readonly durationMsMax: number;
  readonly alignmentMsMax: number;
  readonly startDelayMsMax: number;
  readonly persistedBytesTotal: number;
  readonly persistedBytesMax: number;
  /** Backlog at the trigger of the last checkpoint before the input ended. */
  readonly backlogAtLast: Backlog;
  readonly exactlyOnce: boolean;
}

/** Early and late as the summary means them. */
export function phaseOf(c: CheckpointSample, o: BackpressureOptions = DEFAULT_BACKPRESSURE): "early" | "late" | "other" {
  if (c.triggerMs < o.overloadFromMs) return "early";
  if (c.triggerMs >= o.ingestEndMs - (o.ingestEndMs - o.overloadFromMs) / 3 && c.triggerMs < o.ingestEndMs) return "late";
  return "other";
}

export function summarize(run: ModeRun, o: BackpressureOptions = DEFAULT_BACKPRESSURE): ModeSummary {
  const done = run.checkpoints.filter((c) => c.status === "COMPLETED");
  const ms = (cs: readonly CheckpointSample[]) => cs.map((c) => c.durationMs);
  const beforeEnd = done.filter((c) => c.triggerMs < o.ingestEndMs);
  return {
    mode: run.mode,
    completed: done.length,
    failed: run.checkpoints.filter((c) => c.status === "FAILED").length,
    unaligned: done.filter((c) => c.type === "UNALIGNED_CHECKPOINT").length,
    earlyMsP50: quantile(ms(done.filter((c) => phaseOf(c, o) === "early")), 0.5),
    lateMsP50: quantile(ms(done.filter((c) => phaseOf(c, o) === "late")), 0.5),
    durationMsP50: quantile(ms(done), 0.5),
    durationMsMax: Math.max(0, ...ms(done)),
    alignmentMsMax: Math.max(0, ...done.map((c) => c.alignmentMs)),
    startDelayMsMax: Math.max(0, ...done.map((c) => c.startDelayMs)),
    persistedBytesTotal: done.reduce((n, c) => n + c.persistedBytes, 0),
    persistedBytesMax: Math.max(0, ...done.map((c) => c.persistedBytes)),
    backlogAtLast: beforeEnd.at(-1)?.backlog ?? { records: 0, unread: 0, inFlight: 0 },
    exactlyOnce: run.failures.length === 0,
  };
}
