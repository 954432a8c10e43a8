/**
 * Runs the operators of one vertex in one subtask: records enter at the
 * head and pass operator to operator as plain function calls, as in a Flink
 * operator chain. User code that throws is reported as a
 * {@link UserCodeError} naming the operator and the key.
 *
 * A record travels with its event time (undefined when its source has no
 * watermark strategy): map, filter and flatMap keep it, a process
 * function's output takes its input's, and output collected in `onTimer`
 * takes the timer's timestamp (as in Flink). Keyed process functions get a
 * timer service over their backend's timer queues ({@link TimerOperator});
 * the task fires them ({@link OperatorChain.fireEventTimers},
 * {@link OperatorChain.fireProcessingTimers}).
 */
import type { JobDefinition, LogicalNode } from "../api/job.js";
import type { Collector, Context, KeyedCoProcessFunction, KeyedContext, KeyedProcessFunction, OnTimerContext, OperatorGauges, RichFunction, RuntimeContext, SinkWriter, TimeDomain } from "../api/types.js";
import type { Key } from "../graph/key-groups.js";
import { nodeLabel, type PlanVertex } from "../graph/plan.js";
import type { OutputTag } from "../api/output-tag.js";
import type { AsyncFunction } from "../api/async-function.js";
import { type DeadLetter, RejectedRecord, errorText } from "../api/dead-letter.js";
import { KeyedStateBackend, keyFromText } from "../state/keyed-state.js";
import { BroadcastStateStore } from "../state/broadcast-state.js";
import type { MapStateDescriptor, StateDescriptor } from "../api/state.js";
import { KeySelectorError } from "./batch-encoding.js";
import { KeyedTimerService, type TimerClocks } from "../time/timer-service.js";

/** User code threw while processing a record. */
export class UserCodeError extends Error {
  constructor(
    readonly operator: string,
    readonly key: Key | null,
    override readonly cause: unknown,
  ) {
    const why = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
    super(`operator "${operator}"${key === null ? "" : ` (key ${JSON.stringify(key)})`} threw ${why}`);
    this.name = "UserCodeError";
  }
}

/** A rich function's `open` threw: the task cannot start. */
export class FunctionOpenError extends Error {
  constructor(
    readonly operator: string,
    override readonly cause: unknown,
  ) {
    super(`operator "${operator}" failed to open: ${errorText(cause)}`);
    this.name = "FunctionOpenError";
  }
}

/** Passes a record on: its key (null where the stream is not keyed), its value and its event time. */
type Push = (key: Key | null, value: unknown, timestampMs: number | undefined, input?: number) => void;

/** An error raised past a process function's collector: not the function's own. */
class DownstreamError extends Error {
  constructor(readonly inner: unknown) {
    super("downstream error");
  }
}

/**
 * What to throw for an error raised while operator `label` processed a
 * record of `key`: user code's own errors are wrapped, errors of operators
 * further down pass as they are. (An inline try/catch with this, not a
 * guard taking a closure: that would allocate one closure per record.)
 */
function blame(e: unknown, label: string, key: Key | null): unknown {
  if (e instanceof UserCodeError) return e;
  if (e instanceof DownstreamError) return e.inner;
  return new UserCodeError(label, key, e);
}

/** Whether an error caught around a process function is its own, not one raised downstream of its collector. */
function isOwn(e: unknown): boolean {
  return !(e instanceof UserCodeError) && !(e instanceof DownstreamError);
}

/** What a chain needs from its subtask: its index, the tail's output, sinks, and the clocks timers read. */
export interface ChainServices extends TimerClocks {
  readonly subtaskIndex: number;
  readonly maxParallelism: number;
  /** Emits a record out of the vertex's tail, with its event time. */
  readonly emit: (value: unknown, timestampMs: number | undefined) => void;
  /** Emits a record of a side output (by tag id) out of the vertex's tail, with its event time; absent: side outputs are dropped. */
  readonly emitSide?: (tag: string, value: unknown, timestampMs: number | undefined) => void;
  readonly createSinkWriter: (node: LogicalNode) => SinkWriter;
}

