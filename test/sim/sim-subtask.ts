/**
 * A Subtask object in memory: the shell of src/runtime/subtask.ts, method
 * for method, around the real {@link Task}. Its storage (the SQLite tables
 * meta, sink_stage, sink_sealed, keyed_state) is {@link SubtaskStorage},
 * which outlives resets; its memory (the task, the source-loop flag) is one
 * {@link SubtaskInstance} per incarnation, as workerd builds a new object
 * after a reset. Time, timers and I/O go through the simulator.
 *
 * Deviations, all without effect on the protocol: state files are handed to
 * R2 as one string instead of a Blob; the SQL statements are reimplemented
 * over maps (with SQLite's uniqueness errors); lifecycle hooks tell the
 * fault injector where the object is.
 */
import type { StagingStore } from "../../src/api/types.js";
import { OPEN_TXN } from "../../src/connectors/sinks/two-phase-commit.js";
import type { KeyGroupRange } from "../../src/graph/key-groups.js";
import type { ChannelMessage, DeliveryResult, RestoreSpec, SubtaskDeployment, SubtaskHealth, TaskMetrics } from "../../src/runtime/messages.js";
import { coordinatorName, subtaskName } from "../../src/runtime/names.js";
import type { JobRegistry } from "../../src/runtime/registry.js";
import { Task, type TaskHost } from "../../src/runtime/subtask/task.js";
import type { StateBacking, StateEntry } from "../../src/state/keyed-state.js";
import { type SnapshotEntry, SnapshotReader } from "../../src/state/snapshot-format.js";
import { channelStateKey, savepointStateFileKey, stateFileKey } from "../../src/storage/layout.js";
import { utf8Length } from "../../src/storage/record-limits.js";
import { AlarmSlot } from "./alarm.js";
import { Cpu, costPerRecordMs, meterGate } from "./cost.js";
import { SubtaskStorage, k2, k3 } from "./subtask-storage.js";
import type { SubtaskPoint } from "./faults.js";
import { Life } from "./loop.js";
import type { Callee, Caller } from "./network.js";
import { shortName } from "./names.js";
import type { World } from "./world.js";

/** Same as subtask.ts: how long one alarm invocation runs a source. */
const SOURCE_SLICE_MS = 5_000;

/** A Subtask object: its storage and alarm, and the instance of its current incarnation. */
export class SimSubtask implements Callee {
  readonly storage = new SubtaskStorage();
  readonly alarm: AlarmSlot;
  private incarnation = 0;
  instance: SubtaskInstance;
  /** Virtual time per input record (the scenario's cost model; 0 without one). */
  readonly perRecordMs: number;
  /** The object's thread, when processing costs time (undefined: every turn is instant, as before). */
  readonly cpu: Cpu | undefined;

  constructor(
    private readonly w: World,
    readonly name: string,
  ) {
    const at = /\/vertex:(.+)\/subtask:(\d+)$/.exec(name);
    this.perRecordMs = at ? costPerRecordMs(w.scenario.costs, at[1], Number(at[2])) : 0;
    this.cpu = this.perRecordMs > 0 ? new Cpu(w.loop) : undefined;
    this.alarm = new AlarmSlot(name, w.loop, w.rng.fork(`alarm:${name}`), w.faults, w.trace, () => {
      const inst = this.instance;
      return { life: inst.life, run: () => inst.alarm() };
    });
    this.instance = new SubtaskInstance(w, this, new Life(name, 0));
  }

  get life(): Life {
    return this.instance.life;
  }

  invoke(method: string, args: unknown[]): unknown {
    const cpu = this.cpu;
    if (!cpu?.busy) return this.call(this.instance, method, args);
    // A busy object serves the call once its turn is over; a reset meanwhile fails it at the caller.
    const i = this.instance;
    return new Promise((resolve, reject) =>
      cpu.whenIdle(() => {
        if (!i.life.alive) return;
        try {
          resolve(this.call(i, method, args));
        } catch (e) {
          reject(e);
        }
      }),
    );
  }

