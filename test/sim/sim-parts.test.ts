/** The simulator's own parts: virtual time, the network's order and faults, R2's conditional create, when a run has quiesced. */
import { describe, expect, it } from "vitest";
import type { TableRowWrite } from "../../src/runtime/table-partition.js";
import { Faults, NO_FAULTS } from "./faults.js";
import { Life, SimLoop } from "./loop.js";
import { Network } from "./network.js";
import { Rng } from "./prng.js";
import type { OutRecord, Totals } from "./jobs.js";
import { Expected, Progress } from "./oracle.js";
import { FakeR2 } from "./r2.js";
import { type AppliedWrite, SimTablePartition } from "./services.js";
import { Trace } from "./trace.js";
import type { World } from "./world.js";

function world(rates = NO_FAULTS) {
  const loop = new SimLoop();
  const faults = new Faults(structuredClone(rates), new Rng(1));
  faults.enabled = true;
  const trace = new Trace(() => loop.now());
  return { loop, faults, trace };
}

describe("SimLoop", () => {
  it("runs events in (time, scheduling) order and lets each turn finish first", async () => {
    const loop = new SimLoop();
    const seen: string[] = [];
    loop.at(5, () => seen.push("b"));
    loop.at(1, () => {
      seen.push("a");
      void Promise.resolve().then(() => seen.push("a-continuation"));
    });
    loop.at(5, () => seen.push("c"));
    await loop.run(100);
    expect(seen).toEqual(["a", "a-continuation", "b", "c"]);
    expect(loop.now()).toBe(100);
  });

  it("never settles a dead incarnation's promises", async () => {
    const loop = new SimLoop();
    const life = new Life("x", 0);
    let resumed = false;
    void life.gate(loop.sleep(10)).then(() => (resumed = true));
    loop.at(5, () => (life.alive = false));
    await loop.run(100);
    expect(resumed).toBe(false);
  });
});

describe("Network", () => {
  it("keeps one stub's calls in order under delays, and interleaves stubs", async () => {
    const rates = structuredClone(NO_FAULTS);
    rates.rpc["rpc-hold"] = 0.3;
    rates.rpc["rpc-delay"] = 0.5;
    const { loop, faults, trace } = world(rates);
    const got: string[] = [];
    const callee = { life: new Life("b", 0), invoke: (_m: string, args: unknown[]) => void got.push(args[0] as string) };
    const net = new Network(loop, new Rng(2), faults, trace, () => callee, () => 1);
    const from = { name: "a", life: new Life("a", 0) };
    const one = net.channel(from, "b");
    const two = net.channel(from, "b");
    loop.at(0, () => {
      for (let i = 0; i < 50; i++) {
        void net.call(one, "m", [`one-${i}`]);
        void net.call(two, "m", [`two-${i}`]);
      }
    });
    await loop.run(10_000);
    const ones = got.filter((g) => g.startsWith("one-"));
    expect(ones).toEqual(Array.from({ length: 50 }, (_, i) => `one-${i}`));
    expect(got.filter((g) => g.startsWith("two-"))).toEqual(Array.from({ length: 50 }, (_, i) => `two-${i}`));
    expect(got).not.toEqual([...ones, ...got.filter((g) => g.startsWith("two-"))]);
  });

  it("breaks a stub after a dropped call, as workerd does", async () => {
    const rates = structuredClone(NO_FAULTS);
    rates.rpc["rpc-drop"] = 1;
    const { loop, faults, trace } = world(rates);
    const callee = { life: new Life("b", 0), invoke: () => "ok" };
    const net = new Network(loop, new Rng(3), faults, trace, () => callee, () => 1);
    const ch = net.channel({ name: "a", life: new Life("a", 0) }, "b");
    const results: string[] = [];
    loop.at(0, () => {
      void net.call(ch, "m", []).catch((e: Error) => results.push(e.message.includes("dropped") ? "dropped" : e.message));
      faults.enabled = false;
      void net.call(ch, "m", []).catch((e: Error) => results.push(e.message.includes("broken") ? "broken" : e.message));
    });
    await loop.run(100);
    expect(results).toEqual(["dropped", "broken"]);
  });
});

