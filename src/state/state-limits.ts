/**
 * How large one keyed-state entry may be. Each entry goes into a block of
 * the subtask's local image (src/storage/run-image.ts), a block is one
 * BLOB row, and a Durable Object's SQLite holds at most 2 MB in a string,
 * a BLOB or a row: an entry alone in its block must fit (a restore from R2
 * writes every line of a state file there too). So an entry too large for
 * a row fails the checkpoint that first serializes it, with an error naming
 * the operator, the state and the key, instead of an opaque SQLite error
 * (or a truncation) later.
 *
 * Measuring costs nothing for ordinary values: UTF-8 takes at most 3 bytes
 * per UTF-16 code unit, so only texts longer than a third of the limit are
 * counted byte by byte.
 */
import { utf8Length } from "../storage/record-limits.js";

/** Largest row of the local image: a Durable Object's SQLite value or row holds at most 2 MB. */
export const STATE_ROW_BYTES_MAX = 2_000_000;

/**
 * Bytes of a row kept for what is not the entry's own text: the operator
 * uid (at most 64 characters), the kind, the key group and SQLite's record
 * header.
 */
const ROW_RESERVED_BYTES = 200;

/** Largest entry: its state name, key and value's JSON text together, in UTF-8 bytes. */
export const STATE_ENTRY_BYTES_MAX = STATE_ROW_BYTES_MAX - ROW_RESERVED_BYTES;

/** Longest key shown in an error, in characters. */
const KEY_PREVIEW_CHARS = 200;

/** A keyed-state entry too large for a row of the local image. */
export class StateTooLargeError extends Error {
  constructor(
    readonly operator: string,
    readonly state: string,
    /** The key as the error shows it (cut when long). */
    readonly key: string,
    /** UTF-8 bytes of the state name, key and value JSON together. */
    readonly entryBytes: number,
  ) {
    super(
      `operator ${JSON.stringify(operator)}: state ${JSON.stringify(state)} for key ${key} takes ${entryBytes} bytes ` +
        `(state name, key and value as JSON, in UTF-8); a keyed-state entry may take at most ${STATE_ENTRY_BYTES_MAX} bytes, ` +
        `because each is one row of the subtask's SQLite (a Durable Object stores at most 2 MB in a row). Keep less state under one key`,
    );
    this.name = "StateTooLargeError";
  }
}

/**
 * Throws a {@link StateTooLargeError} when an entry (`keyText` as
 * `keyText()` gives it, `valueJson` its value's JSON text) is too large for
 * a row of the image. Only long texts are measured.
 */
export function checkStateEntry(operator: string, state: string, keyText: string, valueJson: string): void {
  if ((state.length + keyText.length + valueJson.length) * 3 <= STATE_ENTRY_BYTES_MAX) return;
  const bytes = utf8Length(state) + utf8Length(keyText) + utf8Length(valueJson);
  if (bytes > STATE_ENTRY_BYTES_MAX) throw new StateTooLargeError(operator, state, displayKey(keyText), bytes);
}

/**
 * Whether an entry whose value is the string `value` (stored as it is, its
 * JSON made later) could be too large: its JSON takes at most 6 bytes per
 * UTF-16 code unit (`\u001f`) plus the quotes. When true, the caller
 * measures the JSON with {@link checkStateEntry}.
 */
export function stringEntryMayBeTooLarge(state: string, keyText: string, value: string): boolean {
  return (state.length + keyText.length) * 3 + value.length * 6 + 2 > STATE_ENTRY_BYTES_MAX;
}

/** A key's canonical text as people read it: a number as the number, a string as JSON, cut when long. */
export function displayKey(keyText: string): string {
  // keyText() marks number keys with this prefix (src/graph/key-groups.ts).
  const shown = keyText.startsWith("\u0000n") ? keyText.slice(2) : JSON.stringify(keyText);
  return shown.length > KEY_PREVIEW_CHARS ? `${shown.slice(0, KEY_PREVIEW_CHARS)}…` : shown;
}
