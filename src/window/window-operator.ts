/**
 * The window operator's logic, as Flink's `WindowOperator`, over small
 * ports: the current key's state, the current key's timers, and the
 * outputs. The runtime wires it into a keyed operator; tests drive it
 * directly.
 *
 * For each element: the assigner gives its windows (session windows merge
 * through the {@link MergingWindowSet}); each window's contents take the
 * element; the window's trigger decides to fire (emit the contents) and/or
 * purge (clear them). Each window gets a cleanup timer at
 * `maxTimestamp + allowedLateness` (event time) or `maxTimestamp`
 * (processing time), when its contents, trigger state and timers are
 * dropped. An element whose every window is past cleanup is late: it goes
 * to the late-data output when there is one, else it is dropped and
 * counted.
 *
 * Everything is keyed state, stored under reserved names (see
 * {@link WINDOW_STATE}), so it is checkpointed, restored and rescaled with
 * its key like any other state. Timers of the key's timer service are
 * deduplicated per timestamp; the windows waiting for each timestamp are
 * kept beside them, as Flink keeps timers per key and window.
 */
import { JobDefinitionError } from "../errors.js";
import type { Key } from "../graph/key-groups.js";
import { END_OF_TIME_MS } from "../time/watermark-strategy.js";
import type { TimeDomain, WindowAssigner } from "./assigners.js";
import { MergingWindowSet } from "./merging-window-set.js";
import { type TimeWindow, type Window, maxTimestamp, windowId, windowOfId } from "./time-window.js";
import { type KeyTimers, type OnMergeContext, type Trigger, type TriggerContext, type TriggerState, fires, purges } from "./triggers.js";
import type { ProcessWindowContext, ProcessWindowFunction, WindowContents } from "./window-functions.js";

/** The reserved state names of a window operator (one map per key each). */
export const WINDOW_STATE = {
  /** State window id → the window's contents (elements or accumulator). */
  contents: "__window.contents",
  /** `<window id>/<name>` → a trigger's per-window state. */
  trigger: "__window.trigger",
  /** "set" → the merging window set's pairs (session windows only). */
  sessions: "__window.sessions",
  /** Timestamp → ids of the windows waiting for that event-time timer. */
  eventTimers: "__window.timers.event",
  /** Timestamp → ids of the windows waiting for that processing-time timer. */
  processingTimers: "__window.timers.processing",
} as const;

/** One of the current key's named maps of JSON-serializable values; it reads the key current at each call. */
export interface WindowStateMap {
  get(field: string): unknown;
  put(field: string, value: unknown): void;
  remove(field: string): void;
}

/** The current key's state: named maps ({@link WINDOW_STATE}), each asked for once, when the operator is built. */
export interface WindowStateStore {
  map(name: string): WindowStateMap;
}

/** The current key's timers, as a trigger sees them (triggers.ts). */
export type { KeyTimers } from "./triggers.js";

/** Where a window operator's records go. */
export interface WindowOutput<IN, OUT> {
  /** A window's result, stamped with the window's last element time. */
  emit(value: OUT, timestampMs: number): void;
  /** An element too late for every window it belongs to (only when late data has an output). */
  late?(value: IN, timestampMs: number): void;
}

/** What a window operator is built from. */
export interface WindowSpec<K extends Key, IN, ACC, R, OUT> {
  /** The operator, for messages. */
  readonly label: string;
  readonly assigner: WindowAssigner;
  /** The assigner's default trigger when omitted. */
  readonly trigger?: Trigger<IN>;
  /** How long after a window's end (event time) late elements still update it; 0 when omitted. */
  readonly allowedLatenessMs?: number;
  readonly contents: WindowContents<IN, ACC, R>;
  /** Called with the window's results when it fires; without one the results are emitted as they are. */
  readonly process?: ProcessWindowFunction<R, OUT, K>;
}

