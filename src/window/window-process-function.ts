/**
 * Windows as a keyed process function: the window operator's logic
 * (window-operator.ts) over the public keyed-process API, so that a window
 * has what every keyed operator has (keyed state checkpointed, restored
 * and rescaled with its key; timers through the state backend) and nothing
 * in the runtime is special to windows.
 *
 * A job's function objects are shared by every subtask that runs in one
 * isolate (locally, all of them), so the function keeps nothing of its own:
 * each operator instance (one per subtask, known by the context its chain
 * hands to every call) gets its own window operator and state ports.
 *
 * Its gauge, open windows, is counted from the state on the first metrics
 * read of a run (which the runtime makes after the restore) and kept by the
 * operator from then on.
 */
import type { Collector, KeyedContext, KeyedProcessFunction, KeyedStateScan, OnTimerContext } from "../api/types.js";
import { mapState, type MapStateDescriptor } from "../api/state.js";
import type { Key } from "../graph/key-groups.js";
import { type KeyTimers, WINDOW_STATE, type WindowOutput, type WindowSpec, WindowOperator, type WindowStateStore } from "./window-operator.js";

const MAPS: Record<string, MapStateDescriptor<unknown>> = Object.fromEntries(Object.values(WINDOW_STATE).map((name) => [name, mapState<unknown>(name)]));

/** One subtask's window operator, with the ports it reads its context and collector through. */
interface Instance<K extends Key, IN, ACC, R, OUT> {
  readonly operator: WindowOperator<K, IN, ACC, R, OUT>;
  /** The collector of the current call. */
  readonly port: { out: Collector<OUT> };
}

/** Builds the keyed process function of a window operator. */
export function windowProcessFunction<K extends Key, IN, ACC, R, OUT>(
  spec: WindowSpec<K, IN, ACC, R, OUT>,
  lateOutput?: (ctx: KeyedContext<K>, value: IN, timestampMs: number) => void,
): KeyedProcessFunction<K, IN, OUT> {
  const instances = new WeakMap<KeyedContext<K>, Instance<K, IN, ACC, R, OUT>>();
  const instanceOf = (ctx: KeyedContext<K>): Instance<K, IN, ACC, R, OUT> => {
    let inst = instances.get(ctx);
    if (inst === undefined) {
      inst = createInstance(spec, ctx, NO_COLLECTOR, lateOutput);
      instances.set(ctx, inst);
    }
    return inst;
  };
  // No strong reference to the last context here: the function outlives its subtasks, and would keep a canceled one's state.
  const instanceFor = (ctx: KeyedContext<K>, out: Collector<OUT>): Instance<K, IN, ACC, R, OUT> => {
    const inst = instanceOf(ctx);
    inst.port.out = out;
    return inst;
  };
  return {
    state: Object.values(MAPS),
    processElement(value: IN, ctx: KeyedContext<K>, out: Collector<OUT>) {
      instanceFor(ctx, out).operator.processElement(ctx.currentKey, value, ctx.timestamp);
    },
    onTimer(timestampMs: number, ctx: OnTimerContext<K>, out: Collector<OUT>) {
      instanceFor(ctx, out).operator.onTimer(ctx.currentKey, ctx.timeDomain(), timestampMs);
    },
    gauges(ctx: KeyedContext<K>, state: KeyedStateScan) {
      return { openWindows: instanceOf(ctx).operator.openWindows(() => countWindows(state)) };
    },
  };
}

/** A collector for an instance made outside a call (a metrics read): each call sets the real one first. */
const NO_COLLECTOR: Collector<never> = {
  collect: () => {
    throw new Error("a window operator emitted outside of a record or timer");
  },
};

/** The windows holding contents in the state: one entry of the contents map per key and state window. */
function countWindows(state: KeyedStateScan): number {
  let n = 0;
  state.forEachValue(WINDOW_STATE.contents, (windows) => (n += (windows as ReadonlyMap<string, unknown>).size));
  return n;
}

function createInstance<K extends Key, IN, ACC, R, OUT>(
  spec: WindowSpec<K, IN, ACC, R, OUT>,
  ctx: KeyedContext<K>,
  out: Collector<OUT>,
  lateOutput: ((ctx: KeyedContext<K>, value: IN, timestampMs: number) => void) | undefined,
): Instance<K, IN, ACC, R, OUT> {
  // The keyed state's accessors read the key current at each call: one per map serves every key.
  const store: WindowStateStore = { map: (name) => ctx.getMapState(MAPS[name]!) };
  const service = () => ctx.timerService();
  const timers: KeyTimers = {
    get currentWatermarkMs() {
      return service().currentWatermark();
    },
    currentProcessingTimeMs: () => service().currentProcessingTime(),
    registerEventTimeTimer: (t) => service().registerEventTimeTimer(t),
    registerProcessingTimeTimer: (t) => service().registerProcessingTimeTimer(t),
    deleteEventTimeTimer: (t) => service().deleteEventTimeTimer(t),
    deleteProcessingTimeTimer: (t) => service().deleteProcessingTimeTimer(t),
  };
  const port = { out };
  const output: WindowOutput<IN, OUT> = {
    emit: (value) => port.out.collect(value),
    late: lateOutput ? (value, ts) => lateOutput(ctx, value, ts) : undefined,
  };
  return { operator: new WindowOperator(spec, store, timers, output), port };
}
