/**
 * A Subtask object in the simulator: the real {@link SubtaskCore} wired to
 * the simulated world, as src/runtime/subtask/subtask.ts wires it to the
 * platform. Its storage is one `node:sqlite` database under Durable Object
 * limits ({@link doSql}) that outlives resets, and its alarm one
 * {@link AlarmSlot}; its memory is one {@link SubtaskInstance} (a core over
 * those ports) per incarnation, as workerd builds a new object after a
 * reset. Time and timers run on the virtual clock and die with the
 * incarnation; R2 and RPC go through the simulator's faulty services.
 *
 * What is the world's, not the object's, stays here: the lifecycle points
 * where resets are aimed (hooked on the core's observer and on its ports),
 * the processing-cost model, and the watch for signatures of known bugs.
 */
import type { ChannelMessage, CoordinatorReports, SubtaskDeployment } from "../../src/runtime/messages.js";
import type { ObjectStore, SubtaskObserver, SubtaskPorts, SubtaskPush } from "../../src/runtime/subtask/ports.js";
import { SubtaskCore } from "../../src/runtime/subtask/subtask-core.js";
import type { Task } from "../../src/runtime/subtask/task.js";
import { type DoSql, doSql } from "../support/do-sql.js";
import { AlarmSlot } from "./alarm.js";
import { Cpu, costPerRecordMs, meterGate } from "./cost.js";
import type { SubtaskPoint } from "./faults.js";
import { Life } from "./loop.js";
import type { Callee, Caller } from "./network.js";
import { shortName } from "./names.js";
import { watchWatermarks } from "./watermark-invariant.js";
import type { World } from "./world.js";

