/**
 * Checkpoint statistics in the shape of Flink's REST API
 * (`/jobs/:id/checkpoints`): snake_case, durations in ms, sizes in bytes.
 */
import type { SubtaskAck } from "./types.js";

/** A checkpoint as the coordinator records it. */
export interface CheckpointRecord {
  readonly id: number;
  readonly status: "IN_PROGRESS" | "COMPLETED" | "FAILED";
  readonly isSavepoint: boolean;
  readonly triggerMs: number;
  readonly endMs: number | null;
  readonly numSubtasks: number;
  readonly failure: string | null;
  readonly externalPath: string | null;
  readonly discarded: boolean;
  readonly acks: readonly SubtaskAck[];
}

/** A restore, as recorded. */
export interface RestoreRecord {
  readonly id: number;
  readonly restoreMs: number;
  readonly isSavepoint: boolean;
  readonly externalPath: string | null;
}

const max = (xs: number[]) => (xs.length ? Math.max(...xs) : 0);
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** One history entry. */
export function historyEntry(r: CheckpointRecord) {
  const latestAck = r.acks.length ? Math.max(...r.acks.map((a) => a.ackTimestamp)) : null;
  return {
    id: r.id,
    status: r.status,
    is_savepoint: r.isSavepoint,
    checkpoint_type: r.isSavepoint ? "SAVEPOINT" : r.acks.some((a) => a.unaligned) ? "UNALIGNED_CHECKPOINT" : "CHECKPOINT",
    trigger_timestamp: r.triggerMs,
    latest_ack_timestamp: latestAck,
    end_to_end_duration: (r.endMs ?? latestAck ?? r.triggerMs) - r.triggerMs,
    checkpointed_size: sum(r.acks.map((a) => a.checkpointedBytes)),
    state_size: sum(r.acks.map((a) => a.stateBytes)),
    persisted_data: sum(r.acks.map((a) => a.channelState?.bytes ?? 0)),
    alignment_duration: max(r.acks.map((a) => a.alignmentMs)),
    start_delay: max(r.acks.map((a) => a.startDelayMs)),
    sync_duration: max(r.acks.map((a) => a.syncMs)),
    async_duration: max(r.acks.map((a) => a.asyncMs)),
    num_subtasks: r.numSubtasks,
    num_acknowledged_subtasks: r.acks.length,
    external_path: r.discarded ? null : r.externalPath,
    discarded: r.discarded,
    failure_message: r.failure,
    ...(r.status === "FAILED" ? { failure_timestamp: r.endMs } : {}),
  };
}

/** Per-subtask detail of one checkpoint. */
export function checkpointDetail(r: CheckpointRecord) {
  return {
    ...historyEntry(r),
    subtasks: [...r.acks]
      .sort((a, b) => a.subtask.localeCompare(b.subtask, "en", { numeric: true }))
      .map((a) => ({
        subtask: a.subtask,
        ack_timestamp: a.ackTimestamp,
        end_to_end_duration: a.ackTimestamp - r.triggerMs,
        checkpointed_size: a.checkpointedBytes,
        state_size: a.stateBytes,
        sync_duration: a.syncMs,
        async_duration: a.asyncMs,
        alignment_duration: a.alignmentMs,
        start_delay: a.startDelayMs,
        persisted_data: a.channelState?.bytes ?? 0,
        unaligned: a.unaligned ?? false,
      })),
  };
}

function stats(xs: number[]) {
  if (xs.length === 0) return { min: 0, max: 0, avg: 0, p50: 0, p90: 0, p95: 0, p99: 0, p999: 0 };
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
  return { min: s[0], max: s[s.length - 1], avg: Math.round(sum(s) / s.length), p50: q(0.5), p90: q(0.9), p95: q(0.95), p99: q(0.99), p999: q(0.999) };
}

/** The `GET /v1/jobs/:job/checkpoints` answer. */
export function checkpointOverview(records: readonly CheckpointRecord[], restores: readonly RestoreRecord[], historySize = 100) {
  const sorted = [...records].sort((a, b) => b.id - a.id);
  const completed = sorted.filter((r) => r.status === "COMPLETED");
  const failed = sorted.filter((r) => r.status === "FAILED");
  const latestRestore = restores.length ? restores[restores.length - 1] : null;
  const entries = completed.map(historyEntry);
  return {
    counts: {
      restored: restores.length,
      total: sorted.length,
      in_progress: sorted.filter((r) => r.status === "IN_PROGRESS").length,
      completed: completed.length,
      failed: failed.length,
    },
    latest: {
      completed: completed.find((r) => !r.isSavepoint) ? historyEntry(completed.find((r) => !r.isSavepoint)!) : null,
      savepoint: completed.find((r) => r.isSavepoint) ? historyEntry(completed.find((r) => r.isSavepoint)!) : null,
      failed: failed[0] ? historyEntry(failed[0]) : null,
      restored: latestRestore
        ? { id: latestRestore.id, restore_timestamp: latestRestore.restoreMs, is_savepoint: latestRestore.isSavepoint, external_path: latestRestore.externalPath }
        : null,
    },
    summary: {
      end_to_end_duration: stats(entries.map((e) => e.end_to_end_duration)),
      checkpointed_size: stats(entries.map((e) => e.checkpointed_size)),
      state_size: stats(entries.map((e) => e.state_size)),
      alignment_duration: stats(entries.map((e) => e.alignment_duration)),
    },
    history: sorted.slice(0, historySize).map(historyEntry),
  };
}
