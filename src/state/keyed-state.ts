/**
 * The heap keyed-state backend: the working set of every keyed state lives
 * in JS maps (millions of updates per second), and what changed since the
 * last write-back is tracked so that it can be persisted in one synchronous
 * turn (to the subtask's SQLite image, and later into snapshots).
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
import { type Key, hashKey, keyText } from "../graph/key-groups.js";

/** One key's value of one state, as persisted. `value` undefined means deleted. */
export interface StateEntry {
  readonly state: string;
  readonly kind: "value" | "map" | "list";
  readonly key: string;
  readonly keyGroup: number;
  readonly value: unknown;
}

type Kind = StateDescriptor["kind"];

/** Keyed state of one operator in one subtask. */
export class KeyedStateBackend {
  private readonly tables = new Map<string, Map<string, unknown>>();
  private readonly kinds = new Map<string, Kind>();
  private readonly dirty = new Map<string, Set<string>>();
  private keyTextNow = "";
  private keyNow: Key = "";

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

  getState<T>(d: ValueStateDescriptor<T>): ValueState<T> {
    const table = this.table(d.name, "value");
    return {
      value: () => table.get(this.keyTextNow) as T | undefined,
      update: (v) => {
        if (v === undefined) throw new TypeError(`ValueState "${d.name}": update(undefined); use clear()`);
        table.set(this.keyTextNow, v);
        this.touch(d.name);
      },
      clear: () => {
        if (table.delete(this.keyTextNow)) this.touch(d.name);
      },
    };
  }

  getMapState<V>(d: MapStateDescriptor<V>): MapState<V> {
    const table = this.table(d.name, "map");
    const read = () => table.get(this.keyTextNow) as Map<string, V> | undefined;
    const write = () => {
      let m = read();
      if (!m) table.set(this.keyTextNow, (m = new Map()));
      this.touch(d.name);
      return m;
    };
    return {
      get: (k) => read()?.get(k),
      put: (k, v) => void write().set(k, v),
      remove: (k) => {
        const m = read();
        if (m?.delete(k)) {
          if (m.size === 0) table.delete(this.keyTextNow);
          this.touch(d.name);
        }
      },
      contains: (k) => read()?.has(k) ?? false,
      entries: () => [...(read()?.entries() ?? [])],
      keys: () => [...(read()?.keys() ?? [])],
      values: () => [...(read()?.values() ?? [])],
      isEmpty: () => (read()?.size ?? 0) === 0,
      clear: () => {
        if (table.delete(this.keyTextNow)) this.touch(d.name);
      },
    };
  }

  getListState<T>(d: ListStateDescriptor<T>): ListState<T> {
    const table = this.table(d.name, "list");
    const read = () => table.get(this.keyTextNow) as T[] | undefined;
    return {
      get: () => [...(read() ?? [])],
      add: (v) => {
        const l = read();
        if (l) l.push(v);
        else table.set(this.keyTextNow, [v]);
        this.touch(d.name);
      },
      addAll: (vs) => {
        if (vs.length === 0) return;
        const l = read();
        if (l) l.push(...vs);
        else table.set(this.keyTextNow, [...vs]);
        this.touch(d.name);
      },
      update: (vs) => {
        if (vs.length === 0) table.delete(this.keyTextNow);
        else table.set(this.keyTextNow, [...vs]);
        this.touch(d.name);
      },
      clear: () => {
        if (table.delete(this.keyTextNow)) this.touch(d.name);
      },
    };
  }

  /** Whether anything changed since the last {@link takeDirty}. */
  hasDirty(): boolean {
    for (const s of this.dirty.values()) if (s.size > 0) return true;
    return false;
  }

  /** The entries changed since the last call, in persistable form; clears the dirty marks. */
  takeDirty(): StateEntry[] {
    const out: StateEntry[] = [];
    for (const [state, keys] of this.dirty) {
      const table = this.tables.get(state)!;
      for (const key of keys) out.push(this.entry(state, key, table.get(key)));
      keys.clear();
    }
    return out;
  }

  /** Every entry, in persistable form. */
  allEntries(): StateEntry[] {
    const out: StateEntry[] = [];
    for (const [state, table] of this.tables) for (const [key, v] of table) out.push(this.entry(state, key, v));
    return out;
  }

  /** Replaces the working set with persisted entries. */
  load(entries: Iterable<{ state: string; key: string; kind: Kind; value: unknown }>): void {
    // Cleared in place: accessors handed out before keep pointing at the live maps.
    for (const t of this.tables.values()) t.clear();
    for (const d of this.dirty.values()) d.clear();
    for (const e of entries) {
      const table = this.table(e.state, e.kind);
      table.set(e.key, fromPersisted(e.kind, e.value));
    }
  }

  /** Number of keys with state, over all states. */
  size(): number {
    let n = 0;
    for (const t of this.tables.values()) n += t.size;
    return n;
  }

  /** Kind of a named state, once declared. */
  kindOf(state: string): Kind | undefined {
    return this.kinds.get(state);
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

  private table(name: string, kind: Kind): Map<string, unknown> {
    const known = this.kinds.get(name);
    if (known !== undefined && known !== kind) {
      throw new TypeError(`operator "${this.operatorLabel}": state "${name}" is ${known} state, not ${kind} state`);
    }
    let t = this.tables.get(name);
    if (!t) {
      this.kinds.set(name, kind);
      this.tables.set(name, (t = new Map()));
      this.dirty.set(name, new Set());
    }
    return t;
  }

  private touch(state: string): void {
    this.dirty.get(state)!.add(this.keyTextNow);
  }
}

/** Key group of a key given by its canonical text. */
export function keyGroupOfText(text: string, maxParallelism: number): number {
  // keyText(key) is what hashKey hashes, so a string key's text hashes the same.
  return hashKey(text) % maxParallelism;
}

function toPersisted(kind: Kind, value: unknown): unknown {
  return kind === "map" ? [...(value as Map<string, unknown>)] : value;
}

function fromPersisted(kind: Kind, value: unknown): unknown {
  return kind === "map" ? new Map(value as [string, unknown][]) : value;
}
