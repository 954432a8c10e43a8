/**
 * Operator test harnesses, as Flink's `KeyedOneInputStreamOperatorTestHarness`:
 * one operator of a job (a keyed process function, a window, a co-process
 * or broadcast process function, a map…) run on its own, with no runtime.
 * A test feeds it elements with their event time and watermarks, moves its
 * processing time, reads what it emitted (main and side outputs), and takes
 * a snapshot to restore into a new harness, at the same key groups or at
 * another subtask's of another parallelism.
 *
 * It runs the engine's own code: the operator chain a subtask runs
 * (src/runtime/operator-chain.ts), the keyed-state backend with its timers
 * (src/state/keyed-state.ts, src/time/timer-service.ts), and the state
 * files of checkpoints and savepoints (src/state/snapshot-format.ts). What
 * a subtask does around it is done here the same way: an input that
 * crosses the network in production (keyed, broadcast, or into a
 * two-input operator) goes through a JSON round trip and has its key
 * computed on both sides; event-time timers fire when the watermark
 * advances, before it goes on; processing-time timers fire when the
 * harness's clock reaches them (it moves only when the test moves it).
 *
 * @example
 * const h = OperatorHarness.forOperator(clicks, "count-per-user");
 * h.processElement({ user: "ada" });
 * h.processElement({ user: "ada" });
 * expect(h.output()).toEqual([{ key: "ada", value: 1 }, { key: "ada", value: 2 }]);
 * const restored = OperatorHarness.forOperator(clicks, "count-per-user").restore(h.snapshot());
 */
import type { DeadLetter } from "../api/dead-letter.js";
import { type DataStream, type JobDefinition, type LogicalEdge, type LogicalNode, job as newJob } from "../api/job.js";
import type { OutputTag } from "../api/output-tag.js";
import type { ListState, ListStateDescriptor, MapState, MapStateDescriptor, ValueState, ValueStateDescriptor } from "../api/state.js";
import type { KeyedProcessFunction, SinkWriter, SourceDefinition } from "../api/types.js";
import { type Key, type KeyGroupRange, inRange, isKey, keyGroupOf, keyGroupRange, keyText } from "../graph/key-groups.js";
import { nodeLabel, type PlanVertex } from "../graph/plan.js";
import { CoInputKeyTypes, KeySelectorError, keyedOperatorName, previewInput, selectorThrewError, sentKeyError } from "../runtime/batch-encoding.js";
import { OperatorChain } from "../runtime/operator-chain.js";
import { keyFromText } from "../state/keyed-state.js";
import { NO_WATERMARK } from "../time/watermark-generator.js";
import { entriesIn, keyedStateFile, type OperatorSnapshot } from "./operator-snapshot.js";

/** Where a harness runs: which subtask of which parallelism, and its clock. */
export interface OperatorHarnessOptions {
  /** Key groups of the job; default the job's `maxParallelism`, else 128. */
  readonly maxParallelism?: number;
  /** The operator's parallelism (default 1); with `subtaskIndex`, which key groups the harness owns. */
  readonly parallelism?: number;
  /** Which subtask the harness is (default 0). An element whose key is not in its key groups throws. */
  readonly subtaskIndex?: number;
  /** The processing time at the start, in epoch ms (default 0). */
  readonly processingTimeMs?: number;
  /** What a rich function's `open` gets as `ctx.env` (the Worker's bindings). */
  readonly env?: unknown;
  /** What `open` gets as `ctx.attempt` (default 1). */
  readonly attempt?: number;
}

/** An emitted record with its event time (undefined when it has none). */
export interface HarnessRecord<T> {
  readonly value: T;
  readonly timestampMs: number | undefined;
}

/** A key's state, read or written from a test. */
export interface KeyedStateView {
  getState<T>(d: ValueStateDescriptor<T>): ValueState<T>;
  getMapState<V>(d: MapStateDescriptor<V>): MapState<V>;
  getListState<T>(d: ListStateDescriptor<T>): ListState<T>;
}

/** One of the operator's inputs: its key selector (none: not keyed), and whether it crosses the network. */
interface HarnessInput {
  readonly keySelector: ((value: unknown) => Key) | undefined;
  readonly index: 1 | 2;
}

/** The source a harness job's inputs come from: nothing reads it. */
function harnessSource(uid: string): SourceDefinition<never> {
  return {
    kind: "harness-input",
    replayable: true,
    defaultParallelism: 1,
    createReader: () => {
      throw new Error(`the harness's input "${uid}" is fed by processElement, not read`);
    },
  };
}

