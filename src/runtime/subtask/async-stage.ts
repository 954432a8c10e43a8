/**
 * The async I/O operator inside a task (the head and only operator of its
 * vertex): the input loop hands it records and watermarks, and emits what
 * leaves it — results with their record's event time, dead letters, and
 * the held watermarks, which only then reach the task's time.
 *
 * Exactly-once: everything the loop took from the input gate is either
 * emitted (before any later barrier, in the loop) or still here, and a
 * snapshot keeps what is here ({@link snapshot}: records in flight, done
 * but not emitted, or waiting for room), so restoring requests them again.
 * Results are exactly-once; requests are at-least-once.
 */
import type { LogicalNode } from "../../api/job.js";
import type { AsyncFunction } from "../../api/async-function.js";
import { type DeadLetter, errorText } from "../../api/dead-letter.js";
import { type AsyncOutput, AsyncWaitOperator } from "../../async/async-wait-operator.js";
import { nodeLabel } from "../../graph/plan.js";
import type { Key } from "../../graph/key-groups.js";
import type { BatchOrigins, RecordOrigin } from "../batch-encoding.js";

/** A record in the operator as checkpoints keep it: its value, its event time, where it was read and its key (absent: none, or unknown). */
export interface AsyncRecord {
  readonly value: unknown;
  readonly timestampMs?: number;
  readonly source?: RecordOrigin;
  /** Its key, when the operator reads a keyed stream. */
  readonly key?: Key;
}

/** A watermark message held until the records before it have left. */
interface HeldWatermark {
  readonly channel: string;
  readonly watermarkMs: number | null;
  readonly idle: boolean;
}

/** What the stage emits to, and its clock. */
export interface AsyncStageParts {
  readonly node: LogicalNode;
  /** The chain's instance of the function (opened with the chain's rich functions). */
  readonly fn: AsyncFunction<unknown, unknown>;
  readonly sleep: (ms: number) => Promise<void>;
  readonly emit: (value: unknown, timestampMs: number | undefined) => void;
  readonly emitSide: (tag: string, value: unknown, timestampMs: number | undefined) => void;
  /** Where the record whose results are emitted next was read (null: unknown), for edges that carry it on. */
  readonly setOrigin: (origin: RecordOrigin | null) => void;
  /** Sends buffered output on. */
  readonly flush: () => Promise<void>;
  /** A held watermark's turn came: the task's time takes it as if it had just arrived. */
  readonly onWatermark: (channel: string, watermarkMs: number | null, idle: boolean) => Promise<void>;
  /** A record went to the dead-letter output. */
  readonly countDeadLetter: () => void;
}

/** The async operator of one subtask. */
export class AsyncStage {
  readonly uid: string;
  private readonly label: string;
  private readonly operator: AsyncWaitOperator<AsyncRecord, unknown, HeldWatermark>;
  /**
   * Polled and not emitted yet: emitting waits at each watermark, and an
   * unaligned snapshot taken meanwhile must still find these records.
   */
  private unsent: AsyncOutput<AsyncRecord, unknown, HeldWatermark>[] = [];
  /** The last attempt each record started, for the error that fails the job when one fails. */
  private readonly attempts = new WeakMap<AsyncRecord, number>();

  constructor(private readonly parts: AsyncStageParts) {
    const spec = parts.node.async!;
    this.uid = parts.node.options.uid!;
    this.label = nodeLabel(parts.node);
    this.operator = new AsyncWaitOperator<AsyncRecord, unknown, HeldWatermark>(
      {
        asyncInvoke: (r, ctx) => {
          this.attempts.set(r, ctx.attempt);
          return parts.fn.asyncInvoke(r.value, ctx);
        },
        ...(typeof parts.fn.timeout === "function" ? { timeout: (r) => parts.fn.timeout!(r.value) } : {}),
      },
      { mode: spec.mode, capacity: spec.capacity, timeoutMs: spec.timeoutMs, maxConcurrentRequests: spec.maxConcurrentRequests, retry: spec.retry },
      { sleep: parts.sleep },
    );
  }

  /** Records of a batch, with their event times, where they were read, and their keys (a keyed stream's). */
  takeBatch(values: readonly unknown[], timestamps: readonly (number | null)[] | undefined, origins?: BatchOrigins, keys?: readonly Key[]): void {
    for (let i = 0; i < values.length; i++) {
      const ts = timestamps?.[i] ?? undefined;
      const source = origins?.[i] ?? undefined;
      const key = keys?.[i];
      this.operator.add({ value: values[i], ...(ts === undefined ? {} : { timestampMs: ts }), ...(source === undefined ? {} : { source }), ...(key === undefined ? {} : { key }) });
    }
  }

