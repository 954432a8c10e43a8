/**
 * Completed checkpoints in R2: writing `_metadata` (the commit point),
 * reading it back with its files checked, and deleting what no retained
 * checkpoint references.
 */
import type { CheckpointMetadata } from "../checkpoint/types.js";
import { checkpointIdOfKey, checkpointsRoot, metadataKey, savepointDir, savepointMetadataKey, sharedRoot } from "./layout.js";

/** Bytes a savepoint's copy of a file holds at a time (R2's parts, all of one size but the last). */
const COPY_PART_BYTES = 8 * 1024 * 1024;

/** Files a read checks with one HEAD each; more are checked by listing. */
const HEAD_LOOKUPS_MAX = 32;

/** Why a checkpoint cannot be restored. */
export class CheckpointUnreadableError extends Error {
  constructor(
    message: string,
    readonly reason: "not_found" | "corrupt" | "unsupported_version" | "other_job" | "missing_files" = "corrupt",
  ) {
    super(message);
    this.name = "CheckpointUnreadableError";
  }
}

/** Every state file a checkpoint references. */
export function referencedFiles(m: CheckpointMetadata): string[] {
  const out: string[] = [];
  for (const op of Object.values(m.operators)) for (const h of Object.values(op.keyed)) out.push(...h.files);
  for (const c of Object.values(m.channels ?? {})) out.push(c.file);
  return out;
}

export class CheckpointStore {
  constructor(
    private readonly bucket: R2Bucket,
    private readonly prefix: string,
    private readonly job: string,
  ) {}

  /** Location of a checkpoint's (or savepoint's) metadata, as reported to users. */
  externalPath(checkpointId: number, savepoint = false): string {
    return savepoint ? `r2://${savepointDir(this.prefix, this.job, checkpointId)}` : `r2://${metadataKey(this.prefix, this.job, checkpointId)}`;
  }

  private metadataKeyOf(checkpointId: number, savepoint: boolean): string {
    return savepoint ? savepointMetadataKey(this.prefix, this.job, checkpointId) : metadataKey(this.prefix, this.job, checkpointId);
  }

  /** Writes `_metadata` once; a second write of the same id is refused by R2 and treated as done. */
  async writeMetadata(m: CheckpointMetadata): Promise<void> {
    const body = JSON.stringify(m);
    const key = this.metadataKeyOf(m.checkpointId, m.kind === "SAVEPOINT");
    const put = await this.bucket.put(key, body, { onlyIf: { etagDoesNotMatch: "*" } });
    if (put === null) {
      const existing = await this.bucket.get(key);
      if (!existing || (await existing.text()) !== body) {
        throw new Error(`checkpoint ${m.checkpointId} already has different metadata`);
      }
    }
  }

  /**
   * Makes a natively written savepoint self-contained: copies every state
   * file it references (checkpoint files, possibly an incremental chain) into
   * the savepoint's folder, and returns the metadata pointing at the copies.
   */
  async copyIntoSavepoint(m: CheckpointMetadata): Promise<CheckpointMetadata> {
    const dir = savepointDir(this.prefix, this.job, m.checkpointId);
    const root = checkpointsRoot(this.prefix, this.job);
    const copied = new Map<string, string>();
    for (const f of referencedFiles(m)) {
      if (copied.has(f)) continue;
      const target = `${dir}native/${f.startsWith(root) ? f.slice(root.length) : f}`;
      await this.copy(f, target, `state file ${f} of savepoint ${m.checkpointId}`);
      copied.set(f, target);
    }
    const operators = Object.fromEntries(
      Object.entries(m.operators).map(([uid, op]) => [
        uid,
        {
          ...op,
          keyed: Object.fromEntries(
            Object.entries(op.keyed).map(([sub, h]) => [
              sub,
              { ...h, files: h.files.map((f) => copied.get(f) ?? f), ...(h.runs ? { runs: h.runs.map((r) => ({ ...r, file: copied.get(r.file) ?? r.file })) } : {}) },
            ]),
          ),
        },
      ]),
    );
    const channels = m.channels && Object.fromEntries(Object.entries(m.channels).map(([sub, c]) => [sub, { ...c, file: copied.get(c.file) ?? c.file }]));
    return { ...m, operators, ...(channels ? { channels } : {}) };
  }

  /**
   * Copies an object, holding at most {@link COPY_PART_BYTES} of it at a
   * time: a large run file goes as a multipart upload of ranged reads.
   */
  private async copy(from: string, to: string, what: string): Promise<void> {
    const head = await this.bucket.head(from);
    if (!head) throw new Error(`${what} is missing`);
    const read = async (offset: number, length: number): Promise<ArrayBuffer> => {
      const object = await this.bucket.get(from, { range: { offset, length } });
      if (!object) throw new Error(`${what} is missing`);
      return object.arrayBuffer();
    };
    if (head.size <= COPY_PART_BYTES) {
      await this.bucket.put(to, await read(0, head.size));
      return;
    }
    const upload = await this.bucket.createMultipartUpload(to);
    try {
      const parts: R2UploadedPart[] = [];
      for (let offset = 0; offset < head.size; offset += COPY_PART_BYTES) {
        parts.push(await upload.uploadPart(parts.length + 1, await read(offset, Math.min(COPY_PART_BYTES, head.size - offset))));
      }
      await upload.complete(parts);
    } catch (e) {
      await upload.abort().catch(() => undefined);
      throw e;
    }
  }

