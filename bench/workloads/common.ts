/**
 * What the floe workloads share: polling the engine, sampling a vertex's
 * record count into a per-second series, and reading checkpoint history.
 * Results are plain JSON objects with the field names the Flink peer uses.
 */
import type { Engine } from "../../test/support/engine.js";

/** One result line: `bench` names the workload, `engine` who ran it, `variant` the configuration. */
export interface BenchResult {
  bench: string;
  engine: string;
  variant: string;
  [field: string]: unknown;
}

/** Progress on stderr, so that stdout stays one JSON line per result. */
export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls `fn` until true; throws after `timeoutMs`. A request the local
 * runtime dropped ("fetch failed": workerd's one thread was busy for
 * seconds, e.g. in the synchronous part of a large checkpoint) counts as
 * "not yet".
 */
export async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 300_000, pollMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await fn()) return;
    } catch (e) {
      if (!isDroppedRequest(e)) throw e;
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last: ${String(last)})` : ""}`);
    await sleep(pollMs);
  }
}

/** A request that never got an answer from the local runtime. */
export function isDroppedRequest(e: unknown): boolean {
  return e instanceof TypeError && /fetch failed/.test(e.message);
}

/** The q-quantile (nearest rank) of `xs`; 0 when empty. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

export const round = (x: number, digits = 0) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Starts `job` with `config` overrides (and every operator at `parallelism`, or per uid, when given); throws unless the engine answers 200. */
export async function startJob(engine: Engine, job: string, config: object = {}, parallelism?: number | Record<string, number>): Promise<void> {
  const res = await engine.api(`/v1/jobs/${job}/start`, { method: "POST", json: { config, ...(parallelism === undefined ? {} : { parallelism }) } });
  if (res.status !== 200) throw new Error(`starting ${job} answered ${res.status}: ${await res.text()}`);
}

/** The job status fields the workloads read. */
export interface JobState {
  status: string;
  attempt: number;
  restarts: number;
  last_error: string | null;
}

export async function jobState(engine: Engine, job: string): Promise<JobState> {
  return (await (await engine.api(`/v1/jobs/${job}`)).json()) as JobState;
}

interface MetricsBody {
  vertices: { id: string; records_in: number; records_out: number }[];
  subtasks: { vertex: string; attempt: number; records_in: number; status: string }[];
}

export async function metrics(engine: Engine, job: string): Promise<MetricsBody> {
  return (await (await engine.api(`/v1/jobs/${job}/metrics`)).json()) as MetricsBody;
}

/** A checkpoint history entry (the Flink-shaped statistics). */
export interface CheckpointEntry {
  id: number;
  status: string;
  trigger_timestamp: number;
  end_to_end_duration: number;
  checkpointed_size: number;
  state_size: number;
  sync_duration: number;
  async_duration: number;
  alignment_duration: number;
}

export async function checkpointHistory(engine: Engine, job: string): Promise<CheckpointEntry[]> {
  const body = (await (await engine.api(`/v1/jobs/${job}/checkpoints`)).json()) as { history: CheckpointEntry[] };
  return [...body.history].reverse();
}

/** A count sampled over time: `t_ms` since the clock started, `count` at that moment. */
export interface Sample {
  t_ms: number;
  count: number;
}

/**
 * Samples `read()` every `everyMs` until `done(count)`; the clock starts at
 * the call. Returns the samples and the epoch time the clock started.
 */
export async function sampleUntil(
  read: () => Promise<number>,
  done: (count: number) => boolean,
  o: { everyMs: number; timeoutMs: number; what: string },
): Promise<{ samples: Sample[]; startEpochMs: number }> {
  const startEpochMs = Date.now();
  const t0 = performance.now();
  const samples: Sample[] = [];
  for (;;) {
    let count: number;
    try {
      count = await read();
    } catch (e) {
      if (!isDroppedRequest(e)) throw e;
      continue;
    }
    samples.push({ t_ms: performance.now() - t0, count });
    if (done(count)) return { samples, startEpochMs };
    if (performance.now() - t0 > o.timeoutMs) throw new Error(`timed out waiting for ${o.what} (count ${count})`);
    await sleep(o.everyMs);
  }
}

/**
 * Throughput from samples: `events` over the time from the first sample
 * that saw a record to the first that saw them all.
 */
export function throughput(samples: readonly Sample[], events: number): { events_per_s: number; duration_ms: number; first_record_ms: number } {
  const first = samples.find((s) => s.count > 0);
  const last = samples.find((s) => s.count >= events);
  if (!first || !last) return { events_per_s: 0, duration_ms: 0, first_record_ms: 0 };
  const ms = Math.max(1, last.t_ms - first.t_ms);
  return { events_per_s: Math.round(events / (ms / 1000)), duration_ms: Math.round(ms), first_record_ms: Math.round(first.t_ms) };
}

/**
 * Events per second in each whole second since the first record, from
 * samples (linear interpolation between samples): the plot's series.
 */
export function perSecond(samples: readonly Sample[]): number[] {
  const first = samples.find((s) => s.count > 0);
  if (!first) return [];
  const t0 = first.t_ms - 0;
  const at = (t: number) => {
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1];
      const b = samples[i];
      if (b.t_ms >= t) return a.count + ((b.count - a.count) * (t - a.t_ms)) / Math.max(1e-9, b.t_ms - a.t_ms);
    }
    return samples[samples.length - 1].count;
  };
  const end = samples[samples.length - 1].t_ms;
  const out: number[] = [];
  for (let t = t0; t + 1000 <= end + 1e-6; t += 1000) out.push(Math.round(at(t + 1000) - at(t)));
  return out;
}
