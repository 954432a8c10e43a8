/**
 * State time-to-live (Flink's StateTtlConfig) as the keyed-state backend
 * keeps it: every entry of a state with a TTL carries the processing time
 * of its last access, and is expired once the subtask's clock reaches
 * `lastAccessMs + ttlMs`.
 *
 * Granularity, as Flink's: a value state has one timestamp per key; a map
 * state one per map entry; a list state one per element (see
 * docs/state.md for why per element).
 *
 * Live forms (what the backend's tables hold for a state with a TTL) and
 * persisted forms (state files and the local image, format version 3):
 *
 *   value:  Stamped(value, ts)             "value-ttl"  [<value>, <ts>]
 *   map:    TtlMap of key → Stamped        "map-ttl"    [[<mapKey>, <value>, <ts>], …]
 *   list:   TtlList of Stamped elements    "list-ttl"   [[<element>, <ts>], …]
 *
 * A state declared without a TTL keeps its plain forms ("value", "map",
 * "list"). When a new job version adds or removes a TTL, an entry of the
 * other form is converted when it is first read: adding a TTL stamps it
 * with the time of that read, removing one drops the timestamps.
 */
import { type StateDescriptor, type StateTtlConfig } from "../api/state.js";

/** A user state's kind, as declared. */
export type PlainKind = StateDescriptor["kind"];

/** The persisted kind of an entry of a state with a TTL. */
export type TtlKind = "value-ttl" | "map-ttl" | "list-ttl";

/** A state's TTL as the backend applies it. */
export interface TtlPolicy {
  readonly ttlMs: number;
  /** OnReadAndWrite: a read refreshes the timestamp of what it read. */
  readonly updateOnRead: boolean;
  /** ReturnExpiredIfNotCleanedUp: a read returns an expired entry (once: the read cleans it up). */
  readonly returnExpired: boolean;
}

/** The policy of a (checked) config. */
export function ttlPolicy(config: StateTtlConfig): TtlPolicy {
  return {
    ttlMs: config.ttlMs,
    updateOnRead: config.updateType === "OnReadAndWrite",
    returnExpired: config.stateVisibility === "ReturnExpiredIfNotCleanedUp",
  };
}

/** Whether two configs mean the same TTL (both absent included). */
export function sameTtl(a: StateTtlConfig | undefined, b: StateTtlConfig | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  const pa = ttlPolicy(a);
  const pb = ttlPolicy(b);
  return pa.ttlMs === pb.ttlMs && pa.updateOnRead === pb.updateOnRead && pa.returnExpired === pb.returnExpired;
}

/** Whether an entry last accessed at `lastAccessMs` is expired at `nowMs` (Flink: expiration timestamp <= now). */
export function isExpired(lastAccessMs: number, policy: TtlPolicy, nowMs: number): boolean {
  return lastAccessMs + policy.ttlMs <= nowMs;
}

/**
 * A value with the processing time of its last access: a value state's
 * value, a map entry's value, a list element. Immutable: a refresh makes
 * a new one, so that a capture holding it by reference keeps what it saw.
 */
export class Stamped {
  constructor(
    readonly value: unknown,
    readonly lastAccessMs: number,
  ) {}

  /** The persisted form of a value state's entry. */
  toJSON(): [unknown, number] {
    return [this.value, this.lastAccessMs];
  }
}

/** A map state's map under a TTL: each entry stamped on its own. */
export class TtlMap {
  constructor(readonly entries: Map<string, Stamped> = new Map()) {}
}

/** A list state's list under a TTL: each element stamped on its own. */
export class TtlList {
  constructor(public items: Stamped[]) {}
}

/** A live entry of a state with a TTL. */
export type TtlLive = Stamped | TtlMap | TtlList;

/** Whether a live entry is in TTL form. */
export function isTtlLive(v: unknown): v is TtlLive {
  return v instanceof Stamped || v instanceof TtlMap || v instanceof TtlList;
}

const TTL_KIND: Record<PlainKind, TtlKind> = { value: "value-ttl", map: "map-ttl", list: "list-ttl" };

/** The persisted kind of a state with a TTL. */
export function ttlKindOf(kind: PlainKind): TtlKind {
  return TTL_KIND[kind];
}

/** Whether a persisted kind is one of a state with a TTL. */
export function isTtlKind(kind: string): kind is TtlKind {
  return kind === "value-ttl" || kind === "map-ttl" || kind === "list-ttl";
}

/** The declared kind behind a persisted kind ("map-ttl" → "map"); other kinds as they are. */
export function plainKindOf<K extends string>(kind: K | TtlKind): K | PlainKind {
  return isTtlKind(kind) ? (kind.slice(0, -4) as PlainKind) : kind;
}

