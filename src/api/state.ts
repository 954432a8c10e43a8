/**
 * Keyed state, as a Flink user knows it: declared by descriptor, scoped to
 * the key of the record being processed.
 */

/** Describes one named piece of keyed state. */
export type StateDescriptor<T = unknown> =
  | ValueStateDescriptor<T>
  | MapStateDescriptor<unknown>
  | ListStateDescriptor<unknown>;

/** A single value per key. */
export interface ValueStateDescriptor<T> {
  readonly kind: "value";
  readonly name: string;
  /** Phantom field carrying the value type. */
  readonly _type?: T;
}

/** A map per key, from string keys to values. */
export interface MapStateDescriptor<V> {
  readonly kind: "map";
  readonly name: string;
  readonly _type?: V;
}

/** A list per key. */
export interface ListStateDescriptor<T> {
  readonly kind: "list";
  readonly name: string;
  readonly _type?: T;
}

/** @example const count = valueState<number>("count"); */
export function valueState<T>(name: string): ValueStateDescriptor<T> {
  return { kind: "value", name: checkName(name) };
}

/** @example const seen = mapState<boolean>("seen-urls"); */
export function mapState<V>(name: string): MapStateDescriptor<V> {
  return { kind: "map", name: checkName(name) };
}

/** @example const recent = listState<string>("recent"); */
export function listState<T>(name: string): ListStateDescriptor<T> {
  return { kind: "list", name: checkName(name) };
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

function checkName(name: string): string {
  if (typeof name !== "string" || !/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
    throw new TypeError(`state name must be 1-64 characters of [A-Za-z0-9_.-], got ${JSON.stringify(name)}`);
  }
  return name;
}
