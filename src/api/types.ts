/**
 * The vocabulary of job definitions: user functions, sources, sinks and the
 * options every operator takes. User functions are synchronous on purpose:
 * a batch is processed, its keyed state updated and its output staged in one
 * turn, which is what makes that work all-or-nothing across a crash.
 */
import type { Key } from "../graph/key-groups.js";
import type { WatermarkStrategy } from "../time/watermark-strategy.js";
import type { CheckpointConfig } from "./checkpoint-options.js";
import type { StartingOffsets, StreamLimits } from "../storage/stream-options.js";
import type { OutputTag } from "./output-tag.js";
import type { DeadLetter } from "./dead-letter.js";
import type { BroadcastState, ReadOnlyBroadcastState } from "../state/broadcast-state.js";
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
  /**
   * Records this operator cannot process (its function throws on them; for
   * a source, records its reader or timestamp assigner rejects) go to this
   * side output as {@link DeadLetter}s instead of failing the job over;
   * read it with `getSideOutput(tag)` on the operator's stream. What the
   * function did before it threw (state written, output collected) stays.
   */
  deadLetters?: OutputTag<DeadLetter>;
}

/** Options of a source: those of every operator, and where its event time comes from. */
export interface SourceOptions<T = unknown> extends OperatorOptions {
  /**
   * How records get their event time and how the source's watermarks trail
   * it; without one, the source emits no watermarks.
   *
   * @example { uid: "clicks-in", watermarks: WatermarkStrategy.forBoundedOutOfOrderness<Click>(5000).withTimestampAssigner((c) => c.ts) }
   */
  watermarks?: WatermarkStrategy<T>;
}

/** Where an operator sends its output. */
export interface Collector<O> {
  collect(value: O): void;
}

/** The two clocks a timer can be set on: event time (watermarks) and processing time (the subtask's clock). */
export type TimeDomain = "event" | "processing";

/**
 * Flink's TimerService: the two clocks, and timers of the current key.
 * Timers are deduplicated per key and timestamp (registering one twice
 * fires it once) and are keyed state: checkpointed, restored and
 * rescaled with their key.
 */
export interface TimerService {
  /** The subtask's input watermark in ms; `Number.NEGATIVE_INFINITY` before the first one (Flink's Long.MIN_VALUE). */
  currentWatermark(): number;
  /** The subtask's clock in ms (the simulator's virtual time drives it). */
  currentProcessingTime(): number;
  /** Fires `onTimer` for the current key once the watermark reaches `timestampMs` (at or past it). */
  registerEventTimeTimer(timestampMs: number): void;
  /** Fires `onTimer` for the current key once the subtask's clock reaches `timestampMs`. */
  registerProcessingTimeTimer(timestampMs: number): void;
  /** Removes the current key's event-time timer at `timestampMs`, if there is one. */
  deleteEventTimeTimer(timestampMs: number): void;
  /** Removes the current key's processing-time timer at `timestampMs`, if there is one. */
  deleteProcessingTimeTimer(timestampMs: number): void;
}

/** What a non-keyed process function sees. */
export interface Context {
  /** uid of the operator, for messages. */
  readonly operatorUid: string;
  /** Index of this parallel subtask. */
  readonly subtaskIndex: number;
  /**
   * The current record's event time in ms, as its source's timestamp
   * assigner gave it (records keep it through every operator); undefined
   * when its source has no watermark strategy. In `onTimer`, the timer's
   * timestamp.
   */
  readonly timestamp: number | undefined;
  /**
   * The clocks and timers. Timers are keyed state: a process function on a
   * stream that is not keyed gets an error naming its operator here.
   */
  timerService(): TimerService;
  /**
   * Emits `value` to the side output `tag` (with the current record's event
   * time), beside the main output; `stream.getSideOutput(tag)` reads it.
   * Values emitted to a tag that no stream reads are dropped, as in Flink.
   */
  output<X>(tag: OutputTag<X>, value: X): void;
}

/** What a keyed process function sees: the current key and its state. */
export interface KeyedContext<K extends Key = Key> extends Context {
  readonly currentKey: K;
  getState<T>(descriptor: ValueStateDescriptor<T>): ValueState<T>;
  getMapState<V>(descriptor: MapStateDescriptor<V>): MapState<V>;
  getListState<T>(descriptor: ListStateDescriptor<T>): ListState<T>;
}

/** What `onTimer` sees: the key whose timer fired, its state, and which clock fired it. */
export interface OnTimerContext<K extends Key = Key> extends KeyedContext<K> {
  /** "event" when the watermark reached the timer, "processing" when the clock did. */
  timeDomain(): TimeDomain;
}

