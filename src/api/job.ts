/**
 * The job DSL: `floe.job(name).source(…).map(…).keyBy(…).process(…).sink(…)`.
 * Building a job only records a logical graph; validation and chaining into
 * parallel vertices happen in `graph/plan.ts` when the job is started.
 */
import type { Key } from "../graph/key-groups.js";
import type {
  BroadcastProcessFunction,
  CoProcessFunction,
  KeyedBroadcastProcessFunction,
  KeyedCoProcessFunction,
  Collector,
  Context,
  RichFilterFunction,
  RichFlatMapFunction,
  RichFunction,
  RichMapFunction,
  KeyedProcessFunction,
  OperatorOptions,
  ProcessFunction,
  SinkDefinition,
  SourceDefinition,
  SourceOptions,
} from "./types.js";
import { JobDefinitionError } from "../errors.js";
import { WatermarkStrategy } from "../time/watermark-strategy.js";
import type { WindowAssigner } from "../window/assigners.js";
import { WindowedStream } from "./windowed-stream.js";
import { IntervalJoin } from "./interval-join.js";
import { JoinedStreams } from "./window-join.js";
import { OutputTag } from "./output-tag.js";
import type { CheckpointOptions } from "./checkpoint-options.js";
import type { StateOptions } from "./state-options.js";
import type { RestartStrategyOptions } from "../checkpoint/restart-strategy.js";
import type { AsyncOperatorSpec } from "./async-function.js";
import type { MapStateDescriptor } from "./state.js";

/** Job-wide options. */
export interface JobOptions {
  /** Number of key groups; the upper bound of any operator's parallelism. Default 128. */
  maxParallelism?: number;
  /** Default parallelism of operators that set none and have no input to inherit from. */
  parallelism?: number;
  /** Records per batch read from a source. Default 1000. */
  batchSize?: number;
  checkpoint?: CheckpointOptions;
  /** Keyed state: its memory budget per subtask (see docs/state-backend.md). */
  state?: StateOptions;
  /** What happens when the job fails (Flink's restart strategies). */
  restartStrategy?: RestartStrategyOptions;
}

/** The kinds of logical operator. */
export type NodeKind = "source" | "map" | "filter" | "flatMap" | "process" | "sink" | "async";

/** How records move from one operator to the next. */
export type PartitionerKind = "forward" | "rebalance" | "hash" | "broadcast";

/** An edge into a logical node. */
export interface LogicalEdge {
  readonly from: number;
  /** Set when the edge is keyed: records are routed by key group. */
  readonly keySelector?: (value: unknown) => Key;
  /** Set when the edge reads a side output of `from` rather than its main output. */
  readonly tag?: string;
  /** Into a co-process function: which of its two inputs the edge feeds (processElement1 or 2). */
  readonly coInput?: 1 | 2;
  /** Every record goes to every subtask of the receiver (`broadcast()`). */
  readonly broadcast?: true;
}

/** One operator of the logical graph, as declared. */
export interface LogicalNode {
  readonly id: number;
  readonly kind: NodeKind;
  readonly options: OperatorOptions;
  readonly inputs: readonly LogicalEdge[];
  readonly source?: SourceDefinition;
  /** A source's watermark strategy, checked when the source was added. */
  readonly watermarks?: WatermarkStrategy<any>;
  readonly sink?: SinkDefinition;
  readonly fn?: (value: any) => any;
  /** A map, filter or flatMap given as an object with its method (named as the kind) and open/close. */
  readonly rich?: RichFunction & Record<string, unknown>;
  readonly process?: ProcessFunction<any, any> | KeyedProcessFunction<any, any, any> | CoProcessFunction<any, any, any> | KeyedCoProcessFunction<any, any, any, any>;
  /** A process node whose function is a co-process function: its edges say which input they feed. */
  readonly coProcess?: boolean;
  /** A broadcast process function's broadcast states (its input 2 is the broadcast stream). */
  readonly broadcastState?: readonly MapStateDescriptor<unknown>[];
  /** An async I/O operator's function and options (AsyncDataStream). */
  readonly async?: AsyncOperatorSpec;
  /** Why the operator needs its records' event time (an event-time window), if it does: every source upstream must have a watermark strategy. */
  readonly needsEventTime?: string;
}

