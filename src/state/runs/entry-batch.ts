/**
 * Entries gathered for one run, in columns (typed arrays, and one byte
 * arena holding each entry's key as UTF-8 followed by its encoded value)
 * rather than an object each: a million entries then cost a few arrays,
 * not a million objects for the collector, and writing them in sorted
 * order reads one place in memory per entry (reading the key strings in
 * that order missed the CPU cache three times per entry and was 5x
 * slower). {@link EntryBatch.sortedOrder} sorts them without comparing
 * strings: a counting sort by key group, then per key group a numeric sort
 * of hash·2^21 + position packed in a Float64Array; keys are compared only
 * among equal hashes.
 */
import { ByteSink, compareBytes, isWellFormed, utf8Length } from "./byte-sink.js";
import { MAX_ENTRY_BYTES } from "./run-format.js";
import { encodeJsonInto, encodeValueInto } from "./value-codec.js";

/** Names a state in errors (the store's dictionary knows it; a bare batch says its id). */
export type DescribeState = (stateId: number) => string;

const RADIX_BITS = 11;
const RADIX = 1 << RADIX_BITS;
const RADIX_MASK = RADIX - 1;

/** Entries to write as one run; the last one given for a (state, key) wins. */
export class EntryBatch {
  stateIds = new Uint32Array(1024);
  keyGroups = new Uint16Array(1024);
  hashes = new Uint32Array(1024);
  /** Where each entry's key starts in `bytes`; its value follows it. */
  keyStarts = new Int32Array(1024);
  /** Where each entry's value starts in `bytes` (its key's end). */
  valueStarts = new Int32Array(1024);
  /** Where each entry's value ends; -1 for a tombstone. */
  valueEnds = new Int32Array(1024);
  /** Keys (UTF-8) and encoded values, one entry after another. */
  readonly bytes = new ByteSink(64 * 1024);
  count = 0;

  constructor(
    /** The operator, for errors. */
    private readonly operatorLabel = "?",
    private readonly describe: DescribeState = (id) => `#${id}`,
  ) {}

  /**
   * Adds `value` (encoded now: later changes to a live object do not leak
   * in) for `key` (its canonical text) of state `stateId`; `hash` is the
   * key text's `hashKey` and `keyGroup` its key group.
   */
  put(stateId: number, keyGroup: number, hash: number, key: string, value: unknown): void {
    const keyStart = this.bytes.length;
    this.bytes.writeUtf8(key);
    const valueStart = this.bytes.length;
    try {
      encodeValueInto(value, this.bytes);
    } catch (e) {
      this.bytes.length = keyStart;
      throw new TypeError(`operator "${this.operatorLabel}": state "${this.describe(stateId)}", key ${JSON.stringify(key)}: ${(e as Error).message}`);
    }
    this.push(stateId, keyGroup, hash, key, keyStart, valueStart, this.bytes.length);
  }

  /**
   * Adds a value given as its JSON text (see {@link encodeJsonInto}),
   * after one byte of the caller's (`prefix`, 0–255: what the local image
   * keeps of an entry's kind).
   */
  putJson(stateId: number, keyGroup: number, hash: number, key: string, prefix: number, json: string): void {
    const keyStart = this.bytes.length;
    this.bytes.writeUtf8(key);
    const valueStart = this.bytes.length;
    this.bytes.ensure(1);
    this.bytes.bytes[this.bytes.length++] = prefix;
    encodeJsonInto(json, this.bytes);
    this.push(stateId, keyGroup, hash, key, keyStart, valueStart, this.bytes.length);
  }

  /** Adds `value` as {@link put} does, after one byte of the caller's (`prefix`, 0–255). */
  putPrefixed(stateId: number, keyGroup: number, hash: number, key: string, prefix: number, value: unknown): void {
    const keyStart = this.bytes.length;
    this.bytes.writeUtf8(key);
    const valueStart = this.bytes.length;
    this.bytes.ensure(1);
    this.bytes.bytes[this.bytes.length++] = prefix;
    try {
      encodeValueInto(value, this.bytes);
    } catch (e) {
      this.bytes.length = keyStart;
      throw new TypeError(`operator "${this.operatorLabel}": state "${this.describe(stateId)}", key ${JSON.stringify(key)}: ${(e as Error).message}`);
    }
    this.push(stateId, keyGroup, hash, key, keyStart, valueStart, this.bytes.length);
  }