const DEFAULT_MAX_PARALLELISM = 128;

/**
 * One operator on its own. `IN` is what `processElement` takes, `OUT` what
 * the main output holds, `IN2` what `processElement2` (or
 * `processBroadcastElement`) takes for a two-input operator.
 */
export class OperatorHarness<IN = unknown, OUT = unknown, IN2 = unknown> {
  /** The operator's uid. */
  readonly uid: string;
  /** The key groups this harness owns. */
  readonly keyGroups: KeyGroupRange;
  readonly maxParallelism: number;
  private readonly chain: OperatorChain;
  private readonly node: LogicalNode;
  private readonly label: string;
  private readonly inputs: { readonly 1?: HarnessInput; readonly 2?: HarnessInput };
  /** Inputs reach the operator over the network in production: JSON round trip, key computed again. */
  private readonly networked: boolean;
  private readonly coKeyTypes: CoInputKeyTypes | undefined;
  private readonly main: HarnessRecord<OUT>[] = [];
  private readonly side = new Map<string, HarnessRecord<unknown>[]>();
  private watermark = NO_WATERMARK;
  private nowMs: number;
  private started = false;
  private opened = false;
  private checkpoints = 0;

  private constructor(
    private readonly job: JobDefinition,
    nodeId: number,
    private readonly options: OperatorHarnessOptions,
  ) {
    const node = job.nodes[nodeId];
    this.node = node;
    this.label = nodeLabel(node);
    if (node.kind === "source" || node.kind === "sink" || node.kind === "async") {
      throw new TypeError(`OperatorHarness runs a process function, window, map, filter or flatMap; "${this.label}" is a ${node.kind}`);
    }
    this.uid = node.options.uid ?? this.label;
    this.maxParallelism = options.maxParallelism ?? job.options.maxParallelism ?? DEFAULT_MAX_PARALLELISM;
    const parallelism = options.parallelism ?? 1;
    const index = options.subtaskIndex ?? 0;
    if (!Number.isInteger(parallelism) || parallelism < 1 || parallelism > this.maxParallelism) {
      throw new RangeError(`parallelism must be an integer from 1 to maxParallelism (${this.maxParallelism}), got ${parallelism}`);
    }
    if (!Number.isInteger(index) || index < 0 || index >= parallelism) throw new RangeError(`subtaskIndex must be an integer from 0 to ${parallelism - 1}, got ${index}`);
    this.keyGroups = keyGroupRange(this.maxParallelism, parallelism, index);
    this.nowMs = options.processingTimeMs ?? 0;

    const edge = (side: 1 | 2): LogicalEdge | undefined => node.inputs.find((e) => (e.coInput ?? 1) === side);
    const e1 = edge(1);
    const e2 = node.coProcess ? edge(2) : undefined;
    this.inputs = {
      ...(e1 ? { 1: { keySelector: e1.keySelector, index: 1 } } : {}),
      ...(e2 ? { 2: { keySelector: e2.keySelector, index: 2 } } : {}),
    };
    this.networked = node.coProcess === true || node.inputs.some((e) => e.keySelector !== undefined || e.broadcast === true);
    this.coKeyTypes = node.coProcess && e1?.keySelector && e2?.keySelector ? new CoInputKeyTypes(node) : undefined;

    const vertex: PlanVertex = {
      id: this.uid,
      name: this.label,
      nodes: [node.id],
      parallelism,
      inputs: [],
      outputs: [],
      keyed: e1?.keySelector !== undefined,
      isSource: false,
      uids: [this.uid],
    };
    this.chain = new OperatorChain(job, vertex, {
      subtaskIndex: index,
      maxParallelism: this.maxParallelism,
      emit: (value, timestampMs) => void this.main.push({ value: value as OUT, timestampMs }),
      emitSide: (tag, value, timestampMs) => {
        let records = this.side.get(tag);
        if (!records) this.side.set(tag, (records = []));
        records.push({ value, timestampMs });
      },
      createSinkWriter: () => {
        throw new Error("an operator harness runs no sinks");
      },
      currentWatermarkMs: () => this.watermark,
      now: () => this.nowMs,
    });
  }

