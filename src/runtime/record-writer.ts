/**
 * The sending side of a subtask (Flink's RecordWriter): partitions emitted
 * records over the output channels, buffers them into batches, and sends
 * each batch with at most `credits` calls in flight per channel.
 */
import type { PartitionerKind } from "../api/job.js";
import { isKey, type Key } from "../graph/key-groups.js";
import { createPartitioner, type Partitioner } from "../graph/partitioners.js";
import { type BufferedOutput, encodeBatch, encodeOrigins, encodeTimestamps, type KeySelector, type RecordOrigin, selectorThrewError, sentKeyError } from "./batch-encoding.js";
import { type ChannelBody, type ChannelMessage, type DeliveryResult, channelId } from "./messages.js";

/** One output edge of the sending vertex. */
export interface OutputEdge {
  readonly vertex: string;
  readonly parallelism: number;
  readonly partitioner: PartitionerKind;
  /** Computes the key of a record on hash edges (the receiver computes it again: batches carry values only). */
  readonly keySelector?: KeySelector;
  /** The keyed operator the edge leads to, as errors name it (`keyedOperatorName`). */
  readonly operator?: string;
  /** Set when the edge carries the side output with this tag id, not the main output. */
  readonly tag?: string;
  /** Set when the receiving vertex has another input from this vertex: the edge's channels are this lane (`channelId`). */
  readonly lane?: number;
  /** The records carry where they were read (into an async operator, or a vertex that feeds one: see plan.ts `verticesCarryingOrigins`). */
  readonly origins?: boolean;
}

/** Delivers one message to subtask `index` of `vertex`. */
export type SendFn = (vertex: string, index: number, message: ChannelMessage) => Promise<DeliveryResult>;

interface Target {
  readonly vertex: string;
  readonly index: number;
  /** The receiver's id with the edge's lane: what in-flight data is keyed by. */
  readonly id: string;
  /** The channel id the receiver knows this sender by. */
  readonly channel: string;
  seq: number;
  /** Values emitted and not sent yet. */
  buffer: unknown[];
  /** Their event times (null: none), index for index. */
  stamps: (number | null)[];
  /** Where they were read (null: unknown), index for index; only on an edge that carries origins. */
  origins: (RecordOrigin | null)[] | undefined;
  readonly inFlight: Promise<void>[];
}

/**
 * The key of a record on a keyed edge. Only a string or a finite number is
 * one: anything else (a Date, a Map, undefined…) would not be the key the
 * receiver computes from the record's JSON, so it fails here, at the first
 * record, rather than misroute it. (One `typeof` per record.)
 */
function keyOf(edge: OutputEdge, value: unknown): Key {
  let key: unknown;
  try {
    key = edge.keySelector!(value);
  } catch (e) {
    throw selectorThrewError(operatorOf(edge), value, e, false);
  }
  if (!isKey(key)) throw sentKeyError(operatorOf(edge), value, key);
  return key;
}

function operatorOf(edge: OutputEdge): string {
  return edge.operator ?? `vertex ${JSON.stringify(edge.vertex)}`;
}

/** Why sending stopped. */
export class ChannelError extends Error {
  constructor(
    message: string,
    /** The receiver answered that this sender belongs to an older attempt. */
    readonly stale: boolean,
  ) {
    super(message);
    this.name = "ChannelError";
  }
}

/** Emits records of one subtask to every downstream subtask. */
interface Output {
  readonly edge: OutputEdge;
  readonly partitioner: Partitioner;
  readonly targets: Target[];
  readonly channels: Target[];
}

export class RecordWriter {
  /** Every output edge: barriers, watermarks and end-of-input go to all of them. */
  private readonly outputs: Output[];
  /** The edges of the main output. */
  private readonly main: Output[];
  /** The edges of each side output, by tag id. */
  private readonly sides = new Map<string, Output[]>();
  private failure: ChannelError | undefined;
  private recordsOut = 0;
  private readonly carriesOrigins: boolean;
  /** Time spent waiting for credits: how long downstream held this subtask back. */
  backpressuredMs = 0;

  constructor(
    edges: readonly OutputEdge[],
    private readonly sender: { vertex: string; index: number; attempt: number },
    maxParallelism: number,
    private readonly send: SendFn,
    private readonly batchSize: number,
    private readonly now: () => number,
    private readonly credits = 4,
    /** Where the record being emitted was read (for edges that carry origins). */
    private readonly origin: () => RecordOrigin | null = () => null,
  ) {
    this.outputs = edges.map((edge) => {
      const channel = channelId(sender.vertex, sender.index, edge.lane);
      const targets = Array.from({ length: edge.parallelism }, (_, index) => ({
        vertex: edge.vertex,
        index,
        id: channelId(edge.vertex, index, edge.lane),
        channel,
        seq: 0,
        buffer: [] as unknown[],
        stamps: [] as (number | null)[],
        origins: edge.origins ? ([] as (RecordOrigin | null)[]) : undefined,
        inFlight: [] as Promise<void>[],
      }));
      return {
        edge,
        partitioner: createPartitioner(edge.partitioner, sender.index, edge.parallelism, maxParallelism),
        targets,
        // A forward edge is one channel (i → i); barriers and end-of-input go only where channels are.
        channels: edge.partitioner === "forward" ? [targets[sender.index]] : targets,
      };
    });
    this.carriesOrigins = edges.some((e) => e.origins);
    this.main = this.outputs.filter((o) => o.edge.tag === undefined);
    for (const o of this.outputs) {
      if (o.edge.tag === undefined) continue;
      const list = this.sides.get(o.edge.tag);
      if (list) list.push(o);
      else this.sides.set(o.edge.tag, [o]);
    }
  }

