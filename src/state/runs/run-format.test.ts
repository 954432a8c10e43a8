import { describe, expect, it } from "vitest";
import { hashKey } from "../../graph/key-groups.js";
import { Random } from "../../../test/support/random.js";
import { bloomAdd, bloomCreate, bloomMayContain, bloomProbe } from "./bloom.js";
import { compareUtf8, readUtf8 } from "./byte-sink.js";
import { EntryBatch } from "./entry-batch.js";
import { BlockBuilder, BlockView, MAX_ENTRY_BYTES, entryRef } from "./run-format.js";
import { PAGE_BLOCK, PAGE_BLOOM, PAGE_INDEX, RunWriter } from "./run-writer.js";
import { decodeValue, encodeValue } from "./value-codec.js";

const utf8 = (s: string) => new TextEncoder().encode(s);

describe("blocks", () => {
  it("finds each entry by binary search and decodes only it", () => {
    const b = new BlockBuilder();
    const keys = Array.from({ length: 500 }, (_, i) => `key-${i}`).map((k) => ({ k, h: hashKey(k), g: hashKey(k) % 128 }));
    keys.sort((x, y) => x.g - y.g || x.h - y.h);
    for (const { k, h, g } of keys) {
      const v = encodeValue(k.length);
      b.addText(g, h, 1, k, v, 0, v.length);
    }
    const view = new BlockView(b.finish());
    expect(view.count).toBe(500);
    expect(view.offsets.BYTES_PER_ELEMENT).toBe(2);
    const ref = entryRef();
    for (const { k, h, g } of keys) {
      const key = utf8(k);
      const i = view.find(g, h, 1, key, key.length, ref);
      expect(i).toBeGreaterThanOrEqual(0);
      expect(readUtf8(view.bytes, ref.keyOffset, ref.keyLength)).toBe(k);
      expect(decodeValue(view.bytes, ref.valueOffset, ref.valueLength)).toBe(k.length);
      expect(view.find(g, h, 2, key, key.length, ref)).toBe(-1);
    }
    expect(view.find(0, 1, 1, utf8("nope"), 4, ref)).toBe(-1);
  });

  it("holds tombstones, long and non-ASCII keys, and big blocks with 4-byte offsets", () => {
    const b = new BlockBuilder();
    const long = "ü".repeat(40);
    const big = encodeValue("x".repeat(70000));
    b.addText(1, 5, 1, "gone", null, 0, -1);
    b.addText(1, 6, 1, long, big, 0, big.length);
    b.addBytes(2, 0, 300, utf8("bytes"), 0, 5, big, 0, 1);
    const view = new BlockView(b.finish());
    expect(view.offsets.BYTES_PER_ELEMENT).toBe(4);
    const ref = entryRef();
    expect(view.find(1, 5, 1, utf8("gone"), 4, ref)).toBe(0);
    expect(ref.valueLength).toBe(-1);
    const k = utf8(long);
    expect(view.find(1, 6, 1, k, k.length, ref)).toBe(1);
    expect(decodeValue(view.bytes, ref.valueOffset, ref.valueLength)).toBe("x".repeat(70000));
    expect(view.find(2, 0, 300, utf8("bytes"), 5, ref)).toBe(2);
    expect(ref.stateId).toBe(300);
    // A view over bytes that do not start 4-aligned copies them first.
    const shifted = new Uint8Array(view.bytes.length + 1);
    shifted.set(view.bytes, 1);
    expect(new BlockView(shifted.subarray(1)).find(2, 0, 300, utf8("bytes"), 5, ref)).toBe(2);
  });
});