  private call(i: SubtaskInstance, method: string, args: unknown[]): unknown {
    switch (method) {
      case "deploy":
        return i.deploy(args[0] as SubtaskDeployment);
      case "start":
        return i.start(args[0] as number);
      case "push":
        return i.push(args[0] as ChannelMessage);
      case "triggerCheckpoint":
        return i.triggerCheckpoint(args[0] as number, args[1] as number, args[2] as number, args[3] as boolean, (args[4] as boolean | undefined) ?? false);
      case "notifyCheckpointComplete":
        return i.notifyCheckpointComplete(args[0] as number, args[1] as number);
      case "notifyCheckpointAborted":
        return i.notifyCheckpointAborted(args[0] as number, args[1] as number);
      case "ping":
        return i.ping(args[0] as number);
      case "cancel":
        return i.cancel(args[0] as number | undefined);
      case "metrics":
        return i.metrics();
      default:
        throw new Error(`Subtask has no method ${method}`);
    }
  }

  /** Attempts deployed here so far (the simulator's knowledge, not the object's). */
  private readonly deployed = new Set<number>();
  newestAttempt = 0;

  /** Restores running here now (a reset ends those of the incarnation it kills). */
  private readonly restores = new Set<{ attempt: number; life: Life }>();

  /** Notes a restore in progress until `done()`; two at once write the same image and staging tables. */
  restoring(attempt: number, life: Life): { done(): void } {
    const running = [...this.restores].filter((r) => r.life.alive).map((r) => r.attempt);
    if (running.length > 0) this.w.signature("overlapping-restores", `${shortName(this.name)}: the restore of attempt ${attempt} starts while that of attempt ${running.join(",")} still runs (both write this object's storage)`);
    const entry = { attempt, life };
    this.restores.add(entry);
    return { done: () => void this.restores.delete(entry) };
  }

  /** Watches deploys for the signatures of known bugs. */
  observeDeploy(d: SubtaskDeployment): void {
    const short = shortName(this.name);
    if (this.deployed.has(d.attempt)) this.w.signature("attempt-deployed-twice", `${short}: attempt ${d.attempt} deployed a second time`);
    const latest = Math.max(0, ...this.w.completedAt.keys());
    if ((d.restore?.checkpointId ?? 0) < latest && d.attempt >= this.newestAttempt) {
      this.w.signature("older-checkpoint-restored", `${short}: attempt ${d.attempt} restores ${d.restore ? `checkpoint ${d.restore.checkpointId}` : "nothing"} though checkpoint ${latest} completed`);
    }
    this.deployed.add(d.attempt);
  }

  /** A deployed task is installed: one older than an attempt already deployed here is a stale task. */
  observeInstalled(d: SubtaskDeployment): void {
    if (d.attempt < this.newestAttempt) this.w.signature("stale-task", `${shortName(this.name)}: a task of attempt ${d.attempt} is installed after attempt ${this.newestAttempt} was`);
    this.newestAttempt = Math.max(this.newestAttempt, d.attempt);
  }

  /** Memory lost, storage (and the alarm) kept; calls it was serving fail at their callers. */
  reset(why: string): void {
    const old = this.instance;
    old.life.alive = false;
    this.w.trace.log("reset", `${this.name} (${why}); task was ${old.describe()}`);
    this.w.net.objectReset(old.life);
    this.cpu?.reset();
    this.instance = new SubtaskInstance(this.w, this, new Life(this.name, ++this.incarnation));
    this.alarm.onReset();
  }
}

/** One incarnation: what src/runtime/subtask.ts keeps in memory, and its methods. */
export class SubtaskInstance {
  task: Task | undefined;
  private sourceRunning = false;
  private readonly storage: SubtaskStorage;
  private readonly registry: JobRegistry;
  private readonly caller: Caller;
  /** The Worker's bindings as this incarnation sees them. */
  readonly env: Record<string, unknown>;

  constructor(
    private readonly w: World,
    private readonly object: SimSubtask,
    readonly life: Life,
  ) {
    this.storage = object.storage;
    this.registry = w.registry;
    this.caller = { name: shortName(object.name), life };
    this.env = w.envFor(this.caller, object.name);
  }

  describe(): string {
    return this.task ? `attempt ${this.task.deployment.attempt} ${this.task.state}` : "none";
  }

  private lifecycle(point: SubtaskPoint): void {
    if (this.life.alive) this.w.subtaskPoint(this.object.name, point);
  }

  // ---- the object's RPC methods, as in subtask.ts --------------------------

