import { describe, expect, it } from "vitest";
import { Random } from "../../../test/support/random.js";
import { EntryBatch } from "./entry-batch.js";

const utf8 = new TextEncoder();

/** -1, 0 or 1 by the UTF-8 bytes of `a` and `b`. */
function byBytes(a: string, b: string): number {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

describe("EntryBatch.sortedOrder", () => {
  it("orders entries of one hash by state and key bytes, keeping the last of each (state, key), whatever prefix the keys share", () => {
    const rnd = new Random(11);
    for (let round = 0; round < 40; round++) {
      const batch = new EntryBatch();
      // Keys alike to a point (a time index's keys share 16 digits), then short tails: prefixes of one another,
      // NUL bytes (as the zero padding of the comparison), characters of two and three bytes.
      const shared = rnd.pick(["", "0000018a3c5e7000", "k", "é-"]);
      const tails = ["", "a", "ab", "abc", "a\u0000", "a\u0000b", "\u0000", "b", "é", "ü1", "ü", "中", "zzzzz", "abcdefgh"];
      const entries: { stateId: number; hash: number; key: string; i: number }[] = [];
      const n = 5 + rnd.int(200);
      for (let i = 0; i < n; i++) {
        const key = shared + rnd.pick(tails) + (rnd.chance(0.3) ? String(rnd.int(20)) : "");
        const stateId = rnd.int(3);
        // Few hashes, so that most entries meet others of their hash.
        const hash = rnd.int(3) * 0x10000001;
        entries.push({ stateId, hash, key, i });
        batch.putEncoded(stateId, 7, hash, key, new Uint8Array([i & 0xff]));
      }
      const last = new Map<string, number>();
      for (const e of entries) last.set(`${e.stateId}/${e.hash}/${e.key}`, e.i);
      const expected = entries
        .filter((e) => last.get(`${e.stateId}/${e.hash}/${e.key}`) === e.i)
        .sort((a, b) => a.hash - b.hash || a.stateId - b.stateId || byBytes(a.key, b.key))
        .map((e) => e.i);
      expect([...batch.sortedOrder()]).toEqual(expected);
    }
  });
});
