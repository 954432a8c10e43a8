/**
 * How records cross a channel and how in-flight data is stored: a batch is
 * the JSON text of its values, with no keys (an array of them, or their
 * fields as columns: {@link encodeBatch}). On a keyed edge the
 * sender computes a record's key to partition it, and the receiver computes
 * it again, with the same key selector, from the value it parsed. A key is
 * then neither sent nor parsed twice (once alone, once inside its value);
 * `JSON.parse` of the batches was the largest cost of a keyed job.
 *
 * The receiver's key is the sender's only if the key selector gives the
 * same key for a value and for its JSON round trip, and only if a value is
 * not changed after it was emitted (docs/architecture.md, "Batches").
 * A selector that breaks this would route records to subtasks that do not
 * own their keys, and their state would be lost or duplicated on restore
 * or rescale. So, each checked where it costs next to nothing:
 *
 * - the sender refuses a key that is not a string or a finite number
 *   (a Date, a Map, undefined, NaN…), at the first record;
 * - the receiver refuses a key that is no longer one, and checks the first
 *   record of every batch against the key groups it owns;
 * - a checkpoint refuses state under a key group the subtask does not own
 *   (`KeyedStateBackend.capture`), so none is ever committed.
 *
 * Each error is a {@link KeySelectorError} naming the keyed operator, the
 * selector's input and why (or, at a checkpoint, operator, state and key).
 */
import type { DeadLetter } from "../api/dead-letter.js";
import type { JobDefinition, LogicalNode } from "../api/job.js";
import { describeNonKey, inRange, type Key, type KeyGroupRange, keyGroupOf } from "../graph/key-groups.js";
import { upstreamSenders } from "../graph/partitioners.js";
import type { PlanVertex } from "../graph/plan.js";
import { channelId } from "./messages.js";

/** Computes the key of a record from its value, on a keyed edge. */
export type KeySelector = (value: unknown) => Key;

/** What every key selector error ends with: the rule, and how to keep it. */
const ROUND_TRIP_RULE =
  "A key selector must give the same string or finite number for a record and for its JSON round trip " +
  "(batches carry records as JSON text, and the receiving subtask computes the key again to find its state): " +
  "key by a string or number field, not by a Date, a Map, a class instance or an object with toJSON.";

/** Longest input shown in an error, in characters. */
const INPUT_PREVIEW_CHARS = 300;

/**
 * A key selector gave a key that would route its record to a subtask that
 * does not own the key's state. The message names the keyed operator, the
 * selector's input and why.
 */
export class KeySelectorError extends Error {
  constructor(
    /** The keyed operator, as {@link keyedOperatorName} gives it. */
    readonly operator: string,
    /** The key selector's input, as JSON text cut to a few hundred characters. */
    readonly input: string,
    /** What went wrong. */
    readonly reason: string,
    /** What the key selector threw, if it threw. */
    override readonly cause?: unknown,
  ) {
    super(`keyBy into ${operator}: ${reason}; the key selector's input was ${input}. ${ROUND_TRIP_RULE}`);
    this.name = "KeySelectorError";
  }

  /** The same error, saying where the record was read (a source's partition and offset). */
  at(where: string): KeySelectorError {
    return new KeySelectorError(this.operator, this.input, `${this.reason}, at ${where}`, this.cause);
  }
}

/**
 * Keys of the two inputs of a keyed co-process operator must be of one
 * type: a key "1" and a key 1 are different keys (key groups hash their
 * text with its type), so records of one user from either side would never
 * meet. The task spot-checks the first key of each batch per input; the
 * first mismatch fails the job naming the operator.
 */
export class CoInputKeyTypes {
  private readonly types: [string | undefined, string | undefined] = [undefined, undefined];

  constructor(private readonly operator: LogicalNode) {}

  check(input: 1 | 2, value: unknown, key: Key): void {
    const type = typeof key;
    if (this.types[input - 1] === type) return;
    const other = this.types[2 - input];
    if (other === undefined || other === type) {
      this.types[input - 1] ??= type;
      return;
    }
    throw new KeySelectorError(
      keyedOperatorName(this.operator),
      previewInput(value),
      `input ${input}'s key selector gave a ${type} key (${JSON.stringify(key)}), input ${3 - input}'s gave ${other} keys: ` +
        `a ${type} key never equals a ${other} one, so records of one key from the two inputs would never meet; make both key selectors give the same type`,
    );
  }
}