  /** Deploys run one at a time; the newest attempt asked for wins. */
  private deploys: Promise<unknown> = Promise.resolve();
  private newestDeployAttempt = 0;

  async deploy(deployment: SubtaskDeployment): Promise<{ ok: true } | { ok: false; message: string }> {
    this.object.observeDeploy(deployment);
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
    if (this.object.cpu) meterGate(task.gate, this.object.cpu, this.object.perRecordMs, this.life);
    if (deployment.restore) this.lifecycle("restore");
    const restoring = this.object.restoring(deployment.attempt, this.life);
    try {
      await task.restore();
    } catch (e) {
      return { ok: false, message: `subtask ${deployment.vertex}/${deployment.index} could not restore checkpoint ${deployment.restore?.checkpointId}: ${(e as Error)?.message ?? e}` };
    } finally {
      restoring.done();
    }
    // A newer deploy may have been asked for while the restore awaited R2.
    if (deployment.attempt < this.newestDeployAttempt) {
      task.cancel();
      return { ok: false, message: `attempt ${deployment.attempt} was superseded by ${this.newestDeployAttempt}` };
    }
    this.task = task;
    this.object.observeInstalled(deployment);
    this.w.net.zombieBurst(this.object.name, deployment.attempt);
    return { ok: true };
  }

  async start(attempt: number): Promise<void> {
    if (this.task?.deployment.attempt !== attempt) return;
    this.task.start();
    if (this.task.isSource) this.object.alarm.set(this.w.loop.now());
  }

  push(message: ChannelMessage): DeliveryResult | Promise<DeliveryResult> {
    if (!this.task) return "not-deployed";
    if (message.kind === "batch") this.lifecycle("processing");
    return this.task.offer(message);
  }

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

  ping(attempt: number): SubtaskHealth {
    const t = this.task;
    if (!t || t.deployment.attempt !== attempt) return "lost";
    if (t.state === "finished") return "finished";
    if (t.state === "failed" || t.state === "canceled") return "failed";
    return "running";
  }

  async cancel(attempt?: number): Promise<void> {
    if (!this.task) return;
    if (attempt !== undefined && this.task.deployment.attempt > attempt) return;
    this.lifecycle("close");
    this.task.cancel();
    this.task = undefined;
    this.object.alarm.set(null);
  }

  metrics(): TaskMetrics | null {
    return this.task?.metrics() ?? null;
  }

  async alarm(): Promise<void> {
    const task = this.task;
    if (!task?.isSource || this.sourceRunning || task.state !== "running") return;
    this.sourceRunning = true;
    try {
      const again = await task.runSource(this.w.loop.now() + SOURCE_SLICE_MS);
      if (again && this.task === task) this.object.alarm.set(this.w.loop.now());
    } finally {
      this.sourceRunning = false;
    }
  }

  // ---- storage, as the SQL of subtask.ts ------------------------------------

  private meta(k: string): string | undefined {
    return this.storage.meta.get(k);
  }

  private setMeta(k: string, v: string): void {
    this.storage.meta.set(k, v);
  }

  private clearImage(): void {
    this.storage.keyed.clear();
    this.storage.meta.delete("image");
  }

  private deleteOp(uid: string): void {
    for (const [k, r] of this.storage.keyed) if (r.op === uid) this.storage.keyed.delete(k);
  }

