/**
 * Everything a Subtask object does that is not I/O, over {@link SubtaskPorts}:
 * deploys (one at a time, the newest attempt wins, an older one's restore
 * fenced off), the source loop on the alarm (and, for other tasks, the
 * alarm of their earliest processing-time timer), the keep-alive of a deployed
 * task, the restore of keyed state (from the local image, dropping the runs
 * written after the restored checkpoint, or streamed from R2 into it), the
 * image's markers and its background compaction, the sinks' staging rows,
 * and the {@link TaskHost} every task runs on.
 *
 * The Durable Object (`subtask.ts`) and the simulator both run this class;
 * neither copies it.
 *
 * A task lives in memory only. An object that restarted (reset, crash,
 * eviction) has none, answers "lost" to the coordinator's heartbeat and
 * "not-deployed" to senders, and the job fails over to its last completed
 * checkpoint: nothing is silently rebuilt from a state that may be ahead
 * of that checkpoint.
 */
import { FunctionOpenError } from "../operator-chain.js";
import { resolveStateConfig } from "../../api/state-options.js";
import { contains, type KeyGroupRange, overlaps } from "../../graph/key-groups.js";
import { ownHandle, type SubtaskAck } from "../../checkpoint/types.js";
import type { StateBacking, StateEntry } from "../../state/keyed-state.js";
import { SnapshotReader } from "../../state/snapshot-format.js";
import { channelStateKey, runFileKey, savepointStateFileKey, sharedRoot, stateFileKey } from "../../storage/layout.js";
import { utf8Length } from "../../storage/record-limits.js";
import { DEFAULT_IMAGE_CACHE_BYTES, RunImage, type TimerCounts } from "../../storage/run-image.js";
import type { OpenedRunFile } from "../../state/runs/run-file.js";
import type { ChannelMessage, DeliveryResult, DeployResult, RestoreSpec, SubtaskDeployment, SubtaskHealth, TaskMetrics } from "../messages.js";
import { coordinatorName, subtaskName } from "../names.js";
import type { SubtaskPorts, SubtaskPush, TimerHandle } from "./ports.js";
import { createStagingTables, sqlStagingStore } from "./staging-store.js";
import { TaskFiles } from "./task-files.js";
import { type StateFill, Task, type TaskHost } from "./task.js";

/** How long one alarm invocation runs a source before yielding to a fresh alarm. */
export const SOURCE_SLICE_MS = 5_000;

/**
 * How long a deployed task waits for its start in memory at most (the
 * coordinator's deploy timeout). An object that receives no request for
 * about 10 s and has no pending timer may be hibernated, which loses the
 * task; no heartbeat reaches it before the job runs.
 */
export const DEPLOYED_KEEP_ALIVE_MS = 120_000;

/**
 * How long a running task keeps its object in memory after the last
 * heartbeat. A subtask downstream of a busy one may receive nothing for
 * longer than the ≈ 10 s after which an object without requests or
 * pending timers may be hibernated (a window subtask firing a million
 * windows holds the local runtime's one thread that long), and a
 * hibernated object has lost its task. Each heartbeat renews it; the
 * coordinator fails the job over before it runs out (a heartbeat that
 * finds no task).
 */
export const RUNNING_KEEP_ALIVE_MS = 60_000;

/** How long a cancel waits for the uploads of a canceled task before deleting what they wrote. */
export const CANCEL_UPLOAD_WAIT_MS = 5_000;

/**
 * The image's block cache, as a share of the memory budget (within
 * {@link IMAGE_CACHE_BYTES_MIN}..{@link IMAGE_CACHE_BYTES_MAX}): pages of
 * runs are memory beside the budget's entries.
 */
const IMAGE_CACHE_BUDGET_SHARE = 0.25;
const IMAGE_CACHE_BYTES_MIN = 1024 * 1024;
const IMAGE_CACHE_BYTES_MAX = 16 * 1024 * 1024;

/** One Subtask object's logic, for one incarnation of the object (its memory). */
export class SubtaskCore {
  private task: Task | undefined;
  private readonly image: RunImage;
  private sourceRunning = false;
  /** Pending while a deployed task waits for its start, then while it runs and heartbeats come: keeps the object in memory. */
  private keepAlive: TimerHandle | undefined;
  /** Deploys run one at a time; the newest attempt asked for wins. */
  private deploys: Promise<unknown> = Promise.resolve();
  private newestDeployAttempt = 0;
  /** The checkpoint files each task wrote and has not handed over in an ack. */
  private readonly files = new WeakMap<Task, TaskFiles>();

