/**
 * When the next checkpoint may be triggered, and which pending ones have
 * expired: Flink's CheckpointRequestDecider and timeout handling, as pure
 * functions of the configuration and the coordinator's bookkeeping.
 */
import type { CheckpointConfig } from "../api/checkpoint-options.js";

/** What the coordinator knows when it decides. */
export interface SchedulerState {
  /** Trigger times of pending checkpoints. */
  readonly pendingTriggerMs: readonly number[];
  /** When the last checkpoint was triggered (null: never). */
  readonly lastTriggerMs: number | null;
  /** When the last checkpoint completed or failed (null: never). */
  readonly lastEndMs: number | null;
  /** When the job started running in this attempt. */
  readonly runningSinceMs: number;
}

/**
 * Earliest time a periodic checkpoint may be triggered, or null when none
 * may be until a pending one ends (max concurrent reached, or a min pause
 * that counts from an end still to come).
 */
export function nextTriggerMs(c: CheckpointConfig, s: SchedulerState): number | null {
  if (c.intervalMs <= 0) return null;
  if (s.pendingTriggerMs.length >= c.maxConcurrent) return null;
  // A min pause counts from the end of the previous checkpoint, so with one pending there is no end yet.
  if (c.minPauseMs > 0 && s.pendingTriggerMs.length > 0) return null;
  let at = (s.lastTriggerMs ?? s.runningSinceMs) + c.intervalMs;
  if (c.minPauseMs > 0 && s.lastEndMs !== null) at = Math.max(at, s.lastEndMs + c.minPauseMs);
  return at;
}

/**
 * The trigger time a periodic checkpoint due at `dueMs` and triggered at
 * `nowMs` counts from for the next one: its due time, so that the interval
 * runs at a fixed rate and an alarm that fires late does not push every
 * later checkpoint back by its lateness; or `nowMs` when it is later than
 * a whole interval (no burst of checkpoints to catch up).
 */
export function periodicTriggerMark(dueMs: number, nowMs: number, intervalMs: number): number {
  return nowMs - dueMs < intervalMs ? Math.min(dueMs, nowMs) : nowMs;
}

/** Whether a manual trigger (REST, savepoint) may go ahead now. */
export function mayTriggerNow(c: CheckpointConfig, s: SchedulerState): boolean {
  return s.pendingTriggerMs.length < Math.max(1, c.maxConcurrent);
}

/** The time a checkpoint triggered at `triggerMs` expires. */
export function expiresAtMs(c: CheckpointConfig, triggerMs: number): number {
  return triggerMs + c.timeoutMs;
}

/**
 * The tolerable-failure rule: after a checkpoint failure, whether the job
 * must fail over. `consecutiveFailures` counts this failure.
 */
export function exceedsTolerableFailures(c: CheckpointConfig, consecutiveFailures: number): boolean {
  return consecutiveFailures > c.tolerableFailures;
}