  /** Adds a value already in persisted form. */
  putEncoded(stateId: number, keyGroup: number, hash: number, key: string, bytes: Uint8Array, offset = 0, length = bytes.length - offset): void {
    const keyStart = this.bytes.length;
    this.bytes.writeUtf8(key);
    const valueStart = this.bytes.length;
    this.bytes.writeBytes(bytes, offset, length);
    this.push(stateId, keyGroup, hash, key, keyStart, valueStart, this.bytes.length);
  }

  /** Adds a tombstone: the key has no value in this state (it hides older runs' values). */
  delete(stateId: number, keyGroup: number, hash: number, key: string): void {
    const keyStart = this.bytes.length;
    this.bytes.writeUtf8(key);
    this.push(stateId, keyGroup, hash, key, keyStart, this.bytes.length, -1);
  }

  /** Bytes of keys and values held. */
  get sizeBytes(): number {
    return this.bytes.length;
  }

  /** Forgets every entry (keeps the arrays for the next batch). */
  clear(): void {
    this.count = 0;
    this.bytes.clear();
  }

  private push(stateId: number, keyGroup: number, hash: number, key: string, keyStart: number, valueStart: number, valueEnd: number): void {
    if (keyGroup < 0 || keyGroup > 0xffff || !Number.isInteger(keyGroup)) throw new RangeError(`operator "${this.operatorLabel}": key group ${keyGroup} is outside 0..65535`);
    const valueBytes = Math.max(valueEnd - valueStart, 0);
    let problem: string | undefined;
    if (key.length * 3 + valueBytes + 10 > MAX_ENTRY_BYTES && utf8Length(key) + valueBytes + 10 > MAX_ENTRY_BYTES) {
      problem = `an encoded entry of ${utf8Length(key) + valueBytes} bytes exceeds the ${MAX_ENTRY_BYTES} a SQLite value may hold`;
    } else if (!isAsciiShort(key) && !isWellFormed(key)) {
      // Stored keys are UTF-8; a lone surrogate would be replaced, and two keys would become one.
      problem = "the key has a lone surrogate, which UTF-8 cannot keep";
    }
    if (problem !== undefined) {
      this.bytes.length = keyStart;
      throw new RangeError(`operator "${this.operatorLabel}": state "${this.describe(stateId)}", key ${JSON.stringify(key.slice(0, 200))}: ${problem}`);
    }
    const i = this.count;
    if (i === this.hashes.length) this.grow();
    this.stateIds[i] = stateId;
    this.keyGroups[i] = keyGroup;
    this.hashes[i] = hash;
    this.keyStarts[i] = keyStart;
    this.valueStarts[i] = valueStart;
    this.valueEnds[i] = valueEnd;
    this.count++;
  }

  private grow(): void {
    const n = this.hashes.length * 2;
    const grow = <T extends Uint32Array | Uint16Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.stateIds = grow(this.stateIds, (m) => new Uint32Array(m));
    this.keyGroups = grow(this.keyGroups, (m) => new Uint16Array(m));
    this.hashes = grow(this.hashes, (m) => new Uint32Array(m));
    this.keyStarts = grow(this.keyStarts, (m) => new Int32Array(m));
    this.valueStarts = grow(this.valueStarts, (m) => new Int32Array(m));
    this.valueEnds = grow(this.valueEnds, (m) => new Int32Array(m));
  }