/** What `open` sees (Flink's RuntimeContext): where the function instance runs, and the Worker's bindings. */
export interface RuntimeContext {
  readonly jobName: string;
  /** uid (or name) of the operator. */
  readonly operatorUid: string;
  readonly subtaskIndex: number;
  readonly parallelism: number;
  /** The job's attempt: it grows with every restart after a failure. */
  readonly attempt: number;
  /** The Worker's bindings (KV, D1, R2, services, variables and secrets). */
  readonly env: unknown;
}

/**
 * Flink's RichFunction: `open` runs once per parallel instance before its
 * first record (after its state was restored), and may be async, e.g. to
 * load a lookup table from a binding; `close` runs when the instance ends
 * (finished, canceled or failed). Each parallel instance has its own
 * `this`: it is an object whose prototype is the function you gave, so
 * fields that `open` sets are the instance's own (set per-instance fields
 * in `open`, not in a constructor, whose fields every instance shares).
 *
 * @example
 * const enrich: ProcessFunction<Click, Enriched> & { names?: Map<string, string> } = {
 *   async open(ctx) { this.names = new Map(Object.entries(await (await (ctx.env as Env).FILES.get("users.json"))!.json())); },
 *   processElement(c, _ctx, out) { out.collect({ ...c, name: this.names!.get(c.user) ?? null }); },
 * };
 */
export interface RichFunction {
  open?(ctx: RuntimeContext): void | Promise<void>;
  close?(): void | Promise<void>;
}

/** A map function with `open`/`close` (Flink's RichMapFunction). */
export interface RichMapFunction<I, O> extends RichFunction {
  map(value: I): O;
}

/** A filter function with `open`/`close` (Flink's RichFilterFunction). */
export interface RichFilterFunction<I> extends RichFunction {
  filter(value: I): boolean;
}

/** A flatMap function with `open`/`close` (Flink's RichFlatMapFunction). */
export interface RichFlatMapFunction<I, O> extends RichFunction {
  flatMap(value: I): Iterable<O>;
}

/** Flink's ProcessFunction: one call per record, any number of outputs. */
export interface ProcessFunction<I, O> extends RichFunction {
  /** State this function reads; declaring it lets the job refuse a non-keyed input up front. */
  readonly state?: readonly StateDescriptor[];
  processElement(value: I, ctx: Context, out: Collector<O>): void;
}

/** Flink's KeyedProcessFunction: as {@link ProcessFunction}, with keyed state and timers. */
export interface KeyedProcessFunction<K extends Key, I, O> extends RichFunction {
  readonly state?: readonly StateDescriptor[];
  processElement(value: I, ctx: KeyedContext<K>, out: Collector<O>): void;
  /**
   * A timer of this function fired: `timestampMs` is its time, `ctx` is
   * scoped to its key. Records collected here carry `timestampMs` as their
   * event time. Event-time timers fire before the watermark that reached
   * them goes downstream.
   *
   * @example
   * onTimer(ts, ctx, out) { out.collect({ key: ctx.currentKey, windowEnd: ts, count: ctx.getState(count).value() ?? 0 }); ctx.getState(count).clear(); }
   */
  onTimer?(timestampMs: number, ctx: OnTimerContext<K>, out: Collector<O>): void;
  /**
   * @internal For the operators floe builds on this interface (windows),
   * not for user functions: the gauges of this function's instance in one
   * subtask, read each time the job's metrics are taken, and only once the
   * subtask has restored its state. `ctx` is the context that instance's
   * `processElement` and `onTimer` get; `state` reads every key's state at
   * once, so the function can count once after a restore and keep the count
   * up to date itself (a scan per metrics call would cost the whole state).
   */
  gauges?(ctx: KeyedContext<K>, state: KeyedStateScan): OperatorGauges;
}

/** @internal What {@link KeyedProcessFunction.gauges} reads: every key's value of a state, in one pass. */
export interface KeyedStateScan {
  /** Calls `fn` with each key's value of the state named `stateName` (a map state's value as a Map). */
  forEachValue(stateName: string, fn: (value: unknown) => void): void;
}

/**
 * @internal Gauges an operator reports per subtask; the metrics API shows
 * each in snake_case, per subtask and summed per vertex.
 */
export interface OperatorGauges {
  /** Windows of a window operator that hold contents: opened by an element, closed when purged or cleaned up. */
  readonly openWindows?: number;
}

/**
 * Flink's CoProcessFunction: one function over two connected streams of
 * different types, without keys (`a.connect(b).process(fn)`).
 */
export interface CoProcessFunction<A, B, O> extends RichFunction {
  readonly state?: readonly StateDescriptor[];
  /** A record of the first stream. */
  processElement1(value: A, ctx: Context, out: Collector<O>): void;
  /** A record of the second stream. */
  processElement2(value: B, ctx: Context, out: Collector<O>): void;
}