describe("FakeR2", () => {
  it("refuses a conditional create of an existing key with null", async () => {
    const { loop, faults, trace } = world();
    const r2 = new FakeR2(loop, new Rng(4), faults, trace, 2);
    const bucket = r2.bucket({ name: "a", life: new Life("a", 0) });
    const out: unknown[] = [];
    loop.at(0, async () => {
      out.push((await bucket.put("k/chk-1/_metadata", "x", { onlyIf: { etagDoesNotMatch: "*" } }))?.key);
      out.push(await bucket.put("k/chk-1/_metadata", "y", { onlyIf: { etagDoesNotMatch: "*" } }));
      out.push(await (await bucket.get("k/chk-1/_metadata"))!.text());
      for (const k of ["k/a", "k/b", "k/c"]) await bucket.put(k, k);
      const keys: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await bucket.list({ prefix: "k/", cursor });
        keys.push(...page.objects.map((o) => o.key));
        cursor = page.truncated ? page.cursor : undefined;
      } while (cursor);
      out.push(keys);
    });
    await loop.run(1000);
    expect(out).toEqual(["k/chk-1/_metadata", null, "x", ["k/a", "k/b", "k/c", "k/chk-1/_metadata"]]);
    expect(r2.metadataWrittenAt.get(1)).toBeTypeOf("number");
  });
});

describe("Progress (when a run has quiesced)", () => {
  const totals = (count: number, sum: number, bySrc: Record<string, number>): Totals => ({ count, sum, bySrc });
  const out = (off: number, v: number, value: Totals): OutRecord => ({ key: "k1", value, src: "a", part: 0, off, v });

  function setup() {
    const applied: AppliedWrite[] = [];
    const log = new SimTablePartition("table:log/0", "log", () => 0, applied);
    const sums = new SimTablePartition("table:totals/0", "totals", () => 0, applied);
    const w = { applied, tables: new Map([[log.name, log], [sums.name, sums]]), scenario: { shape: { withTotals: true } } } as unknown as World;
    const expected = new Expected();
    expected.add({ key: "k1", v: 3, src: "a", part: 0, off: 0 });
    expected.add({ key: "k1", v: 4, src: "a", part: 0, off: 1 });
    const logRow = (r: OutRecord): TableRowWrite => ["k1", '"k1"', JSON.stringify(r)];
    const totalsRow = (t: Totals): TableRowWrite => ["k1", '"k1"', JSON.stringify(t)];
    return { log, sums, progress: new Progress(w, expected), logRow, totalsRow };
  }

  it("waits for the totals table to catch up with a complete log (a barrier overtook its copy of the last output)", () => {
    const { log, sums, progress, logRow, totalsRow } = setup();
    log.upsert([logRow(out(0, 3, totals(1, 3, { a: 1 }))), logRow(out(1, 4, totals(2, 7, { a: 2 })))], "log-out/0", 6);
    sums.upsert([totalsRow(totals(1, 3, { a: 1 }))], "totals-out/0", 6);
    expect(progress.complete()).toBe(false);
    sums.upsert([totalsRow(totals(2, 7, { a: 2 }))], "totals-out/0", 7);
    expect(progress.complete()).toBe(true);
  });

  it("waits for every input record in the log, whatever the totals table holds", () => {
    const { log, sums, progress, logRow, totalsRow } = setup();
    log.upsert([logRow(out(0, 3, totals(1, 3, { a: 1 })))], "log-out/0", 6);
    sums.upsert([totalsRow(totals(1, 3, { a: 1 }))], "totals-out/0", 6);
    expect(progress.complete()).toBe(false);
  });
});
