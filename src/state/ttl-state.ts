/**
 * The accessors of keyed state with a TTL (Flink's TtlValueState,
 * TtlMapState, TtlListState), over a {@link TtlCell}: the current key's
 * entry of one state, in its live TTL form (src/state/ttl.ts).
 *
 * Every access first lets the backend clean up a few entries of other keys
 * (Flink's incremental cleanup), then reads or writes the current key's
 * entry. A write stamps what it writes with the clock's time; a read under
 * OnReadAndWrite stamps again what it read. A read that meets an expired
 * entry removes it, and returns it only under ReturnExpiredIfNotCleanedUp.
 */
import type { ListState, MapState, ValueState } from "../api/state.js";
import { isExpired, Stamped, TtlList, TtlMap, type TtlPolicy } from "./ttl.js";

/** The current key's entry of one state with a TTL, as the backend hands it to the accessors. */
export interface TtlCell {
  /** The entry in its live TTL form, or undefined. */
  get(): unknown;
  /** Stores a new entry for the current key (replacing any). */
  set(v: Stamped | TtlMap | TtlList): void;
  /** The entry `get` returned was changed in place. */
  changed(v: TtlMap | TtlList): void;
  /** Removes the current key's entry. */
  clear(): void;
  /** The subtask's clock (processing time). */
  now(): number;
  /** An access: the backend cleans up a few entries of other keys. */
  accessed(): void;
}

/** A value state with a TTL: one timestamp per key. */
export function ttlValueState<T>(cell: TtlCell, policy: TtlPolicy, name: string): ValueState<T> {
  return {
    value: () => {
      cell.accessed();
      const s = cell.get() as Stamped | undefined;
      if (s === undefined) return undefined;
      const now = cell.now();
      if (isExpired(s.lastAccessMs, policy, now)) {
        cell.clear();
        return policy.returnExpired ? (s.value as T) : undefined;
      }
      if (policy.updateOnRead && s.lastAccessMs !== now) cell.set(new Stamped(s.value, now));
      return s.value as T;
    },
    update: (v) => {
      if (v === undefined) throw new TypeError(`ValueState "${name}": update(undefined); use clear()`);
      cell.accessed();
      cell.set(new Stamped(v, cell.now()));
    },
    clear: () => {
      cell.accessed();
      cell.clear();
    },
  };
}

/** A map state with a TTL: one timestamp per map entry. */
export function ttlMapState<V>(cell: TtlCell, policy: TtlPolicy): MapState<V> {
  const current = () => cell.get() as TtlMap | undefined;
  /** After entries of `m` were removed: the key's entry goes when the map is empty. */
  const shrunk = (m: TtlMap) => (m.entries.size === 0 ? cell.clear() : cell.changed(m));
  /** The entry of map key `k` as a read sees it (expired: removed, and returned only when the visibility says so). */
  const lookup = (k: string): Stamped | undefined => {
    const m = current();
    const s = m?.entries.get(k);
    if (m === undefined || s === undefined) return undefined;
    const now = cell.now();
    if (isExpired(s.lastAccessMs, policy, now)) {
      m.entries.delete(k);
      shrunk(m);
      return policy.returnExpired ? s : undefined;
    }
    if (policy.updateOnRead && s.lastAccessMs !== now) {
      m.entries.set(k, new Stamped(s.value, now));
      cell.changed(m);
    }
    return s;
  };
  /** Every entry a read sees, expired ones removed (and listed only when the visibility says so), read ones refreshed when reads update. */
  const visit = (): [string, V][] => {
    cell.accessed();
    const m = current();
    if (m === undefined) return [];
    const now = cell.now();
    const out: [string, V][] = [];
    let removed = false;
    let refreshed = false;
    for (const [k, s] of m.entries) {
      if (isExpired(s.lastAccessMs, policy, now)) {
        m.entries.delete(k);
        removed = true;
        if (policy.returnExpired) out.push([k, s.value as V]);
        continue;
      }
      if (policy.updateOnRead && s.lastAccessMs !== now) {
        m.entries.set(k, new Stamped(s.value, now));
        refreshed = true;
      }
      out.push([k, s.value as V]);
    }
    if (removed) shrunk(m);
    else if (refreshed) cell.changed(m);
    return out;
  };
  return {
    get: (k) => {
      cell.accessed();
      return lookup(k)?.value as V | undefined;
    },
    contains: (k) => {
      cell.accessed();
      return lookup(k) !== undefined;
    },
    put: (k, v) => {
      cell.accessed();
      const s = new Stamped(v, cell.now());
      const m = current();
      if (m === undefined) cell.set(new TtlMap(new Map([[k, s]])));
      else {
        m.entries.set(k, s);
        cell.changed(m);
      }
    },
    remove: (k) => {
      cell.accessed();
      const m = current();
      if (m?.entries.delete(k)) shrunk(m);
    },
    entries: () => visit(),
    keys: () => visit().map(([k]) => k),
    values: () => visit().map(([, v]) => v),
    // Reads no value, so refreshes nothing; expired entries are removed on the way.
    isEmpty: () => {
      cell.accessed();
      const m = current();
      if (m === undefined) return true;
      const now = cell.now();
      let alive = false;
      let removed = false;
      for (const [k, s] of m.entries) {
        if (isExpired(s.lastAccessMs, policy, now)) {
          m.entries.delete(k);
          removed = true;
        } else alive = true;
      }
      if (removed) shrunk(m);
      return !alive;
    },
    clear: () => {
      cell.accessed();
      cell.clear();
    },
  };
}

/** A list state with a TTL: one timestamp per element (as Flink's TtlListState). */
export function ttlListState<T>(cell: TtlCell, policy: TtlPolicy): ListState<T> {
  const current = () => cell.get() as TtlList | undefined;
  const append = (values: readonly T[]) => {
    cell.accessed();
    const now = cell.now();
    const stamped = values.map((v) => new Stamped(v, now));
    const l = current();
    if (l === undefined) cell.set(new TtlList(stamped));
    else {
      for (const s of stamped) l.items.push(s);
      cell.changed(l);
    }
  };
  return {
    get: () => {
      cell.accessed();
      const l = current();
      if (l === undefined) return [];
      const now = cell.now();
      const out: T[] = [];
      const alive: Stamped[] = [];
      let changed = false;
      for (const s of l.items) {
        if (isExpired(s.lastAccessMs, policy, now)) {
          changed = true;
          if (policy.returnExpired) out.push(s.value as T);
          continue;
        }
        if (policy.updateOnRead && s.lastAccessMs !== now) {
          alive.push(new Stamped(s.value, now));
          changed = true;
        } else alive.push(s);
        out.push(s.value as T);
      }
      if (changed) {
        if (alive.length === 0) cell.clear();
        else {
          l.items = alive;
          cell.changed(l);
        }
      }
      return out;
    },
    add: (v) => append([v]),
    addAll: (vs) => {
      if (vs.length > 0) append(vs);
    },
    update: (vs) => {
      cell.accessed();
      if (vs.length === 0) cell.clear();
      else {
        const now = cell.now();
        cell.set(new TtlList(vs.map((v) => new Stamped(v, now))));
      }
    },
    clear: () => {
      cell.accessed();
      cell.clear();
    },
  };
}
