/**
 * The session windows of one key and where their contents are kept, as
 * Flink's `MergingWindowSet`.
 *
 * When windows merge, their contents are combined into the state of one of
 * them (the "state window") rather than moved under the new window's name:
 * the merged window maps to that state window from then on. Merging thus
 * touches the contents once, and a window that grows again and again keeps
 * its contents where they are.
 *
 * Persisted per key as a list of `[window, stateWindow]` pairs (window ids);
 * the operator loads it for the current key, changes it, and writes it back
 * when {@link MergingWindowSet.changed}.
 */
import { type TimeWindow, type WindowMerge, sameWindow, windowId, windowOfId } from "./time-window.js";

/** What the operator does when windows merge: combine contents and triggers into `stateWindowResult`. */
export type MergeFunction = (
  mergeResult: TimeWindow,
  mergedWindows: readonly TimeWindow[],
  stateWindowResult: TimeWindow,
  mergedStateWindows: readonly TimeWindow[],
) => void;

export class MergingWindowSet {
  /** Window id → the window whose state holds its contents. */
  private readonly mapping = new Map<string, TimeWindow>();
  private dirty = false;

  /** Builds the set of one key from its persisted pairs. */
  constructor(
    private readonly mergeWindows: (windows: readonly TimeWindow[]) => WindowMerge[],
    persisted: readonly (readonly [string, string])[] = [],
  ) {
    for (const [w, s] of persisted) this.mapping.set(w, windowOfId(s) as TimeWindow);
  }

  /** The window whose state holds `window`'s contents, if `window` is in the set. */
  stateWindow(window: TimeWindow): TimeWindow | undefined {
    return this.mapping.get(windowId(window));
  }

  /** The windows in the set. */
  windows(): TimeWindow[] {
    return [...this.mapping.keys()].map((id) => windowOfId(id) as TimeWindow);
  }

  /** Removes a window that was purged (fired and cleared, or past its lateness). */
  retireWindow(window: TimeWindow): void {
    if (!this.mapping.delete(windowId(window))) throw new Error(`window ${windowId(window)} is not in the merging window set`);
    this.dirty = true;
  }

  /**
   * Adds `newWindow`, merging it with the windows it overlaps (and those
   * with each other). Calls `merge` for each merge that involves existing
   * state, and returns the window `newWindow` ended up in: itself, or the
   * result of a merge.
   */
  addWindow(newWindow: TimeWindow, merge: MergeFunction): TimeWindow {
    const windows = [...this.windows(), newWindow];
    let resultWindow = newWindow;
    let newWindowMerged = false;
    for (const merge_ of this.mergeWindows(windows)) {
      const result = merge_.result;
      // The new window never had state of its own: it is not among the windows merged away. Only one
      // occurrence goes: an existing window equal to the new one stays.
      const merged = [...merge_.merged];
      const i = merged.findIndex((w) => sameWindow(w, newWindow));
      if (i >= 0) {
        merged.splice(i, 1);
        newWindowMerged = true;
        resultWindow = result;
      }
      // Every merged window is in the set (mergeWindows returns runs of two or more, of which one at most is new).
      const mergedStateWindows = merged.map((w) => this.mapping.get(windowId(w))!);
      for (const w of merged) this.mapping.delete(windowId(w));
      // The merge result keeps the state of the first merged window.
      const stateWindowResult = mergedStateWindows.shift()!;
      this.mapping.set(windowId(result), stateWindowResult);
      this.dirty = true;
      // The new window inside one existing window, which it does not extend: nothing to merge.
      const trivial = merged.length === 1 && sameWindow(merged[0]!, result);
      if (!trivial) merge(result, merged, stateWindowResult, mergedStateWindows);
    }
    if (!newWindowMerged) {
      this.mapping.set(windowId(newWindow), newWindow);
      this.dirty = true;
    }
    return resultWindow;
  }

  /** Whether the set changed since it was loaded or last persisted. */
  get changed(): boolean {
    return this.dirty;
  }

  /** The pairs to persist (and marks the set clean). */
  persist(): [string, string][] {
    this.dirty = false;
    return [...this.mapping].map(([w, s]) => [w, windowId(s)]);
  }
}
