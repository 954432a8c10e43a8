/**
 * What an operator harness's `snapshot()` returns and `restore()` takes:
 * the operator's keyed state as the engine's own state files (the format of
 * checkpoints and savepoints, src/state/snapshot-format.ts), its broadcast
 * state, and its watermark. Plain JSON, so that a test can keep one in a
 * file and restore it into the next version of a function (as a savepoint
 * carries state across an upgrade).
 */
import type { KeyGroupRange } from "../graph/key-groups.js";
import type { EntryKind, KeyedStateBackend } from "../state/keyed-state.js";
import { type SnapshotEntry, SnapshotWriter, readSnapshot } from "../state/snapshot-format.js";

/** One operator's state in one harness (one subtask), as JSON. */
export interface OperatorSnapshot {
  /** The operator's uid. */
  readonly uid: string;
  readonly checkpointId: number;
  /** Key groups of the job: a restore needs the same number. */
  readonly maxParallelism: number;
  /** The key groups the harness owned (its subtask's). */
  readonly keyGroups: KeyGroupRange;
  /** The harness's watermark at the snapshot; null before the first. */
  readonly watermarkMs: number | null;
  /** Keyed state (timers included): one state file per keyed operator, by uid. */
  readonly keyedState: Readonly<Record<string, string>>;
  /** Broadcast state as JSON, by uid (broadcast process functions). */
  readonly broadcastState: Readonly<Record<string, string>>;
}

/** A full state file of a backend's entries in `range`, as a checkpoint would write it. */
export function keyedStateFile(uid: string, checkpointId: number, backend: KeyedStateBackend, range: KeyGroupRange): string {
  const capture = backend.capture(range);
  const writer = new SnapshotWriter();
  capture.forEach(0, capture.count, (state: string, kind: EntryKind, key: string, keyGroup: number, valueJson: string) =>
    writer.add(state, kind, keyGroup, key, valueJson),
  );
  return writer.finish({ uid, kind: "full", checkpointId }).join("");
}

/** The entries of state files whose key groups are in `range`, in file order (a later file's entry of a key wins). */
export function entriesIn(files: readonly string[], range: KeyGroupRange): SnapshotEntry[] {
  return files.flatMap((text) => readSnapshot(text, range).entries);
}
