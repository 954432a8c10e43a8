/**
 * The Subtask object: the shell around one running {@link Task}. It
 * receives channel messages and checkpoint signals over RPC, drives source
 * subtasks from its alarm, uploads snapshots to R2, and keeps the local
 * image of its keyed state in SQLite (written at each checkpoint with local
 * recovery on), which makes a restore to the checkpoint it already holds a
 * local read.
 *
 * A task lives in memory only. An object that restarted (reset, crash,
 * eviction) has none, answers "lost" to the coordinator's heartbeat and
 * "not-deployed" to senders, and the job fails over to its last completed
 * checkpoint: nothing is silently rebuilt from a state that may be ahead
 * of that checkpoint.
 */
import { DurableObject } from "cloudflare:workers";
import type { KeyGroupRange } from "../../graph/key-groups.js";
import type { StagingStore } from "../../api/types.js";
import { OPEN_TXN } from "../../connectors/sinks/two-phase-commit.js";
import type { StateBacking, StateEntry } from "../../state/keyed-state.js";
import { ownHandle } from "../../checkpoint/types.js";
import { utf8Length } from "../../storage/record-limits.js";
import { type EncodedEntry, type SnapshotEntry, SnapshotReader } from "../../state/snapshot-format.js";
import { type ImageRow, StateImage } from "../../storage/state-image.js";
import { channelStateKey, savepointStateFileKey, stateFileKey } from "../../storage/layout.js";
import type { FloeEnv } from "../env.js";
import type { ChannelMessage, DeliveryResult, RestoreSpec, SubtaskDeployment, SubtaskHealth, TaskMetrics } from "../messages.js";
import { coordinatorName, subtaskName } from "../names.js";
import type { JobRegistry } from "../registry.js";
import { Task, type TaskHost } from "./task.js";

/** How long one alarm invocation runs a source before yielding to a fresh alarm. */
const SOURCE_SLICE_MS = 5_000;

/**
 * How long a deployed task waits for its start in memory at most (the
 * coordinator's deploy timeout). An object that receives no request for
 * about 10 s and has no pending timer may be hibernated, which loses the
 * task; no heartbeat reaches it before the job runs.
 */
const DEPLOYED_KEEP_ALIVE_MS = 120_000;

/** Base class; `createFloe` subclasses it with the Worker's job registry. */
export abstract class Subtask extends DurableObject<FloeEnv> {
  protected abstract readonly registry: JobRegistry;
  private task: Task | undefined;
  private readonly sql: SqlStorage;
  private readonly image: StateImage;
  private sourceRunning = false;
  /** Whether the image's pending chunks are being merged (one per turn). */
  private merging = false;
  /** Pending while a deployed task waits for its start: keeps the object in memory. */
  private keepAlive: ReturnType<typeof setTimeout> | undefined;