/** A keyed process function's timers, and how one of them fires. */
interface TimerOperator {
  readonly timers: KeyedTimerService;
  /** Fires one timer of the backend's current key. */
  readonly fire: (timestampMs: number, domain: TimeDomain) => void;
}

/** The operators of one vertex, wired into one push function. */
export class OperatorChain {
  /** Keyed state per operator uid. */
  readonly keyedState = new Map<string, KeyedStateBackend>();
  /** Broadcast state per operator uid (broadcast process functions). */
  readonly broadcastState = new Map<string, BroadcastStateStore>();
  /** Sink writers per operator uid. */
  readonly sinks = new Map<string, SinkWriter>();
  private readonly head: Push;
  /** The keyed process functions, head first: the operators that have timers. */
  private readonly timerOperators: TimerOperator[] = [];
  /** Records that entered the chain. */
  recordsIn = 0;
  /** Records routed to dead-letter outputs. */
  deadLetters = 0;
  /** This chain's instance of its async I/O function, when its head is an async operator (alone in its vertex). */
  asyncFunction: AsyncFunction<unknown, unknown> | undefined;
  /** The chain's rich function instances, head first: opened before the first record, closed at the end. */
  private readonly richFunctions: { readonly label: string; readonly uid: string; readonly instance: RichFunction }[] = [];
  private closed = false;
  /** The source partition and first offset of the batch being pushed (source vertices), else undefined. */
  private originPartition: string | undefined;
  private originFirstOffset = 0;
  /** Index in that batch of the record being pushed. */
  private originIndex = 0;
  /** The gauges of the keyed process functions that report some (window operators: open windows). */
  private readonly gaugeReaders: (() => OperatorGauges)[] = [];

  constructor(job: JobDefinition, vertex: PlanVertex, services: ChainServices) {
    let next: Push = (_key, value, timestampMs) => services.emit(value, timestampMs);
    for (let i = vertex.nodes.length - 1; i >= 0; i--) {
      const node = job.nodes[vertex.nodes[i]];
      next = this.wrap(node, next, services, i === vertex.nodes.length - 1);
    }
    this.head = next;
    // Built tail first: the head's operator is fired first, as a watermark reaches it first.
    this.timerOperators.reverse();
    this.richFunctions.reverse();
    this.subtaskIndex = services.subtaskIndex;
  }

  private readonly subtaskIndex: number;

  /**
   * Opens the rich functions, head first, once their state was restored
   * and before the first record. A function whose `open` throws fails the
   * task, naming its operator.
   */
  async open(rt: Omit<RuntimeContext, "operatorUid" | "subtaskIndex">): Promise<void> {
    for (const r of this.richFunctions) {
      if (typeof r.instance.open !== "function") continue;
      try {
        await r.instance.open({ ...rt, operatorUid: r.uid, subtaskIndex: this.subtaskIndex });
      } catch (e) {
        throw new FunctionOpenError(r.label, e);
      }
    }
  }

  /** Closes the rich functions once, head first; an error in one `close` does not keep the others from closing. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const r of this.richFunctions) {
      try {
        await r.instance.close?.();
      } catch {
        // The task is over either way; nothing it could still do depends on this.
      }
    }
  }

  /**
   * This chain's own instance of a user function that has `open` or
   * `close`: an object whose prototype is the function, so that what
   * `open` sets on `this` belongs to one parallel instance (subtasks in
   * one isolate share the job's function objects).
   */
  private instanceOf<F extends object>(node: LogicalNode, fn: F): F {
    const rich = fn as RichFunction;
    if (typeof rich.open !== "function" && typeof rich.close !== "function") return fn;
    const instance = Object.create(fn) as F;
    this.richFunctions.push({ label: nodeLabel(node), uid: node.options.uid ?? nodeLabel(node), instance: instance as RichFunction });
    return instance;
  }

  /** The function of a map, filter or flatMap: as given, or the method of this chain's instance of its rich object. */
  private userFunction(node: LogicalNode): (value: unknown) => unknown {
    if (node.fn) return node.fn;
    const instance = this.instanceOf(node, node.rich!);
    const method = instance[node.kind] as (value: unknown) => unknown;
    return (value) => method.call(instance, value);
  }

