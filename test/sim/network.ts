/**
 * The simulated network between objects: RPC calls with random latency and
 * faults.
 *
 * - Order: calls made through one stub (a {@link Channel}) arrive in the
 *   order they were made, as workerd keeps them; calls through different
 *   stubs interleave freely. Replies are independent of each other.
 * - Drop: a dropped request is never delivered, and its stub is broken from
 *   then on: this call and every later call through it reject, as a broken
 *   workerd stub does (the caller must get a new stub). A dropped reply is
 *   worse: the callee ran the call, the caller sees an error (the outcome is
 *   ambiguous). Both surface as rejections: nothing in workerd makes an RPC
 *   hang forever, and the engine's timeouts are not the model's job.
 * - Duplicate: the request is delivered twice, back to back on its channel
 *   (never reordered within it); the caller sees the first reply.
 * - Delay / hold: extra latency on one call; calls behind it on the same
 *   channel wait (order is kept), other channels overtake it — that is the
 *   "reorder across channels" fault.
 * - Zombie: a message stamped with a job attempt (channel messages, acks,
 *   declines, failure and finish reports) is delivered again much later,
 *   after the job may have failed over: an old attempt still sending.
 *   Right after a subtask is deployed, the first messages an older attempt
 *   sent it may also arrive (a burst of stragglers), which is where a
 *   missing fence would let old data in.
 * - Resets: calls pending in an object that is reset reject at the caller
 *   ("the object was reset"); a reset caller never sees its replies.
 *
 * Arguments and results are structured-cloned, as RPC does.
 */
import type { Faults } from "./faults.js";
import type { Life, SimLoop } from "./loop.js";
import type { Rng } from "./prng.js";
import { shortName } from "./names.js";
import type { Trace } from "./trace.js";

/** An object the network can deliver calls to: its current incarnation. */
export interface Callee {
  readonly life: Life;
  /** Runs one RPC method; throws (or rejects) like the real object. */
  invoke(method: string, args: unknown[]): unknown;
}

/** Who makes a call. */
export interface Caller {
  readonly name: string;
  readonly life: Life;
}

/** One stub: calls through it keep their order. */
export interface Channel {
  readonly id: number;
  readonly from: Caller;
  readonly to: string;
  nextAt: number;
  broken: boolean;
  readonly ghost: boolean;
}

interface PendingCall {
  readonly ch: Channel;
  readonly method: string;
  readonly reply: (ok: boolean, value: unknown) => void;
}

/** A message an attempt sent, kept for zombie deliveries. */
interface Sent {
  readonly to: string;
  readonly method: string;
  readonly args: unknown[];
  readonly attempt: number;
  readonly channel: string;
  readonly seq: number;
}

/** Methods whose calls carry a job attempt, and where. */
export function attemptOf(method: string, args: unknown[]): number | undefined {
  switch (method) {
    case "push":
    case "acknowledgeCheckpoint":
      return (args[0] as { attempt: number }).attempt;
    case "declineCheckpoint":
    case "reportFailure":
    case "reportFinished":
      return args[0] as number;
    default:
      return undefined;
  }
}

/** The same call with its attempt replaced (the "no fencing" variant's transport). */
function withAttempt(method: string, args: unknown[], attempt: number): unknown[] {
  switch (method) {
    case "push":
    case "acknowledgeCheckpoint":
      return [{ ...(args[0] as object), attempt }, ...args.slice(1)];
    default:
      return [attempt, ...args.slice(1)];
  }
}

/** Short text of a call, for the trace (null: too frequent to trace). */
export function describeCall(method: string, args: unknown[]): string | null {
  const a0 = args[0] as Record<string, unknown>;
  switch (method) {
    case "push": {
      const m = a0 as { kind: string; channel: string; seq: number; attempt: number; count?: number; checkpointId?: number; watermarkMs?: number | null };
      const what = m.kind === "batch" ? `batch n=${m.count}` : m.kind === "barrier" ? `barrier cp=${m.checkpointId}` : m.kind === "watermark" ? `watermark ${m.watermarkMs}` : "end";
      return `push ${what} from=${m.channel} seq=${m.seq} att=${m.attempt}`;
    }
    case "acknowledgeCheckpoint":
      return `ack cp=${a0.checkpointId} ${a0.subtask} att=${a0.attempt}`;
    case "declineCheckpoint":
      return `decline cp=${args[1]} att=${args[0]} (${String(args[2]).slice(0, 90)})`;
    case "reportFailure":
      return `reportFailure att=${args[0]} (${String(args[1]).slice(0, 120)})`;
    case "reportFinished":
      return `reportFinished att=${args[0]} ${args[1]}/${args[2]}`;
    case "triggerCheckpoint":
      return `trigger cp=${args[1]} att=${args[0]}`;
    case "notifyCheckpointComplete":
      return `notify-complete cp=${args[1]} att=${args[0]}`;
    case "notifyCheckpointAborted":
      return `notify-aborted cp=${args[1]} att=${args[0]}`;
    case "deploy": {
      const d = a0 as { attempt: number; restore: { checkpointId: number } | null };
      return `deploy att=${d.attempt} restore=${d.restore?.checkpointId ?? "none"}`;
    }
    case "start":
      return typeof args[0] === "string" ? `start job ${args[0]}` : `start att=${args[0]}`;
    case "cancel":
      return `cancel att=${args[0]}`;
    case "upsert":
      return `upsert writer=${args[1]} txn=${args[2]} rows=${(args[0] as unknown[]).length}`;
    case "lookup": {
      const r = a0 as { part: number; off: number; attempt: number; jobAttempt: number; sub: number };
      return `lookup q${r.part}|${r.off} try=${r.attempt} att=${r.jobAttempt}`;
    }
    case "ping":
    case "read":
    case "metrics":
      return null;
    default:
      return method;
  }
}

