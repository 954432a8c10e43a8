/**
 * The `GET /v1/jobs/:job/metrics` answer, in the API's snake_case: per
 * vertex (operator chain) totals, throughput and backpressure, and per
 * subtask the raw counters, including sinks and source lag; event time as
 * Flink's Watermarks tab shows it (a vertex's watermark is the minimum of its
 * subtasks'), with its lag behind the clock; timers pending, and the open
 * windows of window operators.
 */
import type { TaskMetrics } from "../runtime/messages.js";
import { END_OF_TIME_MS } from "../time/watermark-strategy.js";

/** Builds the answer from the subtasks' counters; `runningSinceMs` is when the attempt started. */
export function metricsBody(job: string, subtasks: readonly TaskMetrics[], runningSinceMs: number | null, nowMs: number) {
  const seconds = runningSinceMs ? Math.max(0.001, (nowMs - runningSinceMs) / 1000) : null;
  const byVertex = new Map<string, TaskMetrics[]>();
  for (const s of subtasks) {
    let list = byVertex.get(s.vertex);
    if (!list) byVertex.set(s.vertex, (list = []));
    list.push(s);
  }
  const sum = (xs: TaskMetrics[], f: (m: TaskMetrics) => number) => xs.reduce((a, m) => a + f(m), 0);
  return {
    job,
    attempt: subtasks[0]?.attempt ?? null,
    vertices: [...byVertex].map(([id, xs]) => {
      const recordsIn = sum(xs, (m) => m.recordsIn);
      const lags = xs.map((m) => m.sourceLag).filter((l): l is number => l !== null);
      const watermarkMs = vertexWatermark(xs);
      return {
        id,
        parallelism: xs.length,
        records_in: recordsIn,
        records_out: sum(xs, (m) => m.recordsOut),
        records_in_per_s: seconds ? Math.round(recordsIn / seconds) : null,
        backpressured_ms: sum(xs, (m) => m.backpressuredMs),
        /** Subtasks whose input queues are full: they hold their senders back. */
        backpressured_subtasks: xs.filter((m) => m.queuedBatches >= m.inputChannels * 4 && m.inputChannels > 0).length,
        queued_batches: sum(xs, (m) => m.queuedBatches),
        state_keys: sum(xs, (m) => m.stateKeys),
        state_bytes_in_memory: sum(xs, (m) => m.stateBytesInMemory ?? 0),
        state_entries_evicted: sum(xs, (m) => m.stateEntriesEvicted ?? 0),
        state_readbacks: sum(xs, (m) => m.stateReadbacks ?? 0),
        state_stalled_ms: sum(xs, (m) => m.stateStalledMs ?? 0),
        state_restore_blocks_missing: sum(xs, (m) => m.stateRestoreBlocksMissing ?? 0),
        state_restore_blocks: sum(xs, (m) => m.stateRestoreBlocks ?? 0),
        state_restore_demand_reads: sum(xs, (m) => m.stateRestoreDemandReads ?? 0),
        state_restore_wait_ms: sum(xs, (m) => m.stateRestoreWaitMs ?? 0),
        timers_pending: sum(xs, (m) => m.timersPending ?? 0),
        dead_letters: sum(xs, (m) => m.deadLetters ?? 0),
        source_lag: lags.length > 0 ? lags.reduce((a, b) => a + b, 0) : null,
        watermark_ms: watermarkMs,
        watermark_lag_ms: watermarkLag(watermarkMs, nowMs),
        open_windows: openWindows(xs),
        async_io: asyncIo(xs),
      };
    }),
    subtasks: subtasks.map((m) => ({
      vertex: m.vertex,
      index: m.index,
      attempt: m.attempt,
      status: m.status,
      records_in: m.recordsIn,
      records_out: m.recordsOut,
      queued_batches: m.queuedBatches,
      backpressured_ms: m.backpressuredMs,
      positions: m.positions,
      source_lag: m.sourceLag,
      state_keys: m.stateKeys,
      state_bytes_in_memory: m.stateBytesInMemory ?? 0,
      state_entries_evicted: m.stateEntriesEvicted ?? 0,
      state_readbacks: m.stateReadbacks ?? 0,
      state_stalled_ms: m.stateStalledMs ?? 0,
      state_restore_blocks_missing: m.stateRestoreBlocksMissing ?? 0,
      state_restore_blocks: m.stateRestoreBlocks ?? 0,
      state_restore_demand_reads: m.stateRestoreDemandReads ?? 0,
      state_restore_wait_ms: m.stateRestoreWaitMs ?? 0,
      pending_sink_bytes: m.pendingSinkBytes,
      last_checkpoint_id: m.lastCheckpointId,
      watermark_ms: subtaskWatermark(m),
      input_watermark_ms: m.inputWatermarkMs,
      output_watermark_ms: m.outputWatermarkMs,
      watermark_idle: m.watermarkIdle,
      timers_pending: m.timersPending ?? 0,
      dead_letters: m.deadLetters ?? 0,
      open_windows: m.openWindows ?? null,
      async_io: m.asyncIo ? asyncIo([m]) : null,
      sinks: Object.fromEntries(
        Object.entries(m.sinks).map(([uid, s]) => [
          uid,
          {
            pending_staged_bytes: s.pendingStagedBytes,
            sealed_transactions: s.sealedTransactions,
            committed_transactions: s.committedTransactions,
            last_commit_latency_ms: s.lastCommitLatencyMs,
            max_commit_latency_ms: s.maxCommitLatencyMs,
          },
        ]),
      ),
    })),
  };
}

