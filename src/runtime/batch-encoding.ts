/**
 * How records cross a channel and how in-flight data is stored: a batch is
 * the JSON text of an array of values, with no keys. On a keyed edge the
 * sender computes a record's key to partition it, and the receiver computes
 * it again, with the same key selector, from the value it parsed. A key is
 * then neither sent nor parsed twice (once alone, once inside its value);
 * `JSON.parse` of the batches was the largest cost of a keyed job.
 *
 * The receiver's key is the sender's only if the key selector gives the
 * same key for a value and for its JSON round trip, and only if a value is
 * not changed after it was emitted (docs/architecture.md, "Batches").
 */
import type { JobDefinition } from "../api/job.js";
import type { Key } from "../graph/key-groups.js";
import { upstreamSenders } from "../graph/partitioners.js";
import type { PlanVertex } from "../graph/plan.js";
import { channelId } from "./messages.js";

/** Computes the key of a record from its value, on a keyed edge. */
export type KeySelector = (value: unknown) => Key;

/** The key selector of each input channel of a subtask; undefined on a non-keyed edge. */
export type InputKeys = ReadonlyMap<string, KeySelector | undefined>;

/**
 * The input channels of subtask `index` of `vertex`, in the input gate's
 * order, each with the key selector its sender partitions by: the one of
 * the first input of the vertex's head that comes from the sender's vertex,
 * as `PlanOutput.inputIndex` picks it on the sending side.
 */
export function inputKeys(job: JobDefinition, vertex: PlanVertex, index: number): InputKeys {
  const head = job.nodes[vertex.nodes[0]];
  const keys = new Map<string, KeySelector | undefined>();
  for (const input of vertex.inputs) {
    const keySelector = head.inputs[input.inputIndex].keySelector;
    for (const i of upstreamSenders(input.partitioner, input.parallelism, index)) {
      const channel = channelId(input.vertex, i);
      if (!keys.has(channel)) keys.set(channel, keySelector);
    }
  }
  return keys;
}

/** The `records` text of a batch of values. */
export function encodeBatch(values: readonly unknown[]): string {
  return JSON.stringify(values);
}

/** Event times of a batch's records (null: none), or undefined when no record has one. */
export type BatchTimestamps = readonly (number | null)[];

/** The `timestamps` text of a batch, or undefined when no record has an event time. */
export function encodeTimestamps(timestamps: BatchTimestamps): string | undefined {
  for (const t of timestamps) if (t !== null) return JSON.stringify(timestamps);
  return undefined;
}

/**
 * A received batch as in-flight input data: its `records` text, or, when
 * its records have event times, `{"timestamps":[…],"records":[…]}` (a
 * records text is an array, so the first character tells them apart).
 */
export function inFlightBatch(records: string, timestamps: string | undefined): string {
  return timestamps === undefined ? records : `{"timestamps":${timestamps},"records":${records}}`;
}

/** A batch of in-flight input data as a batch's `records` and `timestamps` texts again. */
export function fromInFlightBatch(text: string): { records: string; timestamps?: string } {
  if (!text.startsWith("{")) return { records: text };
  const b = JSON.parse(text) as { timestamps: BatchTimestamps; records: unknown[] };
  return { records: encodeBatch(b.records), timestamps: JSON.stringify(b.timestamps) };
}

/** Output emitted and not sent: per target subtask (`<vertex>/<index>`), the values and, where some have one, their event times. */
export interface BufferedOutput {
  readonly records: Record<string, unknown[]>;
  readonly timestamps: Record<string, (number | null)[]>;
}

/** A subtask's in-flight data of an unaligned checkpoint, in memory. */
export interface InFlightData {
  /** Per input channel: the batches received and not processed ({@link inFlightBatch} texts). */
  readonly inputs: Record<string, string[]>;
  /** Per target subtask (`<vertex>/<index>`): the values emitted and not sent. */
  readonly outputs: Record<string, unknown[]>;
  /** Per target subtask, the event times of `outputs` (null: none), for targets where some record has one. */
  readonly outputTimestamps?: Record<string, (number | null)[]>;
}

/**
 * The in-flight data file. Version 2 holds batches and buffered output as
 * values only; version 1 (before keys stopped travelling) held
 * `[key, value]` pairs, and is still read, so that a job restores from an
 * unaligned checkpoint taken before an upgrade.
 */
type ChannelStateFile =
  | {
      readonly version: 2;
      readonly inputs: Record<string, string[]>;
      readonly outputs: Record<string, unknown[]>;
      /** Added with timers (optional: files without event times, and older ones, have none). */
      readonly outputTimestamps?: Record<string, (number | null)[]>;
    }
  | { readonly version: 1; readonly inputs: Record<string, string[]>; readonly outputs: Record<string, [unknown, unknown][]> };

/** The stored text of a subtask's in-flight data. */
export function encodeChannelState(data: InFlightData): string {
  const file: ChannelStateFile = { version: 2, inputs: data.inputs, outputs: data.outputs };
  if (data.outputTimestamps && Object.keys(data.outputTimestamps).length > 0) return JSON.stringify({ ...file, outputTimestamps: data.outputTimestamps });
  return JSON.stringify(file);
}

/** Reads a subtask's in-flight data, as {@link encodeChannelState} wrote it (or version 1). */
export function decodeChannelState(text: string): InFlightData {
  const file = JSON.parse(text) as ChannelStateFile;
  if (file.version === 2) return { inputs: file.inputs, outputs: file.outputs, outputTimestamps: file.outputTimestamps };
  if (file.version === 1) {
    const values = (pairs: [unknown, unknown][]) => pairs.map((p) => p[1]);
    const inputs: Record<string, string[]> = {};
    for (const [channel, batches] of Object.entries(file.inputs)) inputs[channel] = batches.map((b) => encodeBatch(values(JSON.parse(b) as [unknown, unknown][])));
    const outputs: Record<string, unknown[]> = {};
    for (const [target, pairs] of Object.entries(file.outputs)) outputs[target] = values(pairs);
    return { inputs, outputs };
  }
  throw new Error(`in-flight data has unknown version ${JSON.stringify((file as { version?: unknown }).version)}`);
}
