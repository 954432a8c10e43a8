/**
 * Runs the operators of one vertex in one subtask: records enter at the
 * head and pass operator to operator as plain function calls, as in a Flink
 * operator chain. User code that throws is reported as a
 * {@link UserCodeError} naming the operator and the key.
 */
import type { JobDefinition, LogicalNode } from "../api/job.js";
import type { Collector, KeyedContext, SinkWriter } from "../api/types.js";
import type { Key } from "../graph/key-groups.js";
import { nodeLabel, type PlanVertex } from "../graph/plan.js";
import { KeyedStateBackend } from "../state/keyed-state.js";

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

type Push = (key: Key | null, value: unknown) => void;

/** An error raised past a process function's collector: not the function's own. */
class DownstreamError extends Error {
  constructor(readonly inner: unknown) {
    super("downstream error");
  }
}

/** What a chain needs from its subtask. */
export interface ChainServices {
  readonly subtaskIndex: number;
  readonly maxParallelism: number;
  /** Emits a record out of the vertex's tail. */
  readonly emit: (value: unknown) => void;
  readonly createSinkWriter: (node: LogicalNode) => SinkWriter;
}

/** The operators of one vertex, wired into one push function. */
export class OperatorChain {
  /** Keyed state per operator uid. */
  readonly keyedState = new Map<string, KeyedStateBackend>();
  /** Sink writers per operator uid. */
  readonly sinks = new Map<string, SinkWriter>();
  private readonly head: Push;
  /** Records that entered the chain. */
  recordsIn = 0;

  constructor(job: JobDefinition, vertex: PlanVertex, services: ChainServices) {
    let next: Push = (_key, value) => services.emit(value);
    for (let i = vertex.nodes.length - 1; i >= 0; i--) {
      const node = job.nodes[vertex.nodes[i]];
      next = this.wrap(node, next, services);
    }
    this.head = next;
  }

  /** Pushes one record (with its key, when the input is keyed) through the chain. */
  push(key: Key | null, value: unknown): void {
    this.recordsIn++;
    this.head(key, value);
  }

  private wrap(node: LogicalNode, next: Push, services: ChainServices): Push {
    const label = nodeLabel(node);
    const guard = (key: Key | null, fn: () => void) => {
      try {
        fn();
      } catch (e) {
        if (e instanceof UserCodeError) throw e;
        if (e instanceof DownstreamError) throw e.inner;
        throw new UserCodeError(label, key, e);
      }
    };
    switch (node.kind) {
      case "source":
        return next;
      case "map": {
        const fn = node.fn!;
        return (key, value) => {
          let out: unknown;
          guard(key, () => (out = fn(value)));
          next(null, out);
        };
      }
      case "filter": {
        const fn = node.fn!;
        return (key, value) => {
          let keep = false;
          guard(key, () => (keep = fn(value)));
          if (keep) next(null, value);
        };
      }
      case "flatMap": {
        const fn = node.fn!;
        return (key, value) => {
          let outs: unknown[] = [];
          guard(key, () => (outs = [...(fn(value) as Iterable<unknown>)]));
          for (const out of outs) next(null, out);
        };
      }
      case "process":
        return this.processOperator(node, label, next, services, guard);
      case "sink": {
        const writer = services.createSinkWriter(node);
        this.sinks.set(node.options.uid!, writer);
        return (key, value) => guard(key, () => writer.write(value));
      }
    }
  }

  private processOperator(
    node: LogicalNode,
    label: string,
    next: Push,
    services: ChainServices,
    guard: (key: Key | null, fn: () => void) => void,
  ): Push {
    const fn = node.process!;
    const keyed = node.inputs.some((e) => e.keySelector);
    // Errors from downstream operators pass through the collector: mark them so the guard does not blame this one.
    const out: Collector<unknown> = {
      collect: (v) => {
        try {
          next(null, v);
        } catch (e) {
          throw e instanceof UserCodeError ? e : new DownstreamError(e);
        }
      },
    };
    if (!keyed) {
      const notKeyed = () => {
        throw new TypeError(`operator "${label}" uses keyed state but its input is not keyed: call keyBy() first`);
      };
      const ctx = {
        operatorUid: node.options.uid ?? label,
        subtaskIndex: services.subtaskIndex,
        getState: notKeyed,
        getMapState: notKeyed,
        getListState: notKeyed,
      };
      return (key, value) => guard(key, () => fn.processElement(value, ctx as unknown as KeyedContext, out));
    }
    const state = new KeyedStateBackend(services.maxParallelism, label);
    this.keyedState.set(node.options.uid!, state);
    const ctx: KeyedContext = {
      operatorUid: node.options.uid!,
      subtaskIndex: services.subtaskIndex,
      get currentKey() {
        return state.currentKey;
      },
      getState: (d) => state.getState(d),
      getMapState: (d) => state.getMapState(d),
      getListState: (d) => state.getListState(d),
    };
    return (key, value) => {
      if (key === null) throw new UserCodeError(label, null, new TypeError("keyed operator received a record without key"));
      state.setCurrentKey(key);
      guard(key, () => fn.processElement(value, ctx, out));
    };
  }
}
