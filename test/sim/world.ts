/**
 * One simulated deployment: the clock, the network, R2, the objects (the
 * job's Coordinator and Subtasks, the ingestion stream partitions, the
 * table partitions) and the fault injector that resets them at chosen
 * moments of their lifecycle.
 */
import type { JobDefinition } from "../../src/api/job.js";
import type { JobRecord } from "../../src/runtime/coordinator/coordinator-store.js";
import { coordinatorName, streamPartitionName, tablePartitionName } from "../../src/runtime/names.js";
import { JobRegistry } from "../../src/runtime/registry.js";
import type { StorageEvents } from "./observed-coordinator-store.js";
import { type CoordinatorPoint, Faults, type SubtaskPoint } from "./faults.js";
import { JOB, type SimEnvHooks, buildJob } from "./jobs.js";
import { SimLoop } from "./loop.js";
import { type Callee, type Caller, Network } from "./network.js";
import { Rng } from "./prng.js";
import { FakeR2 } from "./r2.js";
import type { Scenario, Signature } from "./scenario.js";
import { type AppliedWrite, SimStreamPartition, SimTablePartition } from "./services.js";
import { type AsyncRestoreNote, noteAsyncDeploy } from "./async-oracle.js";
import { LookupCalls, SERVICE, SimLookupService, lookupClient } from "./async-service.js";
import type { SubtaskDeployment } from "../../src/runtime/messages.js";
import { SimCoordinator } from "./sim-coordinator.js";
import { SimSubtask } from "./sim-subtask.js";
import type { Task } from "../../src/runtime/subtask/task.js";
import { Trace } from "./trace.js";

const SUBTASK = /^job:[^/]+\/vertex:.+\/subtask:\d+$/;

export class World {
  readonly loop = new SimLoop();
  readonly rng: Rng;
  readonly trace: Trace;
  readonly faults: Faults;
  readonly net: Network;
  readonly r2: FakeR2;
  readonly job: JobDefinition;
  readonly registry: JobRegistry;
  readonly coordinator: SimCoordinator;
  readonly subtasks = new Map<string, SimSubtask>();
  readonly streams = new Map<string, SimStreamPartition>();
  readonly tables = new Map<string, SimTablePartition>();
  /** Every write a table partition applied, in order. */
  readonly applied: AppliedWrite[] = [];
  /** When the coordinator marked each checkpoint completed. */
  readonly completedAt = new Map<number, number>();
  /** Flushes without checkpoint (end of input), per sink writer: when they ran. */
  readonly flushes = new Map<string, { startMs: number; endMs: number }[]>();
  /** Signatures of bugs seen in this run (first sighting each). */
  readonly signatures = new Map<Signature, { atMs: number; what: string }>();
  /** Job attempts seen, with why each began. */
  readonly failovers: string[] = [];
  /** Where each deploy of the window branch's source (in-w) began reading: 0 without a restore. */
  readonly windowSourceRestores: { atMs: number; attempt: number; offset: number }[] = [];
  /** The async branch's slow service, when the run has the branch. */
  readonly asyncService: SimLookupService | undefined;
  /** What each deploy of the async branch's source and operator restored (the async oracle's entitlements). */
  readonly asyncRestores: AsyncRestoreNote[] = [];
  /** Every task a subtask built, for what their restores did (lazy restores: {@link lazyRestoreStats}). */
  readonly tasks: Task[] = [];
  /** The async function's requests as it sent them, and its connections to the service per subtask incarnation. */
  readonly asyncCalls = new LookupCalls();
  private readonly faultRng: Rng;
  /** Draws whether a restore that could read an object's own image reads R2 instead (half the runs, half their restores). */
  private readonly localRestoreRng: Rng;
  private readonly localRestoreSkipRate: number;
  private readonly eagerRestoreRng: Rng;
  /** Every keyed subtask's memory budget in bytes (local recovery on), or none. */
  readonly memoryBudgetBytes: number | undefined;
  /** Event-time timers fired per slice (half the runs: a few, so that a window's end takes several slices), or production's. */
  readonly fireSliceTimers: number | undefined;
  /** Restores sent to R2 although the image held their checkpoint. */
  localRestoresSkipped = 0;