/**
 * Flink's KeyedCoProcessFunction: two connected streams keyed by the same
 * kind of key (`a.connect(b).keyBy(fa, fb).process(fn)`); records of both
 * with one key meet in one subtask and share that key's state and timers.
 *
 * @example
 * // Emits each click with the user's latest profile, or holds it until the profile comes.
 * { processElement1(click, ctx, out) { … }, processElement2(profile, ctx, out) { … }, onTimer(ts, ctx, out) { … } }
 */
export interface KeyedCoProcessFunction<K extends Key, A, B, O> extends RichFunction {
  readonly state?: readonly StateDescriptor[];
  processElement1(value: A, ctx: KeyedContext<K>, out: Collector<O>): void;
  processElement2(value: B, ctx: KeyedContext<K>, out: Collector<O>): void;
  /** A timer of the current key fired, as in a keyed process function. */
  onTimer?(timestampMs: number, ctx: OnTimerContext<K>, out: Collector<O>): void;
}

/** What a broadcast function's non-broadcast input (and its timers) see of the broadcast state: read only. */
export interface ReadOnlyBroadcastContext extends Context {
  /** One of the states declared by `broadcast(…descriptors)`; any other throws, naming the operator. */
  getBroadcastState<V>(descriptor: MapStateDescriptor<V>): ReadOnlyBroadcastState<V>;
}

/** What `processBroadcastElement` sees: the broadcast state, readable and writable. Timers cannot be set here (no key). */
export interface BroadcastContext extends Context {
  getBroadcastState<V>(descriptor: MapStateDescriptor<V>): BroadcastState<V>;
}

/** A keyed function's `processBroadcastElement` context: also every key's keyed state, through {@link applyToKeyedState}. */
export interface KeyedBroadcastContext<K extends Key = Key> extends BroadcastContext {
  /**
   * Calls `fn` for every key of this subtask that has state `descriptor`
   * (Flink's applyToKeyedState), with that key's state: e.g. to apply a new
   * rule to what every key has seen. It visits the state that lives in this
   * subtask, so each key once over the operator.
   */
  applyToKeyedState<T>(descriptor: ValueStateDescriptor<T>, fn: (key: K, state: ValueState<T>) => void): void;
  applyToKeyedState<V>(descriptor: MapStateDescriptor<V>, fn: (key: K, state: MapState<V>) => void): void;
  applyToKeyedState<T>(descriptor: ListStateDescriptor<T>, fn: (key: K, state: ListState<T>) => void): void;
}

/**
 * Flink's BroadcastProcessFunction: a non-keyed stream connected with a
 * broadcast stream (`a.connect(rules.broadcast(rulesState)).process(fn)`).
 * Every subtask gets every broadcast record; `processBroadcastElement`
 * keeps what it needs in the broadcast state, which `processElement` reads.
 * Updates must give the same state whatever the order in which broadcast
 * records from several senders arrive.
 */
export interface BroadcastProcessFunction<I, B, O> extends RichFunction {
  processElement(value: I, ctx: ReadOnlyBroadcastContext, out: Collector<O>): void;
  processBroadcastElement(value: B, ctx: BroadcastContext, out: Collector<O>): void;
}

/**
 * Flink's KeyedBroadcastProcessFunction: a keyed stream connected with a
 * broadcast stream (`a.keyBy(f).connect(rules.broadcast(rulesState)).process(fn)`):
 * keyed state and timers on the keyed side, which reads the broadcast state;
 * the broadcast side writes it, and reaches keyed state through
 * `applyToKeyedState`.
 *
 * @example
 * { state: [seen],
 *   processElement(click, ctx, out) { const rule = ctx.getBroadcastState(rules).get(click.url); if (rule) out.collect({ …click, rule }); },
 *   processBroadcastElement(rule, ctx) { ctx.getBroadcastState(rules).put(rule.url, rule); } }
 */
export interface KeyedBroadcastProcessFunction<K extends Key, I, B, O> extends RichFunction {
  readonly state?: readonly StateDescriptor[];
  processElement(value: I, ctx: KeyedContext<K> & ReadOnlyBroadcastContext, out: Collector<O>): void;
  processBroadcastElement(value: B, ctx: KeyedBroadcastContext<K>, out: Collector<O>): void;
  onTimer?(timestampMs: number, ctx: OnTimerContext<K> & ReadOnlyBroadcastContext, out: Collector<O>): void;
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
  /** The subtask's clock: the simulator's virtual time drives it, so read no wall clock. */
  now(): number;
  /** Waits on the subtask's clock (instead of setTimeout, which the simulator cannot drive). */
  sleep(ms: number): Promise<void>;
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
  /** Records available but not read yet, as far as the reader knows (for metrics). */
  lag?(): number | null;
  /** A checkpoint with these positions completed (e.g. to report offsets to monitoring); never needed for correctness. */
  checkpointComplete?(positions: Record<string, number>): Promise<void>;
  /** The subtask stopped: release connections. */
  close?(): Promise<void>;
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
  /** Retention, size limit and request rate of each partition (defaults when absent). */
  readonly limits?: StreamLimits;
  /** Where a job started without a savepoint or checkpoint begins (default earliest). */
  readonly startingOffsets?: StartingOffsets;
  /** Each record's partition key, or why it has none; absent: a request goes to one partition whole. */
  readonly partitionKey?: (record: unknown) => { key: string } | { problem: string };
  /** What the partition key is: the field's name, or the function's source text; two declarations of one stream must agree on it. */
  readonly partitionKeySource?: string;
}