/** The persisted form of a live TTL entry (plain JSON arrays, see the header). */
export function ttlToPersisted(v: TtlLive): unknown {
  if (v instanceof Stamped) return [v.value, v.lastAccessMs];
  if (v instanceof TtlMap) return Array.from(v.entries, ([k, s]) => [k, s.value, s.lastAccessMs]);
  return v.items.map((s) => [s.value, s.lastAccessMs]);
}

/** The live form of a persisted TTL entry. */
export function ttlFromPersisted(kind: TtlKind, value: unknown): TtlLive {
  switch (kind) {
    case "value-ttl": {
      const [v, ts] = value as [unknown, number];
      return new Stamped(v, ts);
    }
    case "map-ttl":
      return new TtlMap(new Map((value as [string, unknown, number][]).map(([k, v, ts]) => [k, new Stamped(v, ts)])));
    case "list-ttl":
      return new TtlList((value as [unknown, number][]).map(([v, ts]) => new Stamped(v, ts)));
  }
}

/**
 * A live entry in the form its state is declared with now: a plain entry
 * of a state that has a TTL is stamped with `nowMs` (the TTL was added by a
 * newer job version: it starts counting now); a TTL entry of a state
 * without one loses its timestamps. An entry already in the right form is
 * returned as it is.
 */
export function adoptLive(kind: PlainKind, v: unknown, ttl: boolean, nowMs: number): unknown {
  if (isTtlLive(v) === ttl) return v;
  if (ttl) {
    if (kind === "value") return new Stamped(v, nowMs);
    if (kind === "map") return new TtlMap(new Map(Array.from(v as Map<string, unknown>, ([k, x]) => [k, new Stamped(x, nowMs)])));
    return new TtlList((v as unknown[]).map((x) => new Stamped(x, nowMs)));
  }
  if (v instanceof Stamped) return v.value;
  if (v instanceof TtlMap) return new Map(Array.from(v.entries, ([k, s]) => [k, s.value]));
  return (v as TtlList).items.map((s) => s.value);
}

/** What {@link pruneLive} did to an entry. */
export type Pruned = "none" | "some" | "all";

/**
 * Drops the expired parts of a live TTL entry, in place (the background
 * cleanup): "all" when nothing unexpired remains (the caller removes the
 * entry), "some" when a map entry or list element went, else "none".
 */
export function pruneLive(v: TtlLive, policy: TtlPolicy, nowMs: number): Pruned {
  if (v instanceof Stamped) return isExpired(v.lastAccessMs, policy, nowMs) ? "all" : "none";
  if (v instanceof TtlMap) {
    let dropped = false;
    for (const [k, s] of v.entries) {
      if (isExpired(s.lastAccessMs, policy, nowMs)) {
        v.entries.delete(k);
        dropped = true;
      }
    }
    return v.entries.size === 0 ? "all" : dropped ? "some" : "none";
  }
  const alive = v.items.filter((s) => !isExpired(s.lastAccessMs, policy, nowMs));
  if (alive.length === 0) return "all";
  if (alive.length === v.items.length) return "none";
  v.items = alive;
  return "some";
}

/** Map entries or list elements a cleanup step looks at for one live entry (its cost). */
export function liveSize(v: TtlLive): number {
  return v instanceof Stamped ? 1 : v instanceof TtlMap ? v.entries.size : v.items.length;
}

/**
 * The unexpired part of a live TTL entry, without changing it (what a full
 * snapshot keeps): the entry itself when nothing expired, a filtered copy
 * when part did, undefined when all did.
 */
export function unexpiredLive(v: TtlLive, policy: TtlPolicy, nowMs: number): TtlLive | undefined {
  if (v instanceof Stamped) return isExpired(v.lastAccessMs, policy, nowMs) ? undefined : v;
  if (v instanceof TtlMap) {
    let kept: Map<string, Stamped> | undefined;
    for (const [k, s] of v.entries) {
      if (!isExpired(s.lastAccessMs, policy, nowMs)) {
        if (kept) kept.set(k, s);
        continue;
      }
      if (!kept) {
        kept = new Map();
        for (const [k2, s2] of v.entries) {
          if (k2 === k) break;
          kept.set(k2, s2);
        }
      }
    }
    if (!kept) return v;
    return kept.size === 0 ? undefined : new TtlMap(kept);
  }
  const alive = v.items.filter((s) => !isExpired(s.lastAccessMs, policy, nowMs));
  if (alive.length === v.items.length) return v;
  return alive.length === 0 ? undefined : new TtlList(alive);
}

/** The unexpired part of a persisted TTL entry (an untouched key of the local image, in a full snapshot), or undefined. */
export function unexpiredPersisted(kind: TtlKind, value: unknown, policy: TtlPolicy, nowMs: number): unknown {
  const parsed = ttlFromPersisted(kind, value);
  const live = unexpiredLive(parsed, policy, nowMs);
  return live === undefined ? undefined : live === parsed ? value : ttlToPersisted(live);
}