  /**
   * Pushes one record (with its key, when the input is keyed, and its event
   * time) through the chain; `input` (1 or 2) says which input of a
   * co-process head it came on.
   */
  push(key: Key | null, value: unknown, timestampMs?: number, input?: number): void {
    this.recordsIn++;
    this.head(key, value, timestampMs, input);
  }

  /**
   * Pushes a batch read from source partition `partition`, whose records
   * have the offsets `firstOffset`, `firstOffset + 1`, …: dead letters of
   * the chain's operators name their offset, and so does an error.
   */
  pushSourceBatch(partition: string, firstOffset: number, records: readonly unknown[], timestamps?: readonly number[]): void {
    this.originPartition = partition;
    this.originFirstOffset = firstOffset;
    let i = 0;
    try {
      if (timestamps) for (; i < records.length; i++) (this.originIndex = i), this.push(null, records[i], timestamps[i]);
      else for (; i < records.length; i++) (this.originIndex = i), this.push(null, records[i]);
    } catch (e) {
      if (e instanceof UserCodeError) throw new Error(`${e.message} at ${partition} offset ${firstOffset + i}`);
      if (e instanceof KeySelectorError) throw e.at(`${partition} offset ${firstOffset + i}`);
      throw e;
    } finally {
      this.originPartition = undefined;
    }
  }

  /**
   * Where the record being pushed came from, when the vertex carries
   * origins (plan.ts `verticesCarryingOrigins`): set by the task for each
   * record of a batch that carried them, null otherwise.
   */
  carriedOrigin: DeadLetter["source"] = null;

  /** Where the record being pushed was read: in its source's chain, or as its batch said; else null. */
  origin(): DeadLetter["source"] {
    return this.originPartition === undefined ? this.carriedOrigin : { partition: this.originPartition, offset: this.originFirstOffset + this.originIndex };
  }

  /**
   * Routes a record that operator `node` could not process to its
   * dead-letter output, if it has one (and is its vertex's tail, which an
   * operator whose side output is read always is); false when it has none.
   */
  private deadLetter(node: LogicalNode, services: ChainServices, isTail: boolean, key: Key | null, value: unknown, timestampMs: number | undefined, error: unknown): boolean {
    const tag = node.options.deadLetters;
    if (tag === undefined || !isTail || services.emitSide === undefined) return false;
    const letter: DeadLetter = { operator: node.options.uid ?? nodeLabel(node), error: errorText(error), key, source: this.origin(), value };
    this.deadLetters++;
    services.emitSide(tag.id, letter, timestampMs);
    return true;
  }

  /**
   * Fires every event-time timer at or below `watermarkMs`, operator by
   * operator from the head, each in timestamp order; timers that a firing
   * registers at or below it fire too. Call before the watermark goes on.
   * With `max`, the first `max` of them: call again until fewer fire.
   */
  fireEventTimers(watermarkMs: number, max = Number.POSITIVE_INFINITY): number {
    return this.fireTimers("event", watermarkMs, max);
  }

  /** Fires every processing-time timer at or below `nowMs` (the first `max` of them, when given). */
  fireProcessingTimers(nowMs: number, max = Number.POSITIVE_INFINITY): number {
    return this.fireTimers("processing", nowMs, max);
  }

  /** Fires up to `max` timers of `domain` at or below `upToMs`, operator by operator from the head. */
  private fireTimers(domain: "event" | "processing", upToMs: number, max: number): number {
    let fired = 0;
    for (const op of this.timerOperators) {
      if (fired >= max) break;
      fired += op.timers.fireDue(domain, upToMs, (ts) => op.fire(ts, domain), max - fired);
    }
    return fired;
  }

  /** The earliest processing-time timer of any operator, or undefined. */
  nextProcessingTimerMs(): number | undefined {
    return this.nextTimerMs("processing");
  }

  /** The earliest timer of `domain` of any operator, or undefined. */
  nextTimerMs(domain: "event" | "processing"): number | undefined {
    let next: number | undefined;
    for (const op of this.timerOperators) {
      const ts = op.timers.next(domain);
      if (ts !== undefined && (next === undefined || ts < next)) next = ts;
    }
    return next;
  }

