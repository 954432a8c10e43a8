/**
 * Windows as a keyed process function: the window operator's logic
 * (window-operator.ts) over the public keyed-process API, so that a window
 * has what every keyed operator has (keyed state checkpointed, restored
 * and rescaled with its key; timers through the state backend) and nothing
 * in the runtime is special to windows.
 */
import type { Collector, KeyedContext, KeyedProcessFunction, OnTimerContext } from "../api/types.js";
import { mapState, type MapState, type MapStateDescriptor } from "../api/state.js";
import type { Key } from "../graph/key-groups.js";
import { type KeyTimers, WINDOW_STATE, type WindowOutput, type WindowSpec, WindowOperator, type WindowStateStore } from "./window-operator.js";

const MAPS: Record<string, MapStateDescriptor<unknown>> = Object.fromEntries(Object.values(WINDOW_STATE).map((name) => [name, mapState<unknown>(name)]));

/** Builds the keyed process function of a window operator. */
export function windowProcessFunction<K extends Key, IN, ACC, R, OUT>(
  spec: WindowSpec<K, IN, ACC, R, OUT>,
  lateOutput?: (ctx: KeyedContext<K>, value: IN, timestampMs: number) => void,
): KeyedProcessFunction<K, IN, OUT> & { readonly operator: WindowOperator<K, IN, ACC, R, OUT> } {
  // The ports read the call's context and collector, set before each call: one operator serves every record.
  let ctx: KeyedContext<K> | undefined;
  let out: Collector<OUT> | undefined;
  // Not cached here: the job's function object is shared by every subtask in one isolate, and each
  // context reads its own subtask's state backend (which caches the accessor itself).
  const map = (name: string): MapState<unknown> => ctx!.getMapState(MAPS[name]!);
  const store: WindowStateStore = {
    get: (name, field) => map(name).get(field),
    put: (name, field, value) => map(name).put(field, value),
    remove: (name, field) => map(name).remove(field),
  };
  const timers: KeyTimers = {
    get currentWatermarkMs() {
      return ctx!.timerService().currentWatermark();
    },
    currentProcessingTimeMs: () => ctx!.timerService().currentProcessingTime(),
    registerEventTimeTimer: (t) => ctx!.timerService().registerEventTimeTimer(t),
    registerProcessingTimeTimer: (t) => ctx!.timerService().registerProcessingTimeTimer(t),
    deleteEventTimeTimer: (t) => ctx!.timerService().deleteEventTimeTimer(t),
    deleteProcessingTimeTimer: (t) => ctx!.timerService().deleteProcessingTimeTimer(t),
  };
  const output: WindowOutput<IN, OUT> = {
    emit: (value) => out!.collect(value),
    late: lateOutput ? (value, ts) => lateOutput(ctx!, value, ts) : undefined,
  };
  const operator = new WindowOperator(spec, store, timers, output);
  return {
    operator,
    state: Object.values(MAPS),
    processElement(value: IN, c: KeyedContext<K>, o: Collector<OUT>) {
      ctx = c;
      out = o;
      operator.processElement(c.currentKey, value, c.timestamp);
    },
    onTimer(timestampMs: number, c: OnTimerContext<K>, o: Collector<OUT>) {
      ctx = c;
      out = o;
      operator.onTimer(c.currentKey, c.timeDomain(), timestampMs);
    },
  };
}
