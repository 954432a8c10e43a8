/**
 * A completed checkpoint's metadata, both ways: {@link buildMetadata} turns
 * the acks of every subtask into the `_metadata` the coordinator writes as
 * the commit point, and {@link restoreSpecFor} takes from it the part one
 * subtask restores. Pure: the coordinator does the I/O.
 */
import { overlaps } from "../graph/key-groups.js";
import type { ExecutionPlan } from "../graph/plan.js";
import type { RestoreSpec } from "../runtime/messages.js";
import type { BroadcastSnapshot } from "../state/broadcast-state.js";
import type { ChannelStateHandle, CheckpointMetadata, KeyedStateHandle, OperatorState, SubtaskAck } from "./types.js";

/** The parallelism of every operator uid in `plan` (Flink records it per operator in a checkpoint). */
export function parallelismByUid(plan: ExecutionPlan): Map<string, number> {
  const out = new Map<string, number>();
  for (const v of plan.vertices) for (const uid of v.uids) out.set(uid, v.parallelism);
  return out;
}

/** What a checkpoint's metadata is built from. */
export interface CompletedCheckpointInput {
  readonly plan: ExecutionPlan;
  readonly checkpointId: number;
  readonly attempt: number;
  readonly isSavepoint: boolean;
  readonly triggerMs: number;
  readonly completedMs: number;
  /** Every expected subtask's ack, in a stable order (the metadata's key order follows it). */
  readonly acks: Iterable<SubtaskAck>;
}

/** The `_metadata` of a checkpoint whose every subtask acknowledged: per operator uid, each subtask's part. */
export function buildMetadata(c: CompletedCheckpointInput): CheckpointMetadata {
  type Mutable = {
    parallelism: number;
    keyed: Record<string, KeyedStateHandle>;
    sources: Record<string, Record<string, number>>;
    sinks: Record<string, unknown>;
    inFlight?: Record<string, readonly unknown[]>;
    watermarks?: Record<string, number | null>;
    broadcast?: { state?: BroadcastSnapshot; own?: Record<string, BroadcastSnapshot> };
  };
  const operators: Record<string, Mutable> = {};
  const parallelismOf = parallelismByUid(c.plan);
  const op = (uid: string) => (operators[uid] ??= { parallelism: parallelismOf.get(uid) ?? 1, keyed: {}, sources: {}, sinks: {} });
  const channels: Record<string, ChannelStateHandle> = {};
  for (const a of c.acks) {
    if (a.channelState) channels[a.subtask] = a.channelState;
    for (const [uid, h] of Object.entries(a.keyed)) {
      op(uid).keyed[a.subtask] = h;
      // Keyed operators are where lateness is judged (windows, event-time timers): each keeps its subtask's watermark.
      (op(uid).watermarks ??= {})[a.subtask] = a.watermarkMs ?? null;
    }
    for (const [uid, positions] of Object.entries(a.sources)) {
      op(uid).sources[a.subtask] = positions;
      // A source keeps the watermark it had sent: restored, it sends it again before the records after its offsets.
      (op(uid).watermarks ??= {})[a.subtask] = a.watermarkMs ?? null;
    }
    for (const [uid, txn] of Object.entries(a.sinks)) op(uid).sinks[a.subtask] = txn;
    for (const [uid, records] of Object.entries(a.inFlight ?? {})) if (records.length > 0) (op(uid).inFlight ??= {})[a.subtask] = records;
    for (const [uid, state] of Object.entries(a.broadcast ?? {})) {
      const b = (op(uid).broadcast ??= {});
      if (subtaskIndexOf(a.subtask) === 0) b.state = state;
      else (b.own ??= {})[a.subtask] = state;
    }
  }
  // Broadcast state is kept once per operator: another subtask's copy only where it differs from subtask 0's.
  for (const o of Object.values(operators)) {
    if (!o.broadcast?.own) continue;
    const shared = JSON.stringify(o.broadcast.state ?? {});
    for (const [s, state] of Object.entries(o.broadcast.own)) if (JSON.stringify(state) === shared) delete o.broadcast.own[s];
    if (Object.keys(o.broadcast.own).length === 0) delete o.broadcast.own;
  }
  // Without event time (no subtask had a watermark) the metadata stays as it was before watermarks were kept.
  for (const o of Object.values(operators)) if (o.watermarks && Object.values(o.watermarks).every((w) => w === null)) delete o.watermarks;
  return {
    version: 1,
    job: c.plan.job,
    checkpointId: c.checkpointId,
    kind: c.isSavepoint ? "SAVEPOINT" : "CHECKPOINT",
    triggerTimestamp: c.triggerMs,
    completedTimestamp: c.completedMs,
    attempt: c.attempt,
    maxParallelism: c.plan.maxParallelism,
    operators: operators as Record<string, OperatorState>,
    ...(Object.keys(channels).length > 0 ? { channels } : {}),
  };
}