  /** Timers pending, over the chain's operators and both time domains. */
  timerCount(): number {
    let n = 0;
    for (const op of this.timerOperators) n += op.timers.pending();
    return n;
  }

  /**
   * The gauges of the chain's operators, summed by name (absent: no
   * operator reports it). Read only once the subtask restored its state:
   * an operator may count from it on the first read.
   */
  gauges(): OperatorGauges {
    let openWindows: number | undefined;
    for (const read of this.gaugeReaders) {
      const g = read();
      if (g.openWindows !== undefined) openWindows = (openWindows ?? 0) + g.openWindows;
    }
    return openWindows === undefined ? {} : { openWindows };
  }

  private wrap(node: LogicalNode, next: Push, services: ChainServices, isTail: boolean): Push {
    const label = nodeLabel(node);
    switch (node.kind) {
      case "source":
        return (key, value, timestampMs) => {
          if (!(value instanceof RejectedRecord)) return next(key, value, timestampMs);
          if (this.deadLetter(node, services, isTail, null, value.raw, undefined, new Error(value.reason))) return;
          const at = this.origin();
          throw new Error(`source "${label}" rejected the record${at ? ` at ${at.partition} offset ${at.offset}` : ""}: ${value.reason}`);
        };
      case "map": {
        const fn = this.userFunction(node);
        return (key, value, timestampMs) => {
          let out: unknown;
          try {
            out = fn(value);
          } catch (e) {
            if (this.deadLetter(node, services, isTail, key, value, timestampMs, e)) return;
            throw blame(e, label, key);
          }
          next(null, out, timestampMs);
        };
      }
      case "filter": {
        const fn = this.userFunction(node);
        return (key, value, timestampMs) => {
          let keep: unknown;
          try {
            keep = fn(value);
          } catch (e) {
            if (this.deadLetter(node, services, isTail, key, value, timestampMs, e)) return;
            throw blame(e, label, key);
          }
          if (keep) next(null, value, timestampMs);
        };
      }
      case "flatMap": {
        const fn = this.userFunction(node);
        return (key, value, timestampMs) => {
          let outs: unknown[];
          try {
            outs = [...(fn(value) as Iterable<unknown>)];
          } catch (e) {
            if (this.deadLetter(node, services, isTail, key, value, timestampMs, e)) return;
            throw blame(e, label, key);
          }
          for (const out of outs) next(null, out, timestampMs);
        };
      }
      case "process":
        return this.processOperator(node, label, next, services, isTail);
      case "async": {
        // Opened and closed with the chain's rich functions; the task runs it (runtime/subtask/async-stage.ts).
        this.asyncFunction = this.instanceOf(node, node.async!.fn);
        return () => {
          throw new Error(`async operator "${label}" takes its records from the task, not from a chain`);
        };
      }
      case "sink": {
        const writer = services.createSinkWriter(node);
        this.sinks.set(node.options.uid!, writer);
        return (key, value) => {
          try {
            writer.write(value);
          } catch (e) {
            throw blame(e, label, key);
          }
        };
      }
    }
  }

