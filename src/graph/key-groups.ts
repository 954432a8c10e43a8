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

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** One 4-byte block mixed into the running hash. */
function mixBlock(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** The last 0–3 bytes (`k`, little-endian) and the finalization mix. */
function finish(h: number, k: number, length: number): number {
  if ((length & 3) !== 0) {
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * MurmurHash3 (x86, 32-bit) of the first `length` bytes of `bytes`.
 *
 * @example murmur3(new TextEncoder().encode("hello")) === 0x248bfa47
 */
export function murmur3(bytes: Uint8Array, seed = 0, length = bytes.length): number {
  let h = seed >>> 0;
  const blocks = length >>> 2;
  for (let i = 0; i < blocks; i++) {
    const o = i << 2;
    h = mixBlock(h, bytes[o] | (bytes[o + 1] << 8) | (bytes[o + 2] << 16) | (bytes[o + 3] << 24));
  }
  const tail = blocks << 2;
  let k = 0;
  switch (length & 3) {
    case 3:
      k ^= bytes[tail + 2] << 16;
    // falls through
    case 2:
      k ^= bytes[tail + 1] << 8;
    // falls through
    case 1:
      k ^= bytes[tail];
  }
  return finish(h, k, length);
}

/**
 * MurmurHash3 of an all-ASCII string's UTF-8 bytes (its char codes), read
 * straight from the string; -1 when the string is not all ASCII. (A hash
 * is an unsigned 32-bit number, so -1 is never one.)
 */
function murmur3Ascii(text: string): number {
  const length = text.length;
  let h = 0;
  const blocks = length >>> 2;
  for (let i = 0; i < blocks; i++) {
    const o = i << 2;
    const b0 = text.charCodeAt(o);
    const b1 = text.charCodeAt(o + 1);
    const b2 = text.charCodeAt(o + 2);
    const b3 = text.charCodeAt(o + 3);
    if ((b0 | b1 | b2 | b3) > 0x7f) return -1;
    h = mixBlock(h, b0 | (b1 << 8) | (b2 << 16) | (b3 << 24));
  }
  const tail = blocks << 2;
  let k = 0;
  for (let i = length - 1; i >= tail; i--) {
    const b = text.charCodeAt(i);
    if (b > 0x7f) return -1;
    k = (k << 8) | b;
  }
  return finish(h, k, length);
}

/** Keys a job may partition by: strings and numbers, compared by canonical text. */
export type Key = string | number;

/**
 * Whether a value can be a key: a string, or a finite number. Batches
 * carry values as JSON and the receiver computes keys again, so a key must
 * come out of that round trip as it went in: NaN and ±Infinity become
 * null in JSON, and any other value would be hashed by a text that says
 * nothing stable about it.
 */
export function isKey(value: unknown): value is Key {
  return typeof value === "string" || (typeof value === "number" && Number.isFinite(value));
}

/**
 * What a value that is not a {@link Key} is, as an error message says it:
 * "undefined", "NaN", "a Date", "a Map", "an instance of class Point",
 * "an object", "an array", "a boolean"…
 */
export function describeNonKey(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "undefined":
      return "undefined";
    case "number":
      return String(value);
    case "boolean":
      return `a boolean (${value})`;
    case "bigint":
      return "a bigint";
    case "symbol":
      return "a symbol";
    case "function":
      return "a function";
    case "string":
      return "a string";
  }
  if (Array.isArray(value)) return "an array";
  const proto = Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null;
  if (proto === null || proto === Object.prototype) return typeof (value as { toJSON?: unknown }).toJSON === "function" ? "an object with toJSON" : "an object";
  const name = proto.constructor?.name;
  if (name === "Date" || name === "Map" || name === "Set" || name === "RegExp") return `a ${name}`;
  return name ? `an instance of class ${name}` : "an object";
}

/**
 * The canonical text of a key: what is hashed and stored. Numbers get a
 * prefix no ordinary string key starts with, so that 7 and "7" stay apart.
 */
export function keyText(key: Key): string {
  return typeof key === "string" ? key : `\u0000n${key}`;
}

// Keys are hashed millions of times a second, and most are ASCII: hashing
// their char codes in place allocates nothing. Other keys are encoded into
// a scratch buffer (UTF-8 takes at most 3 bytes per UTF-16 code unit).
const utf8Scratch = new Uint8Array(768);

/** Hash of a key's canonical text: MurmurHash3 of its UTF-8 bytes. */
export function hashKey(key: Key): number {
  const text = keyText(key);
  const ascii = murmur3Ascii(text);
  if (ascii >= 0) return ascii;
  if (text.length * 3 <= utf8Scratch.length) return murmur3(utf8Scratch, 0, encoder.encodeInto(text, utf8Scratch).written);
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

/** Whether two ranges share a key group. */
export function overlaps(a: KeyGroupRange, b: KeyGroupRange): boolean {
  return a.end >= b.start && a.start <= b.end;
}

/** Whether every key group of `inner` lies in `outer`. */
export function contains(outer: KeyGroupRange, inner: KeyGroupRange): boolean {
  return inner.start >= outer.start && inner.end <= outer.end;
}

/** The key groups two ranges share, or undefined when they share none. */
export function intersect(a: KeyGroupRange, b: KeyGroupRange): KeyGroupRange | undefined {
  const start = Math.max(a.start, b.start);
  const end = Math.min(a.end, b.end);
  return start <= end ? { start, end } : undefined;
}

function checkParallelism(maxParallelism: number, parallelism: number): void {
  if (!Number.isInteger(maxParallelism) || maxParallelism < 1 || maxParallelism > MAX_PARALLELISM_LIMIT) {
    throw new RangeError(`maxParallelism must be an integer in 1..${MAX_PARALLELISM_LIMIT}, got ${maxParallelism}`);
  }
  if (!Number.isInteger(parallelism) || parallelism < 1 || parallelism > maxParallelism) {
    throw new RangeError(`parallelism must be an integer in 1..maxParallelism (${maxParallelism}), got ${parallelism}`);
  }
}
