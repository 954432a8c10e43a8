/**
 * Size limits of stored records, shared by ingestion (which refuses) and
 * the log (which must never be handed more than SQLite stores in a value).
 */

/** Largest record stored: a log chunk holds at least one record and must stay under SQLite's 2 MB value limit. */
export const RECORD_BYTES_MAX = 1024 * 1024;

/** UTF-8 length of a string, without encoding it. */
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