  constructor(private readonly ports: SubtaskPorts) {
    ports.sql.exec(`CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)`);
    createStagingTables(ports.sql);
    this.image = new RunImage(ports.sql, {
      // Background compaction, a page per turn: the simulator may reset the object before any turn.
      pause: () => {
        ports.observer?.merging?.();
        return ports.timers.sleep(0);
      },
      onError: (e) => console.error(`image compaction failed: ${(e as Error)?.message ?? e}`),
      compactionUnpublishesFirst: ports.seams?.mergeDeletesFirst,
      fillChunkBytes: ports.seams?.restoreChunkBytes,
      targetBlockBytes: ports.seams?.imageBlockBytes,
      ...(ports.seams?.restorePauseMs === undefined
        ? {}
        : {
            fillPause: () => {
              ports.observer?.merging?.();
              return ports.timers.sleep(ports.seams!.restorePauseMs!);
            },
          }),
    });
  }

  /** The task of the current deployment, if any. */
  get current(): Task | undefined {
    return this.task;
  }

  /** Prepares this subtask for an attempt, restoring its checkpointed state. Sources start with {@link start}. */
  deploy(deployment: SubtaskDeployment): Promise<DeployResult> {
    this.ports.observer?.deploying?.(deployment);
    this.newestDeployAttempt = Math.max(this.newestDeployAttempt, deployment.attempt);
    if (this.task) void this.close(this.task);
    this.task = undefined;
    // An older attempt still restoring must finish (or give up) before a newer one touches the image and staging.
    const run = this.deploys.then(() => this.deployNow(deployment));
    // The chain only orders deploys: a failed one must not fail the next. Its error is not lost: it
    // reaches this deploy's caller (the coordinator) through the returned `run`.
    this.deploys = run.catch(() => undefined);
    return run;
  }

  private superseded(attempt: number): boolean {
    // The broken variant that must be caught: no fence against a newer attempt.
    return !this.ports.seams?.noDeployFencing && attempt < this.newestDeployAttempt;
  }

  private async deployNow(deployment: SubtaskDeployment): Promise<DeployResult> {
    if (this.superseded(deployment.attempt)) return { ok: false, message: `attempt ${deployment.attempt} was superseded by ${this.newestDeployAttempt}` };
    const job = this.ports.registry.job(deployment.job);
    if (!job) return { ok: false, message: `this Worker has no job "${deployment.job}"` };
    try {
      await this.ports.beforeDeploy?.(deployment);
    } catch (e) {
      // Refused as a function whose open fails: the attempt fails, the restart strategy decides on the next one.
      return { ok: false, message: `subtask ${deployment.vertex}/${deployment.index}: ${(e as Error)?.message ?? e}` };
    }
    this.setMeta("deployment", JSON.stringify({ job: deployment.job, vertex: deployment.vertex, index: deployment.index, attempt: deployment.attempt }));
    // Background compaction stops, and a canceled task's write-back ends, before the image changes under them.
    await this.image.halt();
    const budget = resolveStateConfig(job.options.state, deployment.checkpoint.localRecovery).memoryBudgetBytes;
    this.image.setCacheBytes(budget === undefined ? DEFAULT_IMAGE_CACHE_BYTES : Math.min(IMAGE_CACHE_BYTES_MAX, Math.max(IMAGE_CACHE_BYTES_MIN, Math.floor(budget * IMAGE_CACHE_BUDGET_SHARE))));
    if (!deployment.restore) this.image.clear();
    const files = new TaskFiles(this.ports.bucket);
    const task = new Task(deployment, job, this.host(deployment, files));
    this.files.set(task, files);
    const observer = this.ports.observer;
    observer?.taskCreated?.(task, deployment);
    const restoring = observer?.restoring?.(deployment);
    try {
      await task.restore();
    } catch (e) {
      const where = `subtask ${deployment.vertex}/${deployment.index}`;
      const why = (e as Error)?.message ?? String(e);
      if (e instanceof FunctionOpenError || !deployment.restore) return { ok: false, message: `${where}: ${why}` };
      return { ok: false, message: `${where} could not restore checkpoint ${deployment.restore.checkpointId}: ${why}` };
    } finally {
      restoring?.done();
    }
    // Compaction may go on: runs up to the restored checkpoint are those of a completed one.
    this.image.resume(deployment.restore?.checkpointId ?? 0);
    // A newer deploy may have been asked for while the restore awaited R2.
    if (this.superseded(deployment.attempt)) {
      void this.close(task);
      return { ok: false, message: `attempt ${deployment.attempt} was superseded by ${this.newestDeployAttempt}` };
    }
    this.task = task;
    // Other subtasks may take long to restore (a large state from R2) before the coordinator starts this one.
    this.keepAlive?.cancel();
    this.keepAlive = this.ports.timers.setTimeout(() => (this.keepAlive = undefined), DEPLOYED_KEEP_ALIVE_MS);
    observer?.installed?.(deployment);
    return { ok: true };
  }