  /** Deletes a checkpoint's metadata (one that must not be restored). */
  async deleteMetadata(checkpointId: number, savepoint = false): Promise<void> {
    await this.bucket.delete(this.metadataKeyOf(checkpointId, savepoint));
  }

  /**
   * Reads a checkpoint's (or savepoint's) metadata and checks that every
   * file it references exists. The error says what is wrong: missing,
   * corrupt, another job's, a format version this floe cannot read.
   */
  async read(checkpointId: number, savepoint = false): Promise<CheckpointMetadata> {
    const what = savepoint ? `savepoint ${checkpointId}` : `checkpoint ${checkpointId}`;
    const object = await this.bucket.get(this.metadataKeyOf(checkpointId, savepoint));
    if (!object) throw new CheckpointUnreadableError(`${what} has no _metadata`, "not_found");
    let m: CheckpointMetadata;
    try {
      m = JSON.parse(await object.text()) as CheckpointMetadata;
    } catch {
      throw new CheckpointUnreadableError(`the _metadata of ${what} is corrupt or truncated`, "corrupt");
    }
    if (typeof m !== "object" || m === null || typeof m.operators !== "object") {
      throw new CheckpointUnreadableError(`the _metadata of ${what} is corrupt`, "corrupt");
    }
    if (m.version !== 1) throw new CheckpointUnreadableError(`the _metadata of ${what} has format version ${JSON.stringify(m.version)}; this floe reads version 1`, "unsupported_version");
    if (m.job !== this.job) throw new CheckpointUnreadableError(`${what} belongs to job "${m.job}", not "${this.job}"`, "other_job");
    if (m.checkpointId !== checkpointId) throw new CheckpointUnreadableError(`the _metadata of ${what} names checkpoint ${m.checkpointId}`, "corrupt");
    const missing = await this.missing(referencedFiles(m));
    if (missing.length > 0) throw new CheckpointUnreadableError(`${what} misses ${missing.length} state files, e.g. ${missing[0]}`, "missing_files");
    return m;
  }

  /**
   * The files of `files` that do not exist. A few are looked up one by
   * one; many (run files: a dozen per operator and subtask) by listing the
   * job's checkpoint folder, a thousand keys a call, so that a large job's
   * restore stays far below the platform's subrequests per invocation.
   */
  private async missing(files: readonly string[]): Promise<string[]> {
    const root = checkpointsRoot(this.prefix, this.job);
    const listed = files.filter((f) => f.startsWith(root));
    if (listed.length <= HEAD_LOOKUPS_MAX) {
      const heads = await Promise.all(files.map((f) => this.bucket.head(f)));
      return files.filter((_, i) => heads[i] === null);
    }
    const wanted = new Set(listed);
    let cursor: string | undefined;
    do {
      const page = await this.bucket.list({ prefix: root, cursor });
      for (const o of page.objects) wanted.delete(o.key);
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor && wanted.size > 0);
    const others = files.filter((f) => !f.startsWith(root));
    const heads = await Promise.all(others.map((f) => this.bucket.head(f)));
    return [...wanted, ...others.filter((_, i) => heads[i] === null)];
  }

  /**
   * Deletes the metadata of `discarded` checkpoints and every state file no
   * `retained` checkpoint references, among files no newer than `upToId`
   * (newer files may belong to checkpoints still in progress).
   */
  async collectGarbage(retained: readonly CheckpointMetadata[], discarded: readonly number[], upToId: number): Promise<number> {
    const keep = new Set(retained.flatMap(referencedFiles));
    const doomed = discarded.map((id) => metadataKey(this.prefix, this.job, id));
    let cursor: string | undefined;
    do {
      const page = await this.bucket.list({ prefix: sharedRoot(this.prefix, this.job), cursor });
      for (const o of page.objects) {
        const id = checkpointIdOfKey(o.key);
        if (id !== null && id <= upToId && !keep.has(o.key)) doomed.push(o.key);
      }
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
    for (let i = 0; i < doomed.length; i += 1000) await this.bucket.delete(doomed.slice(i, i + 1000));
    return doomed.length;
  }

  /** Deletes every checkpoint of the job (DELETE_ON_CANCELLATION). */
  async deleteAll(): Promise<void> {
    let cursor: string | undefined;
    do {
      const page = await this.bucket.list({ prefix: checkpointsRoot(this.prefix, this.job), cursor });
      if (page.objects.length > 0) await this.bucket.delete(page.objects.map((o) => o.key));
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
  }
}