/** The keyed operator (the head of the receiving vertex) as errors name it: `operator "name" (uid "uid")`. */
export function keyedOperatorName(node: LogicalNode): string {
  const { name, uid } = node.options;
  if (name !== undefined && uid !== undefined && name !== uid) return `operator ${JSON.stringify(name)} (uid ${JSON.stringify(uid)})`;
  return `operator ${JSON.stringify(name ?? uid ?? `${node.kind}#${node.id}`)}`;
}

/** A value as an error shows it: its JSON, cut; or what it is, when it has none. */
export function previewInput(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = undefined;
  }
  if (text === undefined) return describeNonKey(value);
  return text.length > INPUT_PREVIEW_CHARS ? `${text.slice(0, INPUT_PREVIEW_CHARS)}…` : text;
}

/**
 * The error for a key that is not a string or a finite number, computed by
 * the sender: that key would not be the one the receiver computes.
 */
export function sentKeyError(operator: string, value: unknown, key: unknown): KeySelectorError {
  return new KeySelectorError(operator, previewInput(value), `the key selector returned ${describeNonKey(key)}, which is not a key (a string or a finite number)`);
}

/**
 * The error for a key selector that threw, on the sending side or (when
 * `received`) on the record as the receiver parsed it.
 */
export function selectorThrewError(operator: string, value: unknown, e: unknown, received: boolean): KeySelectorError {
  const why = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  const where = received ? " for the record as this subtask received it (after the batch's JSON round trip)" : "";
  return new KeySelectorError(operator, previewInput(value), `the key selector threw ${why}${where}`, e);
}

/**
 * The error for a key that is not a string or a finite number, computed by
 * the receiver from the value it parsed. The sender's key was one (it
 * checks), so the value changed in the JSON round trip under the selector.
 */
export function receivedKeyError(operator: string, value: unknown, key: unknown): KeySelectorError {
  return new KeySelectorError(
    operator,
    previewInput(value),
    `the key selector returned ${describeNonKey(key)} for the record as this subtask received it: the key changed across the batch's JSON round trip, so the record may have been routed to a subtask that does not own its key`,
  );
}

/**
 * Throws a {@link KeySelectorError} unless `key`, computed by the receiver,
 * is in a key group that `subtask` owns. The sender routed the record by
 * the key its selector gave before the JSON round trip; a key the receiver
 * computes in a key group it does not own means the two differ, and the
 * key's state would land where a restore or a rescale does not look.
 */
export function checkReceivedKey(
  operator: LogicalNode,
  subtask: { readonly index: number; readonly parallelism: number },
  value: unknown,
  key: Key,
  range: KeyGroupRange,
  maxParallelism: number,
): void {
  const keyGroup = keyGroupOf(key, maxParallelism);
  if (inRange(range, keyGroup)) return;
  throw new KeySelectorError(
    keyedOperatorName(operator),
    previewInput(value),
    `the key selector gave key ${JSON.stringify(key)} (key group ${keyGroup}) for the record as subtask ${subtask.index + 1}/${subtask.parallelism} received it, ` +
      `but that subtask owns key groups ${range.start}..${range.end}: the key changed across the batch's JSON round trip, and the sender routed the record by the key it computed before`,
  );
}

/** The key selector of each input channel of a subtask; undefined on a non-keyed edge. */
export type InputKeys = ReadonlyMap<string, KeySelector | undefined>;

/**
 * The input channels of subtask `index` of `vertex`, in the input gate's
 * order, each with the key selector its sender partitions by: the one of
 * the head's input the channel's edge feeds (a lane of its own when the
 * sender's vertex feeds several inputs), as `PlanOutput.inputIndex` picks
 * it on the sending side.
 */
