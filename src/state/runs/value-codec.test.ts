import { describe, expect, it } from "vitest";
import { Random } from "../../../test/support/random.js";
import { ByteSink } from "./byte-sink.js";
import { decodeValue, decodeValueJson, encodeJsonInto, encodeValue, encodeValueInto } from "./value-codec.js";

/** What the heap backend's JSON snapshots give back. */
const viaJson = (v: unknown) => JSON.parse(JSON.stringify(v));

/** A random value of the kinds state holds, with the awkward cases JSON changes. */
function randomValue(rng: Random, depth = 0): unknown {
  const roll = rng.int(depth > 2 ? 9 : 12);
  switch (roll) {
    case 0:
      return rng.int(2000) - 1000;
    case 1:
      return (rng.next() - 0.5) * 10 ** rng.int(30);
    case 2:
      return rng.pick([NaN, Infinity, -Infinity, -0, 2 ** 31, -(2 ** 31), 2 ** 31 - 1, 2 ** 53, Number.MIN_VALUE, 1e21]);
    case 3:
      return randomString(rng);
    case 4:
      return rng.pick([true, false, null]);
    case 5:
      return rng.pick(["", "\u2028", "\ud800 lone", "日本語 ✓", "😀", "a\u0000b", "x".repeat(40)]);
    case 6:
      return new Date(rng.int(2 ** 40));
    case 7:
      return rng.chance(0.5) ? 1.5 : "s";
    case 8:
      return rng.int(10);
    case 9:
      return Array.from({ length: rng.int(5) }, () => (rng.chance(0.2) ? undefined : randomValue(rng, depth + 1)));
    case 10:
      return Object.fromEntries(Array.from({ length: rng.int(5) }, (_, i) => [`k${i}${randomString(rng)}`, rng.chance(0.2) ? undefined : randomValue(rng, depth + 1)]));
    default:
      return [...new Map([["a", randomValue(rng, depth + 1)]])];
  }
}

function randomString(rng: Random): string {
  const alphabet = ["a", "Z", "0", " ", '"', "\\", "é", "ß", "\u4e2d", "\ud83d\ude00", "\ud800", "\udc00", "\n"];
  return Array.from({ length: rng.int(12) }, () => rng.pick(alphabet)).join("");
}

describe("value codec", () => {
  it("gives back exactly what a JSON round trip gives, over random values", () => {
    const rng = new Random(20261206);
    for (let i = 0; i < 5000; i++) {
      const v = randomValue(rng);
      const bytes = encodeValue(v);
      expect(decodeValue(bytes)).toEqual(viaJson(v));
      // -0 compares equal to 0 in toEqual; JSON gives +0.
      if (typeof v === "number") expect(Object.is(decodeValue(bytes), viaJson(v))).toBe(true);
    }
  });

  it("gives a value's JSON text as JSON.stringify of the value would, whether stored as a value or as JSON text", () => {
    const rng = new Random(7);
    for (let i = 0; i < 3000; i++) {
      const v = randomValue(rng);
      if (v === undefined) continue;
      const json = JSON.stringify(v);
      expect(decodeValueJson(encodeValue(v))).toBe(JSON.stringify(viaJson(v)));
      const sink = new ByteSink(4);
      encodeJsonInto(json, sink);
      expect(decodeValueJson(sink.bytes, 0, sink.length)).toBe(json);
      expect(decodeValue(sink.bytes, 0, sink.length)).toEqual(viaJson(v));
    }
  });

  it("is compact for the common cases", () => {
    expect(encodeValue(7)).toHaveLength(5);
    expect(encodeValue(-(2 ** 31))).toHaveLength(5);
    expect(encodeValue(2 ** 31)).toHaveLength(9);
    expect(encodeValue(0.5)).toHaveLength(9);
    expect(encodeValue(null)).toHaveLength(1);
    expect(encodeValue(true)).toHaveLength(1);
    expect(encodeValue("abc")).toHaveLength(4);
    expect(encodeValue({ a: 1 })).toHaveLength(1 + '{"a":1}'.length);
  });

  it("keeps lone surrogates, which plain UTF-8 would replace", () => {
    for (const s of ["\ud800", "a\udc00b", "\udbff\udfff", "\ud83d"]) expect(decodeValue(encodeValue(s))).toBe(s);
  });

  it("decodes a value in the middle of a buffer, after others", () => {
    const sink = new ByteSink(4);
    const values = [1, "two", { three: [3] }, null, 4.25, "é".repeat(100)];
    const spans = values.map((v) => {
      const start = sink.length;
      return [start, encodeValueInto(v, sink)] as const;
    });
    spans.forEach(([start, length], i) => expect(decodeValue(sink.bytes, start, length)).toEqual(values[i]));
  });

  it("refuses what JSON cannot hold", () => {
    expect(() => encodeValue(undefined)).toThrow(TypeError);
    expect(() => encodeValue(() => 1)).toThrow(TypeError);
    expect(() => encodeValue(Symbol("s"))).toThrow(TypeError);
    expect(() => encodeValue(10n)).toThrow(TypeError);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(() => encodeValue(cycle)).toThrow(TypeError);
  });
});