/** A job as declared: its name, options and logical graph. */
export class JobDefinition {
  /** @internal */
  readonly nodes: LogicalNode[] = [];
  /** @internal Problems found while building (reported when the job is started). */
  readonly problems: string[] = [];
  /** @internal The output tags read with getSideOutput(), by id: one object per id. */
  readonly outputTags = new Map<string, OutputTag<unknown>>();

  constructor(
    readonly name: string,
    readonly options: JobOptions = {},
  ) {
    if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(name)) {
      throw new TypeError(`job name must match [a-z0-9][a-z0-9_-]{0,62}, got ${JSON.stringify(name)}`);
    }
  }

  /**
   * Adds a source and returns its stream. A watermark strategy in the
   * options is checked here: a bad one throws a {@link JobDefinitionError}
   * naming the source.
   */
  source<T>(source: SourceDefinition<T>, options: SourceOptions<T> = {}): DataStream<T> {
    const { watermarks, ...operatorOptions } = options;
    if (watermarks !== undefined) {
      const label = options.name ?? options.uid ?? `source#${this.nodes.length}`;
      if (!(watermarks instanceof WatermarkStrategy)) throw new JobDefinitionError(`source "${label}": watermarks must be a WatermarkStrategy`);
      watermarks.validate(label);
    }
    const id = this.add({ kind: "source", options: operatorOptions, inputs: [], source, watermarks });
    return new DataStream<T>(this, id);
  }

  /** Joins several streams of one type into one (Flink's union). */
  union<T>(...streams: DataStream<T>[]): DataStream<T> {
    for (const s of streams) {
      if (s.job !== this) this.problems.push(`union() got a stream of job "${s.job.name}": streams cannot cross jobs`);
    }
    return new UnionStream<T>(this, streams.filter((s) => s.job === this).flatMap((s) => s.edges()));
  }

  /** @internal */
  add(node: Omit<LogicalNode, "id">): number {
    const id = this.nodes.length;
    this.nodes.push({ ...node, id });
    return id;
  }
}

/** A stream of records of type T. */
export class DataStream<T> {
  constructor(
    /** @internal */ readonly job: JobDefinition,
    /** @internal */ readonly nodeId: number,
  ) {}

  /** @internal The edges a consumer of this stream gets. */
  edges(): LogicalEdge[] {
    return [{ from: this.nodeId }];
  }

  /**
   * The records this stream's process function (or window) emitted to
   * `tag` with `ctx.output(tag, value)`, as a stream of their own.
   * Throws a {@link JobDefinitionError} naming the operator when it is not a
   * process function or window, and when another OutputTag object with the
   * same id (perhaps of another type) was read before: declare a tag once
   * and share it.
   *
   * @example
   * const late = new OutputTag<View>("late-views");
   * const counts = views.keyBy((v) => v.url).window(TumblingEventTimeWindows.of(60_000)).sideOutputLateData(late).aggregate(count, undefined, { uid: "per-minute" });
   * counts.getSideOutput(late).sink(tableSink("late-views"), { uid: "late-out" });
   */
  getSideOutput<X>(tag: OutputTag<X>): DataStream<X> {
    const node = this.job.nodes[this.nodeId];
    const label = node ? (node.options.name ?? node.options.uid ?? `${node.kind}#${node.id}`) : "union";
    if (!(tag instanceof OutputTag)) throw new JobDefinitionError(`getSideOutput() on operator "${label}" needs an OutputTag`);
    if (!node || this instanceof UnionStream || (node.kind !== "process" && node.options.deadLetters !== tag)) {
      throw new JobDefinitionError(
        `getSideOutput(${tag.id}) on operator "${label}": only process functions and windows have side outputs (and any operator its dead letters)`,
      );
    }
    const known = this.job.outputTags.get(tag.id);
    if (known !== undefined && known !== tag) {
      throw new JobDefinitionError(
        `getSideOutput(${tag.id}) on operator "${label}": another OutputTag with id "${tag.id}" was used before (perhaps of another type); declare the tag once and share it`,
      );
    }
    this.job.outputTags.set(tag.id, tag as OutputTag<unknown>);
    return new SideOutputStream<X>(this.job, this.nodeId, tag.id);
  }