  constructor(ctx: DurableObjectState, env: FloeEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS sink_stage (
      uid TEXT NOT NULL, txn INTEGER NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, bytes INTEGER NOT NULL,
      PRIMARY KEY (uid, txn, seq))`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS sink_sealed (uid TEXT NOT NULL, txn INTEGER NOT NULL, PRIMARY KEY (uid, txn))`);
    this.image = new StateImage(this.sql);
  }

  /** Deploys run one at a time; the newest attempt asked for wins. */
  private deploys: Promise<unknown> = Promise.resolve();
  private newestDeployAttempt = 0;

  /** Prepares this subtask for an attempt, restoring its checkpointed state. Sources start with {@link start}. */
  async deploy(deployment: SubtaskDeployment): Promise<{ ok: true } | { ok: false; message: string }> {
    this.newestDeployAttempt = Math.max(this.newestDeployAttempt, deployment.attempt);
    this.task?.cancel();
    this.task = undefined;
    // An older attempt still restoring must finish (or give up) before a newer one touches the image and staging.
    const run = this.deploys.then(() => this.deployNow(deployment));
    this.deploys = run.catch(() => undefined);
    return run;
  }

  private async deployNow(deployment: SubtaskDeployment): Promise<{ ok: true } | { ok: false; message: string }> {
    if (deployment.attempt < this.newestDeployAttempt) return { ok: false, message: `attempt ${deployment.attempt} was superseded by ${this.newestDeployAttempt}` };
    const job = this.registry.job(deployment.job);
    if (!job) return { ok: false, message: `this Worker has no job "${deployment.job}"` };
    this.setMeta("deployment", JSON.stringify({ job: deployment.job, vertex: deployment.vertex, index: deployment.index, attempt: deployment.attempt }));
    if (!deployment.restore) this.clearImage();
    const task = new Task(deployment, job, this.host(deployment));
    try {
      await task.restore();
    } catch (e) {
      return { ok: false, message: `subtask ${deployment.vertex}/${deployment.index} could not restore checkpoint ${deployment.restore?.checkpointId}: ${(e as Error)?.message ?? e}` };
    }
    // A newer deploy may have been asked for while the restore awaited R2.
    if (deployment.attempt < this.newestDeployAttempt) {
      task.cancel();
      return { ok: false, message: `attempt ${deployment.attempt} was superseded by ${this.newestDeployAttempt}` };
    }
    this.task = task;
    // Other subtasks may take long to restore (a large state from R2) before the coordinator starts this one.
    clearTimeout(this.keepAlive);
    this.keepAlive = setTimeout(() => (this.keepAlive = undefined), DEPLOYED_KEEP_ALIVE_MS);
    return { ok: true };
  }

  /** Starts reading, for source subtasks of `attempt`. */
  async start(attempt: number): Promise<void> {
    if (this.task?.deployment.attempt !== attempt) return;
    clearTimeout(this.keepAlive);
    this.keepAlive = undefined;
    this.task.start();
    if (this.task.isSource) await this.ctx.storage.setAlarm(Date.now());
  }

  /** Receives a batch, barrier or end-of-input on one input channel. */
  push(message: ChannelMessage): DeliveryResult | Promise<DeliveryResult> {
    if (!this.task) return "not-deployed";
    return this.task.offer(message);
  }

  /** Starts checkpoint N at this source subtask. */
  triggerCheckpoint(attempt: number, checkpointId: number, triggerMs: number, isSavepoint: boolean, stopAfter = false): boolean {
    if (this.task?.deployment.attempt !== attempt) return false;
    return this.task.triggerCheckpoint(checkpointId, triggerMs, isSavepoint, stopAfter);
  }

  async notifyCheckpointComplete(attempt: number, checkpointId: number): Promise<void> {
    if (this.task?.deployment.attempt === attempt) await this.task.notifyCheckpointComplete(checkpointId);
  }

  notifyCheckpointAborted(attempt: number, checkpointId: number): void {
    if (this.task?.deployment.attempt === attempt) this.task.notifyCheckpointAborted(checkpointId);
  }

  /** Heartbeat: whether this object still runs the task of `attempt`. */
  ping(attempt: number): SubtaskHealth {
    const t = this.task;
    if (!t || t.deployment.attempt !== attempt) return "lost";
    if (t.state === "finished") return "finished";
    if (t.state === "failed" || t.state === "canceled") return "failed";
    return "running";
  }

  /** Stops the subtask of `attempt` (or of any attempt when omitted). */
  async cancel(attempt?: number): Promise<void> {
    if (!this.task) return;
    if (attempt !== undefined && this.task.deployment.attempt > attempt) return;
    this.task.cancel();
    this.task = undefined;
    clearTimeout(this.keepAlive);
    this.keepAlive = undefined;
    await this.ctx.storage.deleteAlarm();
  }

  /**
   * Resets the object as the platform may at any moment: memory is lost,
   * storage kept. For operators and fault-injection tests.
   */
  reset(): void {
    this.ctx.abort("reset requested");
  }

  /** Counters of the running task, if any. */
  metrics(): TaskMetrics | null {
    return this.task?.metrics() ?? null;
  }

  override async alarm(): Promise<void> {
    const task = this.task;
    if (!task?.isSource || this.sourceRunning || task.state !== "running") return;
    this.sourceRunning = true;
    try {
      const again = await task.runSource(Date.now() + SOURCE_SLICE_MS);
      if (again && this.task === task) await this.ctx.storage.setAlarm(Date.now());
    } finally {
      this.sourceRunning = false;
    }
  }

  private meta(k: string): string | undefined {
    return this.sql.exec<{ v: string }>(`SELECT v FROM meta WHERE k = ?`, k).toArray()[0]?.v;
  }

  private setMeta(k: string, v: string): void {
    this.sql.exec(`INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v`, k, v);
  }

  /** Merges the image's pending chunks into its table, one per turn, while processing goes on. */
  private mergeImage(): void {
    if (this.merging) return;
    this.merging = true;
    const step = () => {
      try {
        if (this.image.mergeStep()) {
          setTimeout(step, 0);
          return;
        }
      } catch (e) {
        // The chunks stay pending: the image is still whole, and the next checkpoint merges again.
        console.error(`image merge failed: ${(e as Error)?.message ?? e}`);
      }
      this.merging = false;
    };
    setTimeout(step, 0);
  }

  private clearImage(): void {
    this.image.clear();
    this.unmarkImage();
  }

  /** The image holds no checkpoint (it is being written, or was cleared). */
  private unmarkImage(): void {
    this.sql.exec(`DELETE FROM meta WHERE k IN ('image', 'image_keys')`);
  }

  /** Loads one operator's restored state: from the local image when it holds exactly that checkpoint, else from R2. */
  private async loadState(
    uid: string,
    spec: RestoreSpec,
    range: KeyGroupRange,
    localRecovery: boolean,
  ): Promise<{ backing: StateBacking } | { entries: StateEntry[] }> {
    const image = this.meta("image");
    const wanted = JSON.stringify({ checkpointId: spec.checkpointId, start: range.start, end: range.end });
    if (localRecovery && image === wanted) {
      const keys = JSON.parse(this.meta("image_keys") ?? "{}") as Record<string, number>;
      return { backing: this.image.backing(uid, keys[uid]) };
    }
    // From R2: stream each overlapping chain, oldest file first, into the image as chunks
    // (later files overwrite, deletions remove; merged in the background), in small turns; then read it on demand.
    this.unmarkImage();
    this.image.clearOperator(uid);
    const handles = spec.keyed[uid] ?? [];
    let batch: SnapshotEntry[] = [];
    const apply = () => {
      this.image.write(uid, restoredRows(batch), true);
      batch = [];
    };
    for (const handle of handles) {
      if (handle.keyGroups.end < range.start || handle.keyGroups.start > range.end) continue;
      for (const key of handle.files) {
        const object = await this.env.CHECKPOINTS.get(key);
        if (!object) throw new Error(`state file ${key} of checkpoint ${spec.checkpointId} is missing`);
        const reader = new SnapshotReader((e) => batch.push(e), range);
        const decoder = new TextDecoder();
        for await (const chunk of object.body as unknown as AsyncIterable<Uint8Array>) {
          reader.push(decoder.decode(chunk, { stream: true }));
          if (batch.length >= 2000) {
            apply();
            await new Promise((r) => setTimeout(r, 0));
          }
        }
        reader.push(decoder.decode());
        reader.end();
        apply();
      }
    }
    // The checkpoint counted the keys of a file written for exactly this range; a rescaled restore counts them.
    return { backing: this.image.backing(uid, handles.length === 0 ? 0 : ownHandle(handles, range)?.entries) };
  }

  /** Staging rows of two-phase-commit sinks, in this object's transactional storage. */
  private stagingStore(): StagingStore {
    const sql = this.sql;
    return {
      append: (uid, txn, rows) => {
        const seq = sql.exec<{ s: number }>(`SELECT COALESCE(MAX(seq), 0) + 1 AS s FROM sink_stage WHERE uid = ? AND txn = ?`, uid, txn).one().s;
        const data = rows.join("\n");
        sql.exec(`INSERT INTO sink_stage (uid, txn, seq, data, bytes) VALUES (?, ?, ?, ?, ?)`, uid, txn, seq, data, utf8Length(data));
      },
      seal: (uid, txn) => {
        sql.exec(`UPDATE sink_stage SET txn = ? WHERE uid = ? AND txn = ?`, txn, uid, OPEN_TXN);
        sql.exec(`INSERT OR IGNORE INTO sink_sealed (uid, txn) VALUES (?, ?)`, uid, txn);
      },
      sealed: (uid) => sql.exec<{ txn: number }>(`SELECT txn FROM sink_sealed WHERE uid = ? ORDER BY txn`, uid).toArray().map((r) => r.txn),
      rows: (uid, txn) =>
        sql
          .exec<{ data: string }>(`SELECT data FROM sink_stage WHERE uid = ? AND txn = ? ORDER BY seq`, uid, txn)
          .toArray()
          .flatMap((r) => (r.data.length === 0 ? [] : r.data.split("\n"))),
      drop: (uid, txn) => {
        sql.exec(`DELETE FROM sink_stage WHERE uid = ? AND txn = ?`, uid, txn);
        sql.exec(`DELETE FROM sink_sealed WHERE uid = ? AND txn = ?`, uid, txn);
      },
      dropAfter: (uid, txn) => {
        sql.exec(`DELETE FROM sink_stage WHERE uid = ? AND (txn > ? OR txn = ?)`, uid, txn, OPEN_TXN);
        sql.exec(`DELETE FROM sink_sealed WHERE uid = ? AND txn > ?`, uid, txn);
      },
      bytes: (uid) => sql.exec<{ b: number | null }>(`SELECT SUM(bytes) AS b FROM sink_stage WHERE uid = ?`, uid).one().b ?? 0,
    };
  }

  private host(d: SubtaskDeployment): TaskHost {
    const env = this.env;
    const stubs = new Map<string, DurableObjectStub<Subtask>>();
    const stub = (vertex: string, index: number) => {
      const name = subtaskName(d.job, vertex, index);
      let s = stubs.get(name);
      if (!s) stubs.set(name, (s = env.SUBTASK.get(env.SUBTASK.idFromName(name))));
      return s;
    };
    const coordinator = () => env.COORDINATOR.get(env.COORDINATOR.idFromName(coordinatorName(d.job)));
    const range = d.keyGroupRange ?? { start: 0, end: d.plan.maxParallelism - 1 };
    return {
      env,
      staging: this.stagingStore(),
      send: (vertex, index, message) => stub(vertex, index).push(message) as Promise<DeliveryResult>,
      now: () => Date.now(),
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      snapshots: {
        fileKey: (uid, checkpointId) => stateFileKey(d.checkpoint.storagePrefix, d.job, uid, d.index, checkpointId),
        savepointFileKey: (uid, checkpointId) => savepointStateFileKey(d.checkpoint.storagePrefix, d.job, checkpointId, uid, d.index),
        put: async (key, body) => {
          // A Blob keeps the file's bytes out of the JS heap while R2 takes them, and counts them natively.
          const blob = new Blob(body as string[]);
          await env.CHECKPOINTS.put(key, blob);
          return blob.size;
        },
        writeImage: (uid, changed) => this.image.writeThrough(uid, changedRows(changed)),
        markImage: (checkpointId, keys) => {
          if (checkpointId === null) this.unmarkImage();
          else {
            this.image.seal();
            this.setMeta("image", JSON.stringify({ checkpointId, start: range.start, end: range.end }));
            if (keys) this.setMeta("image_keys", JSON.stringify(keys));
            else this.sql.exec(`DELETE FROM meta WHERE k = 'image_keys'`);
            this.mergeImage();
          }
        },
        pause: () => new Promise((resolve) => setTimeout(resolve, 0)),
      },
      loadState: (uid, spec, r) => this.loadState(uid, spec, r, d.checkpoint.localRecovery),
      putChannelState: async (checkpointId, body) => {
        const file = channelStateKey(d.checkpoint.storagePrefix, d.job, d.vertex, d.index, checkpointId);
        await env.CHECKPOINTS.put(file, body);
        return { file, bytes: utf8Length(body) };
      },
      getChannelState: async (handle) => {
        const object = await env.CHECKPOINTS.get(handle.file);
        if (!object) throw new Error(`in-flight data ${handle.file} is missing`);
        return object.text();
      },
      acknowledge: async (ack) => {
        await coordinator().acknowledgeCheckpoint(ack);
      },
      decline: async (checkpointId, reason) => {
        await coordinator().declineCheckpoint(d.attempt, checkpointId, reason);
      },
      reportFailure: async (message) => {
        await coordinator().reportFailure(d.attempt, message);
      },
      reportEndOfData: async () => {
        await coordinator().reportEndOfData(d.attempt, d.vertex, d.index);
      },
      reportFinished: async () => {
        await coordinator().reportFinished(d.attempt, d.vertex, d.index);
      },
    };
  }
}

/** Entries captured at a barrier, as image rows. */
function* changedRows(changed: readonly EncodedEntry[]): Iterable<ImageRow> {
  for (const { entry: e, valueJson } of changed) yield { state: e.state, kind: e.kind, key: e.key, keyGroup: e.keyGroup, valueJson };
}

/** Entries read from state files, as image rows (later files overwrite, deletions remove). */
function* restoredRows(entries: readonly SnapshotEntry[]): Iterable<ImageRow> {
  for (const e of entries) yield { state: e.state, kind: e.kind, key: e.key, keyGroup: e.keyGroup, valueJson: e.value === undefined ? null : JSON.stringify(e.value) };
}
