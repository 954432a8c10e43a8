/**
 * Heartbeats: every second the coordinator pings each subtask with the
 * attempt number. A subtask that runs no task of that attempt (its object
 * restarted) answers `lost`; no answer within the timeout counts the same;
 * either fails the job over. A subtask that answers `finished` is as good a
 * witness as its own report, which may have been lost.
 */
import type { SubtaskHealth } from "../messages.js";
import type { AlarmConcern } from "./shared-alarm.js";
import type { CoordinatorContext } from "./coordinator-context.js";

/** How often the coordinator checks that every subtask is alive. */
export const HEARTBEAT_INTERVAL_MS = 1_000;
/** A heartbeat not answered within this long counts as a lost subtask. */
export const HEARTBEAT_TIMEOUT_MS = 10_000;

/** What heartbeats ask of the rest of the coordinator. */
export interface HeartbeatDeps {
  failover(cause: string): Promise<void>;
  reportFinished(attempt: number, vertex: string, index: number): Promise<void>;
}

/** Pings every subtask each interval; a lost or silent one fails the job over. */
export class Heartbeats implements AlarmConcern {
  /** When the next heartbeat is due (in memory: a restarted coordinator checks at once). */
  private nextHeartbeatMs = 0;
  /** A heartbeat waits up to its timeout: one at a time. */
  private running = false;

  constructor(
    private readonly ctx: CoordinatorContext,
    private readonly deps: HeartbeatDeps,
  ) {}

  /** Subtasks were just deployed: the first heartbeat is one interval away. */
  deployedAt(nowMs: number): void {
    this.nextHeartbeatMs = nowMs + HEARTBEAT_INTERVAL_MS;
  }

  nextAlarmMs(nowMs: number): number | null {
    const s = this.ctx.store.job();
    // Not sooner than 50 ms: a heartbeat still waiting for its answers must not spin the alarm.
    return s.status === "RUNNING" && s.config ? Math.max(this.nextHeartbeatMs, nowMs + 50) : null;
  }

  async onAlarm(nowMs: number): Promise<void> {
    const s = this.ctx.store.job();
    if (s.status === "RUNNING" && s.config && nowMs >= this.nextHeartbeatMs) await this.heartbeat();
  }

  /** Checks every subtask now. */
  async heartbeat(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.nextHeartbeatMs = this.ctx.now() + HEARTBEAT_INTERVAL_MS;
    try {
      const s = this.ctx.store.job();
      if (!s.plan) return;
      const timeout = this.ctx.host.sleep(HEARTBEAT_TIMEOUT_MS).then(() => "timeout" as const);
      const results = await Promise.all(
        this.ctx.subtasks(s.plan).map(async (t) => {
          // An unreachable subtask is lost: the failover below is how that error is handled; its cause goes with it.
          let failure: string | undefined;
          const ping = t.stub.ping(s.attempt).catch((e: unknown): SubtaskHealth => {
            failure = e instanceof Error ? e.message : String(e);
            return "lost";
          });
          return { t, health: await Promise.race([ping, timeout]), failure };
        }),
      );
      const now = this.ctx.store.job();
      if (now.attempt !== s.attempt || now.status !== "RUNNING") return;
      const bad = results.find((r) => r.health === "lost" || r.health === "timeout");
      if (bad) {
        const why =
          bad.health === "timeout"
            ? "did not answer its heartbeat"
            : bad.failure !== undefined
              ? `could not be reached by its heartbeat (${bad.failure})`
              : "lost its running task (the object restarted)";
        await this.deps.failover(`subtask ${bad.t.id} ${why}`);
        return;
      }
      // A subtask finished whose report was lost (or is on its way): the heartbeat is as good a witness.
      for (const r of results) {
        if (r.health === "finished" && !this.ctx.store.job().finished.includes(r.t.id)) await this.deps.reportFinished(s.attempt, r.t.vertex.id, r.t.index);
      }
    } finally {
      this.running = false;
    }
  }
}
