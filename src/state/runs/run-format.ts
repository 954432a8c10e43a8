/**
 * The bytes of a run: blocks of sorted entries, the bloom filters over
 * them, and the index of their first keys. Pure functions over Uint8Array.
 *
 * Entries are ordered by (keyGroup, hash, stateId, key bytes): by key group
 * first so that a key-group range is a contiguous slice (rescaling, lazy
 * restore), by hash next so that a lookup compares numbers, and by key
 * only among equal hashes.
 *
 * Block (one SQL row, at most {@link MAX_PAGE_BYTES}; little-endian, starting
 * at a 4-aligned address so that typed arrays can view it in place):
 *
 *   0   u32  count
 *   4   u8   format version (1)
 *   5   u8   offset width (2 when the block is under 64 KiB, else 4)
 *   6   u16  0
 *   8   u16  keyGroup[count]
 *       (0–2 bytes to a 4-byte boundary)
 *       u32  hash[count]
 *       u16|u32 offset[count + 1]   where each entry starts, from the block's start; the last is the end
 *       entries: varint stateId, varint (keyLength·2 + tombstone), key (UTF-8), value (persisted form; none for a tombstone)
 *
 * A lookup binary-searches the keyGroup and hash arrays in place and
 * decodes only the entries with the hash it looks for.
 */
import { ByteSink, writeUtf8, writeVarint } from "./byte-sink.js";

/** Largest value SQLite holds in a Durable Object (2 MB): the bound on a page. */
export const MAX_PAGE_BYTES = 2_000_000;
/** Bytes of a block's header and per-entry index besides the entry itself, with room to spare. */
const BLOCK_OVERHEAD_BYTES = 64;
/** Largest encoded entry (state id, key, value and framing): one entry alone in a block still fits a page. */
export const MAX_ENTRY_BYTES = MAX_PAGE_BYTES - BLOCK_OVERHEAD_BYTES;
/** Block bytes after which a block is cut (at the next change of hash). */
export const BLOCK_TARGET_BYTES = 32 * 1024;
/** Entries after which a block is cut whatever its size (bounds a block's index arrays). */
export const BLOCK_MAX_ENTRIES = 4096;
const BLOCK_VERSION = 1;

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  // Blocks are viewed in place by typed arrays, which use the platform's byte order.
  throw new Error("floe's run format needs a little-endian platform");
}

/** The sort key of (keyGroup, hash) as one exact number: keyGroup·2^32 + hash. */
export function composite(keyGroup: number, hash: number): number {
  return keyGroup * 4294967296 + hash;
}

/** The key group of a {@link composite}. */
export function compositeKeyGroup(c: number): number {
  return Math.floor(c / 4294967296);
}

/** One decoded entry's position in a block: numbers and byte ranges, no strings. */
export interface EntryRef {
  keyGroup: number;
  hash: number;
  stateId: number;
  keyOffset: number;
  keyLength: number;
  valueOffset: number;
  /** -1 for a tombstone. */
  valueLength: number;
}

/** A new {@link EntryRef} to fill. */
export function entryRef(): EntryRef {
  return { keyGroup: 0, hash: 0, stateId: 0, keyOffset: 0, keyLength: 0, valueOffset: 0, valueLength: 0 };
}

