/**
 * The seeded simulation, as tests: a few hundred seeds, each a whole run
 * (job start, faults, quiescence, oracle), must hold exactly-once; a seed
 * must replay identically; and over the seeds every kind of fault must land.
 */
import { describe, expect, it } from "vitest";
import { SUBTASK_POINTS, COORDINATOR_POINTS, type FaultKind } from "./faults.js";
import { describeFailure } from "./report.js";
import { runSeed } from "./run.js";

const SEEDS = 240;
const CHUNK = 40;

describe("exactly-once under faults", () => {
  const landed = new Map<FaultKind, number>();
  let checkpoints = 0;
  const lazy = { restores: 0, demandReads: 0 };
  for (let from = 1; from <= SEEDS; from += CHUNK) {
    it(`seeds ${from}..${from + CHUNK - 1}`, async () => {
      const failed: string[] = [];
      for (let seed = from; seed < from + CHUNK; seed++) {
        const r = await runSeed(seed);
        for (const [k, v] of r.faults) landed.set(k, (landed.get(k) ?? 0) + v);
        checkpoints += r.checkpoints;
        lazy.restores += r.lazy.restores;
        lazy.demandReads += r.lazy.demandReads;
        if (!r.ok) failed.push(describeFailure(r));
      }
      expect(failed, failed.join("\n\n")).toEqual([]);
    });
  }

  it("lands every kind of fault, completes checkpoints, and restores lazily from R2, over the seeds", () => {
    const kinds: FaultKind[] = [
      "rpc-drop", "rpc-drop-reply", "rpc-duplicate", "rpc-delay", "rpc-hold", "zombie", "r2-error", "r2-slow",
      "reset-random", "coord-reset-random", "alarm-twice",
      ...SUBTASK_POINTS.map((p) => `reset@${p}` as const),
      ...COORDINATOR_POINTS.map((p) => `coord-reset@${p}` as const),
    ];
    const missing = kinds.filter((k) => (landed.get(k) ?? 0) === 0);
    expect(missing, `fault kinds that never landed: ${missing.join(", ")}`).toEqual([]);
    expect(checkpoints).toBeGreaterThan(SEEDS * 5);
    // Restores from R2 that read their state lazily, with records waiting for blocks not read yet (docs/state-backend.md).
    expect(lazy.restores, "lazy restores from R2 over the seeds").toBeGreaterThan(0);
    expect(lazy.demandReads, "reads records waited for during lazy restores").toBeGreaterThan(0);
  });
});

// Seeds kept for what they once showed run without the join and async branches (joins: false, async: false), so that
// they take the course they were found on (each branch, drawn in two runs of ten since, adds objects and so changes a
// run's events).
describe("quiescence", () => {
  // Seed 961 (a false alarm of the oracle, not an engine bug): unaligned, checkpoint 6 went unaligned at sum/0
  // while its output to totals-out/0 waited for credits; the barrier overtook that copy of the last output, which
  // became in-flight data of 6 and so belonged to checkpoint 7 at the totals sink, while its log copy had gone out
  // before the barrier. The log was complete at 6; the run stopped before checkpoint 7 and judged the totals row.
  it("waits for the totals table to agree with the log, not only for the log (seed 961)", async () => {
    const r = await runSeed(961, { joins: false, async: false });
    expect(r.ok, describeFailure(r, { joins: false, async: false })).toBe(true);
  });
});

describe("replay", () => {
  it("runs a seed the same way every time", async () => {
    for (const seed of [3, 17]) {
      const a = await runSeed(seed);
      const b = await runSeed(seed);
      expect(b.digest).toBe(a.digest);
      expect(b.events).toBe(a.events);
    }
  });
});

