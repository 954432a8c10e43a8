/**
 * The memory budget of keyed state: how the bytes of an entry held in
 * memory are estimated, and the budget's bounds.
 *
 * An entry's estimate is {@link ENTRY_OVERHEAD_BYTES} + its key's length +
 * its value's size, where a value's size is the length of its persisted
 * JSON when that is known (read back from the image, or serialized by a
 * checkpoint that captured it) and a shallow guess otherwise (a number 8,
 * a string its length, a map or list a fixed size per element). It is
 * taken when an entry enters memory (a new key written without a read
 * before it: at the write-back that follows) and again when a checkpoint
 * captures it changed, never on each access: a list that grows between
 * two checkpoints is counted at its old size until the next one. Characters
 * count one byte each, as V8 stores ASCII strings; the overhead covers the
 * entry's slots in the backend's maps (table, recency bit, size) and the
 * key string's header.
 */
import { Stamped, TtlList, TtlMap } from "./ttl.js";

/** Bytes counted per entry on top of its key and value: its slots in three maps and the key string's header. */
export const ENTRY_OVERHEAD_BYTES = 80;

/**
 * Bytes counted per timer in an indexed timer queue's overlay (a timer
 * changed since the seal that last included it) on top of its key: its
 * map slot and overlay key (the time's digits), its override, its place
 * among the live timers by time.
 */
export const OVERLAY_TIMER_BYTES = 112;

/** The smallest budget a job may set: below, eviction would churn on a few large entries. */
export const MIN_MEMORY_BUDGET_BYTES = 64 * 1024;

/**
 * The default budget per subtask and stateful operator: 16 MiB, so that
 * four subtask objects sharing one production isolate (128 MB) keep half
 * of it for everything else (batches in flight, captures at barriers,
 * the runtime itself).
 */
export const DEFAULT_MEMORY_BUDGET_BYTES = 16 * 1024 * 1024;

/**
 * After going over budget, entries are evicted down to this fraction of
 * it, so that the next few new keys do not each start an eviction.
 */
export const EVICT_TO_FRACTION = 0.9;

/** Entries the eviction looks at per call at most: a bounded pause for the record that triggered it. */
export const EVICT_SCAN_MAX = 4096;

/** The estimated bytes of an entry whose value's persisted JSON is `jsonLength` characters. */
export function measuredEntryBytes(key: string, jsonLength: number): number {
  return ENTRY_OVERHEAD_BYTES + key.length + jsonLength;
}

/** The estimated bytes of an entry from its live value, shallowly: O(1) whatever the value. */
export function estimateEntryBytes(key: string, value: unknown): number {
  return ENTRY_OVERHEAD_BYTES + key.length + estimateValueBytes(value);
}

function estimateValueBytes(v: unknown): number {
  switch (typeof v) {
    case "number":
      return 8;
    case "boolean":
      return 4;
    case "string":
      return v.length + 2;
    case "object":
      if (v === null) return 4;
      if (v instanceof Stamped) return 16 + estimateValueBytes(v.value);
      if (v instanceof Map) return 16 + 32 * v.size;
      if (v instanceof TtlMap) return 16 + 48 * v.entries.size;
      if (v instanceof TtlList) return 16 + 32 * v.items.length;
      if (Array.isArray(v)) return 2 + 16 * v.length;
      return 64;
    default:
      return 16;
  }
}

/** Whether a live value's size can be measured from its JSON (an object) rather than guessed from its type. */
export function isMeasuredByJson(v: unknown): boolean {
  return typeof v === "object" && v !== null;
}