  /** One output per record: a function, or an object with `map` and `open`/`close` ({@link RichMapFunction}). */
  map<O>(fn: ((value: T) => O) | RichMapFunction<T, O>, options: OperatorOptions = {}): DataStream<O> {
    return this.then<O>("map", options, typeof fn === "function" ? { fn } : { rich: checkRich(fn, "map", options) });
  }

  /** The records for which `fn` answers true: a function, or an object with `filter` and `open`/`close`. */
  filter(fn: ((value: T) => boolean) | RichFilterFunction<T>, options: OperatorOptions = {}): DataStream<T> {
    return this.then<T>("filter", options, typeof fn === "function" ? { fn } : { rich: checkRich(fn, "filter", options) });
  }

  /** Any number of outputs per record: a function, or an object with `flatMap` and `open`/`close`. */
  flatMap<O>(fn: ((value: T) => Iterable<O>) | RichFlatMapFunction<T, O>, options: OperatorOptions = {}): DataStream<O> {
    return this.then<O>("flatMap", options, typeof fn === "function" ? { fn } : { rich: checkRich(fn, "flatMap", options) });
  }

  /**
   * Connects this stream with another, of another type, into one operator
   * with two inputs (Flink's ConnectedStreams): `process` a
   * {@link CoProcessFunction} over both, or `keyBy` both first for a
   * {@link KeyedCoProcessFunction} with keyed state and timers shared by
   * the records of one key from either side. Barriers align over both
   * inputs and the watermark is the minimum of both.
   */
  connect<U>(other: BroadcastStream<U>): BroadcastConnectedStream<T, U>;
  connect<U>(other: DataStream<U>): ConnectedStreams<T, U>;
  connect<U>(other: DataStream<U> | BroadcastStream<U>): ConnectedStreams<T, U> | BroadcastConnectedStream<T, U> {
    if (other.job !== this.job) throw new JobDefinitionError(`connect() got a stream of job "${other.job.name}": streams cannot cross jobs`);
    if (other instanceof BroadcastStream) return new BroadcastConnectedStream<T, U>(this.job, this.edges(), other);
    return new ConnectedStreams<T, U>(this.job, this.edges(), other.edges());
  }

  /**
   * Sends every record to every subtask of the next operator. Without
   * descriptors, a stream partitioned that way (Flink's broadcast()); with
   * broadcast map state descriptors, a {@link BroadcastStream} to
   * `connect` with another stream, whose function keeps the broadcast
   * records in that state (Flink's broadcast state pattern).
   *
   * @example
   * const rulesState = mapState<Rule>("rules");
   * clicks.keyBy((c) => c.user).connect(rules.broadcast(rulesState)).process(applyRules, { uid: "apply-rules" });
   */
  broadcast(): DataStream<T>;
  broadcast(...descriptors: [MapStateDescriptor<any>, ...MapStateDescriptor<any>[]]): BroadcastStream<T>;
  broadcast(...descriptors: MapStateDescriptor<any>[]): DataStream<T> | BroadcastStream<T> {
    if (descriptors.length === 0) return new BroadcastPartitionedStream<T>(this.job, this.edges());
    const names = new Set<string>();
    for (const d of descriptors) {
      if (d === null || typeof d !== "object" || d.kind !== "map") {
        throw new JobDefinitionError(`broadcast(…) takes map state descriptors (mapState(name)), got ${d === null || typeof d !== "object" ? String(d) : `a ${d.kind} state "${d.name}"`}`);
      }
      if (d.ttl !== undefined) throw new JobDefinitionError(`broadcast state "${d.name}" has a TTL: broadcast state lives until the broadcast side removes it`);
      if (names.has(d.name)) throw new JobDefinitionError(`broadcast(…) declares state "${d.name}" twice`);
      names.add(d.name);
    }
    return new BroadcastStream<T>(this.job, this.edges(), descriptors);
  }

