/**
 * The heap keyed-state backend: the working set of every keyed state lives
 * in JS maps (millions of updates per second), and what changed since the
 * last snapshot is tracked so that it can be captured at the barrier and
 * written back to the subtask's SQLite image.
 *
 * After a local restore the maps start empty over a {@link StateBacking}
 * (the image): a key is read from it on first access and cached. Restoring
 * is then O(1) instead of O(state), so a restarted job processes its first
 * record at once; keys no one touches stay on disk.
 *
 * Timers are keyed state too (entries of kind "timer", see
 * `timer-queue.ts`): per operator and time domain, a {@link TimerQueue}
 * over the key's sorted timestamps. They are always in memory: a restore
 * reads every timer entry (from a backing, only those) and rebuilds the
 * queues, since firing needs the earliest timer of all keys.
 */
import type {
  ListState,
  ListStateDescriptor,
  MapState,
  MapStateDescriptor,
  StateDescriptor,
  ValueState,
  ValueStateDescriptor,
} from "../api/state.js";
import { type Key, type KeyGroupRange, hashKey, inRange, keyText } from "../graph/key-groups.js";
import type { EncodedEntry } from "./snapshot-format.js";
import { checkStateEntry, displayKey, stringEntryMayBeTooLarge } from "./state-limits.js";
import { HeapTimerQueue, type TimeDomain, type TimerQueue, timerStateName } from "./timer-queue.js";

/** One key's value of one state, as persisted. `value` undefined means deleted. */
export interface StateEntry {
  readonly state: string;
  readonly kind: EntryKind;
  readonly key: string;
  readonly keyGroup: number;
  readonly value: unknown;
}

/** What an entry holds: a user state's value, map or list, or a key's timers (sorted timestamps) in one time domain. */
export type EntryKind = StateDescriptor["kind"] | "timer";

type Kind = EntryKind;

/**
 * Every entry of a backend as it was when {@link KeyedStateBackend.capture}
 * was called, to be serialized later while the live state changes.
 */
export interface StateCapture {
  /** Number of entries. */
  readonly count: number;
  /**
   * Calls `fn` for the entries from `start` (0-based) up to `end`
   * (exclusive), in capture order, with each value's JSON.
   */
  forEach(start: number, end: number, fn: (state: string, kind: Kind, key: string, keyGroup: number, valueJson: string) => void): void;
}

/**
 * The entries changed since the previous capture, as they were when
 * {@link KeyedStateBackend.captureChanges} was called, to be encoded later.
 */
export interface ChangeCapture {
  /** Number of changed entries (deletions included). */
  readonly count: number;
  /** Entries from `start` (0-based) up to `end` (exclusive), each value's JSON computed now (null: deleted). */
  encode(start: number, end: number): EncodedEntry[];
}

/** Persisted state read on demand (the local image). Values are in persisted form. */
export interface StateBacking {
  /** The persisted value of `key` (whose key group is `keyGroup`) in `state`. */
  get(state: string, key: string, keyGroup: number): { kind: Kind; value: unknown } | undefined;
  /** Every persisted entry. */
  entries(): Iterable<{ state: string; key: string; kind: Kind; value: unknown }>;
  /** Every persisted timer entry (kind "timer"), without reading the others: a restore loads all timers at once. */
  timers(): Iterable<{ state: string; key: string; value: unknown }>;
  count(): number;
}

/** Keyed state of one operator in one subtask. */
export class KeyedStateBackend {
  private readonly tables = new Map<string, Map<string, unknown>>();
  private readonly kinds = new Map<string, Kind>();
  /**
   * Per state, the keys changed since the last capture with their live
   * value (undefined: deleted). Keeping the value spares a capture one
   * lookup per key in a large table.
   */
  private readonly dirty = new Map<string, Map<string, unknown>>();
  private keyTextNow = "";
  private keyNow: Key = "";
  private backing: StateBacking | undefined;
  /** Keys of the backing deleted since it was attached (the image may still hold them). */
  private readonly deleted = new Set<string>();
  /** Number of keys with state, over all states, while a backing is attached. */
  private count = 0;
  /** Each declared state's table, changes and accessor, found with one lookup per record. */
  private readonly slots = new Map<string, Slot>();
  /** The timer queue of each time domain, once asked for. */
  private readonly timerQueues = new Map<TimeDomain, HeapTimerQueue>();