describe("windows", () => {
  // Tumbling, sliding and session windows; reduce, aggregate and process functions, with and without a process
  // function; allowed lateness 15 and 50 ms; bounded and unbounded. The oracle computes every window's exact final
  // result and how often it may fire (window-oracle.ts). No record later than the allowed lateness (known bug W).
  // Seed 440 (unaligned): the flush record, replayed as in-flight data without its watermark, needed another (bug W).
  // Seed 15280 (unaligned): the barrier overtook a source's batch waiting for credits, whose watermark was not sent
  // yet; restored, the source read on from a lower watermark and counted a record the first attempt dropped as late.
  const SEEDS = [5, 10, 11, 24, 28, 29, 33, 35, 36, 39, 440, 15280];
  it(`holds exactly-once over the window branch's results, re-fires included (seeds ${SEEDS.join(", ")})`, async () => {
    const failed: string[] = [];
    let refired = 0;
    let beyondBound = 0;
    for (const seed of SEEDS) {
      const r = await runSeed(seed, { windows: true, joins: false, async: false });
      refired += r.windows?.refired ?? 0;
      beyondBound += r.windows?.beyondBound ?? 0;
      if (!r.ok) failed.push(describeFailure(r, { windows: true, joins: false, async: false }));
    }
    expect(failed, failed.join("\n\n")).toEqual([]);
    expect(refired, "windows re-fired by allowed lateness").toBeGreaterThan(0);
    expect(beyondBound, "records later than the bound").toBeGreaterThan(10);
  });

  // With W's trigger drawn: records so late that a watermark past their windows' cleanup went out before them.
  // Where no failover lands between that watermark and the record, each is dropped, and counted nowhere.
  const DROPPING = [11, 13, 29, 35, 36];
  it(`drops records later than the allowed lateness, counting them in no window (seeds ${DROPPING.join(", ")})`, async () => {
    const failed: string[] = [];
    let dropped = 0;
    for (const seed of DROPPING) {
      const r = await runSeed(seed, { windows: true, knownBugs: ["W"], joins: false, async: false });
      dropped += r.windows?.dropped ?? 0;
      if (!r.ok) failed.push(describeFailure(r, { windows: true, known: "W", joins: false, async: false }));
    }
    expect(failed, failed.join("\n\n")).toEqual([]);
    expect(dropped).toBeGreaterThan(10);
  });

  // J (fixed): an abort of checkpoint 5 settled every id up to 5 in the barrier handler of log-out/1, which was
  // aligning 4: sum/1's barrier 4 was dropped as stale, the records behind it went into checkpoint 4's transaction,
  // and after a restore to 4 they were committed again (main log: duplicated, order, state).
  // W, under unaligned checkpoints (seed 1245, with joins): a watermark queued among a channel's in-flight batches was
  // not kept with them, and a restored source started its watermark from nothing, so a record dropped as late before
  // the failover was counted after it. In-flight data keeps the watermarks in order, and a source restores the
  // watermark it had sent.
  it("W, unaligned: in-flight watermarks and a source's restored watermark keep a late record late (seed 1245)", async () => {
    const r = await runSeed(1245, { joins: true, async: false });
    expect(r.ok, describeFailure(r, { joins: true, async: false })).toBe(true);
  });

  it("J: an abort of a newer checkpoint no longer breaks the alignment in hand (seed 120)", async () => {
    const r = await runSeed(120, { windows: true, knownBugs: ["W"], joins: false, async: false });
    expect(r.ok, describeFailure(r, { windows: true, known: "W", joins: false, async: false })).toBe(true);
  });

  // W (fixed): watermarks were not in checkpoints: after a restore the window operator's watermark started from
  // nothing, so a record the first attempt dropped as late (its window already cleaned up, in the restored state
  // too) was counted after the failover, in a fresh window that replaced the committed result. Checkpoints now
  // keep each keyed subtask's watermark, and a restored subtask starts there.
  it("W: a record dropped as late before a failover is not counted after it", async () => {
    for (const seed of [9, 10, 12]) {
      const r = await runSeed(seed, { windows: true, knownBugs: ["W"], explain: false, joins: false, async: false });
      expect(r.ok, describeFailure(r, { windows: true, known: "W", joins: false, async: false })).toBe(true);
    }
  });
});

describe("joins", () => {
  // Two sources of their own into one two-input operator: the enrichment co-process (bounded and not), the bucket
  // co-process, interval joins (bounds [0,0]; (5,40] unaligned), window joins (sessions, one unaligned; sliding, one
  // bounded and unaligned), broadcast state (seeds 11 and 26). No record is late on either side, so the committed output
  // must be exactly the offline join of the input (join-oracle.ts), each row once, under the run's faults and restarts.
  const SEEDS = [1, 2, 5, 9, 11, 19, 21, 24, 26, 35];
  it(`commits exactly the offline join, each row once (seeds ${SEEDS.join(", ")})`, async () => {
    const failed: string[] = [];
    const kinds = new Set<string>();
    let rows = 0;
    let restarts = 0;
    for (const seed of SEEDS) {
      const r = await runSeed(seed, { joins: true, async: false });
      if (r.joins) kinds.add(r.joins.kind);
      rows += r.joins?.rows ?? 0;
      restarts += r.restarts;
      if (!r.ok) failed.push(describeFailure(r, { joins: true, async: false }));
    }
    expect(failed, failed.join("\n\n")).toEqual([]);
    expect([...kinds].sort()).toEqual(["broadcast", "coprocess", "enrich", "interval", "window"]);
    expect(rows, "joined rows committed").toBeGreaterThan(500);
    expect(restarts, "failovers across the seeds").toBeGreaterThan(SEEDS.length);
  });
});

describe("async I/O", () => {
  // An async operator (AsyncDataStream.orderedWait / unorderedWait) asking a simulated slow service that answers late
  // (past the timeout: the timeout handler answers), fails now and then (retried) and, with a dead-letter output
  // (6, 22, 82), refuses some records for good. Ordered: 5, 14 (bounded), 17 and 22 (records in flight restored),
  // 30 (unaligned, in flight restored); unordered: 6, 12 (in flight restored), 47 and 82 (unaligned: the operator's
  // input channel data and the source's buffered output restored too; 82 bounded). Each record's result once; ordered
  // mode in input order per channel; no result behind the watermark; the service asked again only about records a
  // restore hands back (async-oracle.ts).
  const SEEDS = [5, 6, 12, 14, 17, 22, 30, 47, 82];
  it(`commits each record's result once, and requests again only what was in flight (seeds ${SEEDS.join(", ")})`, async () => {
    const failed: string[] = [];
    const modes = new Set<string>();
    let requestedAgain = 0;
    let restoredInFlight = 0;
    let timeouts = 0;
    let retries = 0;
    let deadLetters = 0;
    for (const seed of SEEDS) {
      const r = await runSeed(seed, { async: true });
      if (r.async) {
        modes.add(r.async.mode);
        requestedAgain += r.async.requestedAgain;
        restoredInFlight += r.async.restoredInFlight;
        timeouts += r.async.timeouts;
        retries += r.async.retries;
        deadLetters += r.async.deadLetters;
      }
      if (!r.ok) failed.push(describeFailure(r, { async: true }));
    }
    expect(failed, failed.join("\n\n")).toEqual([]);
    expect([...modes].sort()).toEqual(["ordered", "unordered"]);
    expect(restoredInFlight, "records restored in flight").toBeGreaterThan(10);
    expect(requestedAgain, "records requested again after a failover").toBeGreaterThan(10);
    expect(timeouts, "results of the timeout handler").toBeGreaterThan(10);
    expect(retries, "retried requests").toBeGreaterThan(10);
    expect(deadLetters, "dead letters").toBeGreaterThan(0);
  });
});
