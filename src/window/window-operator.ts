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
import type { WindowAssigner } from "./assigners.js";
import { MergingWindowSet } from "./merging-window-set.js";
import { type TimeWindow, type Window, maxTimestamp, windowId, windowOfId } from "./time-window.js";
import { type KeyTimers, type OnMergeContext, type Trigger, type TriggerContext, type TriggerState, fires, purges } from "./triggers.js";
import type { ProcessWindowFunction, WindowContents } from "./window-functions.js";

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

/** The current key's state: named maps of JSON-serializable values. */
export interface WindowStateStore {
  get(map: string, field: string): unknown;
  put(map: string, field: string, value: unknown): void;
  remove(map: string, field: string): void;
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
  /** Elements dropped as late (no late-data output). */
  lateDropped = 0;
  /** Windows holding contents, over every key, once counted ({@link openWindows}); kept up to date from then on. */
  private open: number | undefined;

  constructor(
    private readonly spec: WindowSpec<K, IN, ACC, R, OUT>,
    private readonly state: WindowStateStore,
    private readonly timers: KeyTimers,
    private readonly out: WindowOutput<IN, OUT>,
  ) {
    this.trigger = spec.trigger ?? (spec.assigner.defaultTrigger() as Trigger<IN>);
    this.allowedLatenessMs = spec.allowedLatenessMs ?? 0;
    this.eventTime = spec.assigner.timeDomain === "event";
    validate(spec, this.trigger);
  }

  /** An element of the current key `key`. */
  processElement(key: K, value: IN, timestampMs: number | undefined): void {
    const windows = this.spec.assigner.assign(timestampMs, this.timers.currentProcessingTimeMs());
    let skipped = true;
    const sessions = this.spec.assigner.merging ? this.sessions() : undefined;
    for (const assigned of windows) {
      let window = assigned;
      let stateWindow = assigned;
      if (sessions) {
        window = sessions.addWindow(assigned as TimeWindow, (result, merged, stateResult, mergedState) => this.merge(result, merged, stateResult, mergedState));
        if (this.isWindowLate(window)) {
          sessions.retireWindow(window as TimeWindow);
          continue;
        }
        stateWindow = sessions.stateWindow(window as TimeWindow)!;
      } else if (this.isWindowLate(window)) continue;
      skipped = false;
      const before = this.contents(stateWindow);
      const acc = this.spec.contents.add(before, value);
      this.state.put(WINDOW_STATE.contents, windowId(stateWindow), acc);
      if (before === undefined) this.opened();
      const result = this.trigger.onElement(value, timestampMs, window, this.triggerContext(window));
      if (fires(result)) this.emit(key, window, acc);
      if (purges(result)) this.removeContents(stateWindow);
      this.registerCleanupTimer(window);
    }
    if (sessions?.changed) this.saveSessions(sessions);
    if (skipped && this.isElementLate(timestampMs)) {
      if (this.out.late) this.out.late(value, timestampMs!);
      else this.lateDropped++;
    }
  }

  /** A timer of the current key `key` fired. */
  onTimer(key: K, domain: "event" | "processing", timeMs: number): void {
    const map = domain === "event" ? WINDOW_STATE.eventTimers : WINDOW_STATE.processingTimers;
    const ids = this.state.get(map, String(timeMs)) as string[] | undefined;
    if (!ids) return;
    this.state.remove(map, String(timeMs));
    const sessions = this.spec.assigner.merging ? this.sessions() : undefined;
    for (const id of ids) this.fireWindow(key, windowOfId(id), domain, timeMs, sessions);
    if (sessions?.changed) this.saveSessions(sessions);
  }