  constructor(
    private readonly maxParallelism: number,
    private readonly operatorLabel: string,
  ) {}

  /** Sets the key that state accessors read and write. */
  setCurrentKey(key: Key): void {
    this.keyNow = key;
    this.keyTextNow = keyText(key);
  }

  get currentKey(): Key {
    return this.keyNow;
  }

  /** The canonical text of the current key (what state and timers are stored under). */
  get currentKeyText(): string {
    return this.keyTextNow;
  }

  getState<T>(d: ValueStateDescriptor<T>): ValueState<T> {
    const slot = this.slot(d.name, "value");
    if (slot.accessor) return slot.accessor as ValueState<T>;
    const accessor: ValueState<T> = {
      value: () => this.read(slot) as T | undefined,
      update: (v) => {
        if (v === undefined) throw new TypeError(`ValueState "${d.name}": update(undefined); use clear()`);
        this.write(slot, v);
      },
      clear: () => this.remove(slot),
    };
    slot.accessor = accessor;
    return accessor;
  }

  getMapState<V>(d: MapStateDescriptor<V>): MapState<V> {
    const slot = this.slot(d.name, "map");
    if (slot.accessor) return slot.accessor as MapState<V>;
    const read = () => this.read(slot) as Map<string, V> | undefined;
    const write = () => {
      let m = read();
      if (!m) this.write(slot, (m = new Map()));
      else this.touch(slot, m);
      return m;
    };
    const accessor: MapState<V> = {
      get: (k) => read()?.get(k),
      put: (k, v) => void write().set(k, v),
      remove: (k) => {
        const m = read();
        if (m?.delete(k)) {
          if (m.size === 0) this.remove(slot);
          else this.touch(slot, m);
        }
      },
      contains: (k) => read()?.has(k) ?? false,
      entries: () => [...(read()?.entries() ?? [])],
      keys: () => [...(read()?.keys() ?? [])],
      values: () => [...(read()?.values() ?? [])],
      isEmpty: () => (read()?.size ?? 0) === 0,
      clear: () => this.remove(slot),
    };
    slot.accessor = accessor;
    return accessor;
  }

  getListState<T>(d: ListStateDescriptor<T>): ListState<T> {
    const slot = this.slot(d.name, "list");
    if (slot.accessor) return slot.accessor as ListState<T>;
    const read = () => this.read(slot) as T[] | undefined;
    const accessor: ListState<T> = {
      get: () => [...(read() ?? [])],
      add: (v) => {
        const l = read();
        if (l) {
          l.push(v);
          this.touch(slot, l);
        } else this.write(slot, [v]);
      },
      addAll: (vs) => {
        if (vs.length === 0) return;
        const l = read();
        if (l) {
          l.push(...vs);
          this.touch(slot, l);
        } else this.write(slot, [...vs]);
      },
      update: (vs) => {
        if (vs.length === 0) this.remove(slot);
        else this.write(slot, [...vs]);
      },
      clear: () => this.remove(slot),
    };
    slot.accessor = accessor;
    return accessor;
  }

  /** Whether anything changed since the last {@link takeDirty}. */
  hasDirty(): boolean {
    for (const s of this.dirty.values()) if (s.size > 0) return true;
    return false;
  }

  /** The entries changed since the last call, in persistable form; clears the dirty marks. */
  takeDirty(): StateEntry[] {
    const out: StateEntry[] = [];
    for (const [state, changed] of this.dirty) {
      for (const [key, v] of changed) out.push(this.entry(state, key, v));
      changed.clear();
    }
    return out;
  }

