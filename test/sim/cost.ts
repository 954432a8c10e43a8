/**
 * The processing-cost model: virtual time a subtask spends on the records
 * it processes. Off unless a scenario sets `costs` (every seed of the
 * fault-injection runs has none, so their digests stay what they were).
 *
 * A Durable Object runs one turn at a time, and the engine processes an
 * input batch in one synchronous turn. With a cost, the subtask's
 * {@link Cpu} is busy for `records × perRecordMs` from the moment its
 * consumer loop takes a batch out of the input gate: until then the loop
 * takes nothing more, calls delivered to the object wait (in arrival order,
 * ahead of the next batch, as workerd queues events behind a turn), and so
 * do its timers. Senders keep their credits while their batches wait in the
 * gate, so the record writers' real credit-based flow control does the
 * rest: queues fill, sources are held back, and the backlog stays in the
 * ingestion log.
 *
 * Replies to calls the busy object made (R2, its own pushes) are not held:
 * they only resolve promises its code awaits, which then runs between
 * batches anyway, since the consumer loop takes its next batch only once
 * the work is done.
 */
import { decodeBatch } from "../../src/runtime/batch-encoding.js";
import type { BatchMessage } from "../../src/runtime/messages.js";
import type { InputGate } from "../../src/runtime/input-gate.js";
import type { Life, SimLoop, Timer } from "./loop.js";

/** Virtual time one vertex (or one of its subtasks) spends per input record. */
export interface ProcessingCost {
  /** The vertex id (its head operator's uid, e.g. `sum`). */
  readonly vertex: string;
  /** Only this subtask; every subtask of the vertex when absent. */
  readonly index?: number;
  readonly perRecordMs: number;
}

/** The cost per record of subtask `index` of `vertex` (0: free, as without the model). */
export function costPerRecordMs(costs: readonly ProcessingCost[] | undefined, vertex: string, index: number): number {
  let ms = 0;
  for (const c of costs ?? []) if (c.vertex === vertex && (c.index === undefined || c.index === index)) ms += c.perRecordMs;
  return ms;
}

/** One object's single thread: busy while it works through a batch. */
export class Cpu {
  private untilMs = 0;
  private release: Timer | undefined;
  /** Calls delivered while busy, run in arrival order once the work is done. */
  private readonly held: (() => void)[] = [];
  private readonly idleWaiters: (() => void)[] = [];
  /** Virtual time spent working, in total. */
  busyMsTotal = 0;

  constructor(private readonly loop: SimLoop) {}

  /** Working now, or calls are still waiting for their turn. */
  get busy(): boolean {
    return this.loop.now() < this.untilMs || this.held.length > 0;
  }

  /** The object works for `ms` more from now (or from the end of what it is doing). */
  charge(ms: number): void {
    if (ms <= 0) return;
    this.untilMs = Math.max(this.untilMs, this.loop.now()) + ms;
    this.busyMsTotal += ms;
    this.schedule();
  }

  /** Runs `fn` now when idle; else once the work is done, after the calls that came before it. */
  whenIdle(fn: () => void): void {
    if (this.busy) this.held.push(fn);
    else fn();
  }

  /** Resolves once the object is idle (at once when it is). */
  idle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** A reset: the work in progress and the calls waiting for it die with the object's memory. */
  reset(): void {
    this.held.length = 0;
    this.idleWaiters.length = 0;
    this.untilMs = this.loop.now();
    this.release?.cancel();
    this.release = undefined;
  }

  private schedule(): void {
    if (this.release) return;
    this.release = this.loop.at(this.untilMs, () => this.free());
  }

  private free(): void {
    this.release = undefined;
    if (this.loop.now() < this.untilMs) {
      this.schedule();
      return;
    }
    // Calls that waited go first, then whatever waited for the thread (the consumer loop, timers).
    for (const fn of this.held.splice(0)) fn();
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

/**
 * Meters a task's input gate: while `cpu` is busy its consumer loop finds
 * nothing to take and waits for the thread; each batch it takes costs
 * `perRecordMs` per record. The gate's queues, sequence checks and
 * unaligned snapshots are untouched.
 */
export function meterGate(gate: InputGate, cpu: Cpu, perRecordMs: number, life: Life): void {
  const poll = gate.poll.bind(gate);
  const waitForInput = gate.waitForInput.bind(gate);
  gate.poll = () => {
    if (cpu.busy) return undefined;
    const m = poll();
    if (m?.kind === "batch") cpu.charge(recordsOf(m) * perRecordMs);
    return m;
  };
  gate.waitForInput = () => (cpu.busy ? life.gate(cpu.idle()) : waitForInput());
}

/** Records in a batch (in-flight data replayed on restore carries no count). */
function recordsOf(m: BatchMessage): number {
  return m.count > 0 ? m.count : decodeBatch(m.records).length;
}