  /**
   * The positions of the entries in (keyGroup, hash, stateId, key) order,
   * each (stateId, key) once: its last entry.
   */
  sortedOrder(): Uint32Array {
    const n = this.count;
    const kgs = this.keyGroups;
    // LSD radix sort of positions by hash (three stable passes of 11 bits), then a stable
    // counting sort by key group: linear, and no comparisons (Float64Array.sort was 10x slower).
    let order = new Uint32Array(n);
    let keys = this.hashes.slice(0, n);
    let order2 = new Uint32Array(n);
    let keys2 = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    const counts = new Uint32Array(RADIX);
    for (let shift = 0; shift < 32; shift += RADIX_BITS) {
      counts.fill(0);
      for (let i = 0; i < n; i++) counts[(keys[i] >>> shift) & RADIX_MASK]++;
      let sum = 0;
      for (let d = 0; d < RADIX; d++) {
        const c = counts[d];
        counts[d] = sum;
        sum += c;
      }
      for (let i = 0; i < n; i++) {
        const k = keys[i];
        const at = counts[(k >>> shift) & RADIX_MASK]++;
        order2[at] = order[i];
        keys2[at] = k;
      }
      [order, order2] = [order2, order];
      [keys, keys2] = [keys2, keys];
    }
    let maxKg = 0;
    for (let i = 0; i < n; i++) if (kgs[i] > maxKg) maxKg = kgs[i];
    const starts = new Uint32Array(maxKg + 2);
    for (let i = 0; i < n; i++) starts[kgs[i] + 1]++;
    for (let g = 0; g <= maxKg; g++) starts[g + 1] += starts[g];
    const out = order2;
    for (let i = 0; i < n; i++) {
      const j = order[i];
      out[starts[kgs[j]]++] = j;
    }
    return out.subarray(0, this.settleEqualHashes(out, 0, n));
  }

  /**
   * Orders each run of equal hashes in `out[from..to)` by (stateId, key)
   * and keeps the last entry of each (stateId, key); returns the new end.
   */
  private settleEqualHashes(out: Uint32Array, from: number, to: number): number {
    const hashes = this.hashes;
    let w = from;
    let i = from;
    while (i < to) {
      let j = i + 1;
      while (j < to && hashes[out[j]] === hashes[out[i]]) j++;
      if (j - i === 1) out[w++] = out[i];
      else {
        const group = this.sortedGroup(out.subarray(i, j));
        for (let k = 0; k < group.length; k++) {
          const a = group[k];
          const b = group[k + 1];
          if (b !== undefined && this.stateIds[a] === this.stateIds[b] && this.compareKeys(a, b) === 0) continue;
          out[w++] = a;
        }
      }
      i = j;
    }
    return w;
  }

  /**
   * Entries of one hash in (stateId, key, position) order. Their keys are
   * compared first by the four bytes after the prefix all of them share (a
   * time index's entries of one time share 16 hex digits), as one number,
   * and byte by byte only when those are equal.
   */
  private sortedGroup(entries: Uint32Array): number[] {
    const s = this.bytes.bytes;
    const first = entries[0];
    let shared = this.valueStarts[first] - this.keyStarts[first];
    for (let k = 1; k < entries.length && shared > 0; k++) {
      const e = entries[k];
      const at = this.keyStarts[e];
      shared = Math.min(shared, this.valueStarts[e] - at);
      for (let b = 0; b < shared; b++) {
        if (s[at + b] !== s[this.keyStarts[first] + b]) {
          shared = b;
          break;
        }
      }
    }
    // Keyed by position in `entries`: big-endian, a key that ends first padded with zeros (ties go to compareKeys).
    const next = new Float64Array(entries.length);
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k];
      const from = this.keyStarts[e] + shared;
      const end = this.valueStarts[e];
      let v = 0;
      for (let b = 0; b < 4; b++) v = v * 256 + (from + b < end ? s[from + b] : 0);
      next[k] = v;
    }
    const order = Array.from({ length: entries.length }, (_, k) => k);
    order.sort((x, y) => {
      const a = entries[x];
      const b = entries[y];
      return this.stateIds[a] - this.stateIds[b] || next[x] - next[y] || this.compareKeys(a, b) || a - b;
    });
    return order.map((k) => entries[k]);
  }

  /** Compares the keys of entries `a` and `b` by their UTF-8 bytes. */
  private compareKeys(a: number, b: number): number {
    const s = this.bytes.bytes;
    return compareBytes(s, this.keyStarts[a], this.valueStarts[a] - this.keyStarts[a], s, this.keyStarts[b], this.valueStarts[b] - this.keyStarts[b]);
  }
}

/** Whether a short key is ASCII (then it is well-formed without asking). */
function isAsciiShort(key: string): boolean {
  if (key.length > 32) return false;
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) > 0x7f) return false;
  return true;
}