  /**
   * What changed since the last call (or {@link takeDirty}), cheap enough to
   * take at a barrier: it clears the dirty marks and keeps values as
   * {@link capture} does, so that serializing them can wait. With `owned`,
   * encoding throws for a key outside those key groups (see {@link capture}).
   */
  captureChanges(owned?: KeyGroupRange): ChangeCapture {
    const tables: CapturedTable[] = [];
    let count = 0;
    for (const [state, changed] of this.dirty) {
      if (changed.size === 0) continue;
      const captured = captureTable(this.operatorLabel, state, this.kinds.get(state)!, changed);
      changed.clear();
      tables.push(captured);
      count += captured.keys.length;
    }
    const keyGroupOf = ownedKeyGroup(this.operatorLabel, this.maxParallelism, owned);
    return {
      count,
      encode(start, end) {
        const out: EncodedEntry[] = [];
        forRange(tables, start, end, (t, i) => {
          const v = t.values[i];
          const key = t.keys[i];
          out.push({ entry: { state: t.state, kind: t.kind, key, keyGroup: keyGroupOf(t.state, key) }, valueJson: v === undefined ? null : thaw(v) });
        });
        return out;
      },
    };
  }

  /** Every entry, in persistable form (the backing's untouched keys included). */
  allEntries(): StateEntry[] {
    const out: StateEntry[] = [];
    for (const [state, table] of this.tables) for (const [key, v] of table) out.push(this.entry(state, key, v));
    if (this.backing) {
      for (const e of this.backing.entries()) {
        if (this.tables.get(e.state)?.has(e.key) || this.deleted.has(id(e.state, e.key))) continue;
        out.push({ state: e.state, kind: e.kind, key: e.key, keyGroup: keyGroupOfText(e.key, this.maxParallelism), value: e.value });
      }
    }
    return out;
  }

  /**
   * A consistent copy of every entry (the backing's untouched keys
   * included), cheap enough to take at a barrier: values that cannot change
   * in place (numbers, strings, booleans, null) are kept by reference and
   * serialized later; objects, maps and lists, which user code may mutate
   * in place, are serialized now. An entry too large for a row of the
   * image throws a `StateTooLargeError` here, at the barrier.
   *
   * With `owned` (the subtask's key groups), serializing throws for a key
   * outside them: a record whose key changed across a batch's JSON round
   * trip reached a subtask that does not own it, and its state must not be
   * checkpointed where no restore or rescale would look for it. The key
   * group is computed there anyway, so the check costs one comparison.
   */
  capture(owned?: KeyGroupRange): StateCapture {
    const tables: CapturedTable[] = [];
    let count = 0;
    for (const [state, table] of this.tables) {
      if (table.size === 0) continue;
      const captured = captureTable(this.operatorLabel, state, this.kinds.get(state)!, table);
      tables.push(captured);
      count += captured.keys.length;
    }
    if (this.backing) {
      // The image changes while write-backs run, so its untouched keys are read now.
      const byState = new Map<string, CapturedTable>();
      for (const e of this.backing.entries()) {
        if (this.tables.get(e.state)?.has(e.key) || this.deleted.has(id(e.state, e.key))) continue;
        let t = byState.get(e.state);
        if (!t) byState.set(e.state, (t = { state: e.state, kind: e.kind, keys: [], values: [] }));
        t.keys.push(e.key);
        t.values.push(new Serialized(JSON.stringify(e.value)));
        count++;
      }
      tables.push(...byState.values());
    }
    const keyGroupOf = ownedKeyGroup(this.operatorLabel, this.maxParallelism, owned);
    return {
      count,
      forEach(start, end, fn) {
        forRange(tables, start, end, (t, i) => fn(t.state, t.kind, t.keys[i], keyGroupOf(t.state, t.keys[i]), thaw(t.values[i])));
      },
    };
  }