  /**
   * Joins this stream with another by key and window (Flink's window
   * join): `.where(fa).equalTo(fb).window(assigner).apply(fn)`.
   */
  join<U>(other: DataStream<U>): JoinedStreams<T, U> {
    if (other.job !== this.job) throw new JobDefinitionError(`join() got a stream of job "${other.job.name}": streams cannot cross jobs`);
    return new JoinedStreams<T, U>(this.job, this, other);
  }

  /**
   * A process function without keyed state. It has no timers either (they
   * are keyed state): one that defines `onTimer` throws a
   * {@link JobDefinitionError} naming the operator; call keyBy() first.
   */
  process<O>(fn: ProcessFunction<T, O>, options: OperatorOptions = {}): DataStream<O> {
    if (typeof (fn as { onTimer?: unknown }).onTimer === "function") {
      const label = options.name ?? options.uid ?? `process#${this.job.nodes.length}`;
      throw new JobDefinitionError(`process function "${label}" defines onTimer, but timers are keyed state and its input is not keyed: call keyBy() first`);
    }
    return this.then<O>("process", options, { process: fn });
  }

  /**
   * Partitions the stream by key: records of one key meet in one subtask,
   * with their state. Records cross to that subtask as JSON, without their
   * key, and the receiver calls `keySelector` again on the parsed value: it
   * must give the same key for a value and for its JSON round trip (read
   * plain fields, not a `Date` or a method), and a value must not be changed
   * after it was emitted.
   *
   * @example stream.keyBy((click) => click.user)
   */
  keyBy<K extends Key>(keySelector: (value: T) => K): KeyedStream<K, T> {
    return new KeyedStream<K, T>(this.job, this.edges(), keySelector);
  }

  sink(sink: SinkDefinition<T>, options: OperatorOptions = {}): void {
    this.job.add({ kind: "sink", options, inputs: this.edges(), sink: sink as SinkDefinition });
  }

  private then<O>(kind: NodeKind, options: OperatorOptions, rest: Partial<LogicalNode>): DataStream<O> {
    const id = this.job.add({ kind, options, inputs: this.edges(), ...rest });
    return new DataStream<O>(this.job, id);
  }
}

class UnionStream<T> extends DataStream<T> {
  constructor(
    job: JobDefinition,
    private readonly members: LogicalEdge[],
  ) {
    super(job, members[0]?.from ?? -1);
    if (members.length === 0) job.problems.push("union() needs at least one stream");
  }

  override edges(): LogicalEdge[] {
    return this.members.map((e) => ({ ...e }));
  }
}

/** A side output of one operator. */
class SideOutputStream<T> extends DataStream<T> {
  constructor(
    job: JobDefinition,
    nodeId: number,
    private readonly tag: string,
  ) {
    super(job, nodeId);
  }

  override edges(): LogicalEdge[] {
    return [{ from: this.nodeId, tag: this.tag }];
  }

  override getSideOutput<X>(tag: OutputTag<X>): DataStream<X> {
    throw new JobDefinitionError(`getSideOutput(${tag.id}) on side output "${this.tag}": a side output has no side outputs of its own`);
  }
}

/** A stream partitioned by key; keyed state is available downstream. */
export class KeyedStream<K extends Key, T> {
  constructor(
    /** @internal */ readonly job: JobDefinition,
    private readonly inputs: LogicalEdge[],
    private readonly keySelector: (value: T) => K,
  ) {}

  /**
   * Windows per key (Flink's WindowedStream): an assigner, then optionally a
   * trigger and allowed lateness, then one window function.
   */
  window(assigner: WindowAssigner): WindowedStream<K, T> {
    return new WindowedStream(this, assigner);
  }

  /** A keyed process function: runs with the record's key and that key's state. */
  process<O>(fn: KeyedProcessFunction<K, T, O>, options: OperatorOptions = {}): DataStream<O> {
    return this.processWith(fn, options, {});
  }

