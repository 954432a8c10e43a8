/**
 * Takes the keyed-state part of a subtask's checkpoint: the short
 * synchronous copy at the barrier (values serialized, write-back to the
 * local SQLite image) and the asynchronous upload of state files that
 * follows while processing goes on.
 *
 * Incremental snapshots upload only the entries changed since the previous
 * snapshot, and extend its chain of files; every `fullEvery` snapshots the
 * chain is materialized in full, so that a restore reads a bounded number
 * of files. Uploads run one after another: an increment is only valid if
 * the files before it exist, so a failed upload forces the next snapshot
 * to be full.
 */
import type { CheckpointConfig } from "../api/checkpoint-options.js";
import type { KeyedStateHandle } from "../checkpoint/types.js";
import type { KeyGroupRange } from "../graph/key-groups.js";
import type { KeyedStateBackend } from "./keyed-state.js";
import { utf8Length } from "../storage/record-limits.js";
import { type EncodedEntry, encodeEntries, writeSnapshot } from "./snapshot-format.js";

/** Where the snapshotter writes. */
export interface SnapshotStore {
  /** R2 key of the state file of `uid` at `checkpointId`. */
  fileKey(uid: string, checkpointId: number): string;
  put(key: string, body: string): Promise<void>;
  /** Writes changed entries to the local image, synchronously. */
  writeImage(uid: string, changed: readonly EncodedEntry[]): void;
  /** Records that the local image now holds the state of `checkpointId`, synchronously. */
  markImage(checkpointId: number): void;
}

/** A snapshot after its synchronous part: files to upload and the handles they make. */
export interface PreparedSnapshot {
  readonly checkpointId: number;
  readonly files: readonly { key: string; body: string }[];
  readonly handles: Record<string, KeyedStateHandle>;
  /** Some handle extends an earlier chain, so earlier uploads must have succeeded. */
  readonly dependsOnEarlier: boolean;
  readonly checkpointedBytes: number;
  readonly stateBytes: number;
}

interface ChainState {
  files: string[];
  bytes: number;
  deltas: number;
}

export class KeyedSnapshotter {
  private readonly chains = new Map<string, ChainState>();
  private forceFull = false;
  private uploads: Promise<boolean> = Promise.resolve(true);

  constructor(
    private readonly store: SnapshotStore,
    private readonly config: Pick<CheckpointConfig, "incremental" | "fullEvery">,
    private readonly range: KeyGroupRange,
  ) {}

  /** Sets the chains a restore started from, so that the next increments extend them. */
  restoredFrom(handles: Readonly<Record<string, KeyedStateHandle>>): void {
    for (const [uid, h] of Object.entries(handles)) this.chains.set(uid, { files: [...h.files], bytes: h.stateBytes, deltas: h.files.length - 1 });
  }

  /** The restore could not reuse chains (e.g. rescaled): the next snapshot is full. */
  requireFull(): void {
    this.forceFull = true;
    this.chains.clear();
  }

  /** The synchronous part: serialize, write back to the image, build the files. */
  prepare(checkpointId: number, backends: ReadonlyMap<string, KeyedStateBackend>, forceFull = false): PreparedSnapshot {
    const files: { key: string; body: string }[] = [];
    const handles: Record<string, KeyedStateHandle> = {};
    let dependsOnEarlier = false;
    let checkpointedBytes = 0;
    let stateBytes = 0;
    for (const [uid, backend] of backends) {
      const changed = encodeEntries(backend.takeDirty());
      this.store.writeImage(uid, changed);
      const chain = this.chains.get(uid);
      const full = forceFull || this.forceFull || !this.config.incremental || !chain || chain.deltas + 1 >= this.config.fullEvery;
      let next: ChainState;
      let uploaded = 0;
      if (full) {
        const all = encodeEntries(backend.allEntries());
        if (all.length === 0) next = { files: [], bytes: 0, deltas: 0 };
        else {
          const key = this.store.fileKey(uid, checkpointId);
          const body = writeSnapshot({ uid, kind: "full", checkpointId }, all);
          files.push({ key, body });
          uploaded = utf8Length(body);
          next = { files: [key], bytes: uploaded, deltas: 0 };
        }
      } else if (changed.length === 0) {
        next = chain;
      } else {
        const key = this.store.fileKey(uid, checkpointId);
        const body = writeSnapshot({ uid, kind: "delta", checkpointId }, changed);
        files.push({ key, body });
        uploaded = utf8Length(body);
        dependsOnEarlier = true;
        next = { files: [...chain.files, key], bytes: chain.bytes + uploaded, deltas: chain.deltas + 1 };
      }
      if (!full && next === chain && chain.files.length > 0) dependsOnEarlier = true;
      this.chains.set(uid, next);
      handles[uid] = { files: next.files, keyGroups: this.range, stateBytes: next.bytes, checkpointedBytes: uploaded, entries: backend.size() };
      checkpointedBytes += uploaded;
      stateBytes += next.bytes;
    }
    this.store.markImage(checkpointId);
    this.forceFull = false;
    return { checkpointId, files, handles, dependsOnEarlier, checkpointedBytes, stateBytes };
  }

  /** The asynchronous part: uploads the files, after every earlier upload. */
  upload(s: PreparedSnapshot): Promise<void> {
    const earlier = this.uploads;
    const done = (async () => {
      const earlierOk = await earlier;
      if (!earlierOk && s.dependsOnEarlier) {
        throw new Error(`snapshot ${s.checkpointId} extends files of an earlier snapshot whose upload failed`);
      }
      await Promise.all(s.files.map((f) => this.store.put(f.key, f.body)));
    })();
    this.uploads = done.then(
      () => true,
      () => {
        this.forceFull = true;
        return false;
      },
    );
    return done;
  }
}
