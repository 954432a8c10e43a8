/**
 * Side outputs (Flink's OutputTag): a process function emits to a tag with
 * `ctx.output(tag, value)` besides its main output, and
 * `stream.getSideOutput(tag)` is the stream of what it emitted there, which
 * any operator or sink can consume, exactly-once like the main output.
 *
 * @example
 * const rejected = new OutputTag<Click>("rejected");
 * const valid = clicks.process({ processElement(c, ctx, out) { c.url ? out.collect(c) : ctx.output(rejected, c); } });
 * valid.getSideOutput(rejected).sink(tableSink("rejected-clicks"), { uid: "rejected-out" });
 */
import { JobDefinitionError } from "../errors.js";

const TAG_ID = /^[A-Za-z0-9_.-]{1,64}$/;

/** Names one side output of a process function; `T` is the type of its records. */
export class OutputTag<T> {
  /** Phantom field carrying the record type. */
  declare readonly _type?: T;

  constructor(readonly id: string) {
    if (typeof id !== "string" || !TAG_ID.test(id)) {
      throw new JobDefinitionError(`output tag id must be 1-64 characters of [A-Za-z0-9_.-], got ${JSON.stringify(id)}`);
    }
  }

  toString(): string {
    return `OutputTag(${this.id})`;
  }
}
