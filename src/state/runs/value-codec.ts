/**
 * The persisted form of a state value: one tag byte, then the value.
 *
 *   0 null · 1 false · 2 true
 *   3 int32 (4 bytes, little-endian)       integers in −2^31 … 2^31−1
 *   4 float64 (8 bytes, little-endian)     every other finite number
 *   5 UTF-8 string (the rest of the bytes)
 *   6 JSON text as UTF-8 (the rest)        objects, arrays, anything else
 *
 * The length is not stored: a block knows where each value ends. Decoding
 * gives exactly what `JSON.parse(JSON.stringify(v))` gives, so a value read
 * back from this backend is the value the heap backend's JSON snapshots
 * give back: NaN and ±Infinity become null, −0 becomes 0, undefined object
 * members are dropped, a Date becomes its ISO text. A number is 5 or 9 bytes
 * instead of its JSON text, and the common cases need no JSON at all.
 */
import { ByteSink, isWellFormed, readUtf8 } from "./byte-sink.js";

const TAG_NULL = 0;
const TAG_FALSE = 1;
const TAG_TRUE = 2;
const TAG_INT32 = 3;
const TAG_FLOAT64 = 4;
const TAG_STRING = 5;
const TAG_JSON = 6;

const scratch = new DataView(new ArrayBuffer(8));
const scratchBytes = new Uint8Array(scratch.buffer);

/**
 * Appends the persisted form of `value` to `sink`; returns its length in
 * bytes. Throws a TypeError for what JSON cannot hold (undefined, a
 * function or symbol, a BigInt, a cycle): the caller adds which state and
 * key it was.
 */
export function encodeValueInto(value: unknown, sink: ByteSink): number {
  const start = sink.length;
  switch (typeof value) {
    case "number":
      if (Number.isInteger(value) && value >= -0x80000000 && value <= 0x7fffffff) {
        sink.ensure(5);
        const b = sink.bytes;
        let o = sink.length;
        b[o++] = TAG_INT32;
        b[o++] = value & 0xff;
        b[o++] = (value >> 8) & 0xff;
        b[o++] = (value >> 16) & 0xff;
        b[o++] = (value >> 24) & 0xff;
        sink.length = o;
      } else if (Number.isFinite(value)) {
        sink.ensure(9);
        scratch.setFloat64(0, value, true);
        sink.bytes[sink.length] = TAG_FLOAT64;
        sink.bytes.set(scratchBytes, sink.length + 1);
        sink.length += 9;
      } else writeTag(sink, TAG_NULL);
      break;
    case "string":
      if (isWellFormed(value)) {
        writeTag(sink, TAG_STRING);
        sink.writeUtf8(value);
      } else writeJson(sink, value);
      break;
    case "boolean":
      writeTag(sink, value ? TAG_TRUE : TAG_FALSE);
      break;
    case "object":
      if (value === null) writeTag(sink, TAG_NULL);
      else writeJson(sink, value);
      break;
    default:
      // undefined, functions and symbols have no JSON; a BigInt makes JSON.stringify throw.
      writeJson(sink, value);
  }
  return sink.length - start;
}

/** The persisted form of `value` as its own bytes (see {@link encodeValueInto}). */
export function encodeValue(value: unknown): Uint8Array {
  const sink = new ByteSink(16);
  encodeValueInto(value, sink);
  return sink.bytes.slice(0, sink.length);
}

/** The value whose persisted form is the `length` bytes of `bytes` at `offset`. */
export function decodeValue(bytes: Uint8Array, offset = 0, length = bytes.length - offset): unknown {
  if (length < 1) throw new RangeError("an encoded value has at least its tag byte");
  const tag = bytes[offset];
  switch (tag) {
    case TAG_NULL:
      return null;
    case TAG_FALSE:
      return false;
    case TAG_TRUE:
      return true;
    case TAG_INT32:
      return bytes[offset + 1] | (bytes[offset + 2] << 8) | (bytes[offset + 3] << 16) | (bytes[offset + 4] << 24);
    case TAG_FLOAT64:
      scratchBytes.set(bytes.subarray(offset + 1, offset + 9));
      return scratch.getFloat64(0, true);
    case TAG_STRING:
      return readUtf8(bytes, offset + 1, length - 1);
    case TAG_JSON:
      return JSON.parse(readUtf8(bytes, offset + 1, length - 1));
    default:
      throw new RangeError(`unknown value tag ${tag}`);
  }
}

/**
 * The JSON text of the value whose persisted form is the `length` bytes of
 * `bytes` at `offset`: what `JSON.stringify(decodeValue(…))` gives, without
 * parsing a value stored as JSON text (a full snapshot copies it as it is).
 */
export function decodeValueJson(bytes: Uint8Array, offset = 0, length = bytes.length - offset): string {
  const tag = bytes[offset];
  switch (tag) {
    case TAG_JSON:
      return readUtf8(bytes, offset + 1, length - 1);
    case TAG_INT32:
      return String(bytes[offset + 1] | (bytes[offset + 2] << 8) | (bytes[offset + 3] << 16) | (bytes[offset + 4] << 24));
    case TAG_NULL:
      return "null";
    case TAG_FALSE:
      return "false";
    case TAG_TRUE:
      return "true";
    default:
      return JSON.stringify(decodeValue(bytes, offset, length));
  }
}

/**
 * Appends the persisted form of a value given as its JSON text (as a
 * checkpoint's capture makes it): the JSON tag and the text, parsed only
 * when read back. Returns its length in bytes.
 */
export function encodeJsonInto(json: string, sink: ByteSink): number {
  const start = sink.length;
  writeTag(sink, TAG_JSON);
  // JSON.stringify escapes lone surrogates, so JSON text is well-formed and UTF-8 keeps it exactly.
  sink.writeUtf8(json);
  return sink.length - start;
}

function writeTag(sink: ByteSink, tag: number): void {
  sink.ensure(1);
  sink.bytes[sink.length++] = tag;
}

function writeJson(sink: ByteSink, value: unknown): void {
  const json = JSON.stringify(value) as string | undefined;
  if (json === undefined) throw new TypeError(`a ${typeof value} value has no JSON form and cannot be stored`);
  writeTag(sink, TAG_JSON);
  // JSON.stringify escapes lone surrogates, so the text is well-formed and UTF-8 keeps it exactly.
  sink.writeUtf8(json);
}
