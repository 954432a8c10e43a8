import { describe, expect, it } from "vitest";
import { type AsyncSample, asyncFigures, windowEnds } from "./async-io.js";

/**
 * A sample `t` s into the run, with `rate` results and requests a second so far, `open` requests open on average,
 * answered in `answerMs`; workerd's JavaScript thread (tid 7, beside an idle tid 8) and the server's thread
 * ran `workerd` and `server` of the time and waited for a CPU `wait` of it.
 */
const at = (t: number, o: { rate?: number; open?: number; answerMs?: number; workerd?: number | null; server?: number; wait?: number } = {}): AsyncSample => {
  const rate = o.rate ?? 1000;
  const answered = rate * t;
  return {
    atMs: 1_000_000 + t * 1000,
    results: answered,
    requests: answered,
    answered,
    openMs: (o.open ?? 11) * t * 1000,
    serviceMs: answered * (o.answerMs ?? 10.5),
    workerdThreads:
      o.workerd === null
        ? new Map()
        : new Map([
            [7, { runMs: (o.workerd ?? 0.3) * t * 1000, waitMs: (o.wait ?? 0) * t * 1000 }],
            [8, { runMs: 0.01 * t * 1000, waitMs: 0 }],
          ]),
    serverThread: { runMs: (o.server ?? 0.2) * t * 1000, waitMs: (o.wait ?? 0) * t * 1000 },
  };
};
const setup = (capacity: number) => ({ capacity, parallelism: 2, maxConcurrentRequests: Math.min(capacity, 6), latencyMs: 10 });

describe("asyncFigures", () => {
  it("names the 6 connections when a capacity above them kept the requests open near the cap", () => {
    const f = asyncFigures(at(2), at(12), setup(100));
    expect(f).toMatchObject({
      window_s: 10,
      results_per_s: 1000,
      server_requests_per_s: 1000,
      in_flight_cap: 12,
      server_mean_open: 11,
      server_answer_ms: 10.5,
      ceiling_records_per_s: 1143,
      workerd_thread_cpu: 0.3,
      workerd_thread_wait: 0,
      server_thread_cpu: 0.2,
      server_thread_wait: 0,
      limited_by: "connections",
    });
    expect(f.limit).toContain("the platform's 6 outgoing connections per invocation");
  });

  it("names the capacity when it is below the connections", () => {
    const f = asyncFigures(at(2, { rate: 170, open: 1.8 }), at(12, { rate: 170, open: 1.8 }), setup(1));
    expect(f).toMatchObject({ in_flight_cap: 2, in_flight_used: 0.9, limited_by: "capacity" });
  });

  it("names the thread when workerd's busiest thread was busy, before anything else", () => {
    expect(asyncFigures(at(0, { workerd: 0.95, server: 0.95 }), at(10, { workerd: 0.95, server: 0.95 }), setup(100)).limited_by).toBe("thread");
  });

  it("counts a thread that waited for a CPU as busy: on a shared machine it could not run more", () => {
    const f = asyncFigures(at(0, { workerd: 0.6, wait: 0.35 }), at(10, { workerd: 0.6, wait: 0.35 }), setup(100));
    expect(f).toMatchObject({ workerd_thread_cpu: 0.6, workerd_thread_wait: 0.35, limited_by: "thread" });
    expect(f.limit).toContain("ran 60% of the time, waited for a CPU 35%");
  });

  it("names the server when its process was busy or it answered slowly", () => {
    expect(asyncFigures(at(0, { server: 0.93 }), at(10, { server: 0.93 }), setup(100)).limited_by).toBe("server");
    expect(asyncFigures(at(0, { answerMs: 25 }), at(10, { answerMs: 25 }), setup(100)).limited_by).toBe("server");
  });

  it("names the operator's turnaround when the requests open stayed well below the cap and nothing was busy", () => {
    const f = asyncFigures(at(0, { open: 4 }), at(10, { open: 4 }), setup(100));
    expect(f).toMatchObject({ in_flight_used: 0.333, limited_by: "turnaround" });
  });

  it("goes without workerd's thread when /proc did not show it", () => {
    expect(asyncFigures(at(0, { workerd: null }), at(10, { workerd: null }), setup(10))).toMatchObject({ workerd_thread_cpu: null, limited_by: "connections" });
  });
});

describe("windowEnds", () => {
  const samples = [0, 0.1, 0.2, 1, 2, 3, 4].map((t) => at(t));

  it("takes the last sample at or before each end of the window", () => {
    const ends = windowEnds(samples, 1_000_000 + 1050, 1_000_000 + 3500);
    expect(ends?.map((s) => s.atMs - 1_000_000)).toEqual([1000, 3000]);
  });

  it("starts at the first sample when the window starts before it, and is null when it holds no interval", () => {
    expect(windowEnds(samples, 0, Number.POSITIVE_INFINITY)?.map((s) => s.atMs - 1_000_000)).toEqual([0, 4000]);
    expect(windowEnds(samples, 1_000_000 + 4000, 1_000_000 + 9000)).toBeNull();
  });
});