  /**
   * Joins this stream (the left side) with `other` by key and event time
   * (Flink's interval join): `.between(lowerMs, upperMs).process(fn)`.
   * Both sides need event time (a watermark strategy on their sources).
   */
  intervalJoin<U>(other: KeyedStream<K, U>): IntervalJoin<K, T, U> {
    const first = this.keyed();
    if (!(other instanceof KeyedStream)) {
      // From JavaScript: the other side is not keyed. The join is named by
      // process(fn, options), so the refusal waits for it.
      const got = (other as unknown) instanceof DataStream ? "a stream that is not keyed" : String(other);
      return new IntervalJoin<K, T, U>((_fn, options) => {
        throw new JobDefinitionError(
          `interval join "${options.name ?? options.uid ?? "interval join"}" joins two keyed streams, but its other side is ${got}: key both sides, a.keyBy(fa).intervalJoin(b.keyBy(fb))`,
        );
      });
    }
    if (other.job !== this.job) throw new JobDefinitionError(`intervalJoin() got a stream of job "${other.job.name}": streams cannot cross jobs`);
    const second = other.keyed();
    return new IntervalJoin<K, T, U>((fn, options, needsEventTime) => coProcess(this.job, first, second, fn, options, needsEventTime));
  }

  /** @internal A keyed process operator with more to its node (a window's need of event time). */
  processWith<O>(fn: KeyedProcessFunction<K, T, O>, options: OperatorOptions, extra: Pick<LogicalNode, "needsEventTime">): DataStream<O> {
    const id = this.job.add({ kind: "process", options, inputs: this.keyed(), process: fn, ...extra });
    return new DataStream<O>(this.job, id);
  }

  /** A keyed sink: records reach the sink subtask that owns their key. */
  sink(sink: SinkDefinition<T>, options: OperatorOptions = {}): void {
    this.job.add({ kind: "sink", options, inputs: this.keyed(), sink: sink as SinkDefinition });
  }

  /**
   * Connects this keyed stream with a broadcast stream (Flink's broadcast
   * state pattern): `.process(fn)` with a {@link KeyedBroadcastProcessFunction}.
   * To connect two keyed streams, `a.connect(b).keyBy(fa, fb)`.
   */
  connect<U>(other: BroadcastStream<U>): KeyedBroadcastConnectedStream<K, T, U> {
    if (other === null || typeof other !== "object" || !("job" in other)) throw new JobDefinitionError(`connect() on a keyed stream needs a broadcast stream, got ${String(other)}`);
    if (other.job !== this.job) throw new JobDefinitionError(`connect() got a stream of job "${other.job.name}": streams cannot cross jobs`);
    // A JavaScript caller can pass any stream here; the operator is named only
    // by process(fn, options), so the refusal waits for it.
    return new KeyedBroadcastConnectedStream<K, T, U>(this.job, this.keyed(), other, other instanceof BroadcastStream ? undefined : notBroadcast(other));
  }

  /** Flink forbids keying a keyed stream again; so does floe. */
  keyBy(): never {
    throw new TypeError("keyBy on a keyed stream: process or sink it first");
  }

  /** @internal The stream's edges, each with the key selector (what a keyed operator's input is). */
  keyed(): LogicalEdge[] {
    const keySelector = this.keySelector as (value: unknown) => Key;
    return this.inputs.map((e) => ({ ...e, keySelector }));
  }
}

/** Checks a rich map, filter or flatMap object when it is given: it must have the method of its kind. */
function checkRich(fn: object, kind: "map" | "filter" | "flatMap", options: OperatorOptions): RichFunction & Record<string, unknown> {
  if (fn === null || typeof fn !== "object" || typeof (fn as Record<string, unknown>)[kind] !== "function") {
    throw new JobDefinitionError(`${kind} "${options.name ?? options.uid ?? kind}" needs a function or an object with a ${kind}(value) method`);
  }
  return fn as RichFunction & Record<string, unknown>;
}

/** Two streams connected into one operator (Flink's ConnectedStreams). */
export class ConnectedStreams<A, B> {
  constructor(
    private readonly job: JobDefinition,
    private readonly first: LogicalEdge[],
    private readonly second: LogicalEdge[],
  ) {}

  /** Keys both sides, with one key type: records of one key from either side meet in one subtask. */
  keyBy<K extends Key>(first: (value: A) => K, second: (value: B) => K): KeyedConnectedStreams<K, A, B> {
    return new KeyedConnectedStreams<K, A, B>(
      this.job,
      this.first.map((e) => ({ ...e, keySelector: first as (value: unknown) => Key })),
      this.second.map((e) => ({ ...e, keySelector: second as (value: unknown) => Key })),
    );
  }