  /** Whether the vertex sends anywhere. */
  get hasOutputs(): boolean {
    return this.outputs.length > 0;
  }

  /** Records emitted so far. */
  get emitted(): number {
    return this.recordsOut;
  }

  /** Buffers one record, with its event time if it has one, for every edge of the main output. */
  emit(value: unknown, timestampMs?: number): void {
    this.recordsOut++;
    this.route(this.main, value, timestampMs);
  }

  /** Buffers one record of side output `tag` for that output's edges; nothing when no edge reads it. */
  emitSide(tag: string, value: unknown, timestampMs?: number): void {
    const outputs = this.sides.get(tag);
    if (outputs === undefined) return;
    this.recordsOut++;
    this.route(outputs, value, timestampMs);
  }

  private route(outputs: readonly Output[], value: unknown, timestampMs: number | undefined): void {
    const stamp = timestampMs ?? null;
    const origin = this.carriesOrigins ? this.origin() : null;
    for (const o of outputs) {
      if (o.edge.partitioner === "broadcast") {
        for (const t of o.targets) {
          t.buffer.push(value);
          t.stamps.push(stamp);
          t.origins?.push(origin);
        }
        continue;
      }
      const key = o.edge.keySelector ? keyOf(o.edge, value) : undefined;
      const t = o.targets[o.partitioner.select(key)];
      t.buffer.push(value);
      t.stamps.push(stamp);
      t.origins?.push(origin);
    }
  }

  /** Sends every buffered record; waits only for credits, not for delivery. */
  async flush(): Promise<void> {
    this.throwIfFailed();
    for (const o of this.outputs) {
      for (const t of o.targets) {
        while (t.buffer.length > 0) {
          // Records stay in the buffer while their send waits for a credit: an unaligned snapshot
          // taken meanwhile finds them there (output in-flight data), as the barrier overtakes them.
          await this.waitForCredit(t);
          if (t.buffer.length === 0) break;
          const whole = t.buffer.length <= this.batchSize;
          const chunk = whole ? t.buffer : t.buffer.slice(0, this.batchSize);
          const stamps = whole ? t.stamps : t.stamps.slice(0, this.batchSize);
          const origins = t.origins && (whole ? t.origins : t.origins.slice(0, this.batchSize));
          t.buffer = whole ? [] : t.buffer.slice(this.batchSize);
          t.stamps = whole ? [] : t.stamps.slice(this.batchSize);
          if (t.origins) t.origins = whole ? [] : t.origins.slice(this.batchSize);
          const timestamps = encodeTimestamps(stamps);
          const originsText = origins && encodeOrigins(origins);
          await this.sendOn(t, {
            kind: "batch",
            count: chunk.length,
            records: encodeBatch(chunk),
            ...(timestamps === undefined ? {} : { timestamps }),
            ...(originsText === undefined ? {} : { origins: originsText }),
          });
        }
      }
    }
  }

  /** Sends end-of-input on every channel. */
  async endOfInput(): Promise<void> {
    await this.flush();
    for (const o of this.outputs) for (const t of o.channels) await this.sendOn(t, { kind: "end" });
  }

  /**
   * Sends every buffered record, then the subtask's watermark and idleness
   * on every channel (null: no watermark yet).
   */
  async broadcastWatermark(watermarkMs: number | null, idle: boolean): Promise<void> {
    await this.flush();
    for (const o of this.outputs) for (const t of o.channels) await this.sendOn(t, { kind: "watermark", watermarkMs, idle });
  }

  /** Sends every buffered record, then barrier `checkpointId` on every channel. */
  async broadcastBarrier(checkpointId: number, triggerMs: number, isSavepoint: boolean): Promise<void> {
    await this.flush();
    for (const o of this.outputs) for (const t of o.channels) await this.sendOn(t, { kind: "barrier", checkpointId, triggerMs, isSavepoint });
  }

  /**
   * Unaligned checkpoints: sends barrier `checkpointId` on every channel at
   * once, ahead of buffered records and without waiting for credits.
   */
  broadcastPriorityBarrier(checkpointId: number, triggerMs: number, isSavepoint: boolean): void {
    for (const o of this.outputs) for (const t of o.channels) void this.sendOn(t, { kind: "barrier", checkpointId, triggerMs, isSavepoint, priority: true }, true);
  }