/** The window operator of one subtask; the caller sets the key its ports see before each call. */
export class WindowOperator<K extends Key, IN, ACC, R, OUT> {
  private readonly trigger: Trigger<IN>;
  private readonly allowedLatenessMs: number;
  private readonly eventTime: boolean;
  /** The trigger does nothing for a window's later elements before its end (see {@link Trigger.repeatsFirstElement}), and windows do not merge. */
  private readonly quietAfterFirst: boolean;
  /**
   * A timer's windows are known from its time (windows on a grid, a trigger
   * with timers at their end only): the operator keeps no list of windows
   * per timer, which is a state entry less to read, write and checkpoint
   * for each key and window.
   */
  private readonly windowsByTime: ((endMs: number) => TimeWindow | undefined) | undefined;
  private readonly contentsMap: WindowStateMap;
  private readonly triggerMap: WindowStateMap;
  private readonly sessionsMap: WindowStateMap;
  private readonly eventTimerMap: WindowStateMap;
  private readonly processingTimerMap: WindowStateMap;
  /** What the trigger contexts ask of this operator. */
  private readonly port: WindowPort;
  /**
   * The one trigger context, pointed at the window of each trigger call, as
   * Flink's `WindowOperator.Context`: an element costs no allocation for it.
   */
  private readonly ctx: WindowTriggerContext;
  /** The collector handed to the process function, stamped with the firing window's time. */
  private readonly collector: StampingCollector<OUT>;
  /** The ids of the windows and the texts of the timestamps met last. */
  private readonly texts = new RecentTexts();
  /**
   * The timer registered last in this call, by window: a window's trigger
   * and its cleanup usually register the same timer, and the second
   * registration then costs nothing. Reset at each call's start, since it
   * holds for the current key only, and by any deletion.
   */
  private lastTimer: { domain: TimeDomain | undefined; id: string; timeMs: number } = { domain: undefined, id: "", timeMs: 0 };
  /** Elements dropped as late (no late-data output). */
  lateDropped = 0;
  /** Windows holding contents, over every key, once counted ({@link openWindows}); kept up to date from then on. */
  private open: number | undefined;

  constructor(
    private readonly spec: WindowSpec<K, IN, ACC, R, OUT>,
    state: WindowStateStore,
    private readonly timers: KeyTimers,
    private readonly out: WindowOutput<IN, OUT>,
  ) {
    this.trigger = spec.trigger ?? (spec.assigner.defaultTrigger() as Trigger<IN>);
    this.allowedLatenessMs = spec.allowedLatenessMs ?? 0;
    this.eventTime = spec.assigner.timeDomain === "event";
    this.quietAfterFirst = this.trigger.repeatsFirstElement === true && !spec.assigner.merging;
    const endingAt = spec.assigner.windowEndingAt;
    this.windowsByTime = !spec.assigner.merging && endingAt && this.trigger.timersAtWindowEnd ? (end) => endingAt.call(spec.assigner, end) : undefined;
    validate(spec, this.trigger);
    this.contentsMap = state.map(WINDOW_STATE.contents);
    this.triggerMap = state.map(WINDOW_STATE.trigger);
    this.sessionsMap = state.map(WINDOW_STATE.sessions);
    this.eventTimerMap = state.map(WINDOW_STATE.eventTimers);
    this.processingTimerMap = state.map(WINDOW_STATE.processingTimers);
    this.port = {
      registerTimer: (domain, id, t) => this.registerTimer(domain, id, t),
      deleteTimer: (domain, id, t) => this.deleteTimer(domain, id, t),
      triggerState: (id, name) => new WindowTriggerState(this.triggerMap, `${id}/${name}`),
    };
    this.ctx = new WindowTriggerContext(timers, this.port);
    this.collector = new StampingCollector(out);
  }