export function inputKeys(job: JobDefinition, vertex: PlanVertex, index: number): InputKeys {
  const head = job.nodes[vertex.nodes[0]];
  const keys = new Map<string, KeySelector | undefined>();
  for (const input of vertex.inputs) {
    const keySelector = head.inputs[input.inputIndex].keySelector;
    for (const i of upstreamSenders(input.partitioner, input.parallelism, index)) {
      keys.set(channelId(input.vertex, i, input.lane), keySelector);
    }
  }
  return keys;
}

/**
 * For a vertex whose head is a co-process function, which of its two
 * inputs (1 or 2) each input channel feeds; undefined for any other head.
 * (One upstream vertex feeding both inputs does so over two lanes, so a
 * channel feeds one.)
 */
export function coInputs(job: JobDefinition, vertex: PlanVertex, index: number): Map<string, 1 | 2> | undefined {
  const head = job.nodes[vertex.nodes[0]];
  if (!head.coProcess) return undefined;
  const inputs = new Map<string, 1 | 2>();
  for (const input of vertex.inputs) {
    const side = head.inputs[input.inputIndex].coInput ?? 1;
    for (const i of upstreamSenders(input.partitioner, input.parallelism, index)) inputs.set(channelId(input.vertex, i, input.lane), side);
  }
  return inputs;
}

/**
 * Fewest records a batch needs to go as columns: below, its field names
 * cost more than the columns save.
 */
const COLUMNS_MIN_RECORDS = 4;

/**
 * A batch's records as columns: the field names once, then one array per
 * field, record by record. The JSON text of records that share one shape
 * (the same fields in the same order) is about half as long this way, and
 * `JSON.parse` of arrays of scalars, with the objects built again a field
 * at a time, takes under half the time of parsing one object per record
 * (a keyed job's largest cost).
 */
interface ColumnBatch {
  readonly fields: string[];
  readonly columns: unknown[][];
}

/**
 * The `records` text of a batch of values: the JSON text of the array of
 * them, or of its {@link ColumnBatch} when every value is a plain object
 * of the same fields in the same order whose JSON round trip as columns
 * is the same as one value at a time. A records text of rows begins with
 * `[`, of columns with `{`; {@link decodeBatch} reads both.
 */
export function encodeBatch(values: readonly unknown[]): string {
  return (values.length >= COLUMNS_MIN_RECORDS ? columnText(values) : undefined) ?? JSON.stringify(values);
}

/** Whether `v` is an object literal's kind of object (what `JSON.parse` gives), not an array, a class instance or null. */
function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

/**
 * The {@link ColumnBatch} text of `values`, or undefined when a value is
 * not a plain object, has other fields than the first (or in another
 * order), or has a field whose JSON would differ as an array element: an
 * object leaves out a field that is undefined, a function or a symbol,
 * where an array writes null, and a toJSON method is told where it is.
 * An enumerable property added to `Object.prototype` shows in `for…in`
 * and not in the first record's keys, so it sends the batch as rows too.
 */
function columnText(values: readonly unknown[]): string | undefined {
  const first = values[0];
  if (!isPlainObject(first)) return undefined;
  const fields = Object.keys(first);
  const width = fields.length;
  // "__proto__" as a field would set a prototype where JSON.parse defines a property.
  if (width === 0 || fields.includes("__proto__")) return undefined;
  // Grown by push, not preallocated: a `new Array(n)` stays holey after it is filled, and JSON.stringify writes a
  // holey array at half the speed of a packed one (encoding a three-field record: 80 against 95 ns in Node).
  const columns: unknown[][] = [];
  for (let j = 0; j < width; j++) columns.push([]);
  for (let i = 0; i < values.length; i++) {
    const r = values[i];
    if (!isPlainObject(r)) return undefined;
    let j = 0;
    for (const f in r) {
      if (f !== fields[j]) return undefined;
      const v = r[f];
      const type = typeof v;
      if (type === "undefined" || type === "function" || type === "symbol") return undefined;
      // toJSON is called with the field's name in an object and the index in an array, and may answer undefined.
      if (type === "object" && v !== null && typeof (v as { toJSON?: unknown }).toJSON === "function") return undefined;
      columns[j].push(v);
      j++;
    }
    if (j !== width) return undefined;
  }
  return `{"fields":${JSON.stringify(fields)},"columns":${JSON.stringify(columns)}}`;
}

