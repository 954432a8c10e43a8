/**
 * The wire vocabulary between objects: record batches and control signals
 * on channels, and what a receiver answers. One place, so that every
 * object speaks the same protocol.
 */
/** A channel is (upstream vertex, upstream subtask) → one receiving subtask. */
export function channelId(vertex: string, index: number): string {
  return `${vertex}/${index}`;
}

/** Fields every channel message carries. */
interface ChannelHeader {
  /** Job attempt of the sender: a receiver drops messages of older attempts (fencing). */
  readonly attempt: number;
  readonly channel: string;
  /** Per-channel sequence number, from 1: order and de-duplication. */
  readonly seq: number;
}

/**
 * A batch of records. `records` is the JSON text of an array of the
 * records' values: one string crosses RPC far cheaper than an object graph,
 * which would be structured-cloned record by record. Keys do not travel:
 * on a keyed edge the receiver computes each key again from the parsed
 * value (see `batch-encoding.ts`).
 */
export interface BatchMessage extends ChannelHeader {
  readonly kind: "batch";
  readonly count: number;
  readonly records: string;
}

/** The sender will send nothing more on this channel (a bounded source ended). */
export interface EndOfInputMessage extends ChannelHeader {
  readonly kind: "end";
}

/**
 * Checkpoint barrier N: everything the sender emitted before it belongs to
 * checkpoint N, everything after to N+1 (Chandy-Lamport's marker).
 */
export interface BarrierMessage extends ChannelHeader {
  readonly kind: "barrier";
  readonly checkpointId: number;
  /** When the coordinator triggered the checkpoint (for start delay). */
  readonly triggerMs: number;
  readonly isSavepoint: boolean;
  /**
   * Sent ahead of the records queued before it (unaligned): a receiver takes
   * it on arrival and persists what it overtook as in-flight data.
   */
  readonly priority?: boolean;
}

/** Anything that travels in-band on a channel. */
export type ChannelMessage = BatchMessage | EndOfInputMessage | BarrierMessage;

/** The body of a channel message, before the writer adds its header. */
export type ChannelBody =
  | { kind: "batch"; count: number; records: string }
  | { kind: "end" }
  | { kind: "barrier"; checkpointId: number; triggerMs: number; isSavepoint: boolean; priority?: boolean };

/** What a receiver answers to a channel message: expected outcomes are values. */
export type DeliveryResult =
  | "accepted"
  /** Already received (a retry): not applied again. */
  | "duplicate"
  /** From an attempt older than the receiver's: dropped. */
  | "stale-attempt"
  /** The receiver is not deployed for this attempt (yet, or any more). */
  | "not-deployed"
  /** A sequence number was skipped: a message was lost, the channel cannot go on. */
  | "gap"
  /** The receiver is failed or canceling. */
  | "closed";
