/**
 * Checkpoint configuration, with Flink's options and meanings
 * (execution.checkpointing.*). Validated when set, so that a bad value is a
 * clear error at start rather than odd behaviour later.
 */
import { FloeError } from "../errors.js";

/** How checkpoints treat records that arrive between barriers. */
export type CheckpointMode = "exactly_once" | "at_least_once";

/** What happens to retained checkpoints when a job is canceled. */
export type ExternalizedCleanup = "retain_on_cancellation" | "delete_on_cancellation";

/** Checkpoint options as a job declares them (all optional). */
export interface CheckpointOptions {
  /** Interval between checkpoint triggers; 0 or absent disables periodic checkpoints. */
  intervalMs?: number;
  mode?: CheckpointMode;
  /** A checkpoint not complete after this long is aborted. */
  timeoutMs?: number;
  /** Minimum time from the end of one checkpoint to the trigger of the next. */
  minPauseMs?: number;
  maxConcurrent?: number;
  /** Failed checkpoints tolerated in a row before the job fails over. */
  tolerableFailures?: number;
  /** Completed checkpoints kept; older ones are deleted with the files no kept one references. */
  retained?: number;
  externalized?: ExternalizedCleanup;
  /** Upload only state changed since the previous checkpoint. */
  incremental?: boolean;
  /** Every this many checkpoints, an incremental chain is materialized in full. */
  fullEvery?: number;
  unaligned?: boolean;
  /** Aligned checkpoints switch to unaligned after this long; 0 means never. */
  alignedCheckpointTimeoutMs?: number;
  /** Key prefix of checkpoint files in the R2 bucket. */
  storagePrefix?: string;
  /**
   * Restore from the subtask's own SQLite image when it holds exactly the
   * checkpoint being restored, instead of downloading it from R2 (Flink's
   * local recovery). R2 stays the source of truth for any other case.
   */
  localRecovery?: boolean;
}

/** Checkpoint options with every default filled in. */
export type CheckpointConfig = Required<CheckpointOptions>;

/** Flink's defaults, where Flink has one. */
export const DEFAULT_CHECKPOINT_CONFIG: CheckpointConfig = {
  intervalMs: 0,
  mode: "exactly_once",
  timeoutMs: 600_000,
  minPauseMs: 0,
  maxConcurrent: 1,
  tolerableFailures: 0,
  retained: 1,
  externalized: "retain_on_cancellation",
  incremental: false,
  fullEvery: 10,
  unaligned: false,
  alignedCheckpointTimeoutMs: 0,
  storagePrefix: "",
  localRecovery: true,
};

const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Fills defaults and validates; throws a FloeError naming the bad option. */
export function resolveCheckpointConfig(...layers: (CheckpointOptions | undefined)[]): CheckpointConfig {
  const c: CheckpointConfig = { ...DEFAULT_CHECKPOINT_CONFIG };
  for (const layer of layers) {
    if (!layer) continue;
    for (const [k, v] of Object.entries(layer)) if (v !== undefined) (c as Record<string, unknown>)[k] = v;
  }
  // Named as the HTTP API spells them (snake_case), with the job option's name beside.
  const bad = (option: string, rule: string, value: unknown) =>
    new FloeError("invalid_config", `checkpoint.${snake(option) === option ? option : `${snake(option)} (${option})`} ${rule}, got ${JSON.stringify(value)}`);
  const integer = (option: keyof CheckpointConfig, min: number) => {
    const v = c[option];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) throw bad(option, `must be an integer ≥ ${min}`, v);
  };
  integer("intervalMs", 0);
  integer("timeoutMs", 1);
  integer("minPauseMs", 0);
  integer("maxConcurrent", 1);
  integer("tolerableFailures", 0);
  integer("retained", 1);
  integer("fullEvery", 1);
  integer("alignedCheckpointTimeoutMs", 0);
  if (c.mode !== "exactly_once" && c.mode !== "at_least_once") {
    throw bad("mode", 'must be "exactly_once" or "at_least_once"', c.mode);
  }
  if (c.externalized !== "retain_on_cancellation" && c.externalized !== "delete_on_cancellation") {
    throw bad("externalized", 'must be "retain_on_cancellation" or "delete_on_cancellation"', c.externalized);
  }
  for (const flag of ["incremental", "unaligned", "localRecovery"] as const) {
    if (typeof c[flag] !== "boolean") throw bad(flag, "must be a boolean", c[flag]);
  }
  if (typeof c.storagePrefix !== "string" || /(^\/|\.\.)/.test(c.storagePrefix)) {
    throw bad("storagePrefix", "must be a relative key prefix", c.storagePrefix);
  }
  if (c.storagePrefix.length > 0 && !c.storagePrefix.endsWith("/")) c.storagePrefix += "/";
  if (c.unaligned && c.mode === "at_least_once") {
    throw new FloeError("invalid_config", "checkpoint.unaligned needs mode exactly_once (at-least-once never aligns)");
  }
  if (c.alignedCheckpointTimeoutMs > 0 && !c.unaligned) {
    throw new FloeError(
      "invalid_config",
      "checkpoint.aligned_checkpoint_timeout_ms (alignedCheckpointTimeoutMs) needs unaligned: true: it is how long a checkpoint stays aligned before it turns unaligned",
    );
  }
  if (c.unaligned && c.maxConcurrent > 1) {
    throw new FloeError(
      "invalid_config",
      `checkpoint.unaligned allows one checkpoint at a time: max_concurrent (maxConcurrent) must be 1, got ${c.maxConcurrent} (a newer barrier overtaking an unfinished one would abort it)`,
    );
  }
  return c;
}