  /** Loads one operator's restored state: from the local image when it holds exactly that checkpoint, else from R2. */
  private async loadState(uid: string, spec: RestoreSpec, range: KeyGroupRange, localRecovery: boolean): Promise<{ backing: StateBacking } | { entries: StateEntry[] }> {
    const image = this.meta("image");
    const wanted = JSON.stringify({ checkpointId: spec.checkpointId, start: range.start, end: range.end });
    if (localRecovery && image === wanted) return { backing: this.imageBacking(uid) };
    this.storage.meta.delete("image");
    this.deleteOp(uid);
    let batch: SnapshotEntry[] = [];
    const apply = () => {
      for (const e of batch) {
        const id = k3(uid, e.state, e.key);
        if (e.value === undefined) this.storage.keyed.delete(id);
        else {
          const row = this.storage.keyed.get(id);
          if (row) {
            row.value = JSON.stringify(e.value);
            row.kind = e.kind;
          } else this.storage.keyed.set(id, { op: uid, state: e.state, key: e.key, keyGroup: e.keyGroup, kind: e.kind, value: JSON.stringify(e.value) });
        }
      }
      batch = [];
    };
    const bucket = this.env.CHECKPOINTS as R2Bucket;
    for (const handle of spec.keyed[uid] ?? []) {
      if (handle.keyGroups.end < range.start || handle.keyGroups.start > range.end) continue;
      for (const key of handle.files) {
        const object = await bucket.get(key);
        if (!object) throw new Error(`state file ${key} of checkpoint ${spec.checkpointId} is missing`);
        const reader = new SnapshotReader((e) => batch.push(e), range);
        const decoder = new TextDecoder();
        for await (const chunk of object.body as unknown as AsyncIterable<Uint8Array>) {
          reader.push(decoder.decode(chunk, { stream: true }));
          if (batch.length >= 2000) {
            apply();
            await this.life.gate(this.w.loop.sleep(0));
          }
        }
        reader.push(decoder.decode());
        reader.end();
        apply();
      }
    }
    return { backing: this.imageBacking(uid) };
  }

  /** The local image of one operator, read on demand. */
  private imageBacking(uid: string): StateBacking {
    const keyed = this.storage.keyed;
    return {
      get: (state, key) => {
        const row = keyed.get(k3(uid, state, key));
        return row ? { kind: row.kind, value: JSON.parse(row.value) } : undefined;
      },
      entries: function* () {
        for (const r of [...keyed.values()]) if (r.op === uid) yield { state: r.state, key: r.key, kind: r.kind, value: JSON.parse(r.value) };
      },
      count: () => {
        let n = 0;
        for (const r of keyed.values()) if (r.op === uid) n++;
        return n;
      },
    };
  }

  /** Staging rows of two-phase-commit sinks, in this object's storage. */
  private stagingStore(attempt: number): StagingStore {
    const s = this.storage;
    const trace = (text: string) => this.w.trace.log("stage", `${this.caller.name} ${text}`);
    const rowsOf = (uid: string, txn: number) => [...s.stage.values()].filter((r) => r.uid === uid && r.txn === txn);
    return {
      append: (uid, txn, rows) => {
        const seq = rowsOf(uid, txn).reduce((m, r) => Math.max(m, r.seq), 0) + 1;
        const data = rows.join("\n");
        s.stage.set(k3(uid, txn, seq), { uid, txn, seq, data, bytes: utf8Length(data) });
      },
      seal: (uid, txn) => {
        this.lifecycle("sync-snapshot");
        s.sealOpen(uid, txn);
        if (!s.sealed.has(k2(uid, txn))) s.sealed.set(k2(uid, txn), { uid, txn });
        trace(`seal ${uid} txn ${txn}: ${rowsOf(uid, txn).reduce((n, r) => n + (r.data.length === 0 ? 0 : r.data.split("\n").length), 0)} rows`);
      },
      sealed: (uid) =>
        [...s.sealed.values()]
          .filter((r) => r.uid === uid)
          .map((r) => r.txn)
          .sort((a, b) => a - b),
      rows: (uid, txn) =>
        rowsOf(uid, txn)
          .sort((a, b) => a.seq - b.seq)
          .flatMap((r) => (r.data.length === 0 ? [] : r.data.split("\n"))),
      drop: (uid, txn) => {
        for (const r of rowsOf(uid, txn)) s.stage.delete(k3(uid, txn, r.seq));
        s.sealed.delete(k2(uid, txn));
        trace(`drop ${uid} txn ${txn} (published)`);
      },
      dropAfter: (uid, txn) => {
        const dropped = [...s.sealed.values()].filter((r) => r.uid === uid && r.txn > txn).map((r) => r.txn);
        for (const r of [...s.stage.values()]) if (r.uid === uid && (r.txn > txn || r.txn === OPEN_TXN)) s.stage.delete(k3(uid, r.txn, r.seq));
        for (const r of [...s.sealed.values()]) if (r.uid === uid && r.txn > txn) s.sealed.delete(k2(uid, r.txn));
        if (dropped.length > 0) {
          trace(`recover ${uid} to ${txn}: sealed txns ${dropped.join(",")} dropped`);
          if (this.object.newestAttempt > attempt) this.w.signature("stale-restore", `${this.caller.name}: the restore of attempt ${attempt} dropped sealed txns ${dropped.join(",")} after attempt ${this.object.newestAttempt} was deployed`);
        }
      },
      bytes: (uid) => [...s.stage.values()].filter((r) => r.uid === uid).reduce((n, r) => n + r.bytes, 0),
    };
  }

