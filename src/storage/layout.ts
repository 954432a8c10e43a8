/**
 * The R2 layout: the one module that builds object keys.
 *
 *   <prefix>checkpoints/<job>/chk-<id>/_metadata            the commit point of checkpoint <id>
 *   <prefix>checkpoints/<job>/shared/<uid>/<subtask>/chk-<id>.state
 *                                                            keyed state written at checkpoint <id>
 *                                                            (shared: later incremental checkpoints reference it)
 *   <prefix>checkpoints/<job>/shared/<uid>/<subtask>/chk-<id>.<store>-<run>.run
 *                                                            a sorted run of the local image, first uploaded at <id>
 *
 * Keys are immutable: nothing is overwritten, so the latest checkpoint is
 * found by listing, never through a "latest" pointer (R2 allows about one
 * write per second to one key).
 */

/** Root of a job's checkpoints. */
export function checkpointsRoot(prefix: string, job: string): string {
  return `${prefix}checkpoints/${job}/`;
}

/** Folder of checkpoint `id`. */
export function checkpointDir(prefix: string, job: string, checkpointId: number): string {
  return `${checkpointsRoot(prefix, job)}chk-${checkpointId}/`;
}

/** The `_metadata` object of checkpoint `id`. */
export function metadataKey(prefix: string, job: string, checkpointId: number): string {
  return `${checkpointDir(prefix, job, checkpointId)}_metadata`;
}

/** Prefix of every shared state file of a job. */
export function sharedRoot(prefix: string, job: string): string {
  return `${checkpointsRoot(prefix, job)}shared/`;
}

/** The keyed-state file one subtask writes for one operator at one checkpoint. */
export function stateFileKey(prefix: string, job: string, uid: string, subtaskIndex: number, checkpointId: number): string {
  return `${sharedRoot(prefix, job)}${uid}/${subtaskIndex}/chk-${checkpointId}.state`;
}

/**
 * The file of a sorted run of one subtask's local image, uploaded first at
 * checkpoint `checkpointId` (later checkpoints reference it while the run
 * lives): `…/<uid>/<subtask>/chk-<id>.<store>-<run>.run`.
 */
export function runFileKey(prefix: string, job: string, uid: string, subtaskIndex: number, checkpointId: number, store: "states" | "timers", run: number): string {
  return `${sharedRoot(prefix, job)}${uid}/${subtaskIndex}/chk-${checkpointId}.${store}-${run}.run`;
}

/** Checkpoint id of a state file, run file or metadata key, or null when the key is not one. */
export function checkpointIdOfKey(key: string): number | null {
  const m = /\/chk-(\d+)(?:\.state|\.(?:states|timers)-\d+\.run|\/_metadata)$/.exec(key);
  return m ? Number(m[1]) : null;
}

/*
 * Savepoints live apart from checkpoints and are never deleted by the engine:
 *
 *   <prefix>savepoints/<job>/savepoint-<id>/_metadata
 *   <prefix>savepoints/<job>/savepoint-<id>/<uid>/<subtask>.state     full state, canonical format
 */

/** The id users see for the savepoint taken as checkpoint `checkpointId`. */
export function savepointId(checkpointId: number): string {
  return `savepoint-${checkpointId}`;
}

/** The checkpoint id inside a savepoint id, or null when the text is not one. */
export function checkpointIdOfSavepoint(id: string): number | null {
  const m = /^savepoint-(\d{1,15})$/.exec(id);
  return m ? Number(m[1]) : null;
}

/**
 * A savepoint as users may name it: its id (`savepoint-12`), or the
 * location the engine printed for it (`r2://<prefix>savepoints/<job>/savepoint-12/`,
 * with or without the trailing slash or `_metadata`). Answers its checkpoint
 * id and, for a location, the prefix and job it names; null when the text
 * is neither.
 */
export function parseSavepointRef(ref: string): { checkpointId: number; prefix?: string; job?: string } | null {
  const id = checkpointIdOfSavepoint(ref);
  if (id !== null) return { checkpointId: id };
  const m = /^r2:\/\/(.*?)savepoints\/([a-z0-9][a-z0-9_-]{0,62})\/(savepoint-\d{1,15})\/?(?:_metadata)?$/.exec(ref);
  if (!m) return null;
  return { checkpointId: checkpointIdOfSavepoint(m[3])!, prefix: m[1], job: m[2] };
}

/** Folder of a savepoint. */
export function savepointDir(prefix: string, job: string, checkpointId: number): string {
  return `${prefix}savepoints/${job}/${savepointId(checkpointId)}/`;
}

/** The `_metadata` of a savepoint. */
export function savepointMetadataKey(prefix: string, job: string, checkpointId: number): string {
  return `${savepointDir(prefix, job, checkpointId)}_metadata`;
}

/** The state file one subtask writes for one operator in a savepoint. */
export function savepointStateFileKey(prefix: string, job: string, checkpointId: number, uid: string, subtaskIndex: number): string {
  return `${savepointDir(prefix, job, checkpointId)}${uid}/${subtaskIndex}.state`;
}

/** The in-flight data one subtask persisted for an unaligned checkpoint (garbage-collected like state files). */
export function channelStateKey(prefix: string, job: string, vertex: string, subtaskIndex: number, checkpointId: number): string {
  return `${sharedRoot(prefix, job)}_channels/${vertex}/${subtaskIndex}/chk-${checkpointId}.state`;
}