  constructor(readonly scenario: Scenario, options: { fullTrace?: boolean } = {}) {
    this.rng = new Rng(scenario.seed);
    // A stream of its own, so that every other draw stays what it was before it existed.
    this.localRestoreRng = new Rng(scenario.seed).fork("local-restore");
    this.localRestoreSkipRate = this.localRestoreRng.chance(0.5) ? 0.5 : 0;
    this.eagerRestoreRng = new Rng(scenario.seed).fork("eager-restore");
    // Half the runs keep keyed state under a budget of a few hundred bytes: evictions, read-backs and flushes between
    // checkpoints under every fault (the minimum a job may ask for is far above the simulator's whole state).
    const budget = new Rng(scenario.seed).fork("memory-budget");
    this.memoryBudgetBytes = budget.chance(0.5) ? budget.range(150, 1200) : undefined;
    const slices = new Rng(scenario.seed).fork("fire-slices");
    this.fireSliceTimers = slices.chance(0.5) ? slices.range(1, 4) : undefined;
    this.trace = new Trace(() => this.loop.now(), 400, options.fullTrace ?? false);
    this.faultRng = this.rng.fork("faults");
    this.faults = new Faults(scenario.rates, this.faultRng);
    this.r2 = new FakeR2(this.loop, this.rng.fork("r2"), this.faults, this.trace, scenario.r2PageSize);
    this.net = new Network(this.loop, this.rng.fork("net"), this.faults, this.trace, (name) => this.object(name), () => this.coordinator.store.job().attempt);
    this.net.rewriteZombieAttempts = scenario.variant === "no-fencing";
    this.job = buildJob(scenario.shape);
    this.registry = new JobRegistry([this.job]);
    for (const node of this.job.nodes) {
      for (const s of node.source?.httpStreams ?? []) {
        for (let p = 0; p < s.partitions; p++) {
          const name = streamPartitionName(s.name, p);
          this.streams.set(name, new SimStreamPartition(name, () => this.loop.now()));
        }
      }
      for (const t of node.sink?.tables ?? []) {
        for (let p = 0; p < t.partitions; p++) {
          const name = tablePartitionName(t.name, p);
          this.tables.set(name, new SimTablePartition(name, t.name, () => this.loop.now(), this.applied));
        }
      }
    }
    this.coordinator = new SimCoordinator(this, coordinatorName(JOB));
    const asyncShape = scenario.shape.async;
    this.asyncService = asyncShape ? new SimLookupService(this.loop, this.rng.fork("async-service"), asyncShape, this.trace) : undefined;
  }

  /** The current incarnation of the object named `name` (Durable Objects exist once addressed). */
  object(name: string): Callee | undefined {
    if (name === this.coordinator.name) return this.coordinator;
    if (name === SERVICE) return this.asyncService;
    const s = this.subtasks.get(name);
    if (s) return s;
    if (SUBTASK.test(name)) {
      const created = new SimSubtask(this, name);
      this.subtasks.set(name, created);
      return created;
    }
    return this.streams.get(name) ?? this.tables.get(name);
  }

  /** The Worker's bindings as seen from one object incarnation. */
  envFor(caller: Caller, objectName: string): Record<string, unknown> {
    const hooks: SimEnvHooks = {
      lifecycle: (p) => caller.life.alive && this.subtaskPoint(objectName, p),
      flushing: (writer) => {
        // Until it ends (it may never, if the object is reset meanwhile) the flush stays open.
        const f = { startMs: this.loop.now(), endMs: Number.POSITIVE_INFINITY };
        this.flushes.set(writer, [...(this.flushes.get(writer) ?? []), f]);
        return () => void (f.endMs = this.loop.now());
      },
      now: () => this.loop.now(),
    };
    return {
      STREAM_PARTITION: { idFromName: (n: string) => n, get: (id: string) => this.net.stub(caller, id) },
      TABLE_PARTITION: {
        idFromName: (n: string) => n,
        get: (id: string) => {
          const stub = this.net.stub<{ upsert(rows: unknown[], writer: string, txn: number): Promise<unknown> }>(caller, id);
          return {
            upsert: (rows: unknown[], writer: string, txn: number) => {
              hooks.lifecycle(txn >= 1e9 ? "close" : "commit");
              return stub.upsert(rows, writer, txn);
            },
          };
        },
      },
      CHECKPOINTS: this.r2.bucket(caller),
      SIM: hooks,
      ...(this.asyncService ? { ASYNC_SERVICE: lookupClient(this.net, caller, this.asyncCalls, () => this.loop.now()) } : {}),
    };
  }

  /** Something only a bug does happened: noted, so that a failure can be attributed. */
  signature(name: Signature, what: string): void {
    if (this.signatures.has(name)) return;
    this.signatures.set(name, { atMs: this.loop.now(), what });
    this.trace.log("bug", `${name.length === 1 ? `signature of known bug ${name}` : name}: ${what}`);
  }

