/**
 * Key groups, as Flink assigns them: a key hashes to one of `maxParallelism`
 * key groups, and each parallel subtask owns one contiguous range of them.
 * Because state is addressed by key group, a snapshot taken at one
 * parallelism can be split along key-group ranges and restored at another.
 */

/** A contiguous, inclusive range of key groups owned by one subtask. */
export interface KeyGroupRange {
  readonly start: number;
  readonly end: number;
}

/** Largest maxParallelism accepted, Flink's upper bound (2^15). */
export const MAX_PARALLELISM_LIMIT = 32768;

const encoder = new TextEncoder();

/**
 * MurmurHash3 (x86, 32-bit) of `bytes`.
 *
 * @example murmur3(new TextEncoder().encode("hello")) === 0x248bfa47
 */
export function murmur3(bytes: Uint8Array, seed = 0): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const blocks = bytes.length >>> 2;
  for (let i = 0; i < blocks; i++) {
    const o = i << 2;
    let k = bytes[o] | (bytes[o + 1] << 8) | (bytes[o + 2] << 16) | (bytes[o + 3] << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = blocks << 2;
  let k = 0;
  switch (bytes.length & 3) {
    case 3:
      k ^= bytes[tail + 2] << 16;
    // falls through
    case 2:
      k ^= bytes[tail + 1] << 8;
    // falls through
    case 1:
      k ^= bytes[tail];
      k = Math.imul(k, c1);
      k = (k << 15) | (k >>> 17);
      k = Math.imul(k, c2);
      h ^= k;
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Keys a job may partition by: strings and numbers, compared by canonical text. */
export type Key = string | number;

/**
 * The canonical text of a key: what is hashed and stored. Numbers get a
 * prefix no ordinary string key starts with, so that 7 and "7" stay apart.
 */
export function keyText(key: Key): string {
  return typeof key === "string" ? key : `\u0000n${key}`;
}

// Most keys are short ASCII; hashing them without a TextEncoder allocation
// is the difference that shows at millions of records per second.
const asciiScratch = new Uint8Array(256);

/** Hash of a key's canonical text. */
export function hashKey(key: Key): number {
  const text = keyText(key);
  if (text.length <= asciiScratch.length) {
    let ascii = true;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c > 0x7f) {
        ascii = false;
        break;
      }
      asciiScratch[i] = c;
    }
    if (ascii) return murmur3(asciiScratch.subarray(0, text.length));
  }
  return murmur3(encoder.encode(text));
}

/** The key group of a key, in `0 .. maxParallelism-1`. */
export function keyGroupOf(key: Key, maxParallelism: number): number {
  return hashKey(key) % maxParallelism;
}

/**
 * The key-group range owned by subtask `index` of `parallelism`
 * (Flink's `computeKeyGroupRangeForOperatorIndex`).
 */
export function keyGroupRange(maxParallelism: number, parallelism: number, index: number): KeyGroupRange {
  checkParallelism(maxParallelism, parallelism);
  if (!Number.isInteger(index) || index < 0 || index >= parallelism) {
    throw new RangeError(`subtask index ${index} is outside 0..${parallelism - 1}`);
  }
  const start = Math.floor((index * maxParallelism + parallelism - 1) / parallelism);
  const end = Math.floor(((index + 1) * maxParallelism - 1) / parallelism);
  return { start, end };
}

/**
 * The subtask that owns `keyGroup` (Flink's
 * `computeOperatorIndexForKeyGroup`); the inverse of {@link keyGroupRange}.
 */
export function subtaskForKeyGroup(maxParallelism: number, parallelism: number, keyGroup: number): number {
  return Math.floor((keyGroup * parallelism) / maxParallelism);
}

/** Whether a key group lies in a range. */
export function inRange(range: KeyGroupRange, keyGroup: number): boolean {
  return keyGroup >= range.start && keyGroup <= range.end;
}

function checkParallelism(maxParallelism: number, parallelism: number): void {
  if (!Number.isInteger(maxParallelism) || maxParallelism < 1 || maxParallelism > MAX_PARALLELISM_LIMIT) {
    throw new RangeError(`maxParallelism must be an integer in 1..${MAX_PARALLELISM_LIMIT}, got ${maxParallelism}`);
  }
  if (!Number.isInteger(parallelism) || parallelism < 1 || parallelism > maxParallelism) {
    throw new RangeError(`parallelism must be an integer in 1..maxParallelism (${maxParallelism}), got ${parallelism}`);
  }
}
