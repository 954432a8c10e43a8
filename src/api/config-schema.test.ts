import { describe, expect, it } from "vitest";
import { z } from "zod";
import { FloeError } from "../errors.js";
import { integer, number, objectError, oneOf, optionKeys, optionLabel, parseConfig, show, snake, unknownKeysMessage } from "./config-schema.js";

/** The message `parseConfig` throws for `value`, checking it is a 400 invalid_config. */
function refusal(schema: z.ZodType, value: unknown): string {
  try {
    parseConfig(schema, value);
  } catch (e) {
    expect(e).toBeInstanceOf(FloeError);
    expect(e).toMatchObject({ code: "invalid_config", status: 400 });
    return (e as FloeError).message;
  }
  throw new Error(`expected ${show(value)} to be refused`);
}

describe("names and values in messages", () => {
  it("spells options as the HTTP API does, with the job's name beside when it differs", () => {
    expect(snake("alignedCheckpointTimeoutMs")).toBe("aligned_checkpoint_timeout_ms");
    expect(optionLabel("checkpoint.", "intervalMs")).toBe("checkpoint.interval_ms (intervalMs)");
    expect(optionLabel("checkpoint.", "mode")).toBe("checkpoint.mode");
  });

  it("shows values as JSON, and the numbers JSON cannot spell as themselves", () => {
    expect([show("a"), show(1.5), show(null), show([1]), show({ a: 1 })]).toEqual(['"a"', "1.5", "null", "[1]", '{"a":1}']);
    expect([show(Number.NaN), show(Number.NEGATIVE_INFINITY), show(undefined)]).toEqual(["NaN", "-Infinity", "nothing"]);
  });

  it("names unknown keys and the known ones", () => {
    expect(unknownKeysMessage("checkpoint option", ["a"], ["b", "c"])).toBe('unknown checkpoint option "a" (known: b, c)');
    expect(unknownKeysMessage("option", ["a", "b"], [])).toBe('unknown options "a", "b" (it takes no options)');
  });
});

describe("option schemas", () => {
  it("integer: bounds, fractions, types and the safe range", () => {
    const s = integer("x.n", 1);
    expect(parseConfig(s, 1)).toBe(1);
    expect(refusal(s, 0)).toBe("x.n must be an integer ≥ 1, got 0");
    expect(refusal(s, 1.5)).toBe("x.n must be an integer ≥ 1, got 1.5");
    expect(refusal(s, "1")).toBe('x.n must be an integer ≥ 1, got "1"');
    expect(refusal(s, 2 ** 53)).toBe(`x.n must be an integer from 1 to ${Number.MAX_SAFE_INTEGER}, got ${2 ** 53}`);
  });

  it("number: a finite number at or above its bound", () => {
    const s = number("x.f", 1);
    expect(parseConfig(s, 1.5)).toBe(1.5);
    expect(refusal(s, 0.5)).toBe("x.f must be a number ≥ 1, got 0.5");
    expect(refusal(s, Number.POSITIVE_INFINITY)).toBe("x.f must be a number ≥ 1, got Infinity");
  });

  it("oneOf: lists the allowed strings", () => {
    expect(refusal(oneOf("x.m", ["a", "b"]), "c")).toBe('x.m must be "a" or "b", got "c"');
    expect(refusal(oneOf("x.m", ["a", "b", "c"]), 1)).toBe('x.m must be one of "a", "b", "c", got 1');
  });
});

describe("optionKeys", () => {
  const names = ["intervalMs", "mode"];

  it("accepts the layer's spelling only, and answers in camelCase", () => {
    expect(parseConfig(optionKeys(names, "snake_case", { where: "config.x", noun: "x option" }), { interval_ms: -1 })).toEqual({ intervalMs: -1 });
    expect(parseConfig(optionKeys(names, "camelCase", { where: "x options", noun: "x option" }), { intervalMs: -1 })).toEqual({ intervalMs: -1 });
    expect(refusal(optionKeys(names, "snake_case", { where: "config.x", noun: "x option" }), { intervalMs: 1 })).toBe(
      'unknown x option "intervalMs" (known: interval_ms, mode)',
    );
    expect(refusal(optionKeys(names, "camelCase", { where: "x options", noun: "x option" }), { interval_ms: 1 })).toBe(
      'unknown x option "interval_ms" (known: intervalMs, mode)',
    );
  });

  it("refuses anything but an object, saying where", () => {
    const s = optionKeys(names, "snake_case", { where: "config.x", noun: "x option" });
    for (const [value, shown] of [[null, "null"], [[], "[]"], ["a", '"a"'], [3, "3"]] as const) {
      expect(refusal(s, value)).toBe(`config.x must be an object, got ${shown}`);
    }
  });

  it("checks fixed keys here, and leaves them out of the known options", () => {
    const s = optionKeys(["delayMs"], "snake_case", { where: "r", noun: "option", prefix: "strategy t: " }, { type: z.literal("t") });
    expect(parseConfig(s, { type: "t", delay_ms: 5 })).toEqual({ type: "t", delayMs: 5 });
    expect(refusal(s, { type: "t", delay: 5 })).toBe('strategy t: unknown option "delay" (known: delay_ms)');
  });
});

describe("parseConfig", () => {
  it("reports unknown keys before bad values", () => {
    const s = z.strictObject({ a: integer("a", 0).optional() }, { error: objectError("thing", "thing option", ["a"]) });
    expect(refusal(s, { a: -1, b: 1 })).toBe('unknown thing option "b" (known: a)');
    expect(refusal(s, { a: -1 })).toBe("a must be an integer ≥ 0, got -1");
    expect(refusal(s, "a")).toBe('thing must be an object, got "a"');
  });
});