/** The values of a batch's `records` text, rows or columns ({@link encodeBatch}). */
export function decodeBatch(text: string): unknown[] {
  if (text.charCodeAt(0) !== 0x7b /* { */) return JSON.parse(text) as unknown[];
  const { fields, columns } = JSON.parse(text) as ColumnBatch;
  const n = columns[0].length;
  const out = new Array<Record<string, unknown>>(n);
  // A field at a time: each loop stores one property name, which V8 keeps monomorphic.
  const f0 = fields[0];
  const c0 = columns[0];
  for (let i = 0; i < n; i++) {
    const o: Record<string, unknown> = {};
    o[f0] = c0[i];
    out[i] = o;
  }
  for (let j = 1; j < fields.length; j++) {
    const f = fields[j];
    const c = columns[j];
    for (let i = 0; i < n; i++) out[i][f] = c[i];
  }
  return out;
}

/** Event times of a batch's records (null: none), or undefined when no record has one. */
export type BatchTimestamps = readonly (number | null)[];

/** The `timestamps` text of a batch, or undefined when no record has an event time. */
export function encodeTimestamps(timestamps: BatchTimestamps): string | undefined {
  for (const t of timestamps) if (t !== null) return JSON.stringify(timestamps);
  return undefined;
}

/** Where a record was read: a source partition and the offset in it (dead letters and errors name it). */
export type RecordOrigin = NonNullable<DeadLetter["source"]>;

/** The records' origins of a batch (null: unknown), index for index. */
export type BatchOrigins = readonly (RecordOrigin | null)[];

/** The `origins` text of a batch (`[partition, offset]` or null per record), or undefined when no record has one. */
export function encodeOrigins(origins: BatchOrigins): string | undefined {
  if (origins.every((o) => o === null)) return undefined;
  return JSON.stringify(origins.map((o) => (o === null ? null : [o.partition, o.offset])));
}

/** The origins of a batch's `origins` text ({@link encodeOrigins}). */
export function decodeOrigins(text: string): BatchOrigins {
  return (JSON.parse(text) as ([string, number] | null)[]).map((o) => (o === null ? null : { partition: o[0], offset: o[1] }));
}

/**
 * A received batch as in-flight input data: its `records` text, or, when
 * its records have event times, `{"timestamps":[…],"records":…}` (a
 * records text is an array or a {@link ColumnBatch}, whose first field is
 * not "timestamps", so the text's beginning tells them apart).
 */
export function inFlightBatch(records: string, timestamps: string | undefined): string {
  return timestamps === undefined ? records : `{"timestamps":${timestamps},"records":${records}}`;
}

/**
 * A watermark queued among a channel's in-flight batches, as in-flight data
 * stores it: `{"watermark":…,"idle":…}`. Kept in order with the batches, so
 * that a restore replays the records at the event time they were behind.
 */
export function inFlightWatermark(watermarkMs: number | null, idle: boolean): string {
  return JSON.stringify({ watermark: watermarkMs, idle });
}

/** One entry of a channel's in-flight input data: a batch's texts, or a watermark. */
export type InFlightEntry = { kind: "batch"; records: string; timestamps?: string } | { kind: "watermark"; watermarkMs: number | null; idle: boolean };

/** Reads one entry of in-flight input data (see {@link inFlightBatch}, {@link inFlightWatermark}). */
export function fromInFlight(text: string): InFlightEntry {
  if (text.startsWith('{"watermark":')) {
    const w = JSON.parse(text) as { watermark: number | null; idle: boolean };
    return { kind: "watermark", watermarkMs: w.watermark, idle: w.idle };
  }
  return { kind: "batch", ...fromInFlightBatch(text) };
}

/** A batch of in-flight input data as a batch's `records` and `timestamps` texts again. */
export function fromInFlightBatch(text: string): { records: string; timestamps?: string } {
  if (!text.startsWith('{"timestamps":')) return { records: text };
  const b = JSON.parse(text) as { timestamps: BatchTimestamps; records: unknown[] | ColumnBatch };
  return { records: JSON.stringify(b.records), timestamps: JSON.stringify(b.timestamps) };
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