/** Methods that may be duplicated in flight. Triggers, deploys, starts and cancels are not: workerd never repeats a call, and those have no retry in the engine that would. */
const DUPLICABLE = new Set(["push", "acknowledgeCheckpoint", "declineCheckpoint", "notifyCheckpointComplete", "notifyCheckpointAborted", "ping", "read", "upsert", "reportFinished"]);

export class Network {
  private channels = 0;
  private readonly pending = new Map<Life, Set<PendingCall>>();
  private readonly sent: Sent[] = [];
  /** Rewrites the attempt of zombie messages to the current one (the "no fencing" variant). */
  rewriteZombieAttempts = false;
  /** Calls delivered. */
  delivered = 0;

  constructor(
    private readonly loop: SimLoop,
    private readonly rng: Rng,
    private readonly faults: Faults,
    private readonly trace: Trace,
    private readonly lookup: (name: string) => Callee | undefined,
    private readonly currentAttempt: () => number,
  ) {}

  /** A new stub from `from` to the object named `to`. */
  channel(from: Caller, to: string, ghost = false): Channel {
    return { id: ++this.channels, from, to, nextAt: 0, broken: false, ghost };
  }

  /** A stub object: every method call is an RPC through one channel. */
  stub<T>(from: Caller, to: string): T {
    const ch = this.channel(from, to);
    return new Proxy(
      {},
      {
        get: (_t, method) => {
          // Not a thenable: `await stub` must not turn into an RPC.
          if (typeof method !== "string" || method === "then") return undefined;
          return (...args: unknown[]) => this.call(ch, method, args);
        },
      },
    ) as T;
  }

  private latency(): number {
    return this.rng.chance(0.1) ? this.rng.range(2, 6) : this.rng.int(2);
  }

  /** Makes a call; the promise settles only while the caller lives. */
  call(ch: Channel, method: string, args: unknown[]): Promise<unknown> {
    const caller = ch.from.life;
    return caller.gate(
      new Promise<unknown>((resolve, reject) => {
        const fail = (why: string) => this.loop.after(this.latency(), () => reject(new Error(`rpc ${method} to ${ch.to}: ${why}`)));
        if (ch.broken) {
          fail("the stub is broken (an earlier call through it failed)");
          return;
        }
        const text = describeCall(method, args);
        if (this.faults.roll("rpc-drop")) {
          this.faults.count("rpc-drop");
          ch.broken = true;
          this.trace.log("fault", `drop ${ch.from.name} -> ${shortName(ch.to)} ${text ?? method}`);
          fail("connection lost (request dropped by the simulated network)");
          return;
        }
        let extra = 0;
        if (this.faults.roll("rpc-delay")) {
          this.faults.count("rpc-delay");
          extra += this.rng.range(5, 60);
        }
        if (this.faults.roll("rpc-hold")) {
          this.faults.count("rpc-hold");
          extra += this.rng.range(60, 900);
          this.trace.log("fault", `hold ${ch.from.name} -> ${shortName(ch.to)} ${text ?? method} +${extra}ms`);
        }
        const at = Math.max(this.loop.now() + this.latency() + extra, ch.nextAt);
        ch.nextAt = at;
        const payload = structuredClone(args);
        const dropReply = this.faults.roll("rpc-drop-reply");
        this.loop.at(at, () => this.deliver(ch, method, payload, text, (ok, value) => {
          if (dropReply) {
            this.faults.count("rpc-drop-reply");
            ch.broken = true;
            this.trace.log("fault", `drop reply ${shortName(ch.to)} -> ${ch.from.name} ${text ?? method}`);
            fail("connection lost (reply dropped by the simulated network)");
            return;
          }
          this.loop.after(this.latency(), () => (ok ? resolve(structuredClone(value)) : reject(new Error(`${(value as Error)?.message ?? value}`))));
        }));
        if (DUPLICABLE.has(method) && this.faults.roll("rpc-duplicate")) {
          this.faults.count("rpc-duplicate");
          const copy = structuredClone(args);
          this.loop.at(at, () => this.deliver(ch, method, copy, text === null ? null : `${text} (duplicate)`, () => undefined));
        }
        const attempt = attemptOf(method, args);
        if (attempt !== undefined && !ch.ghost) this.remember(ch, method, args, attempt);
        if (attempt !== undefined && !ch.ghost && this.faults.roll("zombie")) {
          // A straggler: the same message, much later, on a stub of its own.
          const copy = structuredClone(args);
          this.loop.after(this.rng.range(100, 2500), () => this.ghost(ch.from, ch.to, method, copy, attempt));
        }
      }),
    );
  }

