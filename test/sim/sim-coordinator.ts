/**
 * The Coordinator object in memory: the shell of
 * src/runtime/coordinator/coordinator.ts around the real
 * {@link CoordinatorCore}, on the real {@link CoordinatorStore} over
 * `node:sqlite` with Durable Object limits. Its database and alarm outlive
 * resets; a reset builds a new store and core over them, as the object's
 * constructor does, and, as it does inside blockConcurrencyWhile, makes sure
 * a live job has an alarm before any call is served.
 */
import { CoordinatorCore, type CoordinatorHost } from "../../src/runtime/coordinator/coordinator-core.js";
import { CoordinatorStore } from "../../src/runtime/coordinator/coordinator-store.js";
import type { SubtaskApi } from "../../src/runtime/messages.js";
import { subtaskName } from "../../src/runtime/names.js";
import { AlarmSlot } from "./alarm.js";
import { type DoSql, doSql } from "../support/do-sql.js";
import type { CoordinatorPoint } from "./faults.js";
import { Life } from "./loop.js";
import type { Callee, Caller } from "./network.js";
import { ObservedCoordinatorStore } from "./observed-coordinator-store.js";
import type { World } from "./world.js";

const METHODS = new Set([
  "start",
  "status",
  "cancel",
  "triggerCheckpointNow",
  "checkpointOverview",
  "checkpointDetail",
  "metrics",
  "acknowledgeCheckpoint",
  "declineCheckpoint",
  "reportFailure",
  "reportEndOfData",
  "reportFinished",
  "triggerSavepoint",
  "savepointStatus",
]);

export class SimCoordinator implements Callee {
  /** The object's SQLite database: it outlives resets. */
  readonly sql: DoSql = doSql();
  /** The storage the current incarnation built over {@link sql}, observed for the trace and the oracle. */
  store!: ObservedCoordinatorStore;
  readonly alarm: AlarmSlot;
  life: Life;
  core!: CoordinatorCore;
  private ready!: Promise<void>;
  private incarnation = 0;

  constructor(
    private readonly w: World,
    readonly name: string,
  ) {
    this.alarm = new AlarmSlot("coordinator", w.loop, w.rng.fork("alarm:coordinator"), w.faults, w.trace, () => {
      const core = this.core;
      const ready = this.ready;
      return { life: this.life, run: () => ready.then(() => core.alarm()) };
    });
    this.life = new Life(name, 0);
    this.boot();
  }

  private boot(): void {
    const life = this.life;
    const caller: Caller = { name: "coordinator", life };
    const point = (p: CoordinatorPoint) => {
      if (life.alive) this.w.coordinatorPoint(p);
    };
    this.store = new ObservedCoordinatorStore(new CoordinatorStore(this.sql), this.w.storageEvents());
    const host: CoordinatorHost = {
      registry: this.w.registry,
      store: this.store,
      bucket: this.w.r2.bucket(caller, {
        onRequest: (op, key) => {
          if (op === "put" && key.endsWith("/_metadata")) point("metadata");
        },
      }),
      subtask: (job, vertex, index) => {
        const stub = this.w.net.stub<SubtaskApi>(caller, subtaskName(job, vertex, index));
        return new Proxy(stub, {
          get: (t, method) => {
            if (method === "deploy") point("restart");
            else if (method === "triggerCheckpoint") point("trigger");
            else if (method === "notifyCheckpointComplete") point("notify");
            return (t as unknown as Record<string | symbol, unknown>)[method];
          },
        });
      },
      now: () => this.w.loop.now(),
      sleep: (ms) => life.gate(this.w.loop.sleep(ms)),
      setAlarm: (atMs) => {
        this.alarm.set(atMs);
        return life.gate(Promise.resolve());
      },
    };
    this.core = new CoordinatorCore(host);
    const core = this.core;
    // The constructor's blockConcurrencyWhile: calls wait until this is done.
    this.ready = life.gate(Promise.resolve().then(() => core.afterRestart(this.alarm.scheduled)));
  }

  invoke(method: string, args: unknown[]): unknown {
    if (!METHODS.has(method)) throw new Error(`Coordinator has no method ${method}`);
    const core = this.core as unknown as Record<string, (...a: unknown[]) => unknown>;
    return this.ready.then(() => core[method](...args));
  }

  /** Memory lost, storage and alarm kept; a new core over the same storage. */
  reset(why: string): void {
    const old = this.life;
    old.alive = false;
    const s = this.store.job();
    this.w.trace.log("reset", `coordinator (${why}); job ${s.status} attempt ${s.attempt}`);
    this.w.net.objectReset(old);
    this.life = new Life(this.name, ++this.incarnation);
    this.boot();
    this.alarm.onReset();
  }
}
