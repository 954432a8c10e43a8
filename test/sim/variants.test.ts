/**
 * A simulator that never fails is suspect: these deliberately broken
 * variants must be caught within a bounded number of seeds, with an
 * exactly-once violation (not merely a job that never settles) or the
 * signature of the fault. The first three change the simulator's side;
 * the others turn on one of the real Subtask core's test seams, so that
 * only the code that ships can show them.
 */
import { describe, expect, it } from "vitest";
import { runSeed } from "./run.js";
import type { Signature, Variant } from "./scenario.js";

const VIOLATION = /^(duplicated|lost|unknown|order|state|final state|visible before commit): /;

async function firstCaught(variant: Variant, maxSeeds: number, kind: RegExp = VIOLATION, signatures: readonly Signature[] = []): Promise<{ seed: number; failure: string } | null> {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const r = await runSeed(seed, { variant, explain: false });
    const failure = r.failures.find((f) => kind.test(f));
    if (failure) return { seed, failure };
    const seen = signatures.find((s) => r.signatures.has(s));
    if (seen) return { seed, failure: `${seen}: ${r.signatures.get(seen)!.what}` };
  }
  return null;
}

describe("broken variants are caught", () => {
  it("skipping barrier alignment (checkpoints in at_least_once mode)", async () => {
    // Records behind a barrier get into the snapshot, and are replayed after a restore: duplicated or miscounted.
    const caught = await firstCaught("no-alignment", 40, /^(duplicated|state|final state): /);
    expect(caught, "no seed in 1..40 caught a job whose barriers are not aligned").not.toBeNull();
  });

  it("committing before _metadata is written (sinks publish at the barrier)", async () => {
    const caught = await firstCaught("commit-before-metadata", 10, /^visible before commit: /);
    expect(caught, "no seed in 1..10 caught sinks that publish before their checkpoint completed").not.toBeNull();
  });

  it("not fencing old attempts (zombie messages carry the current attempt)", async () => {
    const caught = await firstCaught("no-fencing", 40);
    expect(caught, "no seed in 1..40 caught zombies of older attempts let in").not.toBeNull();
  });

  it("a state image merge that is not idempotent (a chunk deleted in one turn, applied in the next)", async () => {
    // A reset between the two turns loses the chunk; a local restore to that checkpoint then misses its rows.
    // About one seed in 50 catches it (300 seeds: 5), so the search goes further than the others'.
    const caught = await firstCaught("merge-deletes-first", 120, /^(state|final state|lost|duplicated): /);
    expect(caught, "no seed in 1..120 caught an image merge that loses a chunk when cut short").not.toBeNull();
  });

  it("staging rows deleted before the publish (read for publishing, then gone)", async () => {
    // A publish that fails after its rows were deleted loses the transaction: no restore finds it sealed.
    const caught = await firstCaught("drop-before-publish", 40, /^(lost|state|final state): /);
    expect(caught, "no seed in 1..40 caught a sink that drops staged rows before publishing them").not.toBeNull();
  });

  it("a deploy that does not fence an older attempt's restore", async () => {
    // The older attempt's restore runs after the newer deploy arrived: it installs a stale task and rewrites storage.
    const caught = await firstCaught("no-deploy-fencing", 40, VIOLATION, ["stale-task", "stale-restore", "overlapping-restores"]);
    expect(caught, "no seed in 1..40 caught a deploy that lets an older attempt's restore through").not.toBeNull();
  });
});
