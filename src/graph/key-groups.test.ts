import { describe, expect, it } from "vitest";
import { Random } from "../../test/support/random.js";
import { type Key, contains, describeNonKey, inRange, intersect, isKey, keyGroupOf, keyGroupRange, keyText, murmur3, overlaps, subtaskForKeyGroup, hashKey } from "./key-groups.js";

const utf8 = (s: string) => new TextEncoder().encode(s);

/** hashKey as it was before it hashed ASCII text in place (commit cb4e559): every result must stay the same. */
const oldScratch = new Uint8Array(256);
function reference(key: Key): number {
  const text = keyText(key);
  if (text.length <= oldScratch.length) {
    let ascii = true;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c > 0x7f) {
        ascii = false;
        break;
      }
      oldScratch[i] = c;
    }
    if (ascii) return murmur3(oldScratch.subarray(0, text.length));
  }
  return murmur3(utf8(text));
}

/** Code units drawn from ASCII, Latin-1, the BMP, surrogate pairs and lone surrogates. */
function randomText(next: () => number, length: number, alphabet: "ascii" | "any"): string {
  let s = "";
  for (let i = 0; i < length; i++) {
    const r = next();
    if (alphabet === "ascii" || r < 0.6) s += String.fromCharCode(Math.floor(next() * 0x80));
    else if (r < 0.75) s += String.fromCharCode(0x80 + Math.floor(next() * 0x780));
    else if (r < 0.9) s += String.fromCharCode(0x800 + Math.floor(next() * 0xd000));
    else if (r < 0.97) s += String.fromCodePoint(0x10000 + Math.floor(next() * 0xfffff));
    else s += String.fromCharCode(0xd800 + Math.floor(next() * 0x800));
  }
  return s;
}

describe("murmur3", () => {
  it("matches the reference vectors of MurmurHash3_x86_32", () => {
    expect(murmur3(utf8(""))).toBe(0);
    expect(murmur3(utf8(""), 1)).toBe(0x514e28b7);
    expect(murmur3(utf8("hello"))).toBe(0x248bfa47);
    expect(murmur3(utf8("The quick brown fox jumps over the lazy dog"))).toBe(0x2e4ff723);
  });

  it("hashes non-ASCII keys through UTF-8", () => {
    expect(hashKey("héllo")).toBe(murmur3(utf8("héllo")));
    expect(hashKey("x".repeat(300))).toBe(murmur3(utf8("x".repeat(300))));
  });

  it("hashKey equals MurmurHash3 of the UTF-8 text for random ASCII keys of every length up to 1000", () => {
    const rng = new Random(1);
    const next = () => rng.next();
    for (let length = 0; length <= 1000; length++) {
      for (let j = 0; j < 5; j++) {
        const key = randomText(next, length, "ascii");
        expect(hashKey(key), JSON.stringify(key)).toBe(reference(key));
      }
    }
  });

  it("hashKey equals MurmurHash3 of the UTF-8 text for random non-ASCII keys, lone surrogates included", () => {
    const rng = new Random(2);
    const next = () => rng.next();
    for (let i = 0; i < 20_000; i++) {
      // Mostly short keys; some longer than the scratch buffer holds.
      const length = next() < 0.9 ? Math.floor(next() * 40) : 200 + Math.floor(next() * 400);
      const key = randomText(next, length, "any");
      expect(hashKey(key), JSON.stringify(key)).toBe(reference(key));
    }
    // One non-ASCII character at each position of the text, and right at the end of a block.
    for (let length = 1; length <= 12; length++) {
      for (let at = 0; at < length; at++) {
        for (const c of ["é", "€", "😀", "\ud800", "\u0080", "\u007f"]) {
          const key = "a".repeat(at) + c + "b".repeat(length - at - 1);
          expect(hashKey(key), JSON.stringify(key)).toBe(reference(key));
        }
      }
    }
  });

  it("hashKey equals MurmurHash3 of the canonical text for numbers", () => {
    const rng = new Random(3);
    const next = () => rng.next();
    for (const n of [0, -0, 1, -1, 7, 0.5, 1e21, 1e-7, Number.MAX_SAFE_INTEGER, NaN, Infinity]) expect(hashKey(n)).toBe(reference(n));
    for (let i = 0; i < 2000; i++) {
      const n = next() < 0.5 ? Math.floor(next() * 1e9) : (next() - 0.5) * 1e12;
      expect(hashKey(n)).toBe(reference(n));
    }
  });

  it("murmur3 hashes only the first `length` bytes when given a length", () => {
    const bytes = utf8("hello, world");
    expect(murmur3(bytes, 0, 5)).toBe(murmur3(utf8("hello")));
  });

  it("keeps numbers and their text apart", () => {
    expect(hashKey(7)).not.toBe(hashKey("7"));
  });
});