/** A block's bytes with typed views over its arrays, made once when the block is read. */
export class BlockView {
  readonly count: number;
  readonly keyGroups: Uint16Array;
  readonly hashes: Uint32Array;
  readonly offsets: Uint16Array | Uint32Array;
  readonly bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    // Views need a 4-aligned start; a block sliced out of a larger buffer may not have one.
    if ((bytes.byteOffset & 3) !== 0) bytes = bytes.slice();
    this.bytes = bytes;
    const b = bytes;
    if (b.length < 8 || b[4] !== BLOCK_VERSION) throw new RangeError(`not a block of run format ${BLOCK_VERSION}`);
    const count = (this.count = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0);
    const width = b[5];
    this.keyGroups = new Uint16Array(b.buffer, b.byteOffset + 8, count);
    const hashStart = align4(8 + 2 * count);
    this.hashes = new Uint32Array(b.buffer, b.byteOffset + hashStart, count);
    const offsetStart = hashStart + 4 * count;
    this.offsets = width === 2 ? new Uint16Array(b.buffer, b.byteOffset + offsetStart, count + 1) : new Uint32Array(b.buffer, b.byteOffset + offsetStart, count + 1);
  }

  /** Size in bytes (what the block cache counts). */
  get sizeBytes(): number {
    return this.bytes.length;
  }

  /** The first index whose (keyGroup, hash) is ≥ the given one; `count` when none. */
  lowerBound(keyGroup: number, hash: number): number {
    const kgs = this.keyGroups;
    const hs = this.hashes;
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const g = kgs[mid];
      if (g < keyGroup || (g === keyGroup && hs[mid] < hash)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The first index whose key group is ≥ `keyGroup`. */
  lowerBoundKeyGroup(keyGroup: number): number {
    return this.lowerBound(keyGroup, 0);
  }

  /** Decodes entry `i` into `ref`. */
  read(i: number, ref: EntryRef): EntryRef {
    const b = this.bytes;
    let o = this.offsets[i];
    const end = this.offsets[i + 1];
    ref.keyGroup = this.keyGroups[i];
    ref.hash = this.hashes[i];
    let v = b[o++];
    if (v < 0x80) ref.stateId = v;
    else {
      let shift = 7;
      let n = v & 0x7f;
      do {
        v = b[o++];
        n += (v & 0x7f) * 2 ** shift;
        shift += 7;
      } while (v >= 0x80);
      ref.stateId = n;
    }
    v = b[o++];
    let h: number;
    if (v < 0x80) h = v;
    else {
      let shift = 7;
      h = v & 0x7f;
      do {
        v = b[o++];
        h += (v & 0x7f) * 2 ** shift;
        shift += 7;
      } while (v >= 0x80);
    }
    const keyLength = Math.floor(h / 2);
    ref.keyOffset = o;
    ref.keyLength = keyLength;
    ref.valueOffset = o + keyLength;
    ref.valueLength = h & 1 ? -1 : end - (o + keyLength);
    return ref;
  }

  /**
   * The index of the entry (stateId, key) with this key group and hash,
   * from `from` on; -1 when the block does not hold it. `key` is the key's
   * UTF-8 bytes (`keyLength` of them).
   */
  find(keyGroup: number, hash: number, stateId: number, key: Uint8Array, keyLength: number, ref: EntryRef, from = this.lowerBound(keyGroup, hash)): number {
    const b = this.bytes;
    for (let i = from; i < this.count && this.hashes[i] === hash && this.keyGroups[i] === keyGroup; i++) {
      this.read(i, ref);
      if (ref.stateId !== stateId || ref.keyLength !== keyLength) continue;
      let j = 0;
      const o = ref.keyOffset;
      while (j < keyLength && b[o + j] === key[j]) j++;
      if (j === keyLength) return i;
    }
    return -1;
  }
}

/** The length of the block at the start of `bytes` (a file pads blocks; the block knows where it ends). */
export function blockLength(bytes: Uint8Array): number {
  const d = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = d.getUint32(0, true);
  const width = bytes[5];
  const last = align4(8 + 2 * count) + 4 * count + width * count;
  return width === 2 ? d.getUint16(last, true) : d.getUint32(last, true);
}

/**
 * Builds one block from entries added in order. Its arrays are reused from
 * block to block; {@link finish} copies the block into a buffer of its own.
 */
export class BlockBuilder {
  private readonly keyGroups = new Uint16Array(BLOCK_MAX_ENTRIES);
  private readonly hashes = new Uint32Array(BLOCK_MAX_ENTRIES);
  /** Where each entry ends in `data`. */
  private readonly ends = new Uint32Array(BLOCK_MAX_ENTRIES);
  private readonly data = new ByteSink(BLOCK_TARGET_BYTES * 2);
  count = 0;

  /** Bytes of entries so far. */
  get dataBytes(): number {
    return this.data.length;
  }

  /** Size of the block if it were finished now with `moreEntries` more entries of `moreBytes`. */
  sizeWith(moreEntries: number, moreBytes: number): number {
    const n = this.count + moreEntries;
    return align4(8 + 2 * n) + 4 * n + 4 * (n + 1) + this.data.length + moreBytes;
  }

  /** Adds an entry whose key is text; `value` null (or `valueLength` -1) is a tombstone. */
  addText(keyGroup: number, hash: number, stateId: number, key: string, value: Uint8Array | null, valueOffset: number, valueLength: number): void {
    const d = this.data;
    d.ensure(10 + key.length * 3 + (value === null ? 0 : valueLength));
    const b = d.bytes;
    let o = writeVarint(b, d.length, stateId);
    const tomb = value === null || valueLength < 0 ? 1 : 0;
    let keyLength: number;
    if (key.length <= 21) {
      // keyLength·2+1 < 128: its varint is one byte, written after the key.
      keyLength = writeUtf8(key, b, o + 1);
      b[o] = keyLength * 2 + tomb;
      o += 1 + keyLength;
    } else {
      const at = o;
      keyLength = writeUtf8(key, b, at + 5);
      o = writeVarint(b, at, keyLength * 2 + tomb);
      b.copyWithin(o, at + 5, at + 5 + keyLength);
      o += keyLength;
    }
    d.length = o;
    if (!tomb) d.writeBytes(value!, valueOffset, valueLength);
    this.push(keyGroup, hash);
  }

  /** Adds an entry whose key is bytes (`keyLength` at `keyOffset` of `src`); `valueLength` -1 is a tombstone. */
  addBytes(keyGroup: number, hash: number, stateId: number, src: Uint8Array, keyOffset: number, keyLength: number, valueSrc: Uint8Array, valueOffset: number, valueLength: number): void {
    // Written out by hand: this runs once per entry of every run and compaction.
    const d = this.data;
    const need = 10 + keyLength + (valueLength > 0 ? valueLength : 0);
    if (d.length + need > d.bytes.length) d.ensure(need);
    const out = d.bytes;
    let o = d.length;
    if (stateId < 0x80) out[o++] = stateId;
    else o = writeVarint(out, o, stateId);
    const head = keyLength * 2 + (valueLength < 0 ? 1 : 0);
    if (head < 0x80) out[o++] = head;
    else o = writeVarint(out, o, head);
    o = copy(src, keyOffset, keyLength, out, o);
    if (valueLength > 0) o = copy(valueSrc, valueOffset, valueLength, out, o);
    d.length = o;
    this.push(keyGroup, hash);
  }

  private push(keyGroup: number, hash: number): void {
    const i = this.count++;
    this.keyGroups[i] = keyGroup;
    this.hashes[i] = hash;
    this.ends[i] = this.data.length;
  }

  /** The block's bytes, in a buffer of their own; the builder starts the next block empty. */
  finish(): Uint8Array {
    const n = this.count;
    const hashStart = align4(8 + 2 * n);
    const offsetStart = hashStart + 4 * n;
    const small = offsetStart + 2 * (n + 1) + this.data.length <= 0xffff;
    const width = small ? 2 : 4;
    const dataStart = offsetStart + width * (n + 1);
    const total = dataStart + this.data.length;
    const buffer = new ArrayBuffer(total);
    const out = new Uint8Array(buffer);
    const head = new DataView(buffer);
    head.setUint32(0, n, true);
    out[4] = BLOCK_VERSION;
    out[5] = width;
    new Uint16Array(buffer, 8, n).set(this.keyGroups.subarray(0, n));
    new Uint32Array(buffer, hashStart, n).set(this.hashes.subarray(0, n));
    const offsets = small ? new Uint16Array(buffer, offsetStart, n + 1) : new Uint32Array(buffer, offsetStart, n + 1);
    offsets[0] = dataStart;
    for (let i = 0; i < n; i++) offsets[i + 1] = dataStart + this.ends[i];
    out.set(this.data.bytes.subarray(0, this.data.length), dataStart);
    this.count = 0;
    this.data.clear();
    return out;
  }
}

/** Copies `length` bytes of `src` at `offset` to `out` at `at`; returns the end. A subarray costs more than a short loop. */
function copy(src: Uint8Array, offset: number, length: number, out: Uint8Array, at: number): number {
  if (length > 48) out.set(src.subarray(offset, offset + length), at);
  else for (let i = 0; i < length; i++) out[at + i] = src[offset + i];
  return at + length;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