  /** Records of a checkpoint, requested again before any new input. */
  restore(records: readonly unknown[]): void {
    for (const r of records) this.operator.add(r as AsyncRecord);
  }

  /** A watermark message: it goes on once the records before it have left. */
  holdWatermark(channel: string, watermarkMs: number | null, idle: boolean): void {
    this.operator.addWatermark({ channel, watermarkMs, idle });
  }

  /** Whether records of the last batch wait for room: the loop takes no more input until they are in. */
  get backlogged(): boolean {
    return this.operator.backlogged;
  }

  isEmpty(): boolean {
    return this.unsent.length === 0 && this.operator.isEmpty();
  }

  /** Resolves when a record completes. */
  whenProgress(): Promise<void> {
    return this.operator.whenProgress();
  }

  /**
   * Emits what may leave now. A record that failed goes to the dead-letter
   * output, or fails the task naming the operator and the record.
   */
  async emitReady(): Promise<void> {
    this.unsent.push(...this.operator.poll());
    if (this.unsent.length === 0) return;
    while (this.unsent.length > 0) {
      const o = this.unsent.shift()!;
      if (o.kind === "watermark") {
        await this.parts.flush();
        await this.parts.onWatermark(o.mark.channel, o.mark.watermarkMs, o.mark.idle);
        continue;
      }
      const { value, timestampMs, source, key } = o.input;
      this.parts.setOrigin(source ?? null);
      if (o.result.ok) {
        for (const r of o.result.results) this.parts.emit(r, timestampMs);
        continue;
      }
      const tag = this.parts.node.options.deadLetters;
      if (tag === undefined) throw new Error(asyncFailure(this.label, o.input, this.attempts.get(o.input) ?? 0, o.result.error));
      const letter: DeadLetter = { operator: this.uid, error: errorText(o.result.error), key: key ?? null, source: source ?? null, value };
      this.parts.countDeadLetter();
      this.parts.emitSide(tag.id, letter, timestampMs);
    }
    this.parts.setOrigin(null);
    await this.parts.flush();
  }

  /** Emits everything, waiting for every request (at the end of an input). */
  async drain(): Promise<void> {
    for (;;) {
      await this.emitReady();
      if (this.isEmpty()) return;
      await this.operator.whenProgress();
    }
  }

  /** What a checkpoint keeps: every record taken and not emitted, in arrival order. */
  snapshot(): Record<string, readonly AsyncRecord[]> {
    const unsent = this.unsent.flatMap((o) => (o.kind === "record" ? [o.input] : []));
    return { [this.uid]: [...unsent, ...this.operator.pendingInputs()] };
  }

  /** The operator's counters, for the task's metrics. */
  metrics(): { inFlight: number; requests: number; retries: number; timeouts: number } {
    const { requests, retries, timeouts } = this.operator;
    return { inFlight: this.snapshot()[this.uid].length, requests, retries, timeouts };
  }

  /** The task ended: requests in flight are aborted. */
  close(): void {
    this.operator.close();
  }
}

/**
 * The error of a record that failed in an operator without a dead-letter
 * output: the operator, the record, its key (on a keyed stream), its
 * event time, where it was read (its source partition and offset, which
 * the records carry on the edges into an async operator; unknown for a
 * record a timer emitted upstream, or one replayed from a checkpoint's
 * in-flight data) and its attempts.
 */
export function asyncFailure(label: string, input: AsyncRecord, attempts: number, error: unknown): string {
  const key = input.key === undefined ? "" : ` of key ${JSON.stringify(input.key)}`;
  const at = input.timestampMs === undefined ? "" : ` at event time ${input.timestampMs}`;
  const from = input.source === undefined ? "" : ` from ${input.source.partition} offset ${input.source.offset}`;
  const tries = attempts === 0 ? "" : `, after ${attempts} attempt${attempts === 1 ? "" : "s"}`;
  const missing = [
    ...(input.key === undefined ? ["it has no key (the operator's input is not a keyed stream)"] : []),
    ...(input.source === undefined ? ["where it was read is not known (emitted by a timer upstream, or replayed from a checkpoint's in-flight data)"] : []),
  ];
  const note = missing.length === 0 ? "" : `${missing.join("; ").replace(/^i/, "I")}. `;
  return `async operator "${label}" failed for record ${preview(input.value)}${key}${at}${from}${tries}: ${errorText(error)}. ${note}A deadLetters output would take such a record aside instead of failing the job`;
}

function preview(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