  /** Starts reading, for source subtasks of `attempt`. */
  async start(attempt: number): Promise<void> {
    if (this.task?.deployment.attempt !== attempt) return;
    this.keepRunning();
    this.task.start();
    if (this.task.isSource) await this.ports.alarm.set(this.ports.timers.now());
  }

  /** Receives a batch, barrier or end-of-input on one input channel. */
  push(message: ChannelMessage): DeliveryResult | Promise<DeliveryResult> {
    if (!this.task) return "not-deployed";
    if (message.kind === "batch") this.ports.observer?.processing?.();
    return this.task.offer(message);
  }

  /** Starts checkpoint N at this source subtask. */
  triggerCheckpoint(attempt: number, checkpointId: number, triggerMs: number, isSavepoint: boolean, stopAfter = false, drain = false): boolean {
    if (this.task?.deployment.attempt !== attempt) return false;
    return this.task.triggerCheckpoint(checkpointId, triggerMs, isSavepoint, stopAfter, drain);
  }

  async notifyCheckpointComplete(attempt: number, checkpointId: number): Promise<void> {
    if (this.task?.deployment.attempt !== attempt) return;
    // Runs up to this checkpoint may be compacted now: a failover restores it or a later one.
    this.image.kick(checkpointId);
    await this.task.notifyCheckpointComplete(checkpointId);
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
    this.keepRunning();
    return "running";
  }

  /** (Re)starts the running task's keep-alive ({@link RUNNING_KEEP_ALIVE_MS}). */
  private keepRunning(): void {
    this.keepAlive?.cancel();
    this.keepAlive = this.ports.timers.setTimeout(() => (this.keepAlive = undefined), RUNNING_KEEP_ALIVE_MS);
  }

  /** Stops the subtask of `attempt` (or of any attempt when omitted). */
  async cancel(attempt?: number): Promise<void> {
    if (!this.task) return;
    if (attempt !== undefined && this.task.deployment.attempt > attempt) return;
    this.ports.observer?.closing?.();
    const task = this.task;
    this.task = undefined;
    this.keepAlive?.cancel();
    this.keepAlive = undefined;
    await this.ports.alarm.delete();
    // When the cancel is answered, the task writes no more files: a job deleting its checkpoints finds them all.
    await this.close(task);
  }

  /** Cancels `task`: its acks still to come are refused, and the files it wrote and did not hand over are deleted. */
  private close(task: Task): Promise<void> {
    task.cancel();
    return this.files.get(task)?.close(CANCEL_UPLOAD_WAIT_MS, (ms) => this.ports.timers.sleep(ms)) ?? Promise.resolve();
  }

  /** Counters of the running task, if any. */
  metrics(): TaskMetrics | null {
    return this.task?.metrics() ?? null;
  }

  /**
   * The alarm: runs a source for one slice, and sets the next alarm if it
   * has more to read. Any other task set it for its earliest
   * processing-time timer: its input loop fires what is due.
   */
  async alarm(): Promise<void> {
    const task = this.task;
    if (task && !task.isSource) {
      task.onAlarm();
      return;
    }
    if (!task?.isSource || this.sourceRunning || task.state !== "running") return;
    this.sourceRunning = true;
    try {
      const again = await task.runSource(this.ports.timers.now() + SOURCE_SLICE_MS);
      if (again && this.task === task) await this.ports.alarm.set(this.ports.timers.now());
    } finally {
      this.sourceRunning = false;
    }
  }

  private setMeta(k: string, v: string): void {
    this.ports.sql.exec(`INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v`, k, v);
  }

  /** Records that the image holds `checkpointId` of key groups `range` (null: a write-back starts). */
  private markImage(checkpointId: number | null, range: KeyGroupRange, keys?: Readonly<Record<string, number>>, timers?: Readonly<Record<string, TimerCounts>>): void {
    if (checkpointId === null) {
      this.ports.observer?.imageWrite?.();
      return;
    }
    this.image.mark(checkpointId, range, keys ?? {}, timers ?? {});
    this.image.kick();
  }

