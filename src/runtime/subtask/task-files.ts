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

/** Where the files go (the subset of R2 used). */
export interface FileStore {
  put(key: string, body: Blob | string): Promise<unknown>;
  delete(keys: string[]): Promise<unknown>;
}

/** R2 deletes at most 1,000 keys per call. */
const DELETE_BATCH = 1000;

export class TaskFiles {
  private readonly owned = new Set<string>();
  private readonly uploading = new Map<string, Promise<unknown>>();
  private closed = false;

  constructor(private readonly store: FileStore) {}

  /** Writes a file this task owns until an ack hands it over. Refused once the task was canceled. */
  async put(key: string, body: Blob | string): Promise<void> {
    if (this.closed) throw new Error(`the task was canceled: ${key} is not written`);
    this.owned.add(key);
    const upload = this.store.put(key, body);
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