/** A Subtask object: its storage and alarm, and the instance of its current incarnation. */
export class SimSubtask implements Callee {
  /** The object's SQLite storage: it outlives resets. */
  readonly sql: DoSql = doSql();
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
      return { life: inst.life, run: () => inst.core.alarm() };
    });
    this.instance = new SubtaskInstance(w, this, new Life(name, 0));
  }

  get life(): Life {
    return this.instance.life;
  }

  invoke(method: string, args: unknown[]): unknown {
    const cpu = this.cpu;
    if (!cpu?.busy) return call(this.instance.core, method, args);
    // A busy object serves the call once its turn is over; a reset meanwhile fails it at the caller.
    const i = this.instance;
    return new Promise((resolve, reject) =>
      cpu.whenIdle(() => {
        if (!i.life.alive) return;
        try {
          resolve(call(i.core, method, args));
        } catch (e) {
          reject(e);
        }
      }),
    );
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
    this.w.observeDeploy(d);
    // The window oracle asks where its source restarted: its watermark starts afresh there (known bug W).
    if (short.startsWith("in-w/")) this.w.windowSourceRestores.push({ atMs: this.w.loop.now(), attempt: d.attempt, offset: Object.values(d.restore?.sources["in-w"] ?? {})[0] ?? 0 });
  }

  /** A deployed task is installed: one older than an attempt whose deploy already arrived here is a stale task. */
  observeInstalled(d: SubtaskDeployment): void {
    const newest = Math.max(...this.deployed);
    if (d.attempt < newest) this.w.signature("stale-task", `${shortName(this.name)}: a task of attempt ${d.attempt} is installed after the deploy of attempt ${newest} arrived`);
    this.newestAttempt = Math.max(this.newestAttempt, d.attempt);
  }

  /** A restore of `attempt` dropped sealed transactions: after a newer attempt was deployed, it is a stale restore. */
  observeDroppedAfter(uid: string, txn: number, dropped: readonly number[], attempt: number): void {
    const short = shortName(this.name);
    this.w.trace.log("stage", `${short} recover ${uid} to ${txn}: sealed txns ${dropped.join(",")} dropped`);
    if (this.newestAttempt > attempt) this.w.signature("stale-restore", `${short}: the restore of attempt ${attempt} dropped sealed txns ${dropped.join(",")} after attempt ${this.newestAttempt} was deployed`);
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

/** One incarnation: a {@link SubtaskCore} over the simulator's ports, living as long as its {@link Life}. */
export class SubtaskInstance {
  readonly core: SubtaskCore;

  constructor(
    w: World,
    object: SimSubtask,
    readonly life: Life,
  ) {
    this.core = new SubtaskCore(simPorts(w, object, life));
  }

  /** The task of the current deployment, if any. */
  get task(): Task | undefined {
    return this.core.current;
  }

  describe(): string {
    const t = this.task;
    return t ? `attempt ${t.deployment.attempt} ${t.state}` : "none";
  }
}

/** Dispatches an RPC to the core, as the Durable Object's methods do. */
function call(core: SubtaskCore, method: string, args: unknown[]): unknown {
  switch (method) {
    case "deploy":
      return core.deploy(args[0] as SubtaskDeployment);
    case "start":
      return core.start(args[0] as number);
    case "push":
      return core.push(args[0] as ChannelMessage);
    case "triggerCheckpoint":
      return core.triggerCheckpoint(args[0] as number, args[1] as number, args[2] as number, args[3] as boolean, (args[4] as boolean | undefined) ?? false, (args[5] as boolean | undefined) ?? false);
    case "notifyCheckpointComplete":
      return core.notifyCheckpointComplete(args[0] as number, args[1] as number);
    case "notifyCheckpointAborted":
      return core.notifyCheckpointAborted(args[0] as number, args[1] as number);
    case "ping":
      return core.ping(args[0] as number);
    case "cancel":
      return core.cancel(args[0] as number | undefined);
    case "metrics":
      return core.metrics();
    default:
      throw new Error(`Subtask has no method ${method}`);
  }
}

/** The ports of one incarnation: virtual time gated by its life, the object's storage and alarm, faulty R2 and RPC. */
function simPorts(w: World, object: SimSubtask, life: Life): SubtaskPorts {
  const { loop, net } = w;
  const cpu = object.cpu;
  const caller: Caller = { name: shortName(object.name), life };
  const env = w.envFor(caller, object.name);
  const lifecycle = (point: SubtaskPoint) => {
    if (life.alive) w.subtaskPoint(object.name, point);
  };
  const r2 = env.CHECKPOINTS as R2Bucket;
  const bucket: ObjectStore = {
    put: async (key, body) => {
      lifecycle("upload");
      // The Blob's bytes are what the real one would take.
      const bytes = typeof body === "string" ? body : new Uint8Array(await life.gate(body.arrayBuffer()));
      return r2.put(key, bytes);
    },
    get: (key, options) => r2.get(key, options),
    delete: (keys) => r2.delete(keys),
    createMultipartUpload: async (key) => {
      const upload = await r2.createMultipartUpload(key);
      return {
        uploadPart: (partNumber: number, value: Blob) => {
          lifecycle("upload");
          return upload.uploadPart(partNumber, value);
        },
        complete: (parts: R2UploadedPart[]) => upload.complete(parts),
        abort: () => upload.abort(),
      };
    },
  };
  const observer: SubtaskObserver = {
    deploying: (d) => object.observeDeploy(d),
    taskCreated: (task) => {
      w.tasks.push(task);
      if (cpu) meterGate(task.gate, cpu, object.perRecordMs, life);
      watchWatermarks(w, task, caller.name, () => loop.now());
    },
    restoring: (d) => {
      if (d.restore) lifecycle("restore");
      return object.restoring(d.attempt, life);
    },
    installed: (d) => {
      object.observeInstalled(d);
      net.zombieBurst(object.name, d.attempt);
    },
    processing: () => lifecycle("processing"),
    closing: () => lifecycle("close"),
    snapshotting: () => lifecycle("sync-snapshot"),
    sealing: (uid, txn) => {
      lifecycle("sync-snapshot");
      w.trace.log("stage", `${caller.name} seal ${uid} txn ${txn}`);
    },
    dropped: (uid, txn) => w.trace.log("stage", `${caller.name} drop ${uid} txn ${txn} (published)`),
    droppedAfter: (uid, txn, dropped, attempt) => object.observeDroppedAfter(uid, txn, dropped, attempt),
    imageWrite: () => lifecycle("image-write"),
    merging: () => lifecycle("image-merge"),
  };
  const variant = w.scenario.variant;
  return {
    registry: w.registry,
    timers: {
      now: () => loop.now(),
      // A busy object's timers fire once its turn is over.
      sleep: (ms) => life.gate(cpu ? loop.sleep(ms).then(() => cpu.idle()) : loop.sleep(ms)),
      setTimeout: (fn, ms) =>
        loop.after(ms, () => {
          if (!life.alive) return;
          if (cpu) cpu.whenIdle(() => life.alive && fn());
          else fn();
        }),
    },
    alarm: {
      set: (atMs) => object.alarm.set(atMs),
      delete: () => object.alarm.set(null),
    },
    sql: object.sql,
    bucket,
    stubs: {
      subtask: (name) => net.stub<SubtaskPush>(caller, name),
      coordinator: (name) => {
        const stub = net.stub<CoordinatorReports>(caller, name);
        return new Proxy(stub, {
          get: (target, method) => {
            // "after-ack": a reset right after the ack left, before the notification can come.
            if (method === "acknowledgeCheckpoint") return (...args: Parameters<CoordinatorReports["acknowledgeCheckpoint"]>) => (lifecycle("after-ack"), target.acknowledgeCheckpoint(...args));
            return target[method as keyof CoordinatorReports];
          },
        });
      },
    },
    env,
    observer,
    seams: {
      mergeDeletesFirst: variant === "merge-deletes-first",
      dropBeforePublish: variant === "drop-before-publish",
      noDeployFencing: variant === "no-deploy-fencing",
      skipLocalRestore: () => w.skipLocalRestore(),
      eagerRestore: () => w.eagerRestore(),
      restoreChunkBytes: 1,
      restorePauseMs: 10,
      imageBlockBytes: 128,
      ...(w.memoryBudgetBytes === undefined ? {} : { memoryBudgetBytes: w.memoryBudgetBytes }),
      ...(w.fireSliceTimers === undefined ? {} : { fireSliceTimers: w.fireSliceTimers }),
    },
  };
}