/** Delivery guarantee of a sink: output visible after its checkpoint completed, or at the barrier. */
export type DeliveryGuarantee = "exactly_once" | "at_least_once";

/** Staging rows in the sink subtask's transactional storage; every method is synchronous. */
export interface StagingStore {
  /** Appends rows to transaction `txn` (-1 for the open one). */
  append(uid: string, txn: number, rows: readonly string[]): void;
  /** Turns the open transaction's rows into sealed transaction `txn`. */
  seal(uid: string, txn: number): void;
  /** Sealed transactions, oldest first. */
  sealed(uid: string): number[];
  rows(uid: string, txn: number): string[];
  /** Deletes a transaction's rows. */
  drop(uid: string, txn: number): void;
  /** Deletes the open transaction and every sealed one after `txn`. */
  dropAfter(uid: string, txn: number): void;
  /** Bytes staged, over all transactions of `uid`. */
  bytes(uid: string): number;
}

/** Runtime services a sink writer may use. */
export interface SinkWriterContext {
  readonly jobName: string;
  readonly uid: string;
  readonly subtaskIndex: number;
  readonly parallelism: number;
  readonly env: unknown;
  /** Increases with every fresh start of the job (not with restarts after failures). */
  readonly runId: number;
  readonly staging: StagingStore;
  /** The subtask's clock: the simulator's virtual time drives it, so read no wall clock. */
  now(): number;
  /** Waits on the subtask's clock, e.g. between delivery attempts (instead of setTimeout, which the simulator cannot drive). */
  sleep(ms: number): Promise<void>;
}

/** The handle of a sealed transaction, as it goes into the checkpoint. */
export interface SinkTransactionHandle {
  readonly txn: number;
  readonly rows: number;
  readonly bytes: number;
}

/** Metrics of one sink writer. */
export interface SinkMetrics {
  readonly pendingStagedBytes: number;
  /** Sealed transactions waiting for their checkpoint to complete (or for a commit to finish). */
  readonly sealedTransactions: number;
  readonly committedTransactions: number;
  /** From pre-commit to the end of the commit, of the last transaction committed. */
  readonly lastCommitLatencyMs: number | null;
  readonly maxCommitLatencyMs: number;
}

/** One parallel instance of a sink: a two-phase-commit participant. */
export interface SinkWriter<T = unknown> {
  readonly guarantee: DeliveryGuarantee;
  /** Takes one record, synchronously, inside the processing turn. */
  write(value: T): void;
  /** Seals what was written since the last barrier as transaction `txn`, synchronously. */
  preCommit(txn: number): SinkTransactionHandle;
  /** Publishes every sealed transaction up to `txn`. */
  commit(txn: number): Promise<void>;
  /** After a restore to `checkpointId` (0: none): drops later transactions, commits the rest. */
  recover(checkpointId: number): Promise<void>;
  /** Bytes not yet published. */
  pendingBytes(): number;
  metrics(): SinkMetrics;
  /** The subtask's task ended: publish nothing more (a newer task of this subtask takes over), release connections. */
  close?(): void;
}

/** A sink connector: what the job builder receives. */
export interface SinkDefinition<T = unknown> {
  readonly kind: string;
  /** Tables this sink writes, if any, so that they can be read over HTTP. */
  readonly tables?: readonly TableDefinition[];
  createWriter(ctx: SinkWriterContext): SinkWriter<T>;
  /** Checks the sink against the run's checkpoint configuration; answers why it does not fit, if it does not. */
  checkConfig?(checkpoint: CheckpointConfig, uid: string): string | undefined;
  /**
   * Checks the Worker variables and secrets the sink needs (an endpoint,
   * brokers) when a job starts; answers what is missing, if anything. A
   * job whose sink cannot publish would otherwise run until its first
   * commit and then restart over and over.
   */
  checkVars?(vars: Readonly<Record<string, unknown>>, uid: string): string | undefined;
}

/** A queryable table written by a table sink. */
export interface TableDefinition {
  readonly name: string;
  readonly partitions: number;
}
