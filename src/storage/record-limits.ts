/**
 * Size limits of stored records, shared by ingestion (which refuses) and
 * the log (which must never be handed more than SQLite stores in a value).
 */

/** Largest record stored: a log chunk holds at least one record and must stay under SQLite's 2 MB value limit. */
export const RECORD_BYTES_MAX = 1024 * 1024;

/** UTF-8 length of a string, without encoding it. */
/**
 * Whether `s` takes at most `max` bytes as UTF-8, counting only when its
 * length says it may not (a UTF-16 unit is at most 3 bytes): ingestion
 * checks every record, and counting each cost 3% of the thread there.
 */
export function fitsUtf8(s: string, max: number): boolean {
  return s.length * 3 <= max || utf8Length(s) <= max;
}

export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 2; // a surrogate pair: 2 UTF-16 units, 4 bytes
      i++;
    } else n += 2;
  }
  return n;
}

