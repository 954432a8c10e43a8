/**
 * The checkpoint files one task wrote (state files, in-flight data, savepoint
 * files) that no acknowledgement has yet handed to the coordinator.
 *
 * Until its ack is sent, a file belongs to the task: no checkpoint can refer
 * to it. When the task is canceled, the acks still to come are refused and
 * the files it owns are deleted, also those whose upload ends after the
 * cancel, as Flink's tasks discard the state of a snapshot cut short. Without
 * this, a job canceled with `delete_on_cancellation` keeps the files of the
 * checkpoint that was uploading when it stopped; a running job's garbage
 * collection removes such files later, a canceled job's never does.
 */

/** An R2 multipart upload, as far as used. */
export interface MultipartUpload {
  uploadPart(partNumber: number, value: Blob): Promise<{ partNumber: number; etag: string }>;
  complete(parts: { partNumber: number; etag: string }[]): Promise<unknown>;
  abort(): Promise<void>;
}

/** Where the files go (the subset of R2 used). */
export interface FileStore {
  put(key: string, body: Blob | string): Promise<unknown>;
  delete(keys: string[]): Promise<unknown>;
  /** For files given as parts that may be large (run files): R2's multipart upload. */
  createMultipartUpload?(key: string): Promise<MultipartUpload>;
}

/**
 * Bytes of a part of a multipart upload: R2 takes parts of at least
 * 5 MiB (the last may be smaller). A part is held in memory while it
 * uploads and the next is read meanwhile, so that a file of any size
 * costs twice this much memory at a time.
 */
export const UPLOAD_PART_BYTES = 5 * 1024 * 1024;

/** R2 deletes at most 1,000 keys per call. */
const DELETE_BATCH = 1000;

export class TaskFiles {
  private readonly owned = new Set<string>();
  private readonly uploading = new Map<string, Promise<unknown>>();
  private closed = false;

  constructor(private readonly store: FileStore) {}

  /** Writes a file this task owns until an ack hands it over. Refused once the task was canceled. */
  async put(key: string, body: Blob | string): Promise<void> {
    await this.owning(key, () => this.store.put(key, body));
  }

  /** Runs the upload of `key`, which the task owns from now on; deleted if it ends after a cancel. */
  private async owning(key: string, start: () => Promise<unknown>): Promise<void> {
    if (this.closed) throw new Error(`the task was canceled: ${key} is not written`);
    this.owned.add(key);
    const upload = start();
    this.uploading.set(key, upload);
    try {
      await upload;
    } finally {
      this.uploading.delete(key);
      // Ended after the cancel: nobody will refer to it.
      if (this.closed) await this.discard([key]);
    }
  }

  /**
   * Writes a file given as parts, as {@link put} does, holding at most
   * two parts of {@link UPLOAD_PART_BYTES} at a time: one put when it fits
   * in a part, else a multipart upload, reading the next part while the
   * last goes up (aborted if a part fails).
   */
  async putParts(key: string, parts: AsyncIterable<Uint8Array>, partBytes = UPLOAD_PART_BYTES): Promise<void> {
    await this.owning(key, () => this.writeParts(key, parts, partBytes));
    // Ended after the cancel: the file is gone (deleted above), so whoever waits for it must not take it as written.
    if (this.closed) throw new Error(`the task was canceled: ${key} was deleted`);
  }

  private async writeParts(key: string, parts: AsyncIterable<Uint8Array>, partBytes: number): Promise<void> {
    const it = parts[Symbol.asyncIterator]();
    let done = false;
    // What the last part left of the page it ended in.
    let carry: Uint8Array | undefined;
    // Exactly `partBytes` (R2 wants every part but the last of one size, and the last no larger), or what is left.
    const gather = async (): Promise<Blob> => {
      const chunk: Uint8Array<ArrayBuffer>[] = [];
      let size = 0;
      while (size < partBytes) {
        let bytes = carry;
        carry = undefined;
        if (!bytes) {
          const r = await it.next();
          if (r.done) {
            done = true;
            break;
          }
          bytes = r.value;
        }
        if (size + bytes.length > partBytes) {
          carry = bytes.subarray(partBytes - size);
          bytes = bytes.subarray(0, partBytes - size);
        }
        chunk.push(bytes as Uint8Array<ArrayBuffer>);
        size += bytes.length;
      }
      // A part that ended exactly at the end of the input: look ahead so that one put is used when all fits in one.
      if (!done && carry === undefined && size === partBytes) {
        const r = await it.next();
        if (r.done) done = true;
        else carry = r.value;
      }
      return new Blob(chunk);
    };
    try {
      const first = await gather();
      if (done) {
        await this.store.put(key, first);
        return;
      }
      if (!this.store.createMultipartUpload) throw new Error(`${key} needs a multipart upload, which this store does not offer`);
      const upload = await this.store.createMultipartUpload(key);
      // Awaited before the next starts, so that at most two parts are held at a time.
      let sending: Promise<{ partNumber: number; etag: string }> | undefined;
      try {
        const uploaded: { partNumber: number; etag: string }[] = [];
        const send = (part: Blob) => {
          sending = upload.uploadPart(uploaded.length + 1, part);
          // Awaited below; a failure while the next part is gathered must not go unhandled meanwhile.
          sending.catch(() => undefined);
        };
        send(first);
        while (!done || carry !== undefined) {
          // The next part is read while the last one goes up.
          const part = await gather();
          uploaded.push(await sending!);
          sending = undefined;
          if (part.size > 0) send(part);
        }
        if (sending) uploaded.push(await sending);
        await upload.complete(uploaded);
      } catch (e) {
        await upload.abort().catch(() => undefined);
        throw e;
      }
    } finally {
      // A failed upload stops reading its parts: the export's lease on its run ends.
      if (!done) await it.return?.();
    }
  }

  /**
   * An ack naming `keys` is about to be sent: from now on the coordinator
   * owns them. False once the task was canceled (the ack must not be sent:
   * its files are being deleted).
   */
  handOver(keys: Iterable<string>): boolean {
    if (this.closed) return false;
    for (const k of keys) this.owned.delete(k);
    return true;
  }

  /**
   * The task was canceled: no ack from now on; uploads under way are awaited
   * for up to `waitMs`, then every file not handed over is deleted (one that
   * ends later is deleted when it ends).
   */
  async close(waitMs: number, sleep: (ms: number) => Promise<void>): Promise<void> {
    this.closed = true;
    if (this.uploading.size > 0) await Promise.race([Promise.allSettled([...this.uploading.values()]), sleep(waitMs)]);
    // Still uploading: deleted when it ends (a delete before the put lands would be undone by it).
    await this.discard([...this.owned].filter((k) => !this.uploading.has(k)));
  }

  /** Files written and not handed over (for tests and metrics). */
  get pending(): number {
    return this.owned.size;
  }

  private async discard(keys: string[]): Promise<void> {
    const mine = keys.filter((k) => this.owned.delete(k));
    if (mine.length === 0) return;
    // Best effort: an orphan left behind costs storage, not correctness (no checkpoint refers to it).
    for (let i = 0; i < mine.length; i += DELETE_BATCH) await this.deleteBatch(mine.slice(i, i + DELETE_BATCH));
  }

  private async deleteBatch(mine: string[]): Promise<void> {
    await this.store.delete(mine).catch((e: unknown) => console.error(`could not delete ${mine.length} file(s) of a canceled task: ${(e as Error)?.message ?? e}`));
  }
}
