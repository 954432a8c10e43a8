/**
 * The vocabulary every configuration schema is written in: checkpoint
 * options, restart strategies and the `config` of a start request.
 *
 * Each option is described once, with zod, as the job's TypeScript options
 * spell it (camelCase). The schema gives the type (`z.input` / `z.output`),
 * the defaults, the known keys and the messages. The HTTP API spells the
 * same options in snake_case: {@link optionKeys} checks a layer's keys in
 * either spelling and hands the values on in camelCase, so that the values
 * are validated by the one schema.
 *
 * Messages name an option as the HTTP API spells it, with the job option's
 * name beside when the two differ, and end with the offending value:
 * `checkpoint.interval_ms (intervalMs) must be an integer ≥ 0, got -1`.
 * Every failure is a `FloeError("invalid_config")`, a 400.
 */
import { z } from "zod";
import { FloeError } from "../errors.js";

/** How a layer of configuration spells option names. */
export type Spelling = "camelCase" | "snake_case";

/** `intervalMs` → `interval_ms`, as the HTTP API spells an option. */
export const snake = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** An option's name in messages: `prefix` then the snake_case name, with the camelCase one beside when it differs. */
export function optionLabel(prefix: string, name: string): string {
  return `${prefix}${snake(name) === name ? name : `${snake(name)} (${name})`}`;
}

/** A value as a message shows it: JSON, except the numbers JSON cannot spell. */
export function show(value: unknown): string {
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  if (value === undefined) return "nothing";
  return JSON.stringify(value) ?? String(value);
}

const quoted = (names: readonly string[]) => names.map((k) => JSON.stringify(k)).join(", ");

/**
 * The message for keys a layer does not know, naming them and the known
 * ones: `unknown checkpoint option "interval" (known: interval_ms, …)`.
 */
export function unknownKeysMessage(noun: string, keys: readonly string[], known: readonly string[]): string {
  const plural = keys.length > 1 ? "s" : "";
  return `unknown ${noun}${plural} ${quoted(keys)} (${known.length > 0 ? `known: ${known.join(", ")}` : `it takes no ${noun}s`})`;
}

/** An integer option with a lower bound. */
export function integer(label: string, min: number) {
  // The type's error is also the error of the checks below; an integer past 2^53 fails `int()` as too big.
  const error = (issue: { code: string; input?: unknown }) =>
    issue.code === "too_big"
      ? `${label} must be an integer from ${min} to ${Number.MAX_SAFE_INTEGER}, got ${show(issue.input)}`
      : `${label} must be an integer ≥ ${min}, got ${show(issue.input)}`;
  return z.number({ error }).int().min(min);
}

/** A finite number option with a lower bound. */
export function number(label: string, min: number) {
  return z.number({ error: (issue) => `${label} must be a number ≥ ${min}, got ${show(issue.input)}` }).min(min);
}

/** A boolean option. */
export function boolean(label: string) {
  return z.boolean({ error: (issue) => `${label} must be a boolean, got ${show(issue.input)}` });
}

/** An option that takes one of a few strings. */
export function oneOf<const T extends readonly [string, ...string[]]>(label: string, values: T) {
  const listed = values.map((v) => JSON.stringify(v));
  const allowed = listed.length === 2 ? `${listed[0]} or ${listed[1]}` : `one of ${listed.join(", ")}`;
  return z.enum(values, { error: (issue) => `${label} must be ${allowed}, got ${show(issue.input)}` });
}

/** The error of an object schema: unknown keys named with the known ones, anything but an object refused. */
export function objectError(where: string, noun: string, known: readonly string[], prefix = "") {
  return (issue: { code?: string; input?: unknown; keys?: readonly string[] }) =>
    issue.code === "unrecognized_keys"
      ? `${prefix}${unknownKeysMessage(noun, issue.keys ?? [], known)}`
      : `${where} must be an object, got ${show(issue.input)}`;
}

/**
 * Checks only the keys of one layer of options: refuses any key that is not
 * one of `names` (camelCase) in the layer's `spelling`, and answers the
 * layer in camelCase with its values untouched, for the full schema to
 * validate once the layers are merged (a later layer may repair an earlier
 * one). `fixed` adds keys whose values are checked here (a discriminator);
 * they are not listed among the known options.
 */
export function optionKeys(
  names: readonly string[],
  spelling: Spelling,
  words: { where: string; noun: string; prefix?: string },
  fixed: Record<string, z.ZodType> = {},
) {
  const spelled = (name: string) => (spelling === "snake_case" ? snake(name) : name);
  const all = [...names, ...Object.keys(fixed)];
  const byKey = new Map(all.map((name) => [spelled(name), name]));
  const shape = Object.fromEntries(all.map((name) => [spelled(name), fixed[name] ?? z.unknown().optional()]));
  return z
    .strictObject(shape, { error: objectError(words.where, words.noun, names.map(spelled), words.prefix) })
    .transform((layer) => Object.fromEntries(Object.entries(layer).map(([k, v]) => [byKey.get(k) ?? k, v])) as Record<string, unknown>);
}

/**
 * Parses `value` with `schema`; throws `FloeError("invalid_config")` with the
 * first issue's message. Unknown keys are reported before bad values, since
 * a misspelt key usually explains the value that seems to be missing.
 */
export function parseConfig<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues;
  const issue = issues.find((i) => i.code === "unrecognized_keys") ?? issues[0];
  throw new FloeError("invalid_config", issue?.message ?? "invalid configuration");
}