  /**
   * The operator with uid `uid` of a job, as the job wires it: its function,
   * its key selector(s), its side outputs and dead letters.
   *
   * @example const h = OperatorHarness.forOperator(pageViews, "views-per-minute");
   */
  static forOperator<IN = any, OUT = any, IN2 = any>(job: JobDefinition, uid: string, options: OperatorHarnessOptions = {}): OperatorHarness<IN, OUT, IN2> {
    const nodes = job.nodes.filter((n) => n.options.uid === uid);
    if (nodes.length !== 1) {
      const uids = job.nodes.map((n) => n.options.uid).filter((u) => u !== undefined);
      throw new TypeError(
        nodes.length === 0
          ? `job "${job.name}" has no operator with uid "${uid}" (its uids: ${uids.map((u) => JSON.stringify(u)).join(", ")})`
          : `job "${job.name}" has ${nodes.length} operators with uid "${uid}"`,
      );
    }
    return new OperatorHarness<IN, OUT, IN2>(job, nodes[0].id, options);
  }

  /**
   * The one operator that `build` adds to its input stream(s): a window
   * (`input.keyBy(…).window(…).aggregate(…)`), a keyed or co-process
   * function, a broadcast process function (`a.keyBy(…).connect(b.broadcast(…))`)…
   *
   * @example
   * const h = OperatorHarness.forStream((views: DataStream<PageView>) =>
   *   views.keyBy((v) => v.url).window(TumblingEventTimeWindows.of(60_000)).aggregate(count, undefined, { uid: "per-minute" }));
   */
  static forStream<IN, OUT, IN2 = never>(
    build: (input: DataStream<IN>, input2: DataStream<IN2>) => DataStream<OUT> | void,
    options: OperatorHarnessOptions = {},
  ): OperatorHarness<IN, OUT, IN2> {
    const j = newJob("harness", options.maxParallelism === undefined ? {} : { maxParallelism: options.maxParallelism });
    const input = j.source(harnessSource("input"), { uid: "harness-input" }) as unknown as DataStream<IN>;
    const input2 = j.source(harnessSource("input2"), { uid: "harness-input-2" }) as unknown as DataStream<IN2>;
    build(input, input2);
    const added = j.nodes.slice(2);
    if (added.length !== 1) {
      throw new TypeError(`forStream's build must add one operator to its input(s), it added ${added.length}${added.length ? ` (${added.map(nodeLabel).join(", ")})` : ""}`);
    }
    return new OperatorHarness<IN, OUT, IN2>(j, added[0].id, options);
  }

  /**
   * A keyed process function alone, keyed by `keySelector` (Flink's
   * `ProcessFunctionTestHarnesses.forKeyedProcessFunction`).
   */
  static forKeyedProcessFunction<K extends Key, IN, OUT>(
    fn: KeyedProcessFunction<K, IN, OUT>,
    keySelector: (value: IN) => K,
    options: OperatorHarnessOptions & { uid?: string } = {},
  ): OperatorHarness<IN, OUT> {
    return OperatorHarness.forStream<IN, OUT>((input) => input.keyBy(keySelector).process(fn, { uid: options.uid ?? "process" }), options);
  }

  /** Restores snapshots (one, or several subtasks' to rescale) before the first element: keyed state in this harness's key groups, broadcast state, watermark. */
  restore(...snapshots: OperatorSnapshot[]): this {
    if (this.started) throw new Error(`restore() must come before the first element of "${this.label}"`);
    if (snapshots.length === 0) throw new TypeError("restore() needs at least one snapshot");
    for (const s of snapshots) {
      if (s.uid !== this.uid) throw new Error(`a snapshot of operator "${s.uid}" cannot restore operator "${this.uid}": uids differ`);
      if (s.maxParallelism !== this.maxParallelism) {
        throw new Error(`a snapshot taken with maxParallelism ${s.maxParallelism} cannot restore a harness with ${this.maxParallelism}: key groups would not match`);
      }
    }
    for (const [uid, backend] of this.chain.keyedState) {
      backend.load(entriesIn(snapshots.flatMap((s) => (s.keyedState[uid] === undefined ? [] : [s.keyedState[uid]])), this.keyGroups));
    }
    // Every subtask holds the same broadcast state; the engine restores one copy (subtask 0's) to all.
    for (const [uid, store] of this.chain.broadcastState) {
      const text = snapshots.find((s) => s.broadcastState[uid] !== undefined)?.broadcastState[uid];
      store.restore(text === undefined ? {} : JSON.parse(text));
    }
    const marks = snapshots.map((s) => s.watermarkMs ?? NO_WATERMARK);
    this.watermark = Math.max(this.watermark, Math.min(...marks));
    this.checkpoints = Math.max(this.checkpoints, ...snapshots.map((s) => s.checkpointId));
    return this;
  }