  private host(d: SubtaskDeployment): TaskHost {
    const net = this.w.net;
    const loop = this.w.loop;
    const life = this.life;
    const cpu = this.object.cpu;
    type SubtaskStub = { push(m: ChannelMessage): Promise<DeliveryResult> };
    const stubs = new Map<string, SubtaskStub>();
    const stub = (vertex: string, index: number): SubtaskStub => {
      const name = subtaskName(d.job, vertex, index);
      let s = stubs.get(name);
      if (!s) stubs.set(name, (s = net.stub<SubtaskStub>(this.caller, name)));
      return s;
    };
    type CoordinatorStub = {
      acknowledgeCheckpoint(ack: unknown): Promise<unknown>;
      declineCheckpoint(attempt: number, id: number, reason: string): Promise<void>;
      reportFailure(attempt: number, message: string): Promise<void>;
      reportEndOfData(attempt: number, vertex: string, index: number): Promise<void>;
      reportFinished(attempt: number, vertex: string, index: number): Promise<void>;
    };
    const coordinator = () => net.stub<CoordinatorStub>(this.caller, coordinatorName(d.job));
    const range = d.keyGroupRange ?? { start: 0, end: d.plan.maxParallelism - 1 };
    const bucket = this.env.CHECKPOINTS as R2Bucket;
    return {
      env: this.env,
      staging: this.stagingStore(d.attempt),
      send: (vertex, index, message) => stub(vertex, index).push(message),
      now: () => loop.now(),
      // A busy object's timers fire once its turn is over.
      sleep: (ms) => life.gate(cpu ? loop.sleep(ms).then(() => cpu.idle()) : loop.sleep(ms)),
      snapshots: {
        fileKey: (uid, checkpointId) => {
          this.lifecycle("sync-snapshot");
          return stateFileKey(d.checkpoint.storagePrefix, d.job, uid, d.index, checkpointId);
        },
        savepointFileKey: (uid, checkpointId) => savepointStateFileKey(d.checkpoint.storagePrefix, d.job, checkpointId, uid, d.index),
        put: async (key, body) => {
          this.lifecycle("upload");
          await bucket.put(key, body.join(""));
        },
        writeImage: (uid, changed) => {
          for (const { entry: e, valueJson } of changed) {
            const id = k3(uid, e.state, e.key);
            if (valueJson === null) this.storage.keyed.delete(id);
            else {
              const row = this.storage.keyed.get(id);
              if (row) row.value = valueJson;
              else this.storage.keyed.set(id, { op: uid, state: e.state, key: e.key, keyGroup: e.keyGroup, kind: e.kind, value: valueJson });
            }
          }
        },
        markImage: (checkpointId) => {
          if (checkpointId === null) {
            this.lifecycle("image-write");
            this.storage.meta.delete("image");
          } else this.setMeta("image", JSON.stringify({ checkpointId, start: range.start, end: range.end }));
        },
        pause: () => {
          this.lifecycle("image-write");
          return life.gate(loop.sleep(0));
        },
      },
      loadState: (uid, spec, r) => this.loadState(uid, spec, r, d.checkpoint.localRecovery),
      putChannelState: async (checkpointId, body) => {
        const file = channelStateKey(d.checkpoint.storagePrefix, d.job, d.vertex, d.index, checkpointId);
        this.lifecycle("upload");
        await bucket.put(file, body);
        return { file, bytes: utf8Length(body) };
      },
      getChannelState: async (handle) => {
        const object = await bucket.get(handle.file);
        if (!object) throw new Error(`in-flight data ${handle.file} is missing`);
        return object.text();
      },
      acknowledge: async (ack) => {
        this.lifecycle("after-ack");
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
        this.lifecycle("close");
        await coordinator().reportFinished(d.attempt, d.vertex, d.index);
      },
    };
  }
}
