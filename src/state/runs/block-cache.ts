/**
 * Raw pages (blocks, bloom filters) kept in memory, least recently used
 * first out, bounded in bytes. One cache may serve every store of a
 * subtask, so that the budget is the subtask's. Each run is a
 * {@link CacheOwner} with its own map of pages: a lookup is one map probe
 * and no key is built, and dropping a run frees its pages at once.
 */

/** A run's pages in the cache. */
export class CacheOwner {
  /** @internal Pages by slot number. */
  readonly slots = new Map<number, Slot>();
}

interface Slot {
  readonly owner: CacheOwner;
  readonly id: number;
  readonly value: unknown;
  readonly sizeBytes: number;
  prev: Slot | null;
  next: Slot | null;
}

/** A byte-bounded LRU of pages. */
export class BlockCache {
  private head: Slot | null = null;
  private tail: Slot | null = null;
  /** Bytes of the pages held. */
  sizeBytes = 0;
  hits = 0;
  misses = 0;

  constructor(private capacity: number) {
    if (!(capacity >= 0)) throw new RangeError(`a block cache needs a capacity in bytes, got ${capacity}`);
  }

  /** The most bytes of pages it holds. */
  get capacityBytes(): number {
    return this.capacity;
  }

  /** Changes the capacity (a new deployment's budget), evicting the least recently used pages past it. */
  resize(capacityBytes: number): void {
    if (!(capacityBytes >= 0)) throw new RangeError(`a block cache needs a capacity in bytes, got ${capacityBytes}`);
    this.capacity = capacityBytes;
    while (this.sizeBytes > this.capacity && this.tail) this.remove(this.tail);
  }

  /** Whether (`owner`, `id`) is cached (its place in the order and the hit counts unchanged). */
  has(owner: CacheOwner, id: number): boolean {
    return owner.slots.has(id);
  }

  /** The value cached for (`owner`, `id`), now the most recently used. */
  get<T>(owner: CacheOwner, id: number): T | undefined {
    const s = owner.slots.get(id);
    if (s === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    if (this.head !== s) {
      this.unlink(s);
      this.linkFront(s);
    }
    return s.value as T;
  }

  /** Caches `value` of `sizeBytes`, evicting the least recently used pages past the capacity. */
  put(owner: CacheOwner, id: number, value: unknown, sizeBytes: number): void {
    const old = owner.slots.get(id);
    if (old) this.remove(old);
    if (sizeBytes > this.capacity) return;
    const s: Slot = { owner, id, value, sizeBytes, prev: null, next: null };
    owner.slots.set(id, s);
    this.linkFront(s);
    this.sizeBytes += sizeBytes;
    while (this.sizeBytes > this.capacity && this.tail) this.remove(this.tail);
  }

  /** Forgets every page of `owner` (a run dropped or compacted away). */
  dropOwner(owner: CacheOwner): void {
    for (const s of owner.slots.values()) this.remove(s);
  }

  private remove(s: Slot): void {
    this.unlink(s);
    s.owner.slots.delete(s.id);
    this.sizeBytes -= s.sizeBytes;
  }

  private unlink(s: Slot): void {
    if (s.prev) s.prev.next = s.next;
    else this.head = s.next;
    if (s.next) s.next.prev = s.prev;
    else this.tail = s.prev;
    s.prev = s.next = null;
  }

  private linkFront(s: Slot): void {
    s.next = this.head;
    if (this.head) this.head.prev = s;
    this.head = s;
    if (!this.tail) this.tail = s;
  }
}
