/** The example job's window and late-data count, run by floe/testing's operator harness as a user would test them. */
import { OperatorHarness } from "floe/testing";
import { describe, expect, it } from "vitest";
import { type PageView, type PageViewCount, checkPageView, lateViews, minuteOf, pageViews, windowRowKey } from "./page-views.js";

const T0 = Date.UTC(2026, 0, 1); // 2026-01-01T00:00:00.000Z
const MINUTE_MS = 60_000;
type Row = { key: string; value: PageViewCount };

function view(url: string, ts: number): PageView {
  return { url, ts };
}

/** A harness of the window, fed each view with its event time (what the source's timestamp assigner gives). */
function windowHarness() {
  const h = OperatorHarness.forOperator<PageView, Row>(pageViews, "views-per-minute");
  return { h, send: (v: PageView) => h.processElement(v, v.ts) };
}

describe("page-views: views-per-minute", () => {
  it("emits one row per url when the watermark passes the minute's end, stamped with the window's last ms", () => {
    const { h, send } = windowHarness();
    send(view("/home", T0 + 5_000));
    send(view("/docs", T0 + 30_000));
    send(view("/home", T0 + 50_000));
    send(view("/home", T0 + MINUTE_MS + 10_000)); // the next minute
    h.processWatermark(T0 + MINUTE_MS - 2);
    expect(h.output()).toEqual([]);
    h.processWatermark(T0 + MINUTE_MS - 1);
    const rows = h.records().sort((a, b) => a.value.key.localeCompare(b.value.key));
    expect(rows).toEqual([
      {
        value: { key: "/docs|2026-01-01T00:00:00.000Z", value: { url: "/docs", window_start: "2026-01-01T00:00:00.000Z", window_end: "2026-01-01T00:01:00.000Z", count: 1 } },
        timestampMs: T0 + MINUTE_MS - 1,
      },
      {
        value: { key: "/home|2026-01-01T00:00:00.000Z", value: { url: "/home", window_start: "2026-01-01T00:00:00.000Z", window_end: "2026-01-01T00:01:00.000Z", count: 2 } },
        timestampMs: T0 + MINUTE_MS - 1,
      },
    ]);
    expect(h.pendingTimers()).toBe(1); // the second minute's window of /home
  });

  it("sends a view whose window already fired to the late side output, not to the row", () => {
    const { h, send } = windowHarness();
    send(view("/docs", T0 + 1_000));
    h.processWatermark(T0 + MINUTE_MS + 5_000);
    h.clearOutput();
    send(view("/docs", T0 + 20_000));
    expect(h.output()).toEqual([]);
    expect(h.sideOutput(lateViews)).toEqual([view("/docs", T0 + 20_000)]);
  });

  it("keeps open windows and their timers across a snapshot and restore", () => {
    const { h, send } = windowHarness();
    send(view("/home", T0 + 1_000));
    send(view("/home", T0 + 2_000));
    h.processWatermark(T0 + 10_000);
    const snapshot = JSON.parse(JSON.stringify(h.snapshot())); // as a test would keep it in a file

    const restored = windowHarness();
    restored.h.restore(snapshot);
    expect(restored.h.watermarkMs).toBe(T0 + 10_000);
    restored.send(view("/home", T0 + 3_000));
    restored.h.processWatermark(T0 + MINUTE_MS);
    expect(restored.h.output().map((r) => r.value.count)).toEqual([3]);
  });

  it("adds up with the late count to every view, exactly once", () => {
    const { h, send } = windowHarness();
    const late = OperatorHarness.forOperator<PageView, { key: string; value: number }>(pageViews, "late-per-minute");
    const views = [view("/a", T0 + 1), view("/b", T0 + 2), view("/a", T0 + 3)];
    for (const v of views) send(v);
    h.processWatermark(T0 + 2 * MINUTE_MS);
    for (const v of [view("/a", T0 + 4), view("/a", T0 + 5)]) send(v);
    for (const v of h.sideOutput(lateViews)) late.processElement(v);
    const onTime = new Map(h.output().map((r) => [r.key, r.value.count]));
    const lateCounts = new Map(late.output().map((r) => [r.key, r.value]));
    expect(Object.fromEntries(onTime)).toEqual({ [windowRowKey("/a", T0)]: 2, [windowRowKey("/b", T0)]: 1 });
    expect(Object.fromEntries(lateCounts)).toEqual({ [windowRowKey("/a", T0)]: 2 });
  });
});

describe("page-views: checks and keys", () => {
  it("refuses a view without a string url or a numeric ts", () => {
    expect(checkPageView({ url: "/", ts: T0 })).toBeUndefined();
    expect(checkPageView({ url: "/" })).toMatch(/needs "ts"/);
    expect(checkPageView({ ts: T0 })).toMatch(/needs "url"/);
  });

  it("keys a row by url and the ISO start of its minute", () => {
    expect(minuteOf(T0 + 61_000)).toBe(T0 + MINUTE_MS);
    expect(windowRowKey("/x", T0 + MINUTE_MS)).toBe("/x|2026-01-01T00:01:00.000Z");
  });
});
