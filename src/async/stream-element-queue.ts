/**
 * The queue of an async I/O operator (Flink's StreamElementQueue): records
 * whose requests are in flight or done but not emitted yet, and the
 * watermarks between them. Two orders:
 *
 * - **ordered**: results leave in input order; a slow request holds back
 *   every result behind it.
 * - **unordered**: results leave as their requests complete, but never
 *   across a watermark (Flink's rule): the watermarks cut the queue into
 *   segments, a segment's results leave in completion order once they are
 *   done, and a watermark leaves only once every record before it has
 *   left, and before any result of a record after it. So no record is
 *   emitted behind a watermark that passed its timestamp.
 *
 * `capacity` counts records (watermarks take no room). Pure: the operator
 * completes slots and polls.
 */

/** An element ready to leave the queue. */
export type QueueOutput<I, O, W> =
  | { readonly kind: "record"; readonly input: I; readonly result: O }
  | { readonly kind: "watermark"; readonly mark: W };

/** A record's place in the queue: completed once its request has an outcome. */
export interface QueueSlot<I, O> {
  readonly input: I;
  /** Sets the outcome (once; later calls are ignored, as a late answer after a timeout is). */
  complete(result: O): void;
  readonly done: boolean;
}

/** What both orders share. */
export interface StreamElementQueue<I, O, W> {
  /** Records in the queue (in flight, or done and not yet emitted). */
  readonly size: number;
  /** Whether the queue is empty of records and watermarks. */
  isEmpty(): boolean;
  /** Whether another record fits. */
  hasCapacity(): boolean;
  /** Adds a record; throws when full (ask {@link hasCapacity} first). */
  addRecord(input: I): QueueSlot<I, O>;
  addWatermark(mark: W): void;
  /** Takes every element that may leave now, in the order they leave. */
  poll(): QueueOutput<I, O, W>[];
  /** The inputs of the records not emitted yet, in arrival order: what a checkpoint keeps. */
  pendingInputs(): I[];
}

class Slot<I, O> implements QueueSlot<I, O> {
  done = false;
  result: O | undefined;
  constructor(
    readonly input: I,
    private readonly onDone: (slot: Slot<I, O>) => void,
  ) {}
  complete(result: O): void {
    if (this.done) return;
    this.done = true;
    this.result = result;
    this.onDone(this);
  }
}

/** Creates the queue for `mode` with room for `capacity` records. */
export function createQueue<I, O, W>(mode: "ordered" | "unordered", capacity: number): StreamElementQueue<I, O, W> {
  if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`async queue: capacity must be an integer ≥ 1, got ${capacity}`);
  return mode === "ordered" ? new OrderedQueue<I, O, W>(capacity) : new UnorderedQueue<I, O, W>(capacity);
}

/** Records not emitted yet, by arrival: a Set keeps insertion order and forgets on delete. */
class Pending<I, O> {
  private readonly slots = new Set<Slot<I, O>>();
  get size(): number {
    return this.slots.size;
  }
  add(slot: Slot<I, O>): void {
    this.slots.add(slot);
  }
  delete(slot: Slot<I, O>): void {
    this.slots.delete(slot);
  }
  inputs(): I[] {
    return [...this.slots].map((s) => s.input);
  }
}

class OrderedQueue<I, O, W> implements StreamElementQueue<I, O, W> {
  private readonly entries: ({ readonly slot: Slot<I, O> } | { readonly mark: W })[] = [];
  private head = 0;
  private readonly pending = new Pending<I, O>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.pending.size;
  }
  isEmpty(): boolean {
    return this.head >= this.entries.length;
  }
  hasCapacity(): boolean {
    return this.pending.size < this.capacity;
  }
  addRecord(input: I): QueueSlot<I, O> {
    if (!this.hasCapacity()) throw new RangeError("async queue is full");
    const slot = new Slot<I, O>(input, () => undefined);
    this.entries.push({ slot });
    this.pending.add(slot);
    return slot;
  }
  addWatermark(mark: W): void {
    this.entries.push({ mark });
  }
  poll(): QueueOutput<I, O, W>[] {
    const out: QueueOutput<I, O, W>[] = [];
    while (this.head < this.entries.length) {
      const e = this.entries[this.head];
      if ("mark" in e) out.push({ kind: "watermark", mark: e.mark });
      else if (e.slot.done) {
        out.push({ kind: "record", input: e.slot.input, result: e.slot.result as O });
        this.pending.delete(e.slot);
      } else break;
      this.head++;
    }
    // Compact now and then rather than shift() per element.
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
    return out;
  }
  pendingInputs(): I[] {
    return this.pending.inputs();
  }
}

/** Records between two watermarks, and the watermark that closes them (none for the last, open segment). */
interface Segment<I, O, W> {
  /** Records of the segment whose requests have not completed. */
  readonly inFlight: Set<Slot<I, O>>;
  /** Completed records, in completion order, not emitted yet. */
  readonly completed: Slot<I, O>[];
  closedBy?: { readonly mark: W };
}

class UnorderedQueue<I, O, W> implements StreamElementQueue<I, O, W> {
  private readonly segments: Segment<I, O, W>[] = [newSegment()];
  private readonly pending = new Pending<I, O>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.pending.size;
  }
  isEmpty(): boolean {
    const s = this.segments[0];
    return this.segments.length === 1 && s.inFlight.size === 0 && s.completed.length === 0;
  }
  hasCapacity(): boolean {
    return this.pending.size < this.capacity;
  }
  addRecord(input: I): QueueSlot<I, O> {
    if (!this.hasCapacity()) throw new RangeError("async queue is full");
    const segment = this.segments[this.segments.length - 1];
    const slot = new Slot<I, O>(input, (s) => {
      segment.inFlight.delete(s);
      segment.completed.push(s);
    });
    segment.inFlight.add(slot);
    this.pending.add(slot);
    return slot;
  }
  addWatermark(mark: W): void {
    this.segments[this.segments.length - 1].closedBy = { mark };
    this.segments.push(newSegment());
  }
  poll(): QueueOutput<I, O, W>[] {
    const out: QueueOutput<I, O, W>[] = [];
    for (;;) {
      const s = this.segments[0];
      for (const slot of s.completed) {
        out.push({ kind: "record", input: slot.input, result: slot.result as O });
        this.pending.delete(slot);
      }
      s.completed.length = 0;
      if (s.inFlight.size > 0 || s.closedBy === undefined) break;
      out.push({ kind: "watermark", mark: s.closedBy.mark });
      this.segments.shift();
    }
    return out;
  }
  pendingInputs(): I[] {
    return this.pending.inputs();
  }
}

function newSegment<I, O, W>(): Segment<I, O, W> {
  return { inFlight: new Set(), completed: [] };
}