  private processOperator(node: LogicalNode, label: string, next: Push, services: ChainServices, isTail: boolean): Push {
    const fn = this.instanceOf(node, node.process! as KeyedProcessFunction<Key, unknown, unknown>);
    // A co-process function (two inputs): the push says which of its functions a record goes to.
    const co = node.coProcess ? (fn as unknown as KeyedCoProcessFunction<Key, unknown, unknown, unknown>) : undefined;
    const keyed = node.inputs.some((e) => e.keySelector);
    /** Event time of the record being processed (or of the timer firing): what the collector's output carries. */
    let timestampNow: number | undefined;
    // Errors from downstream operators pass through the collector: mark them so the guard does not blame this one.
    const out: Collector<unknown> = {
      collect: (v) => {
        try {
          next(null, v, timestampNow);
        } catch (e) {
          throw e instanceof UserCodeError ? e : new DownstreamError(e);
        }
      },
    };
    // An operator with side outputs is always its vertex's tail (see plan.ts); elsewhere no stream reads a tag.
    const emitSide = services.emitSide;
    const output = isTail && emitSide
      ? (tag: OutputTag<unknown>, v: unknown) => {
          try {
            emitSide(tag.id, v, timestampNow);
          } catch (e) {
            throw e instanceof UserCodeError ? e : new DownstreamError(e);
          }
        }
      : () => {};
    if (!keyed) {
      const notKeyed = (what: string) => () => {
        throw new TypeError(`operator "${label}" uses ${what} but its input is not keyed: call keyBy() first`);
      };
      const ctx: Context & Record<string, unknown> = {
        operatorUid: node.options.uid ?? label,
        subtaskIndex: services.subtaskIndex,
        get timestamp() {
          return timestampNow;
        },
        timerService: notKeyed("timers (keyed state)"),
        output,
        getState: notKeyed("keyed state"),
        getMapState: notKeyed("keyed state"),
        getListState: notKeyed("keyed state"),
      };
      const c = ctx as unknown as KeyedContext;
      let invoke: (value: unknown, input: number | undefined) => void;
      const broadcast = node.broadcastState ? this.broadcastFor(node, label) : undefined;
      if (broadcast) {
        // Input 1 reads the broadcast state; input 2 (the broadcast stream) writes it.
        ctx.getBroadcastState = (d: MapStateDescriptor<unknown>) => broadcast.view(d);
        const bctx = { ...ctx, getBroadcastState: (d: MapStateDescriptor<unknown>) => broadcast.state(d) };
        Object.defineProperty(bctx, "timestamp", { get: () => timestampNow });
        const bfn = fn as unknown as { processBroadcastElement(v: unknown, ctx: unknown, out: Collector<unknown>): void };
        invoke = (value, input) => (input === 2 ? bfn.processBroadcastElement(value, bctx, out) : fn.processElement(value, c, out));
      } else if (co) {
        invoke = (value, input) => (input === 2 ? co.processElement2(value, c, out) : co.processElement1(value, c, out));
      } else {
        invoke = (value) => fn.processElement(value, c, out);
      }
      return (key, value, timestampMs, input) => {
        timestampNow = timestampMs;
        try {
          invoke(value, input);
        } catch (e) {
          if (isOwn(e) && this.deadLetter(node, services, isTail, key, value, timestampMs, e)) return;
          throw blame(e, label, key);
        }
      };
    }
    // State TTLs count on the subtask's clock; declared state has its TTL before the first record.
    const state = new KeyedStateBackend(services.maxParallelism, label, { now: () => services.now() });
    for (const d of fn.state ?? []) state.declare(d);
    this.keyedState.set(node.options.uid!, state);
    const timers = new KeyedTimerService(state, label, services);
    let domainNow: TimeDomain = "event";
    const ctx: OnTimerContext = {
      operatorUid: node.options.uid!,
      subtaskIndex: services.subtaskIndex,
      get currentKey() {
        return state.currentKey;
      },
      get timestamp() {
        return timestampNow;
      },
      timerService: () => timers.service,
      output,
      // Only onTimer's context is asked: processElement's type has no timeDomain.
      timeDomain: () => domainNow,
      getState: (d) => state.getState(d),
      getMapState: (d) => state.getMapState(d),
      getListState: (d) => state.getListState(d),
    };
    this.timerOperators.push({
      timers,
      fire: (ts, domain) => {
        if (!fn.onTimer) return;
        timestampNow = ts;
        domainNow = domain;
        try {
          fn.onTimer(ts, ctx, out);
        } catch (e) {
          throw blame(e, label, state.currentKey);
        }
      },
    });
    if (fn.gauges) {
      const scan = { forEachValue: (name: string, f: (value: unknown) => void) => state.forEachValue(name, f) };
      this.gaugeReaders.push(() => fn.gauges!(ctx, scan));
    }
    const broadcast = node.broadcastState ? this.broadcastFor(node, label) : undefined;
    if (broadcast) return this.keyedBroadcast(node, label, fn, ctx, out, state, timers, broadcast, services, isTail, (ts) => (timestampNow = ts));
    const invoke: (value: unknown, input: number | undefined) => void = co
      ? (value, input) => (input === 2 ? co.processElement2(value, ctx, out) : co.processElement1(value, ctx, out))
      : (value) => fn.processElement(value, ctx, out);
    return (key, value, timestampMs, input) => {
      if (key === null) throw new UserCodeError(label, null, new TypeError("keyed operator received a record without key"));
      state.setCurrentKey(key);
      timestampNow = timestampMs;
      try {
        invoke(value, input);
      } catch (e) {
        if (isOwn(e) && this.deadLetter(node, services, isTail, key, value, timestampMs, e)) return;
        throw blame(e, label, key);
      }
    };
  }