  /** A co-process function over both sides, without keyed state. */
  process<O>(fn: CoProcessFunction<A, B, O>, options: OperatorOptions = {}): DataStream<O> {
    return coProcess<O>(this.job, this.first, this.second, fn, options);
  }
}

/** Two connected streams, both keyed (Flink's keyed ConnectedStreams). */
export class KeyedConnectedStreams<K extends Key, A, B> {
  constructor(
    private readonly job: JobDefinition,
    private readonly first: LogicalEdge[],
    private readonly second: LogicalEdge[],
  ) {}

  /** A keyed co-process function: runs with the record's key, that key's state and timers. */
  process<O>(fn: KeyedCoProcessFunction<K, A, B, O>, options: OperatorOptions = {}): DataStream<O> {
    return coProcess<O>(this.job, this.first, this.second, fn, options);
  }
}

function coProcess<O>(
  job: JobDefinition,
  first: LogicalEdge[],
  second: LogicalEdge[],
  fn: CoProcessFunction<any, any, O> | KeyedCoProcessFunction<any, any, any, O>,
  options: OperatorOptions,
  needsEventTime?: string,
): DataStream<O> {
  const label = options.name ?? options.uid ?? `coProcess#${job.nodes.length}`;
  if (fn !== null && typeof fn === "object" && typeof (fn as { processBroadcastElement?: unknown }).processBroadcastElement === "function" && typeof fn.processElement1 !== "function") {
    // A broadcast process function that reached connect() without a BroadcastStream.
    const partitioned = second.length > 0 && second.every((e) => e.broadcast);
    throw new JobDefinitionError(`broadcast process function "${label}" ${partitioned ? notBroadcast(PLAIN_BROADCAST) : notBroadcast(undefined)}`);
  }
  if (fn === null || typeof fn !== "object" || typeof fn.processElement1 !== "function" || typeof fn.processElement2 !== "function") {
    throw new JobDefinitionError(`co-process function "${label}" needs processElement1 and processElement2`);
  }
  if (typeof (fn as { onTimer?: unknown }).onTimer === "function" && !first.some((e) => e.keySelector)) {
    throw new JobDefinitionError(`co-process function "${label}" defines onTimer, but timers are keyed state and its inputs are not keyed: keyBy(first, second) first`);
  }
  const inputs = [...first.map((e) => ({ ...e, coInput: 1 as const })), ...second.map((e) => ({ ...e, coInput: 2 as const }))];
  const id = job.add({ kind: "process", options, inputs, process: fn as never, coProcess: true, ...(needsEventTime === undefined ? {} : { needsEventTime }) });
  return new DataStream<O>(job, id);
}

/** A stream whose every record goes to every subtask of the next operator (`broadcast()` without descriptors). */
class BroadcastPartitionedStream<T> extends DataStream<T> {
  constructor(
    job: JobDefinition,
    private readonly members: LogicalEdge[],
  ) {
    super(job, members[0]?.from ?? -1);
  }

  override edges(): LogicalEdge[] {
    return this.members.map((e) => ({ ...e, broadcast: true as const }));
  }

  override keyBy(): never {
    throw new JobDefinitionError("keyBy on a broadcast stream: a record cannot both go to every subtask and to its key's");
  }
}

/**
 * A stream broadcast with broadcast state descriptors (Flink's
 * BroadcastStream): `connect` it to a stream or keyed stream, then
 * `process` a broadcast process function.
 */
export class BroadcastStream<T> {
  /** @internal */
  readonly _type?: T;

  constructor(
    /** @internal */ readonly job: JobDefinition,
    private readonly inputs: LogicalEdge[],
    /** The broadcast states the connected function keeps. */
    readonly descriptors: readonly MapStateDescriptor<any>[],
  ) {}

  /** @internal */
  edges(): LogicalEdge[] {
    return this.inputs.map((e) => ({ ...e, broadcast: true as const }));
  }
}

