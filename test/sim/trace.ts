/**
 * What happened in a run, for the report of a failing seed: a ring of the
 * last lines (or every line, when replaying with --trace).
 */
export class Trace {
  private readonly ring: string[];
  private next = 0;
  private count = 0;
  /** Every line, when the run keeps them all. */
  readonly all: string[] | undefined;

  constructor(
    private readonly now: () => number,
    keep = 400,
    full = false,
  ) {
    this.ring = new Array<string>(keep);
    this.all = full ? [] : undefined;
  }

  /** Lines written so far. */
  get lines(): number {
    return this.count;
  }

  log(kind: string, text: string): void {
    const line = `${this.now().toString().padStart(6)}ms ${kind.padEnd(6)} ${text}`;
    this.ring[this.next] = line;
    this.next = (this.next + 1) % this.ring.length;
    this.count++;
    this.all?.push(line);
  }

  /** The last `n` lines, oldest first. */
  tail(n: number): string[] {
    const out: string[] = [];
    const have = Math.min(this.count, this.ring.length, n);
    for (let i = have; i > 0; i--) out.push(this.ring[(this.next - i + this.ring.length) % this.ring.length]);
    return out;
  }
}
