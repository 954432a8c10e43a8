/**
 * Dead letters: records that can never be processed (a source's parser or
 * timestamp assigner rejects them, or a user function throws on them) go
 * to a side output instead of failing the job over, when the operator asks
 * for it with `{ deadLetters: tag }` (DESIGN.md, "A record that can never
 * be processed…"). Without one, such a record fails the job with an error
 * naming the operator, the key and the source offset.
 *
 * @example
 * const dead = new OutputTag<DeadLetter>("dead-letters");
 * const parsed = events.map(parse, { uid: "parse", deadLetters: dead });
 * parsed.getSideOutput(dead).sink(tableSink("dead-letters"), { uid: "dead-out" });
 */
import type { Key } from "../graph/key-groups.js";

/** A record routed to a dead-letter output, with why and where. */
export interface DeadLetter<T = unknown> {
  /** uid (or name) of the operator that could not process the record. */
  readonly operator: string;
  /** The error, as `Name: message`. */
  readonly error: string;
  /** The record's key where the operator is keyed, else null. */
  readonly key: Key | null;
  /**
   * Where the record was read: known when the operator runs in its
   * source's chain (a parser or validator right after the source, as is
   * usual), in an async operator, and in the operators that feed one
   * (those edges carry each record's offset); null elsewhere downstream of
   * a network edge, where records travel without their offsets, and for a
   * record a timer emitted or a checkpoint's in-flight data replayed.
   */
  readonly source: { readonly partition: string; readonly offset: number } | null;
  /** The record as the operator received it (a rejected source record: as read, e.g. its text). */
  readonly value: T;
}

/**
 * What a source reader puts in a batch in place of a record it could not
 * read (bad JSON, a schema mismatch), so that offsets stay contiguous: the
 * source routes it to its dead-letter output, or fails naming its offset.
 */
export class RejectedRecord {
  constructor(
    /** The record as read (e.g. its text). */
    readonly raw: unknown,
    /** Why it was rejected. */
    readonly reason: string,
  ) {}
}

/** An error as dead letters and messages show it: `Name: message`. */
export function errorText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}