  /** Opens the operator's rich function (`open`), as a subtask does after restoring and before the first element. */
  async open(): Promise<this> {
    if (this.opened) return this;
    this.opened = true;
    this.started = true;
    await this.chain.open({ jobName: this.job.name, parallelism: this.options.parallelism ?? 1, attempt: this.options.attempt ?? 1, env: this.options.env });
    return this;
  }

  /** Closes the rich function (`close`). */
  async close(): Promise<void> {
    await this.chain.close();
  }

  /** Feeds an element of the (first) input, with its event time when the operator uses event time. */
  processElement(value: IN, timestampMs?: number): this {
    return this.feed(1, value, timestampMs);
  }

  /** Feeds an element of the second input of a co-process function. */
  processElement2(value: IN2, timestampMs?: number): this {
    return this.feed(2, value, timestampMs);
  }

  /** Feeds an element of the broadcast input of a broadcast process function. */
  processBroadcastElement(value: IN2, timestampMs?: number): this {
    if (!this.node.broadcastState) throw new TypeError(`operator "${this.label}" is not a broadcast process function`);
    return this.feed(2, value, timestampMs);
  }

  /**
   * The input watermark advances to `watermarkMs`: every event-time timer
   * at or below it fires first (a window whose end it passed emits). A
   * watermark at or below the current one changes nothing, as in a
   * subtask, whose watermark never goes back.
   */
  processWatermark(watermarkMs: number): this {
    if (typeof watermarkMs !== "number" || Number.isNaN(watermarkMs)) throw new TypeError(`a watermark is a number of ms, got ${String(watermarkMs)}`);
    this.started = true;
    if (watermarkMs <= this.watermark) return this;
    this.watermark = watermarkMs;
    this.chain.fireEventTimers(watermarkMs);
    return this;
  }

  /** Moves processing time to `nowMs` (never back): every processing-time timer at or below it fires. */
  setProcessingTime(nowMs: number): this {
    if (typeof nowMs !== "number" || !Number.isFinite(nowMs)) throw new TypeError(`processing time is a number of ms, got ${String(nowMs)}`);
    if (nowMs < this.nowMs) throw new RangeError(`processing time goes forward only: it is ${this.nowMs}, got ${nowMs}`);
    this.started = true;
    this.nowMs = nowMs;
    this.chain.fireProcessingTimers(nowMs);
    return this;
  }

  /** The processing time (epoch ms). */
  get processingTimeMs(): number {
    return this.nowMs;
  }

  /** The input watermark; undefined before the first. */
  get watermarkMs(): number | undefined {
    return this.watermark === NO_WATERMARK ? undefined : this.watermark;
  }

  /** The main output's values, in order. */
  output(): OUT[] {
    return this.main.map((r) => r.value);
  }

  /** The main output's records with their event times. */
  records(): HarnessRecord<OUT>[] {
    return [...this.main];
  }

  /** A side output's values, in order (late data of a window, anything `ctx.output(tag, v)` emitted). */
  sideOutput<T>(tag: OutputTag<T>): T[] {
    return (this.side.get(tag.id) ?? []).map((r) => r.value as T);
  }

  /** A side output's records with their event times. */
  sideRecords<T>(tag: OutputTag<T>): HarnessRecord<T>[] {
    return [...(this.side.get(tag.id) ?? [])] as HarnessRecord<T>[];
  }

  /** The records the operator could not process, when it has a dead-letter output (`{ deadLetters: tag }`). */
  deadLetters(): DeadLetter[] {
    const tag = this.node.options.deadLetters;
    return tag === undefined ? [] : this.sideOutput(tag);
  }

  /** Forgets what was emitted so far (main and side outputs). */
  clearOutput(): this {
    this.main.length = 0;
    this.side.clear();
    return this;
  }

  /**
   * A key's state, to read (or set up) from a test, as the function sees
   * it with that key current. Declared state only.
   *
   * @example expect(h.state("ada").getState(count).value()).toBe(2);
   */
  state(key: Key): KeyedStateView {
    const backend = this.backend();
    this.checkOwned(key, key);
    return {
      getState: (d) => (backend.setCurrentKey(key), backend.getState(d)),
      getMapState: (d) => (backend.setCurrentKey(key), backend.getMapState(d)),
      getListState: (d) => (backend.setCurrentKey(key), backend.getListState(d)),
    };
  }

