/**
 * Bloom filters over (stateId, key hash): whether a run may hold a key,
 * answered without reading its blocks. One filter covers the entries of a
 * few consecutive blocks (a "partition", see run-format.ts), so that a
 * filter is read and cached like a block instead of every run's whole
 * filter living in memory.
 *
 * The probes come from the key's 32-bit hash (MurmurHash3 of its text,
 * already computed for its key group) mixed with the state id, not from a
 * second pass over the key's bytes: two keys with equal hashes then share
 * their bits, which adds at most n/2^32 to the false-positive rate.
 *
 * Layout: u32 bit count (a multiple of 32), u8 probe count, 3 bytes zero,
 * then the bits (little-endian 32-bit words).
 */

/** Bits per entry: about 0.8% false positives with {@link BLOOM_PROBES} probes. */
export const BLOOM_BITS_PER_ENTRY = 10;
/** Probes per key (≈ bits per entry × ln 2). */
export const BLOOM_PROBES = 7;
const HEADER_BYTES = 8;

/** The two base hashes of a probe sequence; computed once per lookup, used for every filter. */
export interface BloomProbe {
  h1: number;
  h2: number;
}

// A probe maps to a bit as floor(h · bits / 2^32) (Lemire's range reduction: a multiply, no division).

/** Fills `probe` for (stateId, hash) and returns it. */
export function bloomProbe(stateId: number, hash: number, probe: BloomProbe = { h1: 0, h2: 0 }): BloomProbe {
  const h1 = fmix32((hash ^ Math.imul(stateId + 1, 0x9e3779b1)) >>> 0);
  probe.h1 = h1;
  probe.h2 = (fmix32((h1 + 0x7f4a7c15) >>> 0) | 1) >>> 0;
  return probe;
}

/** A filter for `entries` keys, filled by {@link bloomAdd}. */
export function bloomCreate(entries: number, bitsPerEntry = BLOOM_BITS_PER_ENTRY, probes = BLOOM_PROBES): Uint8Array {
  const bits = Math.max(64, Math.ceil((entries * bitsPerEntry) / 32) * 32);
  const bytes = new Uint8Array(HEADER_BYTES + bits / 8);
  new DataView(bytes.buffer).setUint32(0, bits, true);
  bytes[4] = probes;
  return bytes;
}

/** Adds a key, given by its {@link bloomProbe}. */
export function bloomAdd(filter: Uint8Array, probe: BloomProbe): void {
  const bits = bitCount(filter);
  const k = filter[4];
  let h = probe.h1;
  for (let i = 0; i < k; i++) {
    const bit = Math.floor(h * bits * 2.3283064365386963e-10);
    filter[HEADER_BYTES + (bit >>> 3)] |= 1 << (bit & 7);
    h = (h + probe.h2) >>> 0;
  }
}

/** False when the filter surely lacks the key; true when it may hold it. */
export function bloomMayContain(filter: Uint8Array, probe: BloomProbe): boolean {
  const bits = bitCount(filter);
  const k = filter[4];
  let h = probe.h1;
  for (let i = 0; i < k; i++) {
    const bit = Math.floor(h * bits * 2.3283064365386963e-10);
    if ((filter[HEADER_BYTES + (bit >>> 3)] & (1 << (bit & 7))) === 0) return false;
    h = (h + probe.h2) >>> 0;
  }
  return true;
}

/** The length of the filter at the start of `bytes` (a file pads filters). */
export function bloomLength(bytes: Uint8Array): number {
  return HEADER_BYTES + bitCount(bytes) / 8;
}

function bitCount(filter: Uint8Array): number {
  return (filter[0] | (filter[1] << 8) | (filter[2] << 16) | (filter[3] << 24)) >>> 0;
}

/** MurmurHash3's finalizer: every input bit affects every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