/** A non-keyed stream connected with a broadcast stream (Flink's BroadcastConnectedStream). */
export class BroadcastConnectedStream<A, B> {
  constructor(
    private readonly job: JobDefinition,
    private readonly first: LogicalEdge[],
    private readonly broadcastStream: BroadcastStream<B>,
  ) {}

  /** A broadcast process function over both; it needs a uid (its broadcast state is checkpointed). */
  process<O>(fn: BroadcastProcessFunction<A, B, O>, options: OperatorOptions = {}): DataStream<O> {
    return broadcastProcess<O>(this.job, this.first, this.broadcastStream, fn, options);
  }
}

/** A keyed stream connected with a broadcast stream. */
export class KeyedBroadcastConnectedStream<K extends Key, A, B> {
  constructor(
    private readonly job: JobDefinition,
    private readonly first: LogicalEdge[],
    private readonly broadcastStream: BroadcastStream<B>,
    /** Set when connect() got something else than a broadcast stream (from JavaScript): why process() refuses. */
    private readonly refusal?: string,
  ) {}

  /** A keyed broadcast process function: keyed state and timers on the keyed side, broadcast state from the other. */
  process<O>(fn: KeyedBroadcastProcessFunction<K, A, B, O>, options: OperatorOptions = {}): DataStream<O> {
    if (this.refusal !== undefined) {
      throw new JobDefinitionError(`broadcast process function "${options.name ?? options.uid ?? `broadcastProcess#${this.job.nodes.length}`}" ${this.refusal}`);
    }
    return broadcastProcess<O>(this.job, this.first, this.broadcastStream, fn, options);
  }
}

/** What a stream given to a broadcast process function as its broadcast side lacks. */
const PLAIN_BROADCAST = Symbol("broadcast() without descriptors");

/** Why a broadcast process function cannot read `other` as its broadcast side; the caller puts the operator's name first. */
function notBroadcast(other: unknown): string {
  const plain = other === PLAIN_BROADCAST || other instanceof BroadcastPartitionedStream;
  return plain
    ? 'is connected with a stream broadcast without broadcast state descriptors: name the map states the function keeps, other.broadcast(mapState("rules"))'
    : 'is connected with a stream that is not broadcast: connect with other.broadcast(mapState("rules")) (to connect two streams by key, a.connect(b).keyBy(fa, fb) with a keyed co-process function)';
}

function broadcastProcess<O>(
  job: JobDefinition,
  first: LogicalEdge[],
  broadcastStream: BroadcastStream<unknown>,
  fn: BroadcastProcessFunction<any, any, O> | KeyedBroadcastProcessFunction<any, any, any, O>,
  options: OperatorOptions,
): DataStream<O> {
  const label = options.name ?? options.uid ?? `broadcastProcess#${job.nodes.length}`;
  if (fn === null || typeof fn !== "object" || typeof fn.processElement !== "function" || typeof fn.processBroadcastElement !== "function") {
    throw new JobDefinitionError(`broadcast process function "${label}" needs processElement and processBroadcastElement`);
  }
  if (typeof (fn as { onTimer?: unknown }).onTimer === "function" && !first.some((e) => e.keySelector)) {
    throw new JobDefinitionError(`broadcast process function "${label}" defines onTimer, but timers are keyed state and its input is not keyed: keyBy() it first`);
  }
  const inputs = [...first.map((e) => ({ ...e, coInput: 1 as const })), ...broadcastStream.edges().map((e) => ({ ...e, coInput: 2 as const }))];
  const id = job.add({ kind: "process", options, inputs, process: fn as never, coProcess: true, broadcastState: broadcastStream.descriptors });
  return new DataStream<O>(job, id);
}

/**
 * Starts a job definition.
 *
 * @example
 * floe.job("clicks", { maxParallelism: 128 })
 *   .source(httpSource("clicks", { partitions: 4 }), { uid: "clicks-in" })
 *   .keyBy((c) => c.user)
 *   .process(countPerUser, { uid: "count-per-user" })
 *   .sink(tableSink("clicks-per-user"), { uid: "counts-out" });
 */
export function job(name: string, options: JobOptions = {}): JobDefinition {
  return new JobDefinition(name, options);
}

export type { Collector, Context };
