/**
 * What limited an async I/O run (bench/workloads/async-io.ts), from what
 * the lookup server and /proc saw over the run's steady window.
 *
 * An async operator with `c` records of capacity per subtask opens at most
 * min(c, maxConcurrentRequests) requests at once (maxConcurrentRequests
 * ≤ 6: the platform's 6 simultaneous outgoing connections per invocation,
 * src/api/async-function.ts), so `p` subtasks have at most
 *
 *   cap = p × min(c, maxConcurrentRequests)
 *
 * requests open, and by Little's law the results per second are at most
 * cap / latency. The server measures the mean number of requests open
 * (∫ open dt over the window's length) and its mean time to answer; /proc
 * gives each thread's time on a CPU and waiting for one (schedstat). A
 * thread that ran or waited to run nearly all the time could do no more.
 * The first that applies names the limit:
 *
 * 1. `thread`: workerd's busiest thread ran or waited for a CPU ≥
 *    {@link BUSY} of the time. Locally every Durable Object shares its one
 *    JavaScript thread; on a shared machine the waiting is other work's.
 * 2. `server`: the harness's main thread (the server's, which also polls
 *    metrics) ran or waited ≥ {@link BUSY} of the time, or the server took
 *    more than {@link SLOW} × its latency to answer (requests queued in it).
 * 3. `capacity` (c ≤ maxConcurrentRequests) or `connections` (c above
 *    it, at most 6 a subtask): the requests open were ≥ {@link IN_FLIGHT_USED}
 *    of the cap on average. The rest of each request's cycle is the
 *    operator's turnaround: the result emitted, the next request sent.
 * 4. `turnaround`: none of these. The requests open were well below the
 *    cap while neither thread was busy: the time between a result and the
 *    next request (the task's loop, the input batches) limited it.
 */
import type { SchedStat } from "../support/pinning.js";

/** A thread that ran or waited for a CPU this share of the time or more is the limit. */
export const BUSY = 0.9;
/** A server answering this many times slower than its latency is the limit. */
export const SLOW = 2;
/** Requests open at this share of the cap or more: the cap is the limit. */
export const IN_FLIGHT_USED = 0.6;

/** One look at the run, every 100 ms: epoch ms, results so far, and the counters below. */
export interface AsyncSample {
  atMs: number;
  results: number;
  /** The server's cumulative counters (bench/support/slow-server.ts). */
  requests: number;
  answered: number;
  openMs: number;
  serviceMs: number;
  /** workerd's threads, by thread id: time on a CPU and waiting for one so far (empty when /proc showed none). */
  workerdThreads: ReadonlyMap<number, SchedStat>;
  /** The same for the harness's main thread, which runs the server (null when /proc did not show it). */
  serverThread: SchedStat | null;
}

/** How the operator ran. */
export interface AsyncSetup {
  capacity: number;
  parallelism: number;
  maxConcurrentRequests: number;
  latencyMs: number;
}