  /** Delivers an old message on a ghost stub; counts it as a zombie when its attempt is over. */
  private ghost(from: Caller, to: string, method: string, args: unknown[], attempt: number): void {
    const current = this.currentAttempt();
    if (attempt >= current) return; // still its own attempt: nothing of a zombie about it
    this.faults.count("zombie");
    const ch = this.channel(from, to, true);
    const payload = this.rewriteZombieAttempts ? withAttempt(method, args, current) : args;
    const text = describeCall(method, payload);
    this.trace.log("fault", `zombie att=${attempt}${this.rewriteZombieAttempts ? `→${current}` : ""} ${from.name} -> ${shortName(to)} ${text ?? method}`);
    this.deliver(ch, method, structuredClone(payload), text === null ? null : `${text} (zombie)`, () => undefined);
  }

  /** After `to` was deployed for `attempt`: maybe the first messages of an older attempt arrive now. */
  zombieBurst(to: string, attempt: number): void {
    if (!this.faults.roll("zombie")) return;
    const older = this.sent.filter((s) => s.to === to && s.method === "push" && s.attempt < attempt);
    if (older.length === 0) return;
    const pick = this.rng.pick(older);
    const burst = older.filter((s) => s.attempt === pick.attempt && s.channel === pick.channel).sort((a, b) => a.seq - b.seq).slice(0, this.rng.range(1, 6));
    const from: Caller = { name: `zombie:${pick.channel}@${pick.attempt}`, life: { alive: true } as Life };
    let at = this.loop.now() + this.rng.int(25);
    for (const s of burst) {
      at += this.rng.int(3);
      this.loop.at(at, () => this.ghost(from, to, s.method, s.args, s.attempt));
    }
  }

  private remember(ch: Channel, method: string, args: unknown[], attempt: number): void {
    if (method !== "push") return;
    const m = args[0] as { channel: string; seq: number };
    // Early messages of each attempt are what a missing fence lets in: keep those.
    if (m.seq > 8) return;
    this.sent.push({ to: ch.to, method, args: structuredClone(args), attempt, channel: m.channel, seq: m.seq });
    if (this.sent.length > 4000) this.sent.splice(0, 1000);
  }

  private deliver(ch: Channel, method: string, args: unknown[], text: string | null, reply: (ok: boolean, value: unknown) => void): void {
    const callee = this.lookup(ch.to);
    if (!callee) {
      reply(false, new Error(`no object named ${ch.to}`));
      return;
    }
    this.delivered++;
    if (text !== null) this.trace.log("rpc", `${ch.from.name} -> ${shortName(ch.to)} ${text}`);
    const life = callee.life;
    const call: PendingCall = { ch, method, reply };
    let set = this.pending.get(life);
    if (!set) this.pending.set(life, (set = new Set()));
    set.add(call);
    let result: unknown;
    try {
      result = callee.invoke(method, args);
    } catch (e) {
      result = Promise.reject(e);
    }
    Promise.resolve(result).then(
      (v) => {
        if (!set!.delete(call)) return;
        reply(true, v);
      },
      (e: unknown) => {
        if (!set!.delete(call)) return;
        if (text !== null) this.trace.log("rpc", `${shortName(ch.to)} threw on ${method}: ${(e as Error)?.message ?? e}`);
        reply(false, e);
      },
    );
  }

  /** An object was reset: calls it was still serving fail at their callers. */
  objectReset(life: Life): void {
    const set = this.pending.get(life);
    if (!set) return;
    this.pending.delete(life);
    for (const call of set) call.reply(false, new Error(`${call.ch.to} was reset while serving ${call.method} (the Durable Object's code called abort())`));
  }
}