/**
 * The part of checkpoint `m` that a subtask owning key groups `range` of a
 * vertex with operators `uids` restores: the keyed state handles that
 * overlap its range (all of them after a rescale), every source position
 * of its operators (a source subtask keeps those of the partitions it
 * reads), its own in-flight data of an unaligned checkpoint, and the
 * watermark it starts from: the lowest of the old subtasks' whose keys it
 * gets (so never above the watermark any of its keys had), none when one
 * of them had none.
 */
export function restoreSpecFor(
  m: CheckpointMetadata,
  uids: readonly string[],
  range: { start: number; end: number },
  subtask?: string,
  position?: SubtaskPosition,
): RestoreSpec {
  const keyed: Record<string, KeyedStateHandle[]> = {};
  const sources: Record<string, Record<string, number>> = {};
  const inFlight: Record<string, readonly unknown[]> = {};
  const broadcast: Record<string, BroadcastSnapshot> = {};
  // Undefined until a keyed operator's subtask is seen; null once one had no watermark (or the metadata predates them).
  let watermarkMs: number | null | undefined;
  for (const uid of uids) {
    const op = m.operators[uid];
    if (!op) continue;
    keyed[uid] = Object.values(op.keyed).filter((h) => overlaps(h.keyGroups, range));
    const positions: Record<string, number> = {};
    for (const p of Object.values(op.sources)) Object.assign(positions, p);
    sources[uid] = positions;
    if (Object.keys(op.sources).length > 0 && op.watermarks) {
      // A source subtask: its own watermark at the same parallelism, else the lowest (its partitions may come from any).
      const own = subtask !== undefined && position?.parallelism === op.parallelism ? op.watermarks[subtask] : undefined;
      const ws = own !== undefined ? [own] : Object.values(op.watermarks);
      const w = ws.some((x) => x === null) ? null : Math.min(...(ws as number[]));
      watermarkMs = w === null || watermarkMs === null ? null : Math.min(watermarkMs ?? w, w);
    }
    const records = op.inFlight ? inFlightFor(op.inFlight, op.parallelism, subtask, position) : [];
    if (records.length > 0) inFlight[uid] = records;
    if (op.broadcast) {
      // Its own copy at the same parallelism (it differs only after an unaligned part), else the operator's.
      const own = subtask !== undefined && position?.parallelism === op.parallelism ? op.broadcast.own?.[subtask] : undefined;
      const state = own ?? op.broadcast.state;
      if (state) broadcast[uid] = state;
    }
    for (const [s, h] of Object.entries(op.keyed)) {
      if (!overlaps(h.keyGroups, range)) continue;
      const w = op.watermarks?.[s] ?? null;
      watermarkMs = w === null || watermarkMs === null ? null : Math.min(watermarkMs ?? w, w);
    }
  }
  return {
    checkpointId: m.checkpointId,
    keyed,
    sources,
    channelState: (subtask && m.channels?.[subtask]) || null,
    ...(watermarkMs != null ? { watermarkMs } : {}),
    ...(Object.keys(inFlight).length > 0 ? { inFlight } : {}),
    ...(Object.keys(broadcast).length > 0 ? { broadcast } : {}),
  };
}

/** Where a restoring subtask stands in its vertex. */
export interface SubtaskPosition {
  readonly index: number;
  readonly parallelism: number;
}

/**
 * An async I/O operator's records for one restoring subtask: its own
 * subtask's (same id) at the same parallelism; after a rescale, every old
 * subtask's records in subtask order, dealt round-robin (the j-th to
 * subtask j mod parallelism), so each record is requested again by exactly
 * one subtask (Flink redistributes operator list state the same way).
 */
export function inFlightFor(
  bySubtask: Readonly<Record<string, readonly unknown[]>>,
  oldParallelism: number,
  subtask: string | undefined,
  position: SubtaskPosition | undefined,
): readonly unknown[] {
  if (position === undefined || position.parallelism === oldParallelism) return (subtask && bySubtask[subtask]) || [];
  const all = Object.keys(bySubtask)
    .sort((a, b) => subtaskIndexOf(a) - subtaskIndexOf(b))
    .flatMap((id) => bySubtask[id]);
  return all.filter((_, j) => j % position.parallelism === position.index);
}

/** The index of subtask id `vertex/index`. */
function subtaskIndexOf(id: string): number {
  return Number(id.slice(id.lastIndexOf("/") + 1));
}