/** The figures of a run's window, and what limited it. */
export interface AsyncFigures {
  window_s: number;
  results_per_s: number;
  server_requests_per_s: number;
  /** Requests the subtasks may have open at once: parallelism × min(capacity, maxConcurrentRequests). */
  in_flight_cap: number;
  server_mean_open: number;
  /** server_mean_open / in_flight_cap. */
  in_flight_used: number;
  server_answer_ms: number | null;
  /** in_flight_cap / the server's answer time: what the cap allows. */
  ceiling_records_per_s: number | null;
  /** Shares of the window: workerd's busiest thread on a CPU, and waiting for one. */
  workerd_thread_cpu: number | null;
  workerd_thread_wait: number | null;
  /** The same for the server's thread. */
  server_thread_cpu: number | null;
  server_thread_wait: number | null;
  limited_by: "thread" | "server" | "capacity" | "connections" | "turnaround";
  limit: string;
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * The samples that bound the window [fromMs, toMs]: the last at or before
 * its start and the last at or before its end. Null when the window holds
 * fewer than two samples.
 */
export function windowEnds(samples: readonly AsyncSample[], fromMs: number, toMs: number): [AsyncSample, AsyncSample] | null {
  const before = samples.filter((s) => s.atMs <= fromMs);
  const first = before.length > 0 ? before[before.length - 1] : samples.find((s) => s.atMs >= fromMs);
  const upTo = samples.filter((s) => s.atMs <= toMs);
  const last = upTo[upTo.length - 1];
  if (!first || !last || last.atMs <= first.atMs) return null;
  return [first, last];
}

/** A thread's shares of a window of `ms`: on a CPU, and waiting for one. */
function shares(a: SchedStat | undefined | null, b: SchedStat | undefined | null, ms: number): { cpu: number; wait: number } | null {
  if (!a || !b) return null;
  return { cpu: (b.runMs - a.runMs) / ms, wait: (b.waitMs - a.waitMs) / ms };
}

/** workerd's thread that ran most between two samples (its JavaScript thread), with its shares. */
function busiestThread(a: AsyncSample, b: AsyncSample, ms: number): { cpu: number; wait: number } | null {
  let best: { cpu: number; wait: number } | null = null;
  for (const [tid, end] of b.workerdThreads) {
    const s = shares(a.workerdThreads.get(tid), end, ms);
    if (s && (!best || s.cpu > best.cpu)) best = s;
  }
  return best;
}

/** The figures between two samples (see the module's header). */
export function asyncFigures(a: AsyncSample, b: AsyncSample, setup: AsyncSetup): AsyncFigures {
  const ms = b.atMs - a.atMs;
  const answered = b.answered - a.answered;
  const inFlightCap = setup.parallelism * Math.min(setup.capacity, setup.maxConcurrentRequests);
  const meanOpen = (b.openMs - a.openMs) / ms;
  const answerMs = answered > 0 ? (b.serviceMs - a.serviceMs) / answered : null;
  const workerd = busiestThread(a, b, ms);
  const server = shares(a.serverThread, b.serverThread, ms);
  const used = meanOpen / inFlightCap;
  const capLimit = setup.capacity <= setup.maxConcurrentRequests ? "capacity" : "connections";
  const pct = (x: number) => `${Math.round(x * 100)}%`;
  const thread = (t: { cpu: number; wait: number } | null) => (t ? `ran ${pct(t.cpu)} of the time, waited for a CPU ${pct(t.wait)}` : "not seen in /proc");
  const busy = (t: { cpu: number; wait: number } | null) => t !== null && t.cpu + t.wait >= BUSY;
  let limitedBy: AsyncFigures["limited_by"];
  let limit: string;
  if (busy(workerd)) {
    limitedBy = "thread";
    limit = `the thread: workerd's busiest thread ${thread(workerd)} (locally every Durable Object shares one thread)`;
  } else if (busy(server) || (answerMs !== null && answerMs > SLOW * setup.latencyMs)) {
    limitedBy = "server";
    limit = `the server: its thread ${thread(server)}, and it answered in ${answerMs === null ? "–" : round(answerMs, 1)} ms (latency ${setup.latencyMs} ms)`;
  } else if (used >= IN_FLIGHT_USED) {
    limitedBy = capLimit;
    const per = Math.min(setup.capacity, setup.maxConcurrentRequests);
    limit =
      capLimit === "capacity"
        ? `the capacity: ${setup.parallelism} subtasks × capacity ${setup.capacity} = ${inFlightCap} requests at most in flight, ${round(meanOpen, 2)} on average`
        : `the 6 connections: each of ${setup.parallelism} subtasks opens at most ${per} requests at once (maxConcurrentRequests, the platform's 6 outgoing connections per invocation) whatever its capacity (${setup.capacity}): ${inFlightCap} at most in flight, ${round(meanOpen, 2)} on average`;
  } else {
    limitedBy = "turnaround";
    limit = `the operator's turnaround: ${round(meanOpen, 2)} of ${inFlightCap} requests open on average (${pct(used)}) while neither workerd's thread (${thread(workerd)}) nor the server's (${thread(server)}) was busy`;
  }
  const r3 = (x: number | undefined) => (x === undefined ? null : round(x, 3));
  return {
    window_s: round(ms / 1000, 1),
    results_per_s: Math.round(((b.results - a.results) * 1000) / ms),
    server_requests_per_s: Math.round(((b.requests - a.requests) * 1000) / ms),
    in_flight_cap: inFlightCap,
    server_mean_open: round(meanOpen, 2),
    in_flight_used: round(used, 3),
    server_answer_ms: answerMs === null ? null : round(answerMs, 2),
    ceiling_records_per_s: answerMs === null ? null : Math.round((inFlightCap * 1000) / answerMs),
    workerd_thread_cpu: r3(workerd?.cpu),
    workerd_thread_wait: r3(workerd?.wait),
    server_thread_cpu: r3(server?.cpu),
    server_thread_wait: r3(server?.wait),
    limited_by: limitedBy,
    limit,
  };
}