describe("key groups", () => {
  it("ranges overlap, contain and intersect as their sets of key groups do", () => {
    const random = new Random(20261207);
    const set = (r: { start: number; end: number }) => Array.from({ length: r.end - r.start + 1 }, (_, i) => r.start + i);
    for (let n = 0; n < 500; n++) {
      const range = () => {
        const a = random.int(20);
        const b = random.int(20);
        return { start: Math.min(a, b), end: Math.max(a, b) };
      };
      const a = range();
      const b = range();
      const shared = set(a).filter((g) => inRange(b, g));
      expect(overlaps(a, b)).toBe(shared.length > 0);
      expect(contains(a, b)).toBe(set(b).every((g) => inRange(a, g)));
      expect(intersect(a, b)).toEqual(shared.length === 0 ? undefined : { start: shared[0], end: shared[shared.length - 1] });
    }
  });

  it("ranges are contiguous, disjoint and cover every key group", () => {
    for (const maxParallelism of [1, 7, 128, 1000]) {
      for (const parallelism of [1, 2, 3, 7].filter((p) => p <= maxParallelism)) {
        let next = 0;
        for (let i = 0; i < parallelism; i++) {
          const r = keyGroupRange(maxParallelism, parallelism, i);
          expect(r.start).toBe(next);
          expect(r.end).toBeGreaterThanOrEqual(r.start);
          for (let kg = r.start; kg <= r.end; kg++) expect(subtaskForKeyGroup(maxParallelism, parallelism, kg)).toBe(i);
          next = r.end + 1;
        }
        expect(next).toBe(maxParallelism);
      }
    }
  });

  it("matches Flink's ranges for 128 key groups over 3 subtasks", () => {
    expect([0, 1, 2].map((i) => keyGroupRange(128, 3, i))).toEqual([
      { start: 0, end: 42 },
      { start: 43, end: 85 },
      { start: 86, end: 127 },
    ]);
  });

  it("spreads keys evenly over key groups", () => {
    const counts = new Array(16).fill(0);
    for (let i = 0; i < 16000; i++) counts[keyGroupOf(`user-${i}`, 16)]++;
    for (const c of counts) expect(c).toBeGreaterThan(800);
  });

  it("refuses parallelism above maxParallelism", () => {
    expect(() => keyGroupRange(4, 5, 0)).toThrow(/maxParallelism/);
    expect(() => keyGroupRange(4, 2, 2)).toThrow(/outside/);
  });
});

describe("isKey", () => {
  it("takes strings and finite numbers, whose canonical text a JSON round trip keeps (-0 becomes 0: both are \"0\")", () => {
    for (const k of ["", "user-1", "é✓\u{1F600}", "\ud800", 0, -0, 7, -3.5, 1e300, Number.MAX_SAFE_INTEGER]) {
      expect(isKey(k)).toBe(true);
      expect(keyText(JSON.parse(JSON.stringify(k)) as Key)).toBe(keyText(k as Key));
    }
  });

  it("refuses everything else, NaN and ±Infinity included (JSON makes them null)", () => {
    class Point {
      constructor(readonly x: number) {}
    }
    const values = [undefined, null, NaN, Infinity, -Infinity, true, 1n, Symbol("s"), () => 1, new Date(0), new Map(), new Set(), /x/, [1], {}, { toJSON: () => "k" }, new Point(1), Object.create(null)];
    for (const v of values) expect(isKey(v)).toBe(false);
  });
});

describe("describeNonKey", () => {
  it("says what a value that is not a key is", () => {
    class Point {
      constructor(readonly x: number) {}
    }
    expect(describeNonKey(undefined)).toBe("undefined");
    expect(describeNonKey(null)).toBe("null");
    expect(describeNonKey(NaN)).toBe("NaN");
    expect(describeNonKey(-Infinity)).toBe("-Infinity");
    expect(describeNonKey(false)).toBe("a boolean (false)");
    expect(describeNonKey(2n)).toBe("a bigint");
    expect(describeNonKey(new Date(0))).toBe("a Date");
    expect(describeNonKey(new Map())).toBe("a Map");
    expect(describeNonKey(new Set())).toBe("a Set");
    expect(describeNonKey([1, 2])).toBe("an array");
    expect(describeNonKey({ a: 1 })).toBe("an object");
    expect(describeNonKey(Object.create(null))).toBe("an object");
    expect(describeNonKey({ toJSON: () => "x" })).toBe("an object with toJSON");
    expect(describeNonKey(new Point(1))).toBe("an instance of class Point");
  });
});
