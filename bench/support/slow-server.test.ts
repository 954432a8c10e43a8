import { describe, expect, it } from "vitest";
import { ConcurrencyMeter, startSlowServer } from "./slow-server.js";

describe("ConcurrencyMeter", () => {
  it("integrates open requests over time and sums the answered ones' service times", () => {
    let now = 1000;
    const m = new ConcurrencyMeter(() => now);
    const a = m.start(); // 1000: one open
    now = 1010;
    const b = m.start(); // 1010: two open
    now = 1020;
    m.end(a, true); // a took 20 ms
    now = 1030;
    m.end(b, false); // b dropped by its caller: not answered
    now = 1100;
    expect(m.read()).toEqual({ requests: 2, answered: 1, openMs: 10 * 1 + 10 * 2 + 10 * 1, serviceMs: 20, maxOpen: 2 });
  });
});

describe("startSlowServer", () => {
  it("answers each lookup after its latency, and counts what it saw", async () => {
    const server = await startSlowServer(20);
    try {
      const t0 = performance.now();
      const bodies = await Promise.all([1, 2, 3].map(async (seq) => (await fetch(`${server.url}?seq=${seq}`)).json()));
      expect(bodies).toEqual([{ value: 2 }, { value: 4 }, { value: 6 }]);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(19);
      const c = server.counters();
      expect(c).toMatchObject({ requests: 3, answered: 3, maxOpen: 3 });
      expect(c.serviceMs / c.answered).toBeGreaterThanOrEqual(19);
    } finally {
      await server.close();
    }
  });
});