  /** Replaces the working set with persisted entries. */
  load(entries: Iterable<{ state: string; key: string; kind: Kind; value: unknown }>): void {
    this.reset();
    for (const e of entries) {
      this.slot(e.state, e.kind).table.set(e.key, fromPersisted(e.kind, e.value));
    }
    this.rebuildTimers();
  }

  /** Replaces the working set with a backing read on demand. */
  attach(backing: StateBacking): void {
    this.reset();
    this.backing = backing;
    this.count = backing.count();
    // Timers are always in memory (firing needs the earliest of all keys): read them now, and only them.
    for (const e of backing.timers()) this.slot(e.state, "timer").table.set(e.key, e.value);
    this.rebuildTimers();
  }

  /**
   * Calls `fn` with every key's value of state `name` (a map state's as a
   * Map), the backing's untouched keys included, without caching them: one
   * pass over the state, for a gauge that an operator counts once after a
   * restore and then keeps up to date itself.
   */
  forEachValue(name: string, fn: (value: unknown) => void): void {
    const table = this.tables.get(name);
    if (table) for (const v of table.values()) fn(v);
    if (!this.backing) return;
    for (const e of this.backing.entries()) {
      if (e.state !== name || table?.has(e.key) || this.deleted.has(id(name, e.key))) continue;
      fn(fromPersisted(e.kind, e.value));
    }
  }

  /** Number of keys with state, over all states. */
  size(): number {
    if (this.backing) return this.count;
    let n = 0;
    for (const t of this.tables.values()) n += t.size;
    return n;
  }

  // ---- timers: keyed state of kind "timer", indexed by a queue per time domain ----

  /**
   * The timers of this operator in `domain`, keyed by the canonical key
   * text. Registering, deleting and polling change the key's timer entry,
   * which is then tracked as changed like any state.
   */
  timers(domain: TimeDomain): TimerQueue {
    let q = this.timerQueues.get(domain);
    if (!q) {
      const slot = this.slot(timerStateName(domain), "timer");
      q = new HeapTimerQueue({
        get: (key) => slot.table.get(key) as number[] | undefined,
        set: (key, timestamps) => this.setTimers(slot, key, timestamps),
        all: () => slot.table.entries() as Iterable<[string, number[]]>,
      });
      this.timerQueues.set(domain, q);
    }
    return q;
  }

  /** Number of timers pending, over both time domains. */
  timerCount(): number {
    let n = 0;
    for (const q of this.timerQueues.values()) n += q.size();
    return n;
  }

  /** Writes the timers of `key` in a timer slot; their entries are all in memory, so no backing is read. */
  private setTimers(slot: Slot, key: string, timestamps: number[] | undefined): void {
    const had = slot.table.has(key);
    if (timestamps === undefined) {
      if (!had) return;
      slot.table.delete(key);
      if (this.backing) {
        this.count--;
        this.deleted.add(id(slot.name, key));
      }
    } else {
      if (!had && this.backing) {
        this.count++;
        this.deleted.delete(id(slot.name, key));
      }
      slot.table.set(key, timestamps);
    }
    slot.changed.set(key, timestamps);
  }

  /** The queues index the timer entries again (after a restore replaced them). */
  private rebuildTimers(): void {
    for (const q of this.timerQueues.values()) q.rebuild();
  }

  /** Kind of a named state, once declared. */
  kindOf(state: string): Kind | undefined {
    return this.kinds.get(state);
  }

  private reset(): void {
    // Cleared in place: accessors handed out before keep pointing at the live maps.
    for (const t of this.tables.values()) t.clear();
    for (const d of this.dirty.values()) d.clear();
    this.deleted.clear();
    this.backing = undefined;
    this.count = 0;
  }