  /** An element of the current key `key`. */
  processElement(key: K, value: IN, timestampMs: number | undefined): void {
    // An event-time assigner reads the element's time only (the clock is a call into the runtime).
    const windows = this.spec.assigner.assign(timestampMs, this.eventTime ? Number.NaN : this.timers.currentProcessingTimeMs());
    let skipped = true;
    this.lastTimer.domain = undefined;
    // The watermark moves between calls only: read once (through the runtime's clocks) for every window of the element.
    const watermarkMs = this.timers.currentWatermarkMs;
    const sessions = this.spec.assigner.merging ? this.sessions() : undefined;
    for (const assigned of windows) {
      let window = assigned;
      let stateWindow = assigned;
      if (sessions) {
        window = sessions.addWindow(assigned as TimeWindow, (result, merged, stateResult, mergedState) => this.merge(result, merged, stateResult, mergedState));
        if (this.isWindowLate(window, watermarkMs)) {
          sessions.retireWindow(window as TimeWindow);
          continue;
        }
        stateWindow = sessions.stateWindow(window as TimeWindow)!;
      } else if (this.isWindowLate(window, watermarkMs)) continue;
      skipped = false;
      // Each window's id is built once per element: it keys the contents, the trigger's state and the timers' windows.
      const id = this.texts.window(window);
      const stateId = stateWindow === window ? id : this.texts.window(stateWindow);
      const before = this.contentsMap.get(stateId) as ACC | undefined;
      const acc = this.spec.contents.add(before, value);
      this.contentsMap.put(stateId, acc);
      if (before === undefined) this.opened();
      // The window's first element registered its trigger's timer and its cleanup timer: they stay until the window is
      // purged (and its contents with them), so a trigger that would only register them again is not asked.
      else if (this.quietAfterFirst && maxTimestamp(window) > watermarkMs) continue;
      const result = this.trigger.onElement(value, timestampMs, window, this.ctx.at(id));
      if (fires(result)) this.emit(key, window, acc);
      if (purges(result)) this.removeContents(stateId);
      this.registerCleanupTimer(window, id);
    }
    if (sessions?.changed) this.saveSessions(sessions);
    if (skipped && this.isElementLate(timestampMs, watermarkMs)) {
      if (this.out.late) this.out.late(value, timestampMs!);
      else this.lateDropped++;
    }
  }

  /** A timer of the current key `key` fired. */
  onTimer(key: K, domain: TimeDomain, timeMs: number): void {
    const map = domain === "event" ? this.eventTimerMap : this.processingTimerMap;
    const field = this.texts.time(timeMs);
    const listed = map.get(field) as string[] | undefined;
    if (listed) map.remove(field);
    this.lastTimer.domain = undefined;
    // Windows known from the time, and any listed for it (by a job version that kept lists, restored from its checkpoint).
    const ids = this.windowsByTime ? this.windowsAt(domain, timeMs, listed) : listed;
    if (!ids) return;
    const sessions = this.spec.assigner.merging ? this.sessions() : undefined;
    for (const id of ids) this.fireWindow(key, windowOfId(id), id, domain, timeMs, sessions);
    if (sessions?.changed) this.saveSessions(sessions);
  }

  /** The windows a timer at `timeMs` is for, when known from its time: its trigger's window and its cleanup's. */
  private windowsAt(domain: TimeDomain, timeMs: number, listed: readonly string[] | undefined): string[] {
    const ids: string[] = [];
    const add = (w: TimeWindow | undefined) => {
      if (w === undefined) return;
      const id = this.texts.window(w);
      if (!ids.includes(id)) ids.push(id);
    };
    if (domain === this.trigger.timersAtWindowEnd) add(this.windowsByTime!(timeMs + 1));
    if ((domain === "event") === this.eventTime) add(this.windowsByTime!(timeMs + 1 - (this.eventTime ? this.allowedLatenessMs : 0)));
    for (const id of listed ?? []) if (!ids.includes(id)) ids.push(id);
    return ids;
  }

  private fireWindow(key: K, window: Window, id: string, domain: TimeDomain, timeMs: number, sessions: MergingWindowSet | undefined): void {
    let stateId = id;
    if (sessions) {
      const stateWindow = sessions.stateWindow(window as TimeWindow);
      // A timer of a window merged away since: its merge moved what mattered.
      if (!stateWindow) return;
      stateId = windowId(stateWindow);
    }
    const acc = this.contentsMap.get(stateId) as ACC | undefined;
    if (acc !== undefined) {
      const ctx = this.ctx.at(id);
      const result = domain === "event" ? this.trigger.onEventTime(timeMs, window, ctx) : this.trigger.onProcessingTime(timeMs, window, ctx);
      if (fires(result)) this.emit(key, window, acc);
      if (purges(result)) this.removeContents(stateId);
    }
    if ((domain === "event") === this.eventTime && timeMs === this.cleanupTime(window)) {
      this.removeContents(stateId);
      this.trigger.clear(window, this.ctx.at(id));
      sessions?.retireWindow(window as TimeWindow);
    }
  }

