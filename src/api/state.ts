/**
 * Keyed state, as a Flink user knows it: declared by descriptor, scoped to
 * the key of the record being processed, optionally with a time to live
 * (Flink's StateTtlConfig; docs/state.md).
 */
import { JobDefinitionError } from "../errors.js";

/** Describes one named piece of keyed state. */
export type StateDescriptor<T = unknown> =
  | ValueStateDescriptor<T>
  | MapStateDescriptor<unknown>
  | ListStateDescriptor<unknown>;

/** A single value per key. */
export interface ValueStateDescriptor<T> {
  readonly kind: "value";
  readonly name: string;
  /** Time to live of the value (absent: it lives until cleared). */
  readonly ttl?: StateTtlConfig;
  /** Phantom field carrying the value type. */
  readonly _type?: T;
}

/** A map per key, from string keys to values. */
export interface MapStateDescriptor<V> {
  readonly kind: "map";
  readonly name: string;
  /** Time to live of each map entry, on its own (absent: entries live until removed). */
  readonly ttl?: StateTtlConfig;
  readonly _type?: V;
}

/** A list per key. */
export interface ListStateDescriptor<T> {
  readonly kind: "list";
  readonly name: string;
  /** Time to live of each element, on its own (absent: elements live until the list is updated or cleared). */
  readonly ttl?: StateTtlConfig;
  readonly _type?: T;
}

/** When an entry's last-access timestamp is set (Flink's StateTtlConfig.UpdateType). */
export type StateTtlUpdateType = "OnCreateAndWrite" | "OnReadAndWrite";

/** Whether a read may see an expired entry that was not cleaned up yet (Flink's StateTtlConfig.StateVisibility). */
export type StateTtlVisibility = "NeverReturnExpired" | "ReturnExpiredIfNotCleanedUp";

/** Flink's UpdateType constants. */
export const UpdateType = { OnCreateAndWrite: "OnCreateAndWrite", OnReadAndWrite: "OnReadAndWrite" } as const satisfies Record<StateTtlUpdateType, StateTtlUpdateType>;

/** Flink's StateVisibility constants. */
export const StateVisibility = {
  NeverReturnExpired: "NeverReturnExpired",
  ReturnExpiredIfNotCleanedUp: "ReturnExpiredIfNotCleanedUp",
} as const satisfies Record<StateTtlVisibility, StateTtlVisibility>;

/**
 * Time to live of keyed state (Flink's StateTtlConfig), on processing time:
 * the subtask's clock, the one `ctx.timerService().currentProcessingTime()`
 * reads. An entry expires `ttlMs` after its last access; what counts as an
 * access is `updateType`.
 *
 * @example valueState<number>("session-count", { ttl: { ttlMs: 30 * 60_000, updateType: "OnReadAndWrite" } })
 */
export interface StateTtlConfig {
  /** Milliseconds an entry lives after its last access: a finite number > 0. */
  readonly ttlMs: number;
  /** Default "OnCreateAndWrite": only writes extend the life of an entry; "OnReadAndWrite": reads too. */
  readonly updateType?: StateTtlUpdateType;
  /** Default "NeverReturnExpired"; "ReturnExpiredIfNotCleanedUp" may return an expired entry once, as it is cleaned up. */
  readonly stateVisibility?: StateTtlVisibility;
}

/** Options of a state descriptor. */
export interface StateOptions {
  /** Time to live (absent: the state lives until cleared). */
  readonly ttl?: StateTtlConfig;
}

/**
 * Flink's builder, for code ported from Flink.
 *
 * @example stateTtl(60_000).setUpdateType(UpdateType.OnReadAndWrite).setStateVisibility(StateVisibility.NeverReturnExpired).build()
 */
export function stateTtl(ttlMs: number): StateTtlConfigBuilder {
  return new StateTtlConfigBuilder(ttlMs);
}

/** Builds a {@link StateTtlConfig} (see {@link stateTtl}). */
export class StateTtlConfigBuilder {
  private updateType: StateTtlUpdateType = "OnCreateAndWrite";
  private stateVisibility: StateTtlVisibility = "NeverReturnExpired";

  constructor(private ttlMs: number) {}

  setTtl(ttlMs: number): this {
    this.ttlMs = ttlMs;
    return this;
  }

  setUpdateType(updateType: StateTtlUpdateType): this {
    this.updateType = updateType;
    return this;
  }

