/**
 * The keyed-state file format (version 3): one header line, then one line
 * per entry. Every entry carries its key group, so that a range of key
 * groups can be read out of a file when a job is rescaled; delta files are
 * sorted by key group, full files are written in the order of the state.
 *
 *   {"format":"floe-keyed-state","version":3,"uid":…,"kind":"full"|"delta","checkpointId":…,"entries":…}
 *   ["<state>","value"|"map"|"list",<keyGroup>,"<key>",<value>]     an entry of user state
 *   ["<state>","value-ttl",<keyGroup>,"<key>",[<value>,<ts>]]       an entry of user state with a TTL:
 *   ["<state>","map-ttl",<keyGroup>,"<key>",[[<mapKey>,<value>,<ts>],…]]   <ts> is the last access (ms, the
 *   ["<state>","list-ttl",<keyGroup>,"<key>",[[<element>,<ts>],…]]          subtask's clock) of the value,
 *                                                                    of each map entry, of each element
 *   ["timer:event"|"timer:processing","timer",<keyGroup>,"<key>",[<ms>,…]]
 *                                                                    a key's timers in one time domain,
 *                                                                    sorted timestamps, deduplicated
 *   ["<state>",<kind>,<keyGroup>,"<key>"]                            a deletion (delta files only)
 *
 * `<key>` is the key's canonical text (`keyText`: a string key as it is,
 * a number key as "\u0000n" and its digits). A map's value is its
 * `[key, value]` pairs.
 *
 * Versions: 1 had no timer entries (kinds value, map and list only); it is
 * still read, as version 2 files without timers. Version 2 added the kind
 * "timer" and nothing else, so a version-1 reader fails on a version-2 file
 * by its header, not by misreading an entry. Version 3 added the kinds
 * "value-ttl", "map-ttl" and "list-ttl" (state TTL, src/state/ttl.ts) and
 * nothing else: versions 1 and 2 are read as version 3 files without them.
 * A full file leaves out what was expired when it was taken.
 */
import type { EntryKind, StateEntry } from "./keyed-state.js";

export const SNAPSHOT_FORMAT = "floe-keyed-state";
/** The version this floe writes. */
export const SNAPSHOT_VERSION = 3;
/** The versions this floe reads. */
export const SNAPSHOT_VERSIONS_READ: readonly number[] = [1, 2, 3];

/** The version that introduced each entry kind after version 1. */
const KIND_SINCE: Readonly<Record<string, number>> = { timer: 2, "value-ttl": 3, "map-ttl": 3, "list-ttl": 3 };

/** The first line of a state file. */
export interface SnapshotHeader {
  readonly format: typeof SNAPSHOT_FORMAT;
  readonly version: number;
  readonly uid: string;
  readonly kind: "full" | "delta";
  readonly checkpointId: number;
  readonly entries: number;
}

/** An entry as one line of JSON text, computed once and reused (file and SQLite image). */
export interface EncodedEntry {
  /** Which entry (its value, when needed, is `valueJson`). */
  readonly entry: Omit<StateEntry, "value">;
  /** JSON text of the value, or null for a deletion. */
  readonly valueJson: string | null;
}

/** Serializes the values of entries now: later mutations of live state must not leak in. */
export function encodeEntries(entries: readonly StateEntry[]): EncodedEntry[] {
  return entries.map((entry) => ({ entry, valueJson: entry.value === undefined ? null : JSON.stringify(entry.value) }));
}

/** Builds a state file. Deletions are dropped from full files. */
export function writeSnapshot(header: Omit<SnapshotHeader, "format" | "version" | "entries">, encoded: readonly EncodedEntry[]): string {
  return writeSnapshotChunks(header, encoded).join("");
}

/** Text of a state file in chunks of about `chunkChars`, so that a large file never needs one huge array of lines. */
export function writeSnapshotChunks(
  header: Omit<SnapshotHeader, "format" | "version" | "entries">,
  encoded: readonly EncodedEntry[],
  chunkChars = 1 << 20,
): string[] {
  const rows = (header.kind === "full" ? encoded.filter((e) => e.valueJson !== null) : [...encoded]).sort(
    (a, b) => a.entry.keyGroup - b.entry.keyGroup,
  );
  const w = new SnapshotWriter(chunkChars);
  for (const { entry: e, valueJson } of rows) w.add(e.state, e.kind, e.keyGroup, e.key, valueJson);
  return w.finish(header);
}

/**
 * Builds a state file entry by entry into text chunks: nothing but the
 * chunks (and the lines of the one being built) is held, so a full
 * snapshot of a large state costs its text and no per-entry objects.
 */
export class SnapshotWriter {
  private readonly chunks: string[] = [];
  /** Lines of the chunk being built, joined once it is full (2-3x faster than growing one string by `+=`). */
  private lines: string[] = [];
  private lineChars = 0;
  private rows = 0;
  /** The start of a line for the last state and kind seen (most lines repeat it). */
  private lineStart = "";
  private lineState: string | undefined;
  private lineKind: string | undefined;

