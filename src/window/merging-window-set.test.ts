import { describe, expect, it } from "vitest";
import { MergingWindowSet } from "./merging-window-set.js";
import { type TimeWindow, mergeWindows, timeWindow, windowId } from "./time-window.js";

type Merge = { result: string; merged: string[]; stateResult: string; mergedState: string[] };

function recorder() {
  const merges: Merge[] = [];
  const fn = (result: TimeWindow, merged: readonly TimeWindow[], stateResult: TimeWindow, mergedState: readonly TimeWindow[]) =>
    void merges.push({ result: windowId(result), merged: merged.map(windowId), stateResult: windowId(stateResult), mergedState: mergedState.map(windowId) });
  return { merges, fn };
}

describe("MergingWindowSet", () => {
  it("adds a window that overlaps nothing as its own state window", () => {
    const set = new MergingWindowSet(mergeWindows);
    const { merges, fn } = recorder();
    expect(set.addWindow(timeWindow(0, 10), fn)).toEqual(timeWindow(0, 10));
    expect(set.addWindow(timeWindow(20, 30), fn)).toEqual(timeWindow(20, 30));
    expect(merges).toEqual([]);
    expect(set.stateWindow(timeWindow(20, 30))).toEqual(timeWindow(20, 30));
  });

  it("extends a window, keeping its state where it is", () => {
    const set = new MergingWindowSet(mergeWindows);
    const { merges, fn } = recorder();
    set.addWindow(timeWindow(0, 10), fn);
    expect(set.addWindow(timeWindow(5, 15), fn)).toEqual(timeWindow(0, 15));
    expect(merges).toEqual([{ result: "0:15", merged: ["0:10"], stateResult: "0:10", mergedState: [] }]);
    expect(set.windows()).toEqual([timeWindow(0, 15)]);
    expect(set.stateWindow(timeWindow(0, 15))).toEqual(timeWindow(0, 10));
  });

  it("does nothing when the new window lies inside an existing one", () => {
    const set = new MergingWindowSet(mergeWindows);
    const { merges, fn } = recorder();
    set.addWindow(timeWindow(0, 10), fn);
    expect(set.addWindow(timeWindow(2, 8), fn)).toEqual(timeWindow(0, 10));
    expect(merges).toEqual([]);
  });

  it("bridges two sessions: one merge, the first state window kept, the other's state merged into it", () => {
    const set = new MergingWindowSet(mergeWindows);
    const { merges, fn } = recorder();
    set.addWindow(timeWindow(0, 10), fn);
    set.addWindow(timeWindow(20, 30), fn);
    expect(set.addWindow(timeWindow(8, 22), fn)).toEqual(timeWindow(0, 30));
    expect(merges).toEqual([{ result: "0:30", merged: ["0:10", "20:30"], stateResult: "0:10", mergedState: ["20:30"] }]);
    expect(set.windows()).toEqual([timeWindow(0, 30)]);
  });

  it("persists its pairs, reads them back, and retires windows", () => {
    const set = new MergingWindowSet(mergeWindows);
    const { fn } = recorder();
    set.addWindow(timeWindow(0, 10), fn);
    set.addWindow(timeWindow(5, 15), fn);
    expect(set.changed).toBe(true);
    const pairs = set.persist();
    expect(set.changed).toBe(false);
    expect(pairs).toEqual([["0:15", "0:10"]]);
    const again = new MergingWindowSet(mergeWindows, pairs);
    expect(again.stateWindow(timeWindow(0, 15))).toEqual(timeWindow(0, 10));
    again.retireWindow(timeWindow(0, 15));
    expect(again.changed).toBe(true);
    expect(again.windows()).toEqual([]);
    expect(() => again.retireWindow(timeWindow(0, 15))).toThrow(/not in the merging window set/);
  });

  it("agrees with a reference over random sessions: windows are disjoint covers of the elements, and state is never lost", () => {
    for (let run = 0; run < 200; run++) {
      const set = new MergingWindowSet(mergeWindows);
      // State per state window: the element times it holds.
      const contents = new Map<string, number[]>();
      const times: number[] = [];
      for (let i = 0; i < 30; i++) {
        const t = Math.floor(Math.random() * 1_000);
        times.push(t);
        const w = set.addWindow(timeWindow(t, t + 50), (_r, _m, stateResult, mergedState) => {
          const into = contents.get(windowId(stateResult)) ?? [];
          for (const s of mergedState) {
            into.push(...(contents.get(windowId(s)) ?? []));
            contents.delete(windowId(s));
          }
          contents.set(windowId(stateResult), into);
        });
        const s = windowId(set.stateWindow(w)!);
        contents.set(s, [...(contents.get(s) ?? []), t]);
      }
      const windows = set.windows().sort((a, b) => a.startMs - b.startMs);
      for (let i = 1; i < windows.length; i++) expect(windows[i]!.startMs).toBeGreaterThan(windows[i - 1]!.endMs);
      let held = 0;
      for (const w of windows) {
        const inside = contents.get(windowId(set.stateWindow(w)!)) ?? [];
        held += inside.length;
        for (const t of inside) expect(t >= w.startMs && t + 50 <= w.endMs).toBe(true);
      }
      expect(held).toBe(times.length);
    }
  });
});
