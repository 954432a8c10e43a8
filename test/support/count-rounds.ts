/**
 * Rounds of a keyed count whose rows carry a pad (test/fixtures/budget-jobs.ts):
 * each round sends every key once, so that after round r every key's row
 * holds count r, exactly.
 */
import { expect } from "vitest";
import { type Engine, readTable, waitFor } from "./engine.js";

export interface Tally {
  count: number;
  pad: string;
}

export function countRounds(o: { stream: string; table: string; keys: readonly string[]; padChars: number; timeoutMs: number }) {
  return {
    /** Sends one record of every key. */
    async round(engine: Engine): Promise<void> {
      const res = await engine.api(`/v1/ingest/${o.stream}`, { method: "POST", json: o.keys.map((key) => ({ key })) });
      expect(res.status, await res.clone().text()).toBe(200);
    },

    /** Waits until every key's committed row holds count `n`; fails at once on a count past it (a duplicate). */
    async expectCounts(engine: Engine, n: number): Promise<void> {
      await waitFor(
        async () => {
          const rows = await readTable<Tally>(engine, o.table);
          for (const [key, t] of rows) if (t.count > n) throw new Error(`${key} counted ${t.count} > ${n}: a record was counted twice`);
          return rows.size === o.keys.length && [...rows.values()].every((t) => t.count === n) && rows;
        },
        o.timeoutMs,
        `every key counted ${n} times`,
      );
      const rows = await readTable<Tally>(engine, o.table);
      for (const key of o.keys) {
        const t = rows.get(key)!;
        expect(t.count, key).toBe(n);
        expect(t.pad, key).toBe(`${key}:`.padEnd(o.padChars, "x"));
      }
    },
  };
}