  /** The broadcast states of a broadcast process function's instance in this chain. */
  private broadcastFor(node: LogicalNode, label: string): BroadcastStateStore {
    const store = new BroadcastStateStore(node.broadcastState!, label);
    this.broadcastState.set(node.options.uid!, store);
    return store;
  }

  /**
   * A keyed broadcast process function: keyed records (input 1) run with
   * their key's state and read the broadcast state; broadcast records
   * (input 2, without key) write it, and reach every key's state through
   * applyToKeyedState.
   */
  private keyedBroadcast(
    node: LogicalNode,
    label: string,
    fn: KeyedProcessFunction<Key, unknown, unknown>,
    ctx: OnTimerContext,
    out: Collector<unknown>,
    state: KeyedStateBackend,
    timers: KeyedTimerService,
    broadcast: BroadcastStateStore,
    services: ChainServices,
    isTail: boolean,
    setTimestamp: (ts: number | undefined) => void,
  ): Push {
    const bfn = fn as unknown as { processBroadcastElement(v: unknown, ctx: unknown, out: Collector<unknown>): void };
    // The keyed side (and onTimer) reads the broadcast state.
    (ctx as OnTimerContext & Record<string, unknown>).getBroadcastState = (d: MapStateDescriptor<unknown>) => broadcast.view(d);
    const noKey = (what: string) => () => {
      throw new TypeError(`operator "${label}": processBroadcastElement has no current key, so no ${what}; use applyToKeyedState`);
    };
    const clocks = timers.service;
    let timestampNow: number | undefined;
    const bctx = {
      operatorUid: node.options.uid!,
      subtaskIndex: services.subtaskIndex,
      get timestamp() {
        return timestampNow;
      },
      output: ctx.output,
      timerService: () => ({
        currentWatermark: () => clocks.currentWatermark(),
        currentProcessingTime: () => clocks.currentProcessingTime(),
        registerEventTimeTimer: noKey("timers"),
        registerProcessingTimeTimer: noKey("timers"),
        deleteEventTimeTimer: noKey("timers"),
        deleteProcessingTimeTimer: noKey("timers"),
      }),
      getBroadcastState: (d: MapStateDescriptor<unknown>) => broadcast.state(d),
      applyToKeyedState: (d: StateDescriptor, apply: (key: Key, s: unknown) => void) => {
        const accessor = () => (d.kind === "value" ? state.getState(d) : d.kind === "map" ? state.getMapState(d) : state.getListState(d));
        accessor(); // an undeclared or mismatched descriptor fails here, before any key
        for (const text of state.keysOf(d.name)) {
          const key = keyFromText(text);
          state.setCurrentKey(key);
          apply(key, accessor());
        }
      },
    };
    return (key, value, timestampMs, input) => {
      setTimestamp(timestampMs);
      if (input === 2) {
        timestampNow = timestampMs;
        try {
          bfn.processBroadcastElement(value, bctx, out);
        } catch (e) {
          if (isOwn(e) && this.deadLetter(node, services, isTail, null, value, timestampMs, e)) return;
          throw blame(e, label, null);
        }
        return;
      }
      if (key === null) throw new UserCodeError(label, null, new TypeError("keyed operator received a record without key"));
      state.setCurrentKey(key);
      try {
        fn.processElement(value, ctx, out);
      } catch (e) {
        if (isOwn(e) && this.deadLetter(node, services, isTail, key, value, timestampMs, e)) return;
        throw blame(e, label, key);
      }
    };
  }

}
