/**
 * The fault model: which faults a run injects, how often, and how many
 * landed. Rates are chosen per seed ("swarm testing": each seed enables a
 * random subset of fault kinds at random strengths), and every decision is
 * drawn from the run's fault stream.
 */
import type { Rng } from "./prng.js";

/** RPC faults (per call) and R2 faults (per operation). */
export type RpcFault = "rpc-drop" | "rpc-drop-reply" | "rpc-duplicate" | "rpc-delay" | "rpc-hold" | "zombie";
export type R2Fault = "r2-error" | "r2-slow";

/** Moments in a subtask's lifecycle where a reset is aimed. */
/** ("image-merge": a turn of the state image's background merge; resets land before the next turn.) */
export type SubtaskPoint = "processing" | "restore" | "sync-snapshot" | "image-write" | "image-merge" | "upload" | "after-ack" | "commit" | "close";
/** Moments in the coordinator's work where a reset is aimed. */
export type CoordinatorPoint = "metadata" | "restart" | "trigger" | "notify";

export type FaultKind =
  | RpcFault
  | R2Fault
  | "reset-random"
  | `reset@${SubtaskPoint}`
  | "coord-reset-random"
  | `coord-reset@${CoordinatorPoint}`
  | "alarm-twice";

export const SUBTASK_POINTS: readonly SubtaskPoint[] = ["processing", "restore", "sync-snapshot", "image-write", "image-merge", "upload", "after-ack", "commit", "close"];
export const COORDINATOR_POINTS: readonly CoordinatorPoint[] = ["metadata", "restart", "trigger", "notify"];

/** Probabilities of one run. */
export interface FaultRates {
  /** Per RPC call. */
  rpc: Record<RpcFault, number>;
  /** Per R2 operation. */
  r2: Record<R2Fault, number>;
  /** Per passage of a subtask through a lifecycle point. */
  subtaskReset: Record<SubtaskPoint, number>;
  /** Per passage of the coordinator through a point. */
  coordinatorReset: Record<CoordinatorPoint, number>;
  /** Resets at random moments during the fault phase. */
  randomResets: number;
  randomCoordinatorResets: number;
  /** Per alarm firing. */
  alarmTwice: number;
  /** Resets of all kinds allowed in one run, so that the job can make progress between them. */
  resetBudget: number;
}

export const NO_FAULTS: FaultRates = {
  rpc: { "rpc-drop": 0, "rpc-drop-reply": 0, "rpc-duplicate": 0, "rpc-delay": 0, "rpc-hold": 0, zombie: 0 },
  r2: { "r2-error": 0, "r2-slow": 0 },
  subtaskReset: { processing: 0, restore: 0, "sync-snapshot": 0, "image-write": 0, "image-merge": 0, upload: 0, "after-ack": 0, commit: 0, close: 0 },
  coordinatorReset: { metadata: 0, restart: 0, trigger: 0, notify: 0 },
  randomResets: 0,
  randomCoordinatorResets: 0,
  alarmTwice: 0,
  resetBudget: 0,
};

/** Draws a run's rates: each kind is on with some probability, at a random strength. */
export function drawRates(rng: Rng, intensity = 1): FaultRates {
  const on = (p: number, lo: number, hi: number) => (rng.chance(p) ? (lo + rng.next() * (hi - lo)) * intensity : 0);
  // Drawn from a stream of its own, so that the draws below stay what they were before this point existed.
  const merge = rng.fork("image-merge");
  const imageMerge = merge.chance(0.3) ? (0.005 + merge.next() * 0.045) * intensity : 0;
  return {
    rpc: {
      "rpc-drop": on(0.5, 0.0005, 0.006),
      "rpc-drop-reply": on(0.4, 0.0005, 0.006),
      "rpc-duplicate": on(0.6, 0.005, 0.05),
      "rpc-delay": on(0.7, 0.01, 0.1),
      "rpc-hold": on(0.6, 0.002, 0.02),
      zombie: on(0.5, 0.01, 0.08),
    },
    r2: { "r2-error": on(0.5, 0.005, 0.05), "r2-slow": on(0.6, 0.02, 0.15) },
    subtaskReset: {
      processing: on(0.3, 0.001, 0.01),
      restore: on(0.3, 0.01, 0.08),
      "sync-snapshot": on(0.4, 0.005, 0.03),
      "image-write": on(0.3, 0.005, 0.03),
      "image-merge": imageMerge,
      upload: on(0.4, 0.01, 0.06),
      "after-ack": on(0.4, 0.003, 0.02),
      commit: on(0.5, 0.02, 0.12),
      close: on(0.3, 0.02, 0.15),
    },
    coordinatorReset: {
      metadata: on(0.4, 0.02, 0.1),
      restart: on(0.4, 0.05, 0.3),
      trigger: on(0.3, 0.005, 0.03),
      notify: on(0.3, 0.01, 0.06),
    },
    randomResets: rng.int(4),
    randomCoordinatorResets: rng.int(3),
    alarmTwice: on(0.5, 0.02, 0.2),
    resetBudget: rng.range(3, 14),
  };
}

/** The faults of one run: whether they are on now, the dice, and what landed. */
export class Faults {
  /** Faults are injected only while enabled (the job starts clean and quiesces clean). */
  enabled = false;
  readonly counts = new Map<FaultKind, number>();
  private resets = 0;

  constructor(
    readonly rates: FaultRates,
    private readonly rng: Rng,
  ) {}

  /** Rolls for an RPC or R2 fault. */
  roll(kind: RpcFault | R2Fault): boolean {
    if (!this.enabled) return false;
    const p = kind.startsWith("r2-") ? this.rates.r2[kind as R2Fault] : this.rates.rpc[kind as RpcFault];
    return this.rng.chance(p);
  }

  /** Rolls for a reset at a lifecycle point; consumes the reset budget when it hits. */
  rollReset(p: number): boolean {
    if (!this.enabled || this.resets >= this.rates.resetBudget) return false;
    if (!this.rng.chance(p)) return false;
    this.resets++;
    return true;
  }

  /** Takes one reset from the budget (random resets). */
  takeReset(): boolean {
    if (!this.enabled || this.resets >= this.rates.resetBudget) return false;
    this.resets++;
    return true;
  }

  rollAlarmTwice(): boolean {
    return this.enabled && this.rng.chance(this.rates.alarmTwice);
  }

  count(kind: FaultKind): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
  }

  total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  /** Random numbers for fault details (delays, targets). */
  get dice(): Rng {
    return this.rng;
  }
}
