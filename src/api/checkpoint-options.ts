/**
 * Checkpoint configuration, with Flink's options and meanings
 * (execution.checkpointing.*), described once as a zod schema: it gives the
 * options' type, their defaults, the known keys and the messages. Validated
 * when set, so that a bad value is a clear error at start rather than odd
 * behaviour later.
 */
import { z } from "zod";
import { boolean, integer, objectError, oneOf, optionKeys, optionLabel, parseConfig, show, type Spelling } from "./config-schema.js";

const label = (name: string) => optionLabel("checkpoint.", name);

const mode = oneOf(label("mode"), ["exactly_once", "at_least_once"]);
const externalized = oneOf(label("externalized"), ["retain_on_cancellation", "delete_on_cancellation"]);

/** A key prefix that stays inside the bucket's tree: not absolute, never climbing out. */
const storagePrefix = z
  .string({ error: (issue) => `${label("storagePrefix")} must be a relative key prefix, got ${show(issue.input)}` })
  .refine((p) => !p.startsWith("/") && !p.includes(".."), {
    error: (issue) => `${label("storagePrefix")} must be a relative key prefix (not starting with "/", without ".."), got ${show(issue.input)}`,
  })
  // Keys are built as `${prefix}checkpoints/…`, so a prefix ends with a slash.
  .transform((p) => (p.length > 0 && !p.endsWith("/") ? `${p}/` : p));

const shape = {
  /** Interval between checkpoint triggers; 0 or absent disables periodic checkpoints. */
  intervalMs: integer(label("intervalMs"), 0).default(0),
  /** How checkpoints treat records that arrive between barriers. */
  mode: mode.default("exactly_once"),
  /** A checkpoint not complete after this long is aborted. */
  timeoutMs: integer(label("timeoutMs"), 1).default(600_000),
  /** Minimum time from the end of one checkpoint to the trigger of the next. */
  minPauseMs: integer(label("minPauseMs"), 0).default(0),
  /** Most checkpoints in progress at once. */
  maxConcurrent: integer(label("maxConcurrent"), 1).default(1),
  /** Failed checkpoints tolerated in a row before the job fails over. */
  tolerableFailures: integer(label("tolerableFailures"), 0).default(0),
  /** Completed checkpoints kept; older ones are deleted with the files no kept one references. */
  retained: integer(label("retained"), 1).default(1),
  /** What happens to retained checkpoints when a job is canceled. */
  externalized: externalized.default("retain_on_cancellation"),
  /**
   * Upload only state changed since the previous checkpoint: with local
   * recovery, the image's new runs (the others are referenced); without,
   * a file of the changes extending a chain of state files. False: a full
   * state file each time.
   */
  incremental: boolean(label("incremental")).default(true),
  /** Every this many checkpoints, an incremental chain is materialized in full. */
  fullEvery: integer(label("fullEvery"), 1).default(10),
  /** Unaligned checkpoints: barriers overtake buffered records, which are stored with the checkpoint. */
  unaligned: boolean(label("unaligned")).default(false),
  /** Aligned checkpoints switch to unaligned after this long; 0 means never. */
  alignedCheckpointTimeoutMs: integer(label("alignedCheckpointTimeoutMs"), 0).default(0),
  /** Key prefix of checkpoint files in the R2 bucket. */
  storagePrefix: storagePrefix.default(""),
  /**
   * Restore from the subtask's own SQLite image when it holds exactly the
   * checkpoint being restored, instead of downloading it from R2 (Flink's
   * local recovery). R2 stays the source of truth for any other case.
   */
  localRecovery: boolean(label("localRecovery")).default(true),
};

/** The checkpoint options' names, as a job declares them (camelCase). */
export const CHECKPOINT_OPTION_NAMES = Object.keys(shape) as readonly (keyof typeof shape)[];

/**
 * Every checkpoint option, its default and its bounds, with the rules that
 * tie options together. Parsing fills the defaults.
 */
export const checkpointSchema = z
  .strictObject(shape, { error: objectError("checkpoint options", "checkpoint option", CHECKPOINT_OPTION_NAMES) })
  .superRefine((c, ctx) => {
    if (c.unaligned && c.mode === "at_least_once") {
      ctx.addIssue({ code: "custom", message: "checkpoint.unaligned needs mode exactly_once (at-least-once never aligns)" });
    } else if (c.alignedCheckpointTimeoutMs > 0 && !c.unaligned) {
      ctx.addIssue({
        code: "custom",
        message:
          "checkpoint.aligned_checkpoint_timeout_ms (alignedCheckpointTimeoutMs) needs unaligned: true: it is how long a checkpoint stays aligned before it turns unaligned",
      });
    } else if (c.unaligned && c.maxConcurrent > 1) {
      ctx.addIssue({
        code: "custom",
        message: `checkpoint.unaligned allows one checkpoint at a time: max_concurrent (maxConcurrent) must be 1, got ${c.maxConcurrent} (a newer barrier overtaking an unfinished one would abort it)`,
      });
    }
  });

/** How checkpoints treat records that arrive between barriers. */
export type CheckpointMode = z.output<typeof mode>;

/** What happens to retained checkpoints when a job is canceled. */
export type ExternalizedCleanup = z.output<typeof externalized>;

/** Checkpoint options as a job declares them (all optional). */
export type CheckpointOptions = z.input<typeof checkpointSchema>;

/** Checkpoint options with every default filled in. */
export type CheckpointConfig = z.output<typeof checkpointSchema>;

/** Flink's defaults, where Flink has one. */
export const DEFAULT_CHECKPOINT_CONFIG: CheckpointConfig = checkpointSchema.parse({});

/**
 * The keys of one layer of checkpoint options in its spelling: the job's
 * (camelCase) or the `config.checkpoint` of a start request (snake_case).
 * Values are left to {@link checkpointSchema}, once the layers are merged.
 */
export function checkpointOptionKeys(spelling: Spelling, where: string) {
  return optionKeys(CHECKPOINT_OPTION_NAMES, spelling, { where, noun: "checkpoint option" });
}

const jobLayer = checkpointOptionKeys("camelCase", "checkpoint options");

/**
 * Merges layers of options (a later layer wins option by option, an
 * undefined option is no option), fills the defaults and validates the
 * result; throws a FloeError("invalid_config") naming the bad option.
 */
export function resolveCheckpointConfig(...layers: (CheckpointOptions | undefined)[]): CheckpointConfig {
  const merged: Record<string, unknown> = {};
  for (const layer of layers) {
    if (layer === undefined) continue;
    for (const [k, v] of Object.entries(parseConfig(jobLayer, layer))) if (v !== undefined) merged[k] = v;
  }
  return parseConfig(checkpointSchema, merged);
}