  /** Windows merged: triggers and cleanup timers move to the result, contents into its state window. */
  private merge(result: TimeWindow, merged: readonly TimeWindow[], stateResult: TimeWindow, mergedState: readonly TimeWindow[]): void {
    if (this.eventTime && this.cleanupTime(result) <= this.timers.currentWatermarkMs) {
      throw new Error(`${this.spec.label}: merging windows gave ${windowId(result)}, which ends before the current watermark (a merging assigner must not shrink windows)`);
    }
    this.trigger.onMerge(result, this.mergeContext(result, merged));
    for (const m of merged) {
      const id = windowId(m);
      this.trigger.clear(m, this.ctx.at(id));
      this.deleteCleanupTimer(m, id);
    }
    const resultId = windowId(stateResult);
    const before = this.contentsMap.get(resultId) as ACC | undefined;
    let acc = before;
    for (const s of mergedState) {
      const id = windowId(s);
      const other = this.contentsMap.get(id) as ACC | undefined;
      if (other === undefined) continue;
      this.contentsMap.remove(id);
      this.closed();
      acc = acc === undefined ? other : this.spec.contents.merge(acc, other);
    }
    if (acc === undefined) return;
    this.contentsMap.put(resultId, acc);
    if (before === undefined) this.opened();
  }

  /**
   * Windows holding contents, over every key of the subtask (merged
   * sessions count once). The first call counts them with `count` (after a
   * restore or a rescale: in the state restored); from then on each window
   * opened, merged away, purged or cleaned up keeps the number right, so a
   * call costs nothing however large the state.
   */
  openWindows(count: () => number): number {
    if (this.open === undefined) this.open = count();
    return this.open;
  }

  private opened(): void {
    if (this.open !== undefined) this.open++;
  }

  private closed(): void {
    if (this.open !== undefined) this.open--;
  }

  /** Drops a state window's contents, if it has any. */
  private removeContents(stateId: string): void {
    if (this.contentsMap.get(stateId) === undefined) return;
    this.contentsMap.remove(stateId);
    this.closed();
  }

  private emit(key: K, window: Window, acc: ACC): void {
    const timestampMs = maxTimestamp(window);
    const results = this.spec.contents.results(acc);
    if (!this.spec.process) {
      for (const r of results) this.out.emit(r as unknown as OUT, timestampMs);
      return;
    }
    this.collector.timestampMs = timestampMs;
    this.spec.process.process(key, new FiredWindowContext(key, window, this.timers), results, this.collector);
  }

  private sessions(): MergingWindowSet {
    const pairs = (this.sessionsMap.get("set") as [string, string][] | undefined) ?? [];
    return new MergingWindowSet((ws) => this.spec.assigner.mergeWindows(ws), pairs);
  }

  private saveSessions(sessions: MergingWindowSet): void {
    const pairs = sessions.persist();
    if (pairs.length === 0) this.sessionsMap.remove("set");
    else this.sessionsMap.put("set", pairs);
  }

  /** When a window's state is dropped: its end plus the allowed lateness (event time), or its end. */
  private cleanupTime(window: Window): number {
    const end = maxTimestamp(window);
    return this.eventTime ? Math.min(end + this.allowedLatenessMs, END_OF_TIME_MS) : end;
  }

  private isWindowLate(window: Window, watermarkMs: number): boolean {
    return this.eventTime && this.cleanupTime(window) <= watermarkMs;
  }

  private isElementLate(timestampMs: number | undefined, watermarkMs: number): boolean {
    return this.eventTime && timestampMs !== undefined && timestampMs + this.allowedLatenessMs <= watermarkMs;
  }

  private registerCleanupTimer(window: Window, id: string): void {
    const t = this.cleanupTime(window);
    // The global window (or a lateness reaching the end of time) is never cleaned up by time.
    if (t >= END_OF_TIME_MS) return;
    this.registerTimer(this.eventTime ? "event" : "processing", id, t);
  }

