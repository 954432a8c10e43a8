/**
 * The receiving side of a subtask's channels (Flink's InputGate): one
 * bounded queue per channel, sequence checks, and fair round-robin
 * delivery to the single consumer loop. A sender's call resolves only when
 * the consumer takes its message, so a sender with `k` calls in flight per
 * channel holds exactly `k` credits: a slow consumer backpressures it.
 */
import type { BarrierMessage, ChannelMessage, DeliveryResult } from "./messages.js";

interface Queued {
  readonly message: ChannelMessage;
  readonly taken: (result: DeliveryResult) => void;
}

interface ChannelState {
  readonly id: string;
  lastSeq: number;
  readonly queue: Queued[];
  /** Messages that arrived ahead of a missing one, by sequence number. */
  readonly early: Map<number, { message: ChannelMessage; answer: (result: DeliveryResult) => void }>;
  blocked: boolean;
  ended: boolean;
}

/**
 * How many messages a channel holds while one before them is missing. The
 * runtime orders calls on one stub, but calls a subtask makes from different
 * incoming requests (batches from its loop, an unaligned barrier from the
 * call that delivered its own) may overtake each other; a sender has at
 * most a few calls in flight, so a gap wider than this is a lost message.
 */
export const MAX_EARLY_MESSAGES = 32;

/** Queues of all input channels of one subtask for one attempt. */
export class InputGate {
  private readonly channels = new Map<string, ChannelState>();
  private readonly order: ChannelState[] = [];
  private cursor = 0;
  private wake: (() => void) | undefined;
  private closed = false;
  /**
   * Unaligned checkpoints: barriers skip the queue and go to this handler at
   * once, ahead of the batches queued before them.
   */
  priorityBarriers: ((barrier: BarrierMessage) => boolean) | undefined;
  /** Channels whose arriving batches are also recorded as in-flight data of a checkpoint. */
  private readonly recording = new Map<string, ChannelMessage[]>();

  constructor(channelIds: readonly string[]) {
    for (const id of channelIds) {
      const c: ChannelState = { id, lastSeq: 0, queue: [], early: new Map(), blocked: false, ended: false };
      this.channels.set(id, c);
      this.order.push(c);
    }
  }

  /** Number of input channels. */
  get size(): number {
    return this.order.length;
  }

  /**
   * Offers a message. Duplicates are answered at once; a message that came
   * before one it follows waits for it (a gap answered only when too many
   * wait); an accepted message's promise resolves when the consumer takes it.
   */
  offer(message: ChannelMessage): DeliveryResult | Promise<DeliveryResult> {
    if (this.closed) return "closed";
    const c = this.channels.get(message.channel);
    if (!c) return "not-deployed";
    if (message.seq <= c.lastSeq || c.early.has(message.seq)) return "duplicate";
    if (message.seq !== c.lastSeq + 1) {
      if (c.early.size >= MAX_EARLY_MESSAGES) return "gap";
      return new Promise((answer) => c.early.set(message.seq, { message, answer }));
    }
    const result = this.accept(c, message);
    // The messages that waited for this one follow it, in order.
    for (let next = c.early.get(c.lastSeq + 1); next && !this.closed; next = c.early.get(c.lastSeq + 1)) {
      c.early.delete(c.lastSeq + 1);
      void Promise.resolve(this.accept(c, next.message)).then(next.answer);
    }
    return result;
  }

  private accept(c: ChannelState, message: ChannelMessage): DeliveryResult | Promise<DeliveryResult> {
    c.lastSeq = message.seq;
    if (message.kind === "barrier" && this.priorityBarriers?.(message)) return "accepted";
    if (message.kind === "batch" || message.kind === "watermark") this.recording.get(c.id)?.push(message);
    const p = new Promise<DeliveryResult>((resolve) => c.queue.push({ message, taken: resolve }));
    this.notify();
    return p;
  }

  /** Takes the next message from an unblocked channel, round-robin; undefined if none is ready. */
  poll(): ChannelMessage | undefined {
    const n = this.order.length;
    for (let i = 0; i < n; i++) {
      const c = this.order[(this.cursor + i) % n];
      if (c.blocked || c.queue.length === 0) continue;
      this.cursor = (this.cursor + i + 1) % n;
      const q = c.queue.shift()!;
      if (q.message.kind === "end") c.ended = true;
      q.taken("accepted");
      return q.message;
    }
    return undefined;
  }