  /** The current key's value, from memory or, on a miss, from the backing (then cached). */
  private read(slot: Slot): unknown {
    const v = slot.table.get(this.keyTextNow);
    if (v !== undefined || !this.backing) return v;
    if (this.deleted.has(id(slot.name, this.keyTextNow))) return undefined;
    const persisted = this.backing.get(slot.name, this.keyTextNow, keyGroupOfText(this.keyTextNow, this.maxParallelism));
    if (persisted === undefined) return undefined;
    const value = fromPersisted(persisted.kind, persisted.value);
    slot.table.set(this.keyTextNow, value);
    return value;
  }

  private write(slot: Slot, value: unknown): void {
    if (this.backing && this.read(slot) === undefined) {
      this.count++;
      this.deleted.delete(id(slot.name, this.keyTextNow));
    }
    slot.table.set(this.keyTextNow, value);
    this.touch(slot, value);
  }

  private remove(slot: Slot): void {
    if (this.read(slot) === undefined) return;
    slot.table.delete(this.keyTextNow);
    if (this.backing) {
      this.count--;
      this.deleted.add(id(slot.name, this.keyTextNow));
    }
    this.touch(slot, undefined);
  }

  private entry(state: string, key: string, value: unknown): StateEntry {
    return {
      state,
      kind: this.kinds.get(state)!,
      key,
      keyGroup: keyGroupOfText(key, this.maxParallelism),
      value: value === undefined ? undefined : toPersisted(this.kinds.get(state)!, value),
    };
  }

  /** The slot of state `name`, declared as `kind` on first use. */
  private slot(name: string, kind: Kind): Slot {
    let slot = this.slots.get(name);
    if (slot !== undefined) {
      if (slot.kind !== kind) throw new TypeError(`operator "${this.operatorLabel}": state "${name}" is ${slot.kind} state, not ${kind} state`);
      return slot;
    }
    slot = { name, kind, table: new Map(), changed: new Map(), accessor: undefined };
    this.slots.set(name, slot);
    this.kinds.set(name, kind);
    this.tables.set(name, slot.table);
    this.dirty.set(name, slot.changed);
    return slot;
  }

  /** Marks the current key of a state changed; `value` is what its table now holds. */
  private touch(slot: Slot, value: unknown): void {
    slot.changed.set(this.keyTextNow, value);
  }
}

/** One declared state: its table, its changes since the last capture, and the accessor handed out for it. */
interface Slot {
  readonly name: string;
  readonly kind: Kind;
  readonly table: Map<string, unknown>;
  /** Keys changed since the last capture, with their live value (undefined: deleted). */
  readonly changed: Map<string, unknown>;
  /**
   * The accessor handed out. It reads the current key when called, so one
   * serves every record: a process function that calls `getState` per
   * record allocates nothing.
   */
  accessor: ValueState<unknown> | MapState<unknown> | ListState<unknown> | undefined;
}

/** One state's entries in a {@link StateCapture}: values, or their JSON when taken as {@link Serialized}. */
interface CapturedTable {
  readonly state: string;
  readonly kind: Kind;
  readonly keys: string[];
  readonly values: unknown[];
}

/** Whether a value cannot change after it was stored (so a reference to it is a copy). */
function isImmutable(v: unknown): boolean {
  return v === null || typeof v === "number" || typeof v === "string" || typeof v === "boolean";
}

/** A live value as captured: itself when immutable, else its JSON now (user code may mutate it in place). */
function freeze(kind: Kind, v: unknown): unknown {
  return kind === "value" && isImmutable(v) ? v : new Serialized(JSON.stringify(toPersisted(kind, v)));
}

/**
 * One state's entries captured at a barrier; an undefined value (a deletion
 * among changes) stays undefined. Each value is checked against the size of
 * an image row where its JSON is first made: now for serialized values, and
 * now too for a string long enough to matter (numbers, booleans and null
 * are small).
 */