  /**
   * Loads one operator's restored state: from the local image when it can
   * still reach that checkpoint (dropping the runs written after it), else
   * from R2 into the image.
   */
  private async loadState(
    uid: string,
    spec: RestoreSpec,
    range: KeyGroupRange,
    d: SubtaskDeployment,
  ): Promise<{ backing: StateBacking; fill?: StateFill } | { entries: StateEntry[] }> {
    const handles = spec.keyed[uid] ?? [];
    if (d.checkpoint.localRecovery && !this.ports.seams?.skipLocalRestore?.()) {
      const own = ownHandle(handles, range);
      const keys = this.image.localRestore(uid, spec.checkpointId, range, own?.runs ? own.files : []);
      if (keys !== undefined) {
        // The time index came back with the timers, and the checkpoint counted them; else (an older image) it is rebuilt.
        const timers = this.image.timerCounts(uid, spec.checkpointId) ?? (await this.image.rebuildTimeIndex(uid, spec.checkpointId, () => this.ports.timers.sleep(0)));
        return { backing: this.image.backing(uid, keys, timers) };
      }
    }
    // From R2: each overlapping handle's run files imported as runs, or its chain of state files streamed, oldest
    // file first, into the image as runs of the checkpoint (later files overwrite, deletions are tombstones), in
    // small turns; then read on demand.
    this.image.clearOperator(uid);
    const turn = () => this.ports.timers.sleep(0);
    const restoring = this.image.restoring(uid, spec.checkpointId);
    const read = async (key: string, offset: number, length: number): Promise<Uint8Array> => {
      const object = await this.ports.bucket.get(key, { range: { offset, length } });
      if (!object) throw new Error(`run file ${key} of checkpoint ${spec.checkpointId} is missing`);
      const bytes = new Uint8Array(await object.arrayBuffer());
      if (bytes.length !== length) throw new Error(`run file ${key} of checkpoint ${spec.checkpointId} gave ${bytes.length} bytes at ${offset}, not ${length}`);
      return bytes;
    };
    const overlapping = handles.filter((h) => overlaps(h.keyGroups, range));
    // Every handle lies within the range (no rescale out): their key counts add up to the restored keys.
    const within = overlapping.every((h) => contains(range, h.keyGroups));
    // Lazily, by key, when every handle is of run files and later checkpoints go up as runs (they reference the
    // files instead of reading the whole state): the states' blocks are read as records need them. A file that holds
    // other key groups too (a rescale out) is clipped to the range (docs/state-backend.md, "Lazy restores").
    const lazy =
      d.checkpoint.localRecovery &&
      d.checkpoint.incremental !== false &&
      !this.ports.seams?.eagerRestore?.() &&
      overlapping.length > 0 &&
      overlapping.every((h) => h.runs)
        ? ([] as OpenedRunFile[])
        : undefined;
    for (const handle of overlapping) {
      if (handle.runs) {
        // A native savepoint's copies are the user's to delete: later checkpoints upload their runs again.
        const shared = sharedRoot(d.checkpoint.storagePrefix, d.job);
        await this.image.importRuns(uid, spec.checkpointId, handle.runs, handle.keyGroups, range, read, turn, (file) => file.startsWith(shared), lazy);
        continue;
      }
      for (const key of handle.files) {
        const object = await this.ports.bucket.get(key);
        if (!object) throw new Error(`state file ${key} of checkpoint ${spec.checkpointId} is missing`);
        const reader = new SnapshotReader((e) => restoring.add(e), range);
        const decoder = new TextDecoder();
        for await (const chunk of object.body as AsyncIterable<Uint8Array>) {
          reader.push(decoder.decode(chunk, { stream: true }));
          if (restoring.full) await restoring.flush(turn);
          else await turn();
        }
        reader.push(decoder.decode());
        reader.end();
      }
    }
    await restoring.flush(turn);
    // The time index is derived from the timers, never uploaded: written again from them.
    const timers = await this.image.rebuildTimeIndex(uid, spec.checkpointId, turn);
    // The checkpoint counted the keys of each handle; those of handles within the range add up to the restored keys.
    // A restore that took part of a handle (rescaled out) counts them: now, or, when it opened files lazily, once
    // their blocks are in (the snapshots taken until then wait for that count).
    const opened = lazy !== undefined && lazy.length > 0;
    const known = within ? (lazy ? overlapping.reduce((n, h) => n + h.entries, 0) : handles.length === 0 ? 0 : ownHandle(handles, range)?.entries) : undefined;
    const counter = known === undefined && opened ? this.image.counter(uid) : undefined;
    const fill = opened ? this.image.startFill(uid, lazy, range) : undefined;
    if (fill && counter) {
      const keys = fill.done.then(() => counter(turn));
      keys.catch(() => undefined);
      return { backing: this.image.backing(uid, 0, timers), fill: { ...fill, keys } };
    }
    return { backing: this.image.backing(uid, known ?? (await this.image.count(uid, turn)), timers), ...(fill ? { fill } : {}) };
  }