  private deleteCleanupTimer(window: Window, id: string): void {
    const t = this.cleanupTime(window);
    if (t >= END_OF_TIME_MS) return;
    this.deleteTimer(this.eventTime ? "event" : "processing", id, t);
  }

  /** Window `id` waits for the key's timer at `timeMs`; the key's timer is registered with the first window to wait for it. */
  private registerTimer(domain: TimeDomain, id: string, timeMs: number): void {
    const last = this.lastTimer;
    if (last.domain === domain && last.timeMs === timeMs && last.id === id) return;
    last.domain = domain;
    last.id = id;
    last.timeMs = timeMs;
    if (this.windowsByTime) return this.keyTimer(domain, timeMs, true);
    const map = domain === "event" ? this.eventTimerMap : this.processingTimerMap;
    const field = this.texts.time(timeMs);
    const ids = map.get(field) as string[] | undefined;
    if (ids !== undefined) {
      if (!ids.includes(id)) map.put(field, [...ids, id]);
      return;
    }
    map.put(field, [id]);
    this.keyTimer(domain, timeMs, true);
  }

  private deleteTimer(domain: TimeDomain, id: string, timeMs: number): void {
    this.lastTimer.domain = undefined;
    // Windows known from the time: a trigger deletes its timer at cleanup only, when that timer has fired (it is at
    // or before the cleanup's time), so no other window can still wait for it.
    if (this.windowsByTime) return this.keyTimer(domain, timeMs, false);
    const map = domain === "event" ? this.eventTimerMap : this.processingTimerMap;
    const field = this.texts.time(timeMs);
    const ids = map.get(field) as string[] | undefined;
    if (!ids?.includes(id)) return;
    if (ids.length > 1) {
      map.put(field, ids.filter((x) => x !== id));
      return;
    }
    map.remove(field);
    this.keyTimer(domain, timeMs, false);
  }

  /** Registers or deletes the current key's timer. */
  private keyTimer(domain: TimeDomain, timeMs: number, register: boolean): void {
    if (register) {
      if (domain === "event") this.timers.registerEventTimeTimer(timeMs);
      else this.timers.registerProcessingTimeTimer(timeMs);
    } else if (domain === "event") this.timers.deleteEventTimeTimer(timeMs);
    else this.timers.deleteProcessingTimeTimer(timeMs);
  }

  /** A context of its own (merges are rare): the shared one is pointed at each merged window around this call. */
  private mergeContext(window: Window, merged: readonly Window[]): OnMergeContext {
    return Object.assign(new WindowTriggerContext(this.timers, this.port).at(windowId(window)), {
      mergedWindows: merged,
      stateOf: <T>(name: string, w: Window) => this.port.triggerState(windowId(w), name) as TriggerState<T>,
    });
  }
}

/**
 * The texts of the last few windows (by start and end) or timestamps (by
 * time) met, so that consecutive elements of a window look its state up
 * by the same string. Building it again costs a conversion of each number
 * (event times are not small integers), and every map the new string keys
 * hashes it again.
 */
class RecentTexts {
  /** log2 of the slots: a sliding window's element meets size/slide windows and as many timestamps. */
  private static readonly BITS = 7;
  private readonly a = new Float64Array(1 << RecentTexts.BITS);
  private readonly b = new Float64Array(1 << RecentTexts.BITS);
  private readonly texts: string[] = new Array<string>(1 << RecentTexts.BITS).fill("");
  /** Per set of two ways, the way written last. */
  private readonly written = new Uint8Array(1 << (RecentTexts.BITS - 1));

  /** The id of a window ({@link windowId}). */
  window(window: Window): string {
    if (window.kind === "global") return windowId(window);
    return this.text(window.startMs, window.endMs, window);
  }

  /** The text of a timestamp, the field of its timer in the timers' maps. */
  time(timeMs: number): string {
    // NaN marks a timestamp: Object.is tells it apart from any window's end, and matches it.
    return this.text(timeMs, Number.NaN, undefined);
  }

