/**
 * The simulator's only source of chance: the tests' seeded mulberry32
 * (test/support/random.ts), with what the simulator adds. Every random
 * decision of a run (workload, latencies, faults) comes from a stream
 * forked from the run's seed, so a seed replays exactly.
 */
import { Random } from "../support/random.js";

export class Rng extends Random {
  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** A probability of 0 draws nothing, so turning a fault off does not shift later decisions. */
  override chance(p: number): boolean {
    return p > 0 && this.next() < p;
  }

  /**
   * An independent stream for one concern (e.g. "net"), so that a change in
   * how often one concern draws does not shift every other decision.
   */
  fork(label: string): Rng {
    let h = this.state ^ 0x9e3779b9;
    for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
    return new Rng((h ^ (h >>> 16)) >>> 0);
  }
}