  /** The message {@link poll} would take next, left in its queue (where a barrier still finds it). */
  peek(): ChannelMessage | undefined {
    const n = this.order.length;
    for (let i = 0; i < n; i++) {
      const c = this.order[(this.cursor + i) % n];
      if (!c.blocked && c.queue.length > 0) return c.queue[0].message;
    }
    return undefined;
  }

  /** Resolves when a message may be ready (or the gate was closed). */
  waitForInput(): Promise<void> {
    if (this.closed || this.order.some((c) => !c.blocked && c.queue.length > 0)) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  /** Stops taking messages from a channel (barrier alignment). */
  block(channel: string): void {
    const c = this.channels.get(channel);
    if (c) c.blocked = true;
  }

  /** Resumes every blocked channel. */
  unblockAll(): void {
    for (const c of this.order) c.blocked = false;
    this.notify();
  }

  /** The batches (and the watermarks among them) waiting in `channel` now: its in-flight data at an unaligned snapshot. */
  queuedBatches(channel: string): ChannelMessage[] {
    const c = this.channels.get(channel);
    return c ? c.queue.map((q) => q.message).filter(inFlight) : [];
  }

  /**
   * An aligned checkpoint turning unaligned: if barrier `checkpointId` is
   * queued on `channel`, takes it out of the queue and answers the batches
   * queued before it (the channel's in-flight data); undefined when the
   * barrier has not arrived.
   */
  takeBarrier(channel: string, checkpointId: number): ChannelMessage[] | undefined {
    const c = this.channels.get(channel);
    if (!c) return undefined;
    const at = c.queue.findIndex((q) => q.message.kind === "barrier" && q.message.checkpointId === checkpointId);
    if (at < 0) return undefined;
    const [barrier] = c.queue.splice(at, 1);
    barrier.taken("accepted");
    return c.queue.slice(0, at).map((q) => q.message).filter(inFlight);
  }

  /** Whether barrier `checkpointId` waits in `channel`'s queue (what {@link takeBarrier} would take). */
  hasBarrier(channel: string, checkpointId: number): boolean {
    const c = this.channels.get(channel);
    return c !== undefined && c.queue.some((q) => q.message.kind === "barrier" && q.message.checkpointId === checkpointId);
  }

  /** Starts recording the batches (and watermarks) that arrive on `channel` afresh (until {@link stopRecording}). */
  startRecording(channel: string): void {
    this.recording.set(channel, []);
  }

  /** Stops recording `channel`; returns what was recorded. */
  stopRecording(channel: string): ChannelMessage[] {
    const recorded = this.recording.get(channel) ?? [];
    this.recording.delete(channel);
    return recorded;
  }

  /** Puts messages at the head of a channel's queue, ahead of anything it receives (channel state replayed on restore). */
  prepend(channel: string, messages: readonly ChannelMessage[]): void {
    const c = this.channels.get(channel);
    if (!c) return;
    c.queue.unshift(...messages.map((message) => ({ message, taken: () => undefined })));
    this.notify();
  }

  /** Whether every channel has delivered its end-of-input. */
  allEnded(): boolean {
    return this.order.length > 0 && this.order.every((c) => c.ended);
  }

  /** Messages queued, over all channels. */
  queued(): number {
    let n = 0;
    for (const c of this.order) n += c.queue.length;
    return n;
  }

  /** Refuses further messages and releases every waiting sender with "closed". */
  close(): void {
    this.closed = true;
    for (const c of this.order) {
      for (const q of c.queue.splice(0)) q.taken("closed");
      for (const e of c.early.values()) e.answer("closed");
      c.early.clear();
    }
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

/**
 * What a channel's in-flight data keeps: batches, and the watermarks among
 * them (a restore replays the records behind the same watermarks as the
 * first time, so a record dropped as late is dropped again).
 */
function inFlight(m: ChannelMessage): boolean {
  return m.kind === "batch" || m.kind === "watermark";
}