  /** A subtask is deployed: what it restores, if it is the async branch's source or operator. */
  observeDeploy(d: SubtaskDeployment): void {
    if (!this.asyncService) return;
    const note = noteAsyncDeploy(d, this.r2, this.loop.now());
    if (note) this.asyncRestores.push(note);
  }

  currentAttempt(): number {
    return this.coordinator.store.job().attempt;
  }

  /** A subtask passes a lifecycle point: maybe it is reset right there. */
  subtaskPoint(name: string, point: SubtaskPoint): void {
    const p = this.faults.rates.subtaskReset[point];
    if (p <= 0 || !this.faults.rollReset(p)) return;
    this.faults.count(`reset@${point}`);
    // "sync-snapshot" lands right after the synchronous turn (a turn cannot be cut), "image-merge" before the
    // merge's next turn (they all run at one virtual moment); the others while the work is in flight.
    const delay = point === "sync-snapshot" || point === "image-merge" ? 0 : this.faultRng.int(5);
    this.loop.after(delay, () => this.subtasks.get(name)?.reset(`fault at ${point}`));
  }

  /** The coordinator passes a point of its work: maybe it is reset right there. */
  coordinatorPoint(point: CoordinatorPoint): void {
    const p = this.faults.rates.coordinatorReset[point];
    if (p <= 0 || !this.faults.rollReset(p)) return;
    this.faults.count(`coord-reset@${point}`);
    this.loop.after(this.faultRng.int(5), () => this.coordinator.reset(`fault at ${point}`));
  }

  /**
   * Whether this restore skips the image (as a rescaled subtask or a new
   * object must): the runs' files are then imported from R2 under every
   * fault, not only in the rare runs that rescale or restore old checkpoints.
   */
  skipLocalRestore(): boolean {
    if (this.localRestoreSkipRate === 0 || !this.localRestoreRng.chance(this.localRestoreSkipRate)) return false;
    this.localRestoresSkipped++;
    this.trace.log("fault", "restore from R2 although the image holds the checkpoint");
    return true;
  }

  /** Whether a restore from R2 reads every block first, as before lazy restores (a quarter of them), or lazily by key group. */
  eagerRestore(): boolean {
    return this.eagerRestoreRng.chance(0.25);
  }

  /** Resets at random moments of the fault phase. */
  scheduleRandomResets(fromMs: number, toMs: number): void {
    const r = this.faultRng;
    for (let i = 0; i < this.faults.rates.randomResets; i++) {
      this.loop.at(r.range(fromMs, toMs), () => {
        const names = [...this.subtasks.keys()];
        if (names.length === 0 || !this.faults.takeReset()) return;
        this.faults.count("reset-random");
        this.subtasks.get(r.pick(names))!.reset("random reset");
      });
    }
    for (let i = 0; i < this.faults.rates.randomCoordinatorResets; i++) {
      this.loop.at(r.range(fromMs, toMs), () => {
        if (!this.faults.takeReset()) return;
        this.faults.count("coord-reset-random");
        this.coordinator.reset("random reset");
      });
    }
  }

  /** What the coordinator's storage reports: traced, and kept for the oracle. */
  storageEvents(): StorageEvents {
    return {
      jobSaved: (before: JobRecord, after: JobRecord) => {
        if (before.status === after.status && before.attempt === after.attempt) return;
        const line = `job ${before.status}@${before.attempt} -> ${after.status}@${after.attempt}${after.lastError && after.status !== "RUNNING" ? ` (${after.lastError.slice(0, 140)})` : ""}`;
        this.trace.log("job", line);
        if (after.attempt > before.attempt && before.attempt > 0) {
          this.failovers.push(`${this.loop.now()}ms ${after.lastError ?? ""}`);
        }
      },
      checkpointCompleted: (id) => {
        this.completedAt.set(id, this.loop.now());
        this.trace.log("cp", `checkpoint ${id} completed`);
      },
      checkpointFailed: (id, failure) => this.trace.log("cp", `checkpoint ${id} failed: ${failure.slice(0, 140)}`),
    };
  }
}

/** What the run's lazy restores from R2 did: how many tasks restored lazily, their blocks, and the reads records waited for. */
export interface LazyRestoreStats {
  readonly restores: number;
  readonly blocks: number;
  readonly demandReads: number;
}

export function lazyRestoreStats(w: World): LazyRestoreStats {
  let restores = 0;
  let blocks = 0;
  let demandReads = 0;
  for (const t of w.tasks) {
    const r = t.lazyRestore();
    if (r.blocks === 0) continue;
    restores++;
    blocks += r.blocks;
    demandReads += r.demandReads;
  }
  return { restores, blocks, demandReads };
}