  /** Keys that have a value of state `name` (a descriptor's name). */
  keys(name: string): Key[] {
    return this.backend().keysOf(name).map(keyFromText);
  }

  /** Whether `key` is in this harness's key groups: the engine routes its records to this subtask. */
  owns(key: Key): boolean {
    return inRange(this.keyGroups, keyGroupOf(key, this.maxParallelism));
  }

  /** Timers pending, over both time domains. */
  pendingTimers(): number {
    return this.chain.timerCount();
  }

  /**
   * The operator's state now, as a checkpoint takes it: keyed state
   * (timers included) in this harness's key groups, broadcast state, the
   * watermark. Restore it with `restore()` into a new harness.
   */
  snapshot(checkpointId = this.checkpoints + 1): OperatorSnapshot {
    this.checkpoints = checkpointId;
    const keyedState: Record<string, string> = {};
    for (const [uid, backend] of this.chain.keyedState) keyedState[uid] = keyedStateFile(uid, checkpointId, backend, this.keyGroups);
    const broadcastState: Record<string, string> = {};
    for (const [uid, store] of this.chain.broadcastState) {
      const text = store.snapshot();
      if (text !== undefined) broadcastState[uid] = text;
    }
    return {
      uid: this.uid,
      checkpointId,
      maxParallelism: this.maxParallelism,
      keyGroups: this.keyGroups,
      watermarkMs: this.watermarkMs ?? null,
      keyedState,
      broadcastState,
    };
  }

  private backend() {
    const backend = this.chain.keyedState.get(this.uid);
    if (!backend) throw new TypeError(`operator "${this.label}" has no keyed state (its input is not keyed)`);
    return backend;
  }

  private feed(index: 1 | 2, value: unknown, timestampMs: number | undefined): this {
    const input = this.inputs[index];
    if (!input) throw new TypeError(`operator "${this.label}" has no input ${index}${index === 2 ? ": processElement2 is for co-process and broadcast process functions" : ""}`);
    if (timestampMs !== undefined && (typeof timestampMs !== "number" || !Number.isFinite(timestampMs))) {
      throw new TypeError(`an element's event time is a finite number of ms, got ${String(timestampMs)}`);
    }
    if (timestampMs === undefined && this.node.needsEventTime !== undefined) {
      throw new TypeError(`operator "${this.label}" needs each element's event time (${this.node.needsEventTime}): pass it as processElement(value, timestampMs)`);
    }
    this.started = true;
    let key: Key | null = null;
    let received = value;
    if (input.keySelector) {
      key = this.keyOf(input.keySelector, value);
      received = this.roundTrip(value);
      const again = this.keyOf(input.keySelector, received, true);
      if (keyText(again) !== keyText(key)) {
        throw new KeySelectorError(
          keyedOperatorName(this.node),
          previewInput(value),
          `the key selector gave ${JSON.stringify(key)} for the record and ${JSON.stringify(again)} for its JSON round trip, which is what the receiving subtask computes`,
        );
      }
      this.coKeyTypes?.check(index, received, key);
      this.checkOwned(key, received);
    } else if (this.networked) {
      received = this.roundTrip(value);
    }
    this.chain.push(key, received, timestampMs, this.node.coProcess ? index : undefined);
    return this;
  }

  private keyOf(selector: (value: unknown) => Key, value: unknown, received = false): Key {
    let key: unknown;
    try {
      key = selector(value);
    } catch (e) {
      throw selectorThrewError(keyedOperatorName(this.node), value, e, received);
    }
    if (!isKey(key)) throw sentKeyError(keyedOperatorName(this.node), value, key);
    return key;
  }

  /** A record as a receiving subtask parses it from a batch. */
  private roundTrip(value: unknown): unknown {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`operator "${this.label}" got ${previewInput(value)}, which has no JSON form: records cross the network as JSON`);
    return JSON.parse(text);
  }

  private checkOwned(key: Key, value: unknown): void {
    const group = keyGroupOf(key, this.maxParallelism);
    if (inRange(this.keyGroups, group)) return;
    throw new RangeError(
      `key ${JSON.stringify(key)} (key group ${group}) of ${previewInput(value)} is not in this harness's key groups ${this.keyGroups.start}..${this.keyGroups.end} ` +
        `(subtask ${(this.options.subtaskIndex ?? 0) + 1} of ${this.options.parallelism ?? 1}): the engine would route it to another subtask`,
    );
  }
}