describe("entry batch order", () => {
  it("sorts by key group, hash, state and key bytes, and keeps the last entry of a key", () => {
    const rng = new Random(7);
    const batch = new EntryBatch();
    const model = new Map<string, { g: number; h: number; s: number; k: string; v: number | null }>();
    // Few hashes and key groups, so that equal hashes with different states and keys are common.
    const keys = ["a", "b", "é", "\ue000", "😀", "ab", "", "zz"];
    for (let i = 0; i < 3000; i++) {
      const k = rng.pick(keys);
      const s = rng.int(3);
      const h = rng.int(3) * 1_000_000_000;
      const g = rng.int(4);
      const v = rng.chance(0.2) ? null : i;
      if (v === null) batch.delete(s, g, h, k);
      else batch.put(s, g, h, k, v);
      model.set(`${g}/${h}/${s}/${k}`, { g, h, s, k, v });
    }
    const order = batch.sortedOrder();
    const got = Array.from(order, (i) => ({ g: batch.keyGroups[i], h: batch.hashes[i], s: batch.stateIds[i], k: readUtf8(batch.bytes.bytes, batch.keyStarts[i], batch.valueStarts[i] - batch.keyStarts[i]), v: batch.valueEnds[i] < 0 ? null : (decodeValue(batch.bytes.bytes, batch.valueStarts[i], batch.valueEnds[i] - batch.valueStarts[i]) as number) }));
    const want = [...model.values()].sort((x, y) => x.g - y.g || x.h - y.h || x.s - y.s || compareUtf8(x.k, y.k));
    expect(got).toEqual(want);
  });

  it("compares strings as UTF-8 bytes do", () => {
    const strings = ["a", "\uffff", "\ue000", "😀", "\ud7ff", "ab", "", "é"];
    const byBytes = [...strings].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect([...strings].sort(compareUtf8)).toEqual(byBytes);
  });

  it("refuses an entry larger than a SQLite value, naming operator, state and key", () => {
    const batch = new EntryBatch("counter", (id) => (id === 3 ? "totals" : "?"));
    expect(() => batch.put(3, 0, 0, "big-key", "x".repeat(MAX_ENTRY_BYTES))).toThrow(/operator "counter": state "totals", key "big-key": an encoded entry of \d+ bytes exceeds/);
    expect(batch.count).toBe(0);
    expect(batch.bytes.length).toBe(0);
    batch.put(3, 0, 0, "ok", "x".repeat(MAX_ENTRY_BYTES - 100));
    expect(() => batch.put(3, 0, 0, "\ud800", 1)).toThrow(/lone surrogate/);
    expect(() => batch.put(3, 0, 0, "k", undefined)).toThrow(/state "totals", key "k": a undefined value has no JSON form/);
  });
});

describe("bloom filters", () => {
  it("never misses a key and has about 1% false positives at 10 bits per entry", () => {
    const n = 20000;
    const filter = bloomCreate(n);
    for (let i = 0; i < n; i++) bloomAdd(filter, bloomProbe(i % 3, hashKey(`in-${i}`)));
    for (let i = 0; i < n; i++) expect(bloomMayContain(filter, bloomProbe(i % 3, hashKey(`in-${i}`)))).toBe(true);
    let fp = 0;
    const trials = 100000;
    for (let i = 0; i < trials; i++) if (bloomMayContain(filter, bloomProbe(i % 3, hashKey(`out-${i}`)))) fp++;
    const rate = fp / trials;
    console.log(`bloom false-positive rate at 10 bits/entry, 7 probes: ${(rate * 100).toFixed(2)}%`);
    expect(rate).toBeLessThan(0.012);
    // The same key in another state is another entry.
    let other = 0;
    for (let i = 0; i < n; i++) if (bloomMayContain(filter, bloomProbe(7, hashKey(`in-${i}`)))) other++;
    expect(other / n).toBeLessThan(0.012);
  });
});

describe("run writer", () => {
  it("cuts blocks near the target, keeps a hash's entries together, and writes a bloom filter per 32 blocks and the index", () => {
    const w = new RunWriter(1024);
    let n = 0;
    for (let h = 0; h < 3000; h++) for (let s = 1; s <= 3; s++) w.addText(h % 7, h, s, `k${h}`, encodeValue(n++), 0, 5);
    const s = w.finish();
    const pages = w.takePages();
    const blocks = pages.filter((p) => p.kind === PAGE_BLOCK);
    expect(blocks).toHaveLength(s.blocks);
    expect(pages.filter((p) => p.kind === PAGE_BLOOM)).toHaveLength(Math.ceil(s.blocks / 32));
    expect(pages.filter((p) => p.kind === PAGE_INDEX)).toHaveLength(1);
    expect(s.entries).toBe(9000);
    for (const p of blocks) {
      const v = new BlockView(p.bytes);
      // Three states per hash: a block holds whole groups, so its count is a multiple of 3.
      expect(v.count % 3).toBe(0);
      expect(p.bytes.length).toBeLessThan(1024 + 200);
    }
  });
});
