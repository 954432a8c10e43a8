/**
 * Broadcast state (Flink's BroadcastState): map states that a broadcast
 * stream writes in every subtask of one operator alike, and that the
 * operator's other input reads. Not keyed, held in memory, and small by
 * contract (rules, configuration, feature flags): a checkpoint copies it
 * whole into its metadata, once per operator (docs/joins.md, "Broadcast
 * state").
 *
 * Every subtask sees every broadcast record, but records from several
 * broadcast senders may interleave differently in each: updates must not
 * depend on that order (as in Flink), so that at an aligned barrier every
 * subtask holds the same state and one copy restores them all.
 */
import type { MapStateDescriptor } from "../api/state.js";

/** The read side of one broadcast state: what the non-broadcast input sees. */
export interface ReadOnlyBroadcastState<V> {
  get(key: string): V | undefined;
  contains(key: string): boolean;
  entries(): [string, V][];
  keys(): string[];
  values(): V[];
  isEmpty(): boolean;
  size(): number;
}

/** One broadcast state as the broadcast input sees it: readable and writable. */
export interface BroadcastState<V> extends ReadOnlyBroadcastState<V> {
  put(key: string, value: V): void;
  remove(key: string): void;
  clear(): void;
}

/** Every broadcast state of an operator as a checkpoint keeps it: per state name, its entries. */
export type BroadcastSnapshot = Readonly<Record<string, readonly (readonly [string, unknown])[]>>;

/**
 * The most a checkpoint carries of one operator's broadcast state, as JSON.
 * It goes into the checkpoint's metadata (one SQLite row, one R2 object read
 * by every restoring subtask): a larger one fails the job, naming it.
 */
export const BROADCAST_STATE_MAX_BYTES = 1024 * 1024;

/** A broadcast state grew past {@link BROADCAST_STATE_MAX_BYTES}. */
export class BroadcastStateTooLargeError extends Error {
  constructor(operator: string, bytes: number) {
    super(
      `operator "${operator}": its broadcast state holds ${bytes} bytes as JSON, more than ${BROADCAST_STATE_MAX_BYTES}: ` +
        `broadcast state is copied whole into every checkpoint's metadata and into every subtask; keep large lookup data in keyed state or an external store (async I/O)`,
    );
    this.name = "BroadcastStateTooLargeError";
  }
}

/** The broadcast states of one operator in one subtask. */
export class BroadcastStateStore {
  private readonly maps = new Map<string, Map<string, unknown>>();
  private readonly writable = new Map<string, BroadcastState<unknown>>();
  private readonly readOnly = new Map<string, ReadOnlyBroadcastState<unknown>>();

  constructor(
    descriptors: readonly MapStateDescriptor<unknown>[],
    private readonly operator: string,
  ) {
    for (const d of descriptors) this.maps.set(d.name, new Map());
  }

  /** The state of `descriptor`, writable (the broadcast input's view). */
  state<V>(descriptor: MapStateDescriptor<V>): BroadcastState<V> {
    const name = this.nameOf(descriptor);
    let s = this.writable.get(name);
    if (!s) {
      const map = this.maps.get(name)!;
      s = {
        ...this.reader(map),
        put: (key, value) => {
          if (typeof key !== "string") throw new TypeError(`broadcast state "${name}" of operator "${this.operator}": keys are strings, got ${typeof key}`);
          if (value === undefined) throw new TypeError(`broadcast state "${name}" of operator "${this.operator}": put(${JSON.stringify(key)}, undefined); use remove()`);
          map.set(key, value);
        },
        remove: (key) => void map.delete(key),
        clear: () => map.clear(),
      };
      this.writable.set(name, s);
    }
    return s as BroadcastState<V>;
  }

  /** The state of `descriptor`, read-only (the other input's and the timers' view). */
  view<V>(descriptor: MapStateDescriptor<V>): ReadOnlyBroadcastState<V> {
    const name = this.nameOf(descriptor);
    let s = this.readOnly.get(name);
    if (!s) {
      s = this.reader(this.maps.get(name)!);
      this.readOnly.set(name, s);
    }
    return s as ReadOnlyBroadcastState<V>;
  }

  /**
   * A copy for a checkpoint, as JSON text (so that later changes do not
   * reach it), or undefined when every state is empty. Throws
   * {@link BroadcastStateTooLargeError} past the limit.
   */
  snapshot(): string | undefined {
    const out: Record<string, [string, unknown][]> = {};
    let any = false;
    for (const [name, map] of this.maps) {
      out[name] = [...map];
      any ||= map.size > 0;
    }
    if (!any) return undefined;
    const text = JSON.stringify(out);
    if (text.length > BROADCAST_STATE_MAX_BYTES) throw new BroadcastStateTooLargeError(this.operator, text.length);
    return text;
  }

  /** Replaces every state with a checkpoint's copy; states the operator no longer declares are dropped. */
  restore(snapshot: BroadcastSnapshot): void {
    for (const map of this.maps.values()) map.clear();
    for (const [name, entries] of Object.entries(snapshot)) {
      const map = this.maps.get(name);
      if (map) for (const [k, v] of entries) map.set(k, v);
    }
  }

  /** Entries over every state (for metrics). */
  size(): number {
    let n = 0;
    for (const m of this.maps.values()) n += m.size;
    return n;
  }

  private nameOf(descriptor: MapStateDescriptor<unknown>): string {
    const name = descriptor?.name;
    if (!this.maps.has(name)) {
      const declared = [...this.maps.keys()].map((n) => JSON.stringify(n)).join(", ");
      throw new TypeError(
        `operator "${this.operator}" asks for broadcast state ${JSON.stringify(name)}, which its broadcast stream does not declare ` +
          `(it declares ${declared}): pass the descriptor to broadcast(…)`,
      );
    }
    return name;
  }

  private reader(map: Map<string, unknown>): ReadOnlyBroadcastState<unknown> {
    return {
      get: (key) => map.get(key),
      contains: (key) => map.has(key),
      entries: () => [...map],
      keys: () => [...map.keys()],
      values: () => [...map.values()],
      isEmpty: () => map.size === 0,
      size: () => map.size,
    };
  }
}