  private fireWindow(key: K, window: Window, domain: "event" | "processing", timeMs: number, sessions: MergingWindowSet | undefined): void {
    let stateWindow: Window | undefined = window;
    if (sessions) {
      stateWindow = sessions.stateWindow(window as TimeWindow);
      // A timer of a window merged away since: its merge moved what mattered.
      if (!stateWindow) return;
    }
    const acc = this.contents(stateWindow);
    if (acc !== undefined) {
      const ctx = this.triggerContext(window);
      const result = domain === "event" ? this.trigger.onEventTime(timeMs, window, ctx) : this.trigger.onProcessingTime(timeMs, window, ctx);
      if (fires(result)) this.emit(key, window, acc);
      if (purges(result)) this.removeContents(stateWindow);
    }
    if ((domain === "event") === this.eventTime && timeMs === this.cleanupTime(window)) {
      this.removeContents(stateWindow);
      this.trigger.clear(window, this.triggerContext(window));
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
      this.trigger.clear(m, this.triggerContext(m));
      this.deleteCleanupTimer(m);
    }
    const before = this.contents(stateResult);
    let acc = before;
    for (const s of mergedState) {
      const other = this.contents(s);
      if (other === undefined) continue;
      this.state.remove(WINDOW_STATE.contents, windowId(s));
      this.closed();
      acc = acc === undefined ? other : this.spec.contents.merge(acc, other);
    }
    if (acc === undefined) return;
    this.state.put(WINDOW_STATE.contents, windowId(stateResult), acc);
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
  private removeContents(stateWindow: Window): void {
    if (this.contents(stateWindow) === undefined) return;
    this.state.remove(WINDOW_STATE.contents, windowId(stateWindow));
    this.closed();
  }

  private emit(key: K, window: Window, acc: ACC): void {
    const timestampMs = maxTimestamp(window);
    const results = this.spec.contents.results(acc);
    if (!this.spec.process) {
      for (const r of results) this.out.emit(r as unknown as OUT, timestampMs);
      return;
    }
    const timers = this.timers;
    this.spec.process.process(
      key,
      { key, window, currentWatermarkMs: timers.currentWatermarkMs, currentProcessingTimeMs: () => timers.currentProcessingTimeMs() },
      results,
      { collect: (v) => this.out.emit(v, timestampMs) },
    );
  }

  private contents(stateWindow: Window): ACC | undefined {
    return this.state.get(WINDOW_STATE.contents, windowId(stateWindow)) as ACC | undefined;
  }

  private sessions(): MergingWindowSet {
    const pairs = (this.state.get(WINDOW_STATE.sessions, "set") as [string, string][] | undefined) ?? [];
    return new MergingWindowSet((ws) => this.spec.assigner.mergeWindows(ws), pairs);
  }

  private saveSessions(sessions: MergingWindowSet): void {
    const pairs = sessions.persist();
    if (pairs.length === 0) this.state.remove(WINDOW_STATE.sessions, "set");
    else this.state.put(WINDOW_STATE.sessions, "set", pairs);
  }

  /** When a window's state is dropped: its end plus the allowed lateness (event time), or its end. */
  private cleanupTime(window: Window): number {
    const end = maxTimestamp(window);
    return this.eventTime ? Math.min(end + this.allowedLatenessMs, END_OF_TIME_MS) : end;
  }

  private isWindowLate(window: Window): boolean {
    return this.eventTime && this.cleanupTime(window) <= this.timers.currentWatermarkMs;
  }

  private isElementLate(timestampMs: number | undefined): boolean {
    return this.eventTime && timestampMs !== undefined && timestampMs + this.allowedLatenessMs <= this.timers.currentWatermarkMs;
  }

  private registerCleanupTimer(window: Window): void {
    const t = this.cleanupTime(window);
    // The global window (or a lateness reaching the end of time) is never cleaned up by time.
    if (t >= END_OF_TIME_MS) return;
    this.registerTimer(this.eventTime ? "event" : "processing", window, t);
  }

  private deleteCleanupTimer(window: Window): void {
    const t = this.cleanupTime(window);
    if (t >= END_OF_TIME_MS) return;
    this.deleteTimer(this.eventTime ? "event" : "processing", window, t);
  }

  private registerTimer(domain: "event" | "processing", window: Window, timeMs: number): void {
    const map = domain === "event" ? WINDOW_STATE.eventTimers : WINDOW_STATE.processingTimers;
    const ids = (this.state.get(map, String(timeMs)) as string[] | undefined) ?? [];
    const id = windowId(window);
    if (ids.includes(id)) return;
    this.state.put(map, String(timeMs), [...ids, id]);
    if (ids.length > 0) return;
    if (domain === "event") this.timers.registerEventTimeTimer(timeMs);
    else this.timers.registerProcessingTimeTimer(timeMs);
  }

  private deleteTimer(domain: "event" | "processing", window: Window, timeMs: number): void {
    const map = domain === "event" ? WINDOW_STATE.eventTimers : WINDOW_STATE.processingTimers;
    const ids = this.state.get(map, String(timeMs)) as string[] | undefined;
    const id = windowId(window);
    if (!ids?.includes(id)) return;
    const rest = ids.filter((x) => x !== id);
    if (rest.length > 0) {
      this.state.put(map, String(timeMs), rest);
      return;
    }
    this.state.remove(map, String(timeMs));
    if (domain === "event") this.timers.deleteEventTimeTimer(timeMs);
    else this.timers.deleteProcessingTimeTimer(timeMs);
  }

  private triggerContext(window: Window): TriggerContext {
    const timers = this.timers;
    return {
      get currentWatermarkMs() {
        return timers.currentWatermarkMs;
      },
      currentProcessingTimeMs: () => timers.currentProcessingTimeMs(),
      registerEventTimeTimer: (t) => this.registerTimer("event", window, t),
      registerProcessingTimeTimer: (t) => this.registerTimer("processing", window, t),
      deleteEventTimeTimer: (t) => this.deleteTimer("event", window, t),
      deleteProcessingTimeTimer: (t) => this.deleteTimer("processing", window, t),
      state: <T>(name: string) => this.triggerState<T>(window, name),
    };
  }

  private mergeContext(window: Window, merged: readonly Window[]): OnMergeContext {
    return Object.assign(this.triggerContext(window), {
      mergedWindows: merged,
      stateOf: <T>(name: string, w: Window) => this.triggerState<T>(w, name),
    });
  }

  private triggerState<T>(window: Window, name: string): TriggerState<T> {
    const field = `${windowId(window)}/${name}`;
    return {
      value: () => this.state.get(WINDOW_STATE.trigger, field) as T | undefined,
      update: (v) => this.state.put(WINDOW_STATE.trigger, field, v),
      clear: () => this.state.remove(WINDOW_STATE.trigger, field),
    };
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