  /** The host a task of deployment `d` runs on. */
  private host(d: SubtaskDeployment, files: TaskFiles): TaskHost {
    const { bucket, stubs: stubPort, timers, observer } = this.ports;
    const stubs = new Map<string, SubtaskPush>();
    const stub = (vertex: string, index: number) => {
      const name = subtaskName(d.job, vertex, index);
      let s = stubs.get(name);
      if (!s) stubs.set(name, (s = stubPort.subtask(name)));
      return s;
    };
    const coordinator = () => stubPort.coordinator(coordinatorName(d.job));
    const range = d.keyGroupRange ?? { start: 0, end: d.plan.maxParallelism - 1 };
    return {
      env: this.ports.env,
      staging: sqlStagingStore(this.ports.sql, { attempt: d.attempt, observer, seams: this.ports.seams }),
      send: (vertex, index, message) => stub(vertex, index).push(message),
      now: () => timers.now(),
      sleep: (ms) => timers.sleep(ms),
      snapshots: {
        fileKey: (uid, checkpointId) => {
          observer?.snapshotting?.(uid, checkpointId);
          return stateFileKey(d.checkpoint.storagePrefix, d.job, uid, d.index, checkpointId);
        },
        savepointFileKey: (uid, checkpointId) => savepointStateFileKey(d.checkpoint.storagePrefix, d.job, checkpointId, uid, d.index),
        put: async (key, body) => {
          // A Blob keeps the file's bytes out of the JS heap while R2 takes them, and counts them natively.
          const blob = new Blob(body as string[]);
          await files.put(key, blob);
          return blob.size;
        },
        uploadRuns: (uid, checkpointId) => {
          observer?.snapshotting?.(uid, checkpointId);
          const uploader = {
            key: (store: "states" | "timers", run: number) => runFileKey(d.checkpoint.storagePrefix, d.job, uid, d.index, checkpointId, store, run),
            put: (key: string, parts: AsyncIterable<Uint8Array>) => files.putParts(key, parts),
          };
          return this.image.uploadRuns(uid, checkpointId, uploader, () => {
            observer?.imageWrite?.();
            return timers.sleep(0);
          });
        },
        writeImage: (checkpointId) => this.image.begin(checkpointId),
        markImage: (checkpointId, keys, timers) => this.markImage(checkpointId, range, keys, timers),
        pause: () => {
          observer?.imageWrite?.();
          return timers.sleep(0);
        },
      },
      loadState: (uid, spec, r) => this.loadState(uid, spec, r, d),
      // Read only when something was evicted to it (or after a restore, by the backing the restore attached instead).
      imageBacking: (uid) => {
        // A fresh start: the operator's (empty) time index is kept with its timers from now on.
        this.image.startTimeIndex(uid);
        return this.image.backing(uid, 0);
      },
      ...(this.ports.seams?.memoryBudgetBytes !== undefined && d.checkpoint.localRecovery ? { memoryBudgetBytes: this.ports.seams.memoryBudgetBytes } : {}),
      ...(this.ports.seams?.fireSliceTimers !== undefined ? { fireSliceTimers: this.ports.seams.fireSliceTimers } : {}),
      putChannelState: async (checkpointId, body) => {
        const file = channelStateKey(d.checkpoint.storagePrefix, d.job, d.vertex, d.index, checkpointId);
        await files.put(file, body);
        return { file, bytes: utf8Length(body) };
      },
      getChannelState: async (handle) => {
        const object = await bucket.get(handle.file);
        if (!object) throw new Error(`in-flight data ${handle.file} is missing`);
        return object.text();
      },
      acknowledge: async (ack) => {
        if (!files.handOver(filesOf(ack))) throw new Error(`checkpoint ${ack.checkpointId} is not acknowledged: the task was canceled`);
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
        observer?.closing?.();
        await coordinator().reportFinished(d.attempt, d.vertex, d.index);
      },
      timerAlarm: (atMs) => {
        // Only the task of this deployment sets it (sources, which own the alarm otherwise, have no timers).
        if (this.task?.deployment !== d) return;
        void Promise.resolve(this.ports.alarm.set(atMs)).catch(() => undefined);
      },
    };
  }
}

/** The files an ack refers to: the state files of every operator and the in-flight data. */
function* filesOf(ack: SubtaskAck): Iterable<string> {
  for (const h of Object.values(ack.keyed)) yield* h.files;
  if (ack.channelState) yield ack.channelState.file;
}
