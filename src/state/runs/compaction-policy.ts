/**
 * Which runs to merge, and when: a size-ratio policy (RocksDB's
 * "universal" compaction with a ratio of 1), pure over the runs' sizes.
 *
 * Only runs whose epochs are all ≤ the last completed checkpoint may be
 * merged (a restore to that checkpoint must still find each run whole),
 * except runs of one same epoch above it ({@link planEpochMerge}), and only
 * a window of runs adjacent in age: newest-wins lookups stay
 * right because the output takes the window's place in the order.
 *
 * Going from the newest eligible run towards older ones, a run joins the
 * window while its size is at most `sizeRatio` × the size of the runs
 * newer than it in the window. With a ratio of 1 the runs behave like a
 * binary counter: after c checkpoints that each wrote a run of d bytes,
 * about log2(c) runs remain (sizes d, 2d, 4d, …) and each entry has been
 * rewritten about log2(c) times. As the state saturates (the runs hold
 * the same keys again) the older runs stop growing, so the number of runs
 * stays about log2(S/d) + 1 for a state of S bytes with d changed per
 * checkpoint, and so does the write amplification: ≈8 runs and ≈8× for
 * 1% changed per checkpoint. `maxRuns` caps the count whatever the sizes.
 */

/** A run as the policy sees it. */
export interface PolicyRun {
  readonly id: number;
  readonly seq: number;
  readonly epoch: number;
  readonly bytes: number;
}

/** Parameters of {@link planCompaction}. */
export interface CompactionPolicy {
  /** A run joins a window while its size ≤ sizeRatio × the newer runs' in the window. */
  readonly sizeRatio: number;
  /** More live runs than this: merge the newest eligible ones, whatever their sizes. */
  readonly maxRuns: number;
}

/** The default policy: binary-counter merging, at most 12 runs. */
export const DEFAULT_COMPACTION_POLICY: CompactionPolicy = { sizeRatio: 1, maxRuns: 12 };

/** Runs to merge into one: adjacent in age, oldest first. */
export interface CompactionPlan {
  /** Run ids, oldest first. */
  readonly inputs: readonly number[];
  readonly seqFrom: number;
  readonly seqTo: number;
  /** The window starts at the oldest run: nothing older is left for a tombstone to hide. */
  readonly dropTombstones: boolean;
  readonly reason: "size-ratio" | "max-runs" | "all" | "epoch";
}

/**
 * The next compaction, or undefined when none is due. `runs` are the live
 * runs, oldest first; runs from `blockedSeq` on are out of reach (a write
 * still in flight has that age). `all` merges every eligible run (a full
 * materialization).
 */
export function planCompaction(
  runs: readonly PolicyRun[],
  completedCheckpointId: number,
  blockedSeq = Infinity,
  policy: CompactionPolicy = DEFAULT_COMPACTION_POLICY,
  all = false,
): CompactionPlan | undefined {
  let m = 0;
  while (m < runs.length && runs[m].epoch <= completedCheckpointId && runs[m].seq < blockedSeq) m++;
  if (m < 2) return undefined;
  const plan = (start: number, reason: CompactionPlan["reason"]): CompactionPlan => ({
    inputs: runs.slice(start, m).map((r) => r.id),
    seqFrom: runs[start].seq,
    seqTo: runs[m - 1].seq,
    dropTombstones: start === 0,
    reason,
  });
  if (all) return plan(0, "all");
  let newer = runs[m - 1].bytes;
  let start = m - 1;
  for (let i = m - 2; i >= 0 && runs[i].bytes <= policy.sizeRatio * newer; i--) {
    newer += runs[i].bytes;
    start = i;
  }
  if (start < m - 1) return plan(start, "size-ratio");
  if (runs.length > policy.maxRuns) return plan(Math.max(0, m - (runs.length - policy.maxRuns + 1)), "max-runs");
  return undefined;
}

/** Runs of one epoch above the last completed checkpoint that are merged once there are this many. */
export const SAME_EPOCH_MERGE_RUNS = 4;

/**
 * A merge among runs above the last completed checkpoint, or undefined:
 * adjacent runs of ONE epoch (the flushes between two checkpoints, and the
 * write-back that ends them), once there are {@link SAME_EPOCH_MERGE_RUNS}
 * of them. A restore keeps or drops all runs of an epoch together, so
 * merging them loses no checkpoint a restore can reach; without it, a
 * subtask that flushes often while no checkpoint completes would pile up
 * runs for every read to probe.
 */
export function planEpochMerge(runs: readonly PolicyRun[], completedCheckpointId: number, blockedSeq = Infinity): CompactionPlan | undefined {
  for (let i = 0; i < runs.length && runs[i].seq < blockedSeq; ) {
    if (runs[i].epoch <= completedCheckpointId) {
      i++;
      continue;
    }
    let j = i;
    while (j < runs.length && runs[j].epoch === runs[i].epoch && runs[j].seq < blockedSeq) j++;
    if (j - i >= SAME_EPOCH_MERGE_RUNS) {
      return { inputs: runs.slice(i, j).map((r) => r.id), seqFrom: runs[i].seq, seqTo: runs[j - 1].seq, dropTombstones: i === 0, reason: "epoch" };
    }
    i = Math.max(j, i + 1);
  }
  return undefined;
}