function captureTable(operator: string, state: string, kind: Kind, entries: ReadonlyMap<string, unknown>): CapturedTable {
  const t: CapturedTable = { state, kind, keys: [], values: [] };
  for (const [key, v] of entries) {
    t.keys.push(key);
    if (v === undefined) {
      t.values.push(undefined);
      continue;
    }
    const frozen = freeze(kind, v);
    t.values.push(frozen);
    if (frozen instanceof Serialized) checkStateEntry(operator, state, key, frozen.json);
    else if (typeof frozen === "string") {
      if (stringEntryMayBeTooLarge(state, key, frozen)) checkStateEntry(operator, state, key, JSON.stringify(frozen));
    }
    // A number, a boolean or null: at most 24 characters of JSON, within the bytes a row keeps aside; only a huge key matters.
    else checkStateEntry(operator, state, key, "");
  }
  return t;
}

/**
 * The key group of a captured key, checked against the key groups the
 * subtask owns (when given).
 */
function ownedKeyGroup(operator: string, maxParallelism: number, owned: KeyGroupRange | undefined): (state: string, key: string) => number {
  if (!owned) return (_state, key) => keyGroupOfText(key, maxParallelism);
  return (state, key) => {
    const keyGroup = keyGroupOfText(key, maxParallelism);
    if (!inRange(owned, keyGroup)) throw new KeyNotOwnedError(operator, state, key, keyGroup, owned);
    return keyGroup;
  };
}

/**
 * Keyed state under a key this subtask does not own: the record that wrote
 * it was routed by another key than the one computed here (a key selector
 * whose key changes across the JSON round trip of a batch).
 */
export class KeyNotOwnedError extends Error {
  constructor(
    readonly operator: string,
    readonly state: string,
    keyText: string,
    readonly keyGroup: number,
    readonly owned: KeyGroupRange,
  ) {
    super(
      `operator ${JSON.stringify(operator)}: state ${JSON.stringify(state)} has key ${displayKey(keyText)} in key group ${keyGroup}, ` +
        `but this subtask owns key groups ${owned.start}..${owned.end}, so a restore or a rescale would not find it. ` +
        `The key selector gave this subtask another key than the sender routed the record by: a key must come out of the JSON round trip ` +
        `of a batch as it went in (key by a string or number field, not by a Date, a Map, a class instance or an object with toJSON)`,
    );
    this.name = "KeyNotOwnedError";
  }
}

/** The JSON of a captured value. */
function thaw(v: unknown): string {
  return v instanceof Serialized ? v.json : JSON.stringify(v);
}

/** Calls `fn` for the captured entries from `start` up to `end` (exclusive), across tables in order. */
function forRange(tables: readonly CapturedTable[], start: number, end: number, fn: (t: CapturedTable, i: number) => void): void {
  let offset = 0;
  for (const t of tables) {
    const from = Math.max(start - offset, 0);
    const to = Math.min(end - offset, t.keys.length);
    for (let i = from; i < to; i++) fn(t, i);
    offset += t.keys.length;
    if (offset >= end) return;
  }
}

/** A value serialized when it was captured. */
class Serialized {
  constructor(readonly json: string) {}
}

function id(state: string, key: string): string {
  return `${state}\u0000${key}`;
}

/** Key group of a key given by its canonical text. */
export function keyGroupOfText(text: string, maxParallelism: number): number {
  // keyText(key) is what hashKey hashes, so a string key's text hashes the same.
  return hashKey(text) % maxParallelism;
}

/** The key whose canonical text is `text` (the inverse of `keyText`): a timer is stored under the text and fires with the key. */
export function keyFromText(text: string): Key {
  return text.startsWith("\u0000n") ? Number(text.slice(2)) : text;
}

function toPersisted(kind: Kind, value: unknown): unknown {
  return kind === "map" ? [...(value as Map<string, unknown>)] : value;
}

function fromPersisted(kind: Kind, value: unknown): unknown {
  return kind === "map" ? new Map(value as [string, unknown][]) : value;
}
