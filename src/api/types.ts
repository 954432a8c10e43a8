/**
 * The vocabulary of job definitions: user functions, sources, sinks and the
 * options every operator takes. User functions are synchronous on purpose:
 * a batch is processed, its keyed state updated and its output staged in one
 * turn, which is what makes that work all-or-nothing across a crash.
 */
import type { Key } from "../graph/key-groups.js";
import type {
  ListState,
  ListStateDescriptor,
  MapState,
  MapStateDescriptor,
  StateDescriptor,
  ValueState,
  ValueStateDescriptor,
} from "./state.js";

/** Options shared by every operator. */
export interface OperatorOptions {
  /** Stable identity of the operator's state across job versions; required where there is state. */
  uid?: string;
  /** Display name; defaults to the uid or the operator kind. */
  name?: string;
  /** Number of parallel subtasks; defaults to the input's parallelism. */
  parallelism?: number;
}

/** Where an operator sends its output. */
export interface Collector<O> {
  collect(value: O): void;
}

/** What a non-keyed process function sees. */
export interface Context {
  /** uid of the operator, for messages. */
  readonly operatorUid: string;
  /** Index of this parallel subtask. */
  readonly subtaskIndex: number;
}

/** What a keyed process function sees: the current key and its state. */
export interface KeyedContext<K extends Key = Key> extends Context {
  readonly currentKey: K;
  getState<T>(descriptor: ValueStateDescriptor<T>): ValueState<T>;
  getMapState<V>(descriptor: MapStateDescriptor<V>): MapState<V>;
  getListState<T>(descriptor: ListStateDescriptor<T>): ListState<T>;
}

/** Flink's ProcessFunction: one call per record, any number of outputs. */
export interface ProcessFunction<I, O> {
  /** State this function reads; declaring it lets the job refuse a non-keyed input up front. */
  readonly state?: readonly StateDescriptor[];
  processElement(value: I, ctx: Context, out: Collector<O>): void;
}

/** Flink's KeyedProcessFunction: as {@link ProcessFunction}, with keyed state. */
export interface KeyedProcessFunction<K extends Key, I, O> {
  readonly state?: readonly StateDescriptor[];
  processElement(value: I, ctx: KeyedContext<K>, out: Collector<O>): void;
}

/** A batch of records read from one source partition. */
export interface SourceBatch {
  /** Partition the records came from, e.g. "clicks/2". */
  readonly partition: string;
  /** Offset of the first record; the others follow contiguously. */
  readonly firstOffset: number;
  readonly records: unknown[];
}

/** Runtime services a source reader may use. */
export interface SourceReaderContext {
  readonly jobName: string;
  readonly subtaskIndex: number;
  readonly parallelism: number;
  /** The Worker's bindings. */
  readonly env: unknown;
}

/** One parallel instance of a source. */
export interface SourceReader {
  /** Partitions this reader owns, with the offset it will read next. */
  positions(): Record<string, number>;
  /** Moves the read position (after a restore or for a fresh start). */
  seek(positions: Record<string, number>): void;
  /**
   * Reads the next batch, or null when no partition has new data now, or
   * "end" when a bounded source has nothing more.
   */
  poll(maxRecords: number): Promise<SourceBatch | null | "end">;
}

/** A source connector: what the job builder receives. */
export interface SourceDefinition<T = unknown> {
  readonly kind: string;
  /** Parallelism used when the job gives none, e.g. one subtask per partition. */
  readonly defaultParallelism?: number;
  /** Whether the source can re-read from a recorded position (required for exactly-once). */
  readonly replayable: boolean;
  /** Streams this source ingests over HTTP, if any. */
  readonly httpStreams?: readonly HttpStreamDefinition[];
  createReader(ctx: SourceReaderContext): SourceReader;
  /** Phantom field carrying the record type. */
  readonly _type?: T;
}

/** An HTTP ingestion stream: the durable log behind an HTTP source. */
export interface HttpStreamDefinition {
  readonly name: string;
  readonly partitions: number;
  /** Checks one record at ingestion; returns an error message or undefined. */
  readonly validate?: (record: unknown) => string | undefined;
  /** Name of the Worker variable/secret holding this stream's own ingest token. */
  readonly ingestTokenVar?: string;
}

/** Runtime services a sink writer may use. */
export interface SinkWriterContext {
  readonly jobName: string;
  readonly uid: string;
  readonly subtaskIndex: number;
  readonly parallelism: number;
  readonly env: unknown;
}

/** One parallel instance of a sink. */
export interface SinkWriter<T = unknown> {
  /** Takes one record, synchronously, inside the processing turn. */
  write(value: T): void;
  /** Publishes what was written so far. */
  flush(): Promise<void>;
  /** Bytes written and not yet published. */
  pendingBytes(): number;
}

/** A sink connector: what the job builder receives. */
export interface SinkDefinition<T = unknown> {
  readonly kind: string;
  /** Tables this sink writes, if any, so that they can be read over HTTP. */
  readonly tables?: readonly TableDefinition[];
  createWriter(ctx: SinkWriterContext): SinkWriter<T>;
}

/** A queryable table written by a table sink. */
export interface TableDefinition {
  readonly name: string;
  readonly partitions: number;
}