  constructor(private readonly chunkChars = 1 << 20) {}

  /** Entries added so far. */
  get count(): number {
    return this.rows;
  }

  /** One entry; `valueJson` null records a deletion (delta files only). */
  add(state: string, kind: EntryKind, keyGroup: number, key: string, valueJson: string | null): void {
    if (state !== this.lineState || kind !== this.lineKind) {
      this.lineStart = `\n[${JSON.stringify(state)},"${kind}",`;
      this.lineState = state;
      this.lineKind = kind;
    }
    const line = valueJson === null ? `${this.lineStart}${keyGroup},${JSON.stringify(key)}]` : `${this.lineStart}${keyGroup},${JSON.stringify(key)},${valueJson}]`;
    this.lines.push(line);
    this.lineChars += line.length;
    this.rows++;
    if (this.lineChars >= this.chunkChars) this.endChunk();
  }

  /** The file: the header line (which counts the entries) and the entries. */
  finish(header: Omit<SnapshotHeader, "format" | "version" | "entries">): string[] {
    const head: SnapshotHeader = { format: SNAPSHOT_FORMAT, version: SNAPSHOT_VERSION, ...header, entries: this.rows };
    if (this.lines.length > 0) this.endChunk();
    return [JSON.stringify(head), ...this.chunks];
  }

  private endChunk(): void {
    this.chunks.push(this.lines.join(""));
    this.lines = [];
    this.lineChars = 0;
  }
}

/** A parsed entry; `value` undefined is a deletion. */
export interface SnapshotEntry {
  readonly state: string;
  readonly kind: EntryKind;
  readonly keyGroup: number;
  readonly key: string;
  readonly value: unknown;
}

/** Why a state file could not be read. */
export class SnapshotFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SnapshotFormatError";
  }
}

/** Parses a state file, keeping entries whose key group is in [start, end]. */
export function readSnapshot(text: string, range?: { start: number; end: number }): { header: SnapshotHeader; entries: SnapshotEntry[] } {
  const entries: SnapshotEntry[] = [];
  const reader = new SnapshotReader((e) => entries.push(e), range);
  reader.push(text);
  return { header: reader.end(), entries };
}

/**
 * Reads a state file as it streams in, chunk by chunk, so that a large
 * file is never held whole: each entry in the key-group range is handed to
 * `onEntry` as soon as its line is complete.
 */
export class SnapshotReader {
  private header: SnapshotHeader | undefined;
  private rows = 0;
  private rest = "";

  constructor(
    private readonly onEntry: (e: SnapshotEntry) => void,
    private readonly range?: { start: number; end: number },
  ) {}

  push(chunk: string): void {
    let text = this.rest + chunk;
    let nl = text.indexOf("\n");
    let start = 0;
    while (nl >= 0) {
      this.line(text.slice(start, nl));
      start = nl + 1;
      nl = text.indexOf("\n", start);
    }
    this.rest = text.slice(start);
    text = "";
  }

  /** Ends the file: checks that it held the entries its header announced. */
  end(): SnapshotHeader {
    if (this.rest.length > 0) this.line(this.rest);
    this.rest = "";
    if (!this.header) throw new SnapshotFormatError("state file has no readable header");
    if (this.rows !== this.header.entries) {
      throw new SnapshotFormatError(`state file of "${this.header.uid}" is truncated: ${this.rows} of ${this.header.entries} entries`);
    }
    return this.header;
  }

  private line(text: string): void {
    if (!this.header) {
      let header: SnapshotHeader;
      try {
        header = JSON.parse(text) as SnapshotHeader;
      } catch {
        throw new SnapshotFormatError("state file has no readable header");
      }
      if (header?.format !== SNAPSHOT_FORMAT) throw new SnapshotFormatError(`not a floe state file (format ${JSON.stringify(header?.format)})`);
      if (!SNAPSHOT_VERSIONS_READ.includes(header.version)) {
        throw new SnapshotFormatError(`state file version ${header.version} is not supported (this floe reads versions ${SNAPSHOT_VERSIONS_READ.join(", ")})`);
      }
      this.header = header;
      return;
    }
    if (text.length === 0) return;
    let r: unknown[];
    try {
      r = JSON.parse(text) as unknown[];
    } catch {
      throw new SnapshotFormatError(`state file of "${this.header.uid}" is corrupt or truncated`);
    }
    this.rows++;
    const since = KIND_SINCE[r[1] as string];
    if (since !== undefined && this.header.version < since) {
      throw new SnapshotFormatError(`state file of "${this.header.uid}" (version ${this.header.version}) holds a ${JSON.stringify(r[1])} entry, which only version ${since} and later have`);
    }
    const keyGroup = r[2] as number;
    if (this.range && (keyGroup < this.range.start || keyGroup > this.range.end)) return;
    this.onEntry({ state: r[0] as string, kind: r[1] as SnapshotEntry["kind"], keyGroup, key: r[3] as string, value: r.length > 4 ? r[4] : undefined });
  }
}