  private text(a: number, b: number, window: TimeWindow | undefined): string {
    // Two ways, by a hash of both numbers' low 32 bits (ToInt32), so that windows a slide apart spread and two that
    // meet in one way do not evict each other on every element.
    const set = (Math.imul((a | 0) ^ Math.imul(b | 0, 0x85ebca6b), 0x9e3779b1) >>> (32 - RecentTexts.BITS)) & ~1;
    for (let at = set; at <= set + 1; at++) if (this.a[at] === a && Object.is(this.b[at], b) && this.texts[at] !== "") return this.texts[at]!;
    const text = window ? windowId(window) : String(a);
    // The way not written last.
    const at = set + (this.written[set >>> 1]! ^ 1);
    this.written[set >>> 1] = at - set;
    this.a[at] = a;
    this.b[at] = b;
    this.texts[at] = text;
    return text;
  }
}

/** What a trigger context asks of its window operator, for the window it is pointed at. */
interface WindowPort {
  registerTimer(domain: TimeDomain, id: string, timeMs: number): void;
  deleteTimer(domain: TimeDomain, id: string, timeMs: number): void;
  triggerState(id: string, name: string): TriggerState<unknown>;
}

/** A trigger's view of one window of the current key: the window it is pointed at by {@link at}. */
class WindowTriggerContext implements TriggerContext {
  /** The id of the window the trigger is asked about. */
  private id = "";

  constructor(
    private readonly timers: KeyTimers,
    private readonly port: WindowPort,
  ) {}

  /** Points the context at window `id`, for the trigger call it is handed to. */
  at(id: string): this {
    this.id = id;
    return this;
  }

  get currentWatermarkMs(): number {
    return this.timers.currentWatermarkMs;
  }

  currentProcessingTimeMs(): number {
    return this.timers.currentProcessingTimeMs();
  }

  registerEventTimeTimer(timeMs: number): void {
    this.port.registerTimer("event", this.id, timeMs);
  }

  registerProcessingTimeTimer(timeMs: number): void {
    this.port.registerTimer("processing", this.id, timeMs);
  }

  deleteEventTimeTimer(timeMs: number): void {
    this.port.deleteTimer("event", this.id, timeMs);
  }

  deleteProcessingTimeTimer(timeMs: number): void {
    this.port.deleteTimer("processing", this.id, timeMs);
  }

  state<T>(name: string): TriggerState<T> {
    return this.port.triggerState(this.id, name) as TriggerState<T>;
  }
}

/** A trigger's state of one window: a field of the trigger map. */
class WindowTriggerState<T> implements TriggerState<T> {
  constructor(
    private readonly map: WindowStateMap,
    private readonly field: string,
  ) {}

  value(): T | undefined {
    return this.map.get(this.field) as T | undefined;
  }

  update(value: T): void {
    this.map.put(this.field, value);
  }

  clear(): void {
    this.map.remove(this.field);
  }
}

/** What a process window function sees of the window that fires. */
class FiredWindowContext<K extends Key> implements ProcessWindowContext<K> {
  readonly currentWatermarkMs: number;

  constructor(
    readonly key: K,
    readonly window: Window,
    private readonly timers: KeyTimers,
  ) {
    this.currentWatermarkMs = timers.currentWatermarkMs;
  }

  currentProcessingTimeMs(): number {
    return this.timers.currentProcessingTimeMs();
  }
}

/** The process function's collector: results carry the firing window's last element time. */
class StampingCollector<OUT> {
  timestampMs = 0;

  constructor(private readonly out: WindowOutput<unknown, OUT>) {}

  collect(value: OUT): void {
    this.out.emit(value, this.timestampMs);
  }
}

function validate(spec: WindowSpec<Key, unknown, unknown, unknown, unknown>, trigger: Trigger<unknown>): void {
  const lateness = spec.allowedLatenessMs ?? 0;
  if (!Number.isSafeInteger(lateness) || lateness < 0) {
    throw new JobDefinitionError(`${spec.label}: allowed lateness must be a whole number of milliseconds ≥ 0, got ${lateness}`);
  }
  if (spec.assigner.merging && !trigger.canMerge) {
    throw new JobDefinitionError(`${spec.label}: ${spec.assigner.description} merge, and the trigger "${trigger.description}" cannot merge`);
  }
}
