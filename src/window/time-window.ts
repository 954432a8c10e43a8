/**
 * Windows: the spans of time that elements are grouped into, as Flink's
 * `TimeWindow` and `GlobalWindow`. A time window is `[startMs, endMs)`: it
 * holds elements with `startMs ≤ t < endMs`, so its last possible element
 * time, {@link maxTimestamp}, is `endMs − 1`, and an event-time window is
 * complete once the watermark reaches that.
 */
import { END_OF_TIME_MS } from "../time/watermark-strategy.js";

/** A window of time, start inclusive, end exclusive. */
export interface TimeWindow {
  readonly kind: "time";
  readonly startMs: number;
  readonly endMs: number;
}

/** The one window of a global window assigner: it never ends by time. */
export interface GlobalWindow {
  readonly kind: "global";
}

/** Any window. */
export type Window = TimeWindow | GlobalWindow;

/** The global window (one value suffices: every global window is the same). */
export const GLOBAL_WINDOW: GlobalWindow = Object.freeze({ kind: "global" });

/** A time window `[startMs, endMs)`. */
export function timeWindow(startMs: number, endMs: number): TimeWindow {
  return { kind: "time", startMs, endMs };
}

/** The latest element time a window holds: `endMs − 1`; the global window's is the end of time. */
export function maxTimestamp(w: Window): number {
  return w.kind === "global" ? END_OF_TIME_MS : w.endMs - 1;
}

/** Whether two time windows overlap or touch (Flink merges touching session windows too). */
export function intersects(a: TimeWindow, b: TimeWindow): boolean {
  return a.startMs <= b.endMs && a.endMs >= b.startMs;
}

/** The smallest window covering both. */
export function cover(a: TimeWindow, b: TimeWindow): TimeWindow {
  return timeWindow(Math.min(a.startMs, b.startMs), Math.max(a.endMs, b.endMs));
}

/**
 * The start of the window of `sizeMs` (shifted by `offsetMs`) that holds
 * `timestampMs`. Correct for timestamps before the epoch and before the
 * offset, where JavaScript's `%` is negative.
 */
export function windowStart(timestampMs: number, offsetMs: number, sizeMs: number): number {
  const remainder = (timestampMs - offsetMs) % sizeMs;
  return remainder < 0 ? timestampMs - (remainder + sizeMs) : timestampMs - remainder;
}

/**
 * A window's text form, used as the key of its contents and trigger state
 * in keyed map state: `"<startMs>:<endMs>"`, or `"global"`.
 */
export function windowId(w: Window): string {
  return w.kind === "global" ? "global" : `${w.startMs}:${w.endMs}`;
}

/** The window of a {@link windowId}. */
export function windowOfId(id: string): Window {
  if (id === "global") return GLOBAL_WINDOW;
  const colon = id.indexOf(":");
  const startMs = Number(id.slice(0, colon));
  const endMs = Number(id.slice(colon + 1));
  if (colon < 0 || !Number.isSafeInteger(startMs) || !Number.isSafeInteger(endMs)) throw new Error(`not a window id: ${JSON.stringify(id)}`);
  return timeWindow(startMs, endMs);
}

/** Whether two windows are the same window. */
export function sameWindow(a: Window, b: Window): boolean {
  if (a.kind === "global" || b.kind === "global") return a.kind === b.kind;
  return a.startMs === b.startMs && a.endMs === b.endMs;
}

/** One merge among session windows: `result` replaces every window of `merged` (two or more). */
export interface WindowMerge {
  readonly result: TimeWindow;
  readonly merged: readonly TimeWindow[];
}

/**
 * Merges overlapping (or touching) windows, as Flink's
 * `TimeWindow.mergeWindows`: sorted by start, each run of intersecting
 * windows becomes their cover. Only the runs of two or more are returned.
 */
export function mergeWindows(windows: readonly TimeWindow[]): WindowMerge[] {
  const sorted = [...windows].sort((a, b) => a.startMs - b.startMs || a.endMs - b.endMs);
  const merges: WindowMerge[] = [];
  let current: { result: TimeWindow; merged: TimeWindow[] } | undefined;
  for (const w of sorted) {
    if (current && intersects(current.result, w)) {
      current.result = cover(current.result, w);
      current.merged.push(w);
      continue;
    }
    if (current && current.merged.length > 1) merges.push(current);
    current = { result: w, merged: [w] };
  }
  if (current && current.merged.length > 1) merges.push(current);
  return merges;
}
