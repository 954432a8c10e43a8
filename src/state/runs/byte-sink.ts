/**
 * A growable byte buffer that encoders append to, and UTF-8 helpers that
 * avoid TextEncoder/TextDecoder for the short ASCII strings most keys and
 * values are (a native call costs more than the copy for ten characters).
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Bytes appended at `length`, in a buffer that doubles when full. */
export class ByteSink {
  bytes: Uint8Array;
  length = 0;

  constructor(capacityBytes = 1024) {
    this.bytes = new Uint8Array(capacityBytes);
  }

  /** Makes room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.length + n;
    if (need <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
  }

  /** Appends a string's UTF-8 bytes; returns how many. */
  writeUtf8(text: string): number {
    this.ensure(text.length * 3);
    const written = writeUtf8(text, this.bytes, this.length);
    this.length += written;
    return written;
  }

  /** Appends `length` bytes of `src` from `offset`. */
  writeBytes(src: Uint8Array, offset: number, length: number): void {
    this.ensure(length);
    if (length <= 32) {
      // A subarray costs more than copying a few bytes by hand.
      const out = this.bytes;
      const at = this.length;
      for (let i = 0; i < length; i++) out[at + i] = src[offset + i];
    } else this.bytes.set(src.subarray(offset, offset + length), this.length);
    this.length += length;
  }

  /** Appends an unsigned LEB128 varint (up to 2^32). */
  writeVarint(n: number): void {
    this.ensure(5);
    this.length = writeVarint(this.bytes, this.length, n);
  }

  clear(): void {
    this.length = 0;
  }
}

/** Writes `text` as UTF-8 at `offset` (room for 3 bytes per UTF-16 unit is the caller's); returns the bytes written. */
export function writeUtf8(text: string, out: Uint8Array, offset: number): number {
  const n = text.length;
  if (n <= 32) {
    let i = 0;
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c > 0x7f) break;
      out[offset + i] = c;
    }
    if (i === n) return n;
  }
  return encoder.encodeInto(text, out.subarray(offset)).written;
}

/** Char codes of a short ASCII string being read, reused: one flat string from one call. */
const codes: number[] = [];

/** The string of `length` UTF-8 bytes at `offset`. */
export function readUtf8(bytes: Uint8Array, offset: number, length: number): string {
  if (length <= 24) {
    // One string from the codes, not one per `+=`: from 13 characters on, `+=` builds a rope that every
    // later hash or comparison (a Set lookup of the key) must flatten first.
    codes.length = length;
    for (let i = 0; i < length; i++) {
      const c = bytes[offset + i];
      if (c > 0x7f) return decoder.decode(bytes.subarray(offset, offset + length));
      codes[i] = c;
    }
    return String.fromCharCode.apply(null, codes);
  }
  return decoder.decode(bytes.subarray(offset, offset + length));
}

/** Number of UTF-8 bytes of a string. */
export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Whether a string has no lone surrogate (UTF-8 keeps it exactly). */
export function isWellFormed(text: string): boolean {
  const native = (text as unknown as { isWellFormed?: () => boolean }).isWellFormed;
  if (native) return native.call(text);
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
}

/** Writes an unsigned LEB128 varint at `offset`; returns the offset after it. */
export function writeVarint(out: Uint8Array, offset: number, n: number): number {
  while (n >= 0x80) {
    out[offset++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  out[offset++] = n;
  return offset;
}

/**
 * Compares two strings by their UTF-8 bytes (the order blocks keep): UTF-16
 * order except that surrogate pairs (code points above U+FFFF) sort after
 * U+E000–U+FFFF.
 */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/** Compares `a` (`aLength` bytes at `aOffset`) with `b` the same way, bytewise. */
export function compareBytes(a: Uint8Array, aOffset: number, aLength: number, b: Uint8Array, bOffset: number, bLength: number): number {
  const n = Math.min(aLength, bLength);
  for (let i = 0; i < n; i++) {
    const d = a[aOffset + i] - b[bOffset + i];
    if (d !== 0) return d;
  }
  return aLength - bLength;
}