  updateTtlOnReadAndWrite(): this {
    return this.setUpdateType("OnReadAndWrite");
  }

  setStateVisibility(visibility: StateTtlVisibility): this {
    this.stateVisibility = visibility;
    return this;
  }

  returnExpiredIfNotCleanedUp(): this {
    return this.setStateVisibility("ReturnExpiredIfNotCleanedUp");
  }

  build(): StateTtlConfig {
    return { ttlMs: this.ttlMs, updateType: this.updateType, stateVisibility: this.stateVisibility };
  }
}

/** @example const count = valueState<number>("count"); */
export function valueState<T>(name: string, options: StateOptions = {}): ValueStateDescriptor<T> {
  return withTtl({ kind: "value", name: checkName(name) }, options);
}

/** @example const seen = mapState<boolean>("seen-urls", { ttl: { ttlMs: 3_600_000 } }); */
export function mapState<V>(name: string, options: StateOptions = {}): MapStateDescriptor<V> {
  return withTtl({ kind: "map", name: checkName(name) }, options);
}

/** @example const recent = listState<string>("recent"); */
export function listState<T>(name: string, options: StateOptions = {}): ListStateDescriptor<T> {
  return withTtl({ kind: "list", name: checkName(name) }, options);
}

/**
 * Checks a descriptor's TTL: throws a {@link JobDefinitionError} naming the
 * state (and the operator, when given) for a TTL that is not a finite
 * number > 0 or an unknown update type or visibility. Runs when a
 * descriptor is made, when a job starts (for the state its functions
 * declare) and when an operator first uses a state.
 */
export function checkStateTtl(descriptor: StateDescriptor, operator?: string): void {
  const ttl = descriptor.ttl;
  if (ttl === undefined) return;
  const where = `${operator === undefined ? "" : `operator "${operator}": `}state "${descriptor.name}"`;
  if (typeof ttl !== "object" || ttl === null) throw new JobDefinitionError(`${where}: ttl must be an object { ttlMs, updateType?, stateVisibility? }, got ${JSON.stringify(ttl)}`);
  if (typeof ttl.ttlMs !== "number" || !Number.isFinite(ttl.ttlMs) || ttl.ttlMs <= 0) {
    throw new JobDefinitionError(`${where}: ttl.ttlMs must be a finite number of milliseconds > 0, got ${String(ttl.ttlMs)}`);
  }
  if (ttl.updateType !== undefined && !(typeof ttl.updateType === "string" && Object.hasOwn(UpdateType, ttl.updateType))) {
    throw new JobDefinitionError(`${where}: ttl.updateType must be "OnCreateAndWrite" or "OnReadAndWrite", got ${JSON.stringify(ttl.updateType)}`);
  }
  if (ttl.stateVisibility !== undefined && !(typeof ttl.stateVisibility === "string" && Object.hasOwn(StateVisibility, ttl.stateVisibility))) {
    throw new JobDefinitionError(`${where}: ttl.stateVisibility must be "NeverReturnExpired" or "ReturnExpiredIfNotCleanedUp", got ${JSON.stringify(ttl.stateVisibility)}`);
  }
}

/** The value of the current key. */
export interface ValueState<T> {
  value(): T | undefined;
  update(value: T): void;
  clear(): void;
}

/** The map of the current key. */
export interface MapState<V> {
  get(key: string): V | undefined;
  put(key: string, value: V): void;
  remove(key: string): void;
  contains(key: string): boolean;
  entries(): [string, V][];
  keys(): string[];
  values(): V[];
  isEmpty(): boolean;
  clear(): void;
}

/** The list of the current key. */
export interface ListState<T> {
  get(): T[];
  add(value: T): void;
  addAll(values: T[]): void;
  update(values: T[]): void;
  clear(): void;
}

function withTtl<D extends StateDescriptor>(descriptor: D, options: StateOptions): D {
  if (options.ttl === undefined) return descriptor;
  checkStateTtl({ ...descriptor, ttl: options.ttl });
  // A copy: a config changed after the descriptor was made must not change the state's TTL under it.
  return { ...descriptor, ttl: Object.freeze({ ...options.ttl }) };
}

function checkName(name: string): string {
  if (typeof name !== "string" || !/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
    throw new TypeError(`state name must be 1-64 characters of [A-Za-z0-9_.-], got ${JSON.stringify(name)}`);
  }
  return name;
}
