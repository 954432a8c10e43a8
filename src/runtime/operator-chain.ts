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
    switch (node.kind) {
      case "source":
        return next;
      case "map": {
        const fn = node.fn!;
        return (key, value) => {
          let out: unknown;
          try {
            out = fn(value);
          } catch (e) {
            throw blame(e, label, key);
          }
          next(null, out);
        };
      }
      case "filter": {
        const fn = node.fn!;
        return (key, value) => {
          let keep: unknown;
          try {
            keep = fn(value);
          } catch (e) {
            throw blame(e, label, key);
          }
          if (keep) next(null, value);
        };
      }
      case "flatMap": {
        const fn = node.fn!;
        return (key, value) => {
          let outs: unknown[];
          try {
            outs = [...(fn(value) as Iterable<unknown>)];
          } catch (e) {
            throw blame(e, label, key);
          }
          for (const out of outs) next(null, out);
        };
      }
      case "process":
        return this.processOperator(node, label, next, services);
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

  private processOperator(node: LogicalNode, label: string, next: Push, services: ChainServices): Push {
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
      return (key, value) => {
        try {
          fn.processElement(value, ctx as unknown as KeyedContext, out);
        } catch (e) {
          throw blame(e, label, key);
        }
      };
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
      try {
        fn.processElement(value, ctx, out);
      } catch (e) {
        throw blame(e, label, key);
      }
    };
  }
}