/** A subtask's event time: a source's own watermark, any other's input watermark. */
export function subtaskWatermark(m: TaskMetrics): number | null {
  return m.inputChannels > 0 ? m.inputWatermarkMs : m.outputWatermarkMs;
}

/**
 * A vertex's watermark: the minimum over its subtasks that are not idle (an
 * idle one holds nothing back downstream), null while one of those has none
 * yet. When every one is idle, the minimum over those that have one (a
 * source subtask whose partitions never had a record has none).
 */
export function vertexWatermark(subtasks: readonly TaskMetrics[]): number | null {
  const active = subtasks.filter((m) => !m.watermarkIdle);
  let min: number | null = null;
  for (const m of active.length > 0 ? active : subtasks) {
    const w = subtaskWatermark(m);
    if (w === null) {
      if (active.length > 0) return null;
      continue;
    }
    min = min === null ? w : Math.min(min, w);
  }
  return min;
}

/**
 * How far event time trails the clock: `nowMs` minus the watermark; null
 * without a watermark, or once it reached the end of time (an ended input).
 */
export function watermarkLag(watermarkMs: number | null, nowMs: number): number | null {
  return watermarkMs === null || watermarkMs >= END_OF_TIME_MS ? null : nowMs - watermarkMs;
}

/** An async I/O operator's counters, summed over subtasks; null when the vertex has none. */
function asyncIo(subtasks: readonly TaskMetrics[]): { in_flight: number; requests: number; retries: number; timeouts: number } | null {
  const xs = subtasks.map((m) => m.asyncIo).filter((a) => a !== null && a !== undefined);
  if (xs.length === 0) return null;
  return {
    in_flight: xs.reduce((n, a) => n + a.inFlight, 0),
    requests: xs.reduce((n, a) => n + a.requests, 0),
    retries: xs.reduce((n, a) => n + a.retries, 0),
    timeouts: xs.reduce((n, a) => n + a.timeouts, 0),
  };
}

/** A vertex's open windows: the sum over its subtasks; null when none has a window operator (or all are restoring). */
function openWindows(subtasks: readonly TaskMetrics[]): number | null {
  let n: number | null = null;
  for (const m of subtasks) if (m.openWindows !== null && m.openWindows !== undefined) n = (n ?? 0) + m.openWindows;
  return n;
}