  /**
   * Aligned barrier with a timeout (Flink's timeoutable aligned barrier):
   * sends every buffered record, then barrier `checkpointId`, as
   * {@link broadcastBarrier}; but if `deadline` resolves first, the barrier
   * overtakes what is still buffered on the channels that have not had it.
   * `overtaken` resolves as soon as the barrier is out: null when it went
   * aligned, else the records it overtook (the checkpoint's output in-flight
   * data), which still go out after it; `done` when everything was sent.
   */
  broadcastBarrierUntil(
    checkpointId: number,
    triggerMs: number,
    deadline: Promise<void>,
  ): { overtaken: Promise<BufferedOutput | null>; done: Promise<void> } {
    const sent = new Set<Target>();
    let switched = false;
    const done = (async () => {
      await this.flush();
      for (const o of this.outputs) {
        for (const t of o.channels) {
          if (switched) return;
          if (t.inFlight.length >= this.credits) await this.waitForCredit(t);
          if (switched) return;
          // Marked in the same turn as the send: a switch never sends this channel a second barrier.
          sent.add(t);
          await this.sendOn(t, { kind: "barrier", checkpointId, triggerMs, isSavepoint: false });
        }
      }
    })();
    const overtaken = Promise.race([done.then(() => "aligned" as const), deadline.then(() => "timeout" as const)]).then((winner) => {
      if (winner === "aligned" || this.outputs.every((o) => o.channels.every((t) => sent.has(t)))) return null;
      switched = true;
      const outputs = this.bufferedOutput();
      for (const o of this.outputs) {
        for (const t of o.channels) {
          if (!sent.has(t)) void this.sendOn(t, { kind: "barrier", checkpointId, triggerMs, isSavepoint: false, priority: true }, true);
        }
      }
      return outputs;
    });
    return { overtaken, done };
  }

  /** Values buffered and not sent yet, per target (output in-flight data at a snapshot). */
  bufferedRecords(): Record<string, unknown[]> {
    const out: Record<string, unknown[]> = {};
    for (const o of this.outputs) for (const t of o.targets) if (t.buffer.length > 0) out[t.id] = [...t.buffer];
    return out;
  }

  /** Values and event times buffered and not sent yet, per target (output in-flight data at a snapshot). */
  bufferedOutput(): BufferedOutput {
    const timestamps: Record<string, (number | null)[]> = {};
    for (const o of this.outputs) {
      for (const t of o.targets) if (t.stamps.some((s) => s !== null)) timestamps[t.id] = [...t.stamps];
    }
    return { records: this.bufferedRecords(), timestamps };
  }

  /**
   * Buffers values (with their event times, when given) for a target ahead
   * of anything emitted (output channel state replayed on restore): they
   * are sent as they were buffered, to the target they were partitioned to
   * then.
   */
  preload(target: string, records: readonly unknown[], timestamps?: readonly (number | null)[]): void {
    for (const o of this.outputs) {
      for (const t of o.targets) {
        if (t.id !== target) continue;
        t.buffer.unshift(...records);
        t.stamps.unshift(...(timestamps ?? records.map(() => null)));
        // In-flight data keeps no origins: these records name none.
        t.origins?.unshift(...records.map(() => null));
      }
    }
  }

  /** Waits until every message sent so far was taken by its receiver. */
  async drain(): Promise<void> {
    for (const o of this.outputs) for (const t of o.targets) await Promise.all(t.inFlight.splice(0));
    this.throwIfFailed();
  }

  private async waitForCredit(t: Target): Promise<void> {
    if (t.inFlight.length < this.credits) return;
    const start = this.now();
    while (t.inFlight.length >= this.credits) {
      await t.inFlight.shift();
      this.throwIfFailed();
    }
    this.backpressuredMs += this.now() - start;
  }

  private async sendOn(t: Target, body: ChannelBody, priority = false): Promise<void> {
    if (!priority && t.inFlight.length >= this.credits) {
      const start = this.now();
      while (t.inFlight.length >= this.credits) {
        await t.inFlight.shift();
        this.throwIfFailed();
      }
      this.backpressuredMs += this.now() - start;
    }
    t.seq++;
    const message = {
      ...body,
      attempt: this.sender.attempt,
      channel: t.channel,
      seq: t.seq,
    } as ChannelMessage;
    const p = this.send(t.vertex, t.index, message).then(
      (result) => {
        if (result === "accepted" || result === "duplicate") return;
        this.setFailure(new ChannelError(`channel to ${t.id} refused message ${message.seq}: ${result}`, result === "stale-attempt"));
      },
      (e: unknown) => {
        this.setFailure(new ChannelError(`channel to ${t.id} failed: ${String((e as Error)?.message ?? e)}`, false));
      },
    );
    t.inFlight.push(p);
  }

  /** Called once, as soon as a channel fails: the task need not wait for its next send to learn it. */
  onFailure: ((e: ChannelError) => void) | undefined;

  private setFailure(e: ChannelError): void {
    if (this.failure) return;
    this.failure = e;
    this.onFailure?.(e);
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }
}
