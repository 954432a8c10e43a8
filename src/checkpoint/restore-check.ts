/**
 * Whether a job (possibly a newer version, possibly at another parallelism)
 * may start from a checkpoint or savepoint. State is matched by operator
 * uid, never by position; a key's state finds its subtask by key group, so
 * any parallelism up to maxParallelism restores.
 */
import { FloeError } from "../errors.js";
import type { CheckpointMetadata } from "./types.js";

/** Uids of a snapshot that hold state worth restoring. */
export function statefulUids(m: CheckpointMetadata): string[] {
  const out: string[] = [];
  for (const [uid, op] of Object.entries(m.operators)) {
    const keyed = Object.values(op.keyed).some((h) => h.entries > 0);
    const sources = Object.keys(op.sources).length > 0;
    const inFlight = Object.values(op.inFlight ?? {}).some((r) => r.length > 0);
    const broadcast = op.broadcast?.state !== undefined || op.broadcast?.own !== undefined;
    if (keyed || sources || inFlight || broadcast) out.push(uid);
  }
  return out.sort();
}

/**
 * Throws a FloeError unless the job can restore `m`: same maxParallelism
 * (key groups cannot be re-cut), and every stateful uid of `m` present in
 * the job unless `allowNonRestoredState`.
 */
export function checkRestore(
  m: CheckpointMetadata,
  jobUids: ReadonlySet<string>,
  maxParallelism: number,
  allowNonRestoredState: boolean,
  parallelismOf?: (uid: string) => number | undefined,
): { dropped: string[] } {
  if (m.maxParallelism !== maxParallelism) {
    throw new FloeError(
      "max_parallelism_changed",
      `the snapshot was taken with maxParallelism ${m.maxParallelism}, the job now has ${maxParallelism}: key groups cannot be redistributed across a different maxParallelism`,
    );
  }
  // In-flight data of an unaligned checkpoint belongs to one subtask's channels: it cannot be redistributed.
  if (m.channels && Object.keys(m.channels).length > 0 && parallelismOf) {
    const changed = Object.entries(m.operators).filter(([uid, op]) => parallelismOf(uid) !== undefined && parallelismOf(uid) !== op.parallelism).map(([uid]) => uid);
    if (changed.length > 0) {
      throw new FloeError(
        "unaligned_checkpoint_rescale",
        `the snapshot is an unaligned checkpoint with in-flight data, which cannot be rescaled (parallelism changed for ${changed.join(", ")}); start from a savepoint to rescale`,
      );
    }
  }
  const unmatched = statefulUids(m).filter((uid) => !jobUids.has(uid));
  if (unmatched.length > 0 && !allowNonRestoredState) {
    throw new FloeError(
      "non_restored_state",
      `the snapshot holds state of operators the job no longer has: ${unmatched.join(", ")}; start with allowNonRestoredState to drop it`,
    );
  }
  return { dropped: unmatched };
}
