/**
 * The `GET /v1/jobs/:job/metrics` answer, in the API's snake_case: per
 * vertex (operator chain) totals, throughput and backpressure, and per
 * subtask the raw counters, including sinks and source lag.
 */
import type { TaskMetrics } from "../runtime/messages.js";

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
        source_lag: lags.length > 0 ? lags.reduce((a, b) => a + b, 0) : null,
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
      pending_sink_bytes: m.pendingSinkBytes,
      last_checkpoint_id: m.lastCheckpointId,
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
