import { describe, expect, it } from "vitest";
import { hashKey } from "../../graph/key-groups.js";
import { doSql } from "../../../test/support/do-sql.js";
import { concat, writeTwoEpochs } from "../../../test/support/run-fixtures.js";
import { RUN_FILE_FOOTER_BYTES, RunFileError, blockRangeFor, exportRun, importRunBlocks, importRunFile, importRunRanged, readRunFooter, readRunMeta } from "./run-file.js";
import { RunStore } from "./run-store.js";
import { decodeValue } from "./value-codec.js";

const noPause = async () => {};
const MP = 64;

/** A store with two states over 4000 keys, some deleted, in one compacted run. */
async function filled(): Promise<{ store: RunStore; model: Map<string, unknown> }> {
  const store = new RunStore(doSql(), "src", { targetBlockBytes: 2048 });
  const model = await writeTwoEpochs(store, { seed: 4, writes: 3000, keys: 4000, deletes: 0.1, maxParallelism: MP, mapValue: (k, _epoch, i) => [[k, i]] });
  await store.compact(store.planCompaction(2, true)!, noPause);
  return { store, model };
}

function contents(store: RunStore, start = 0, end = 0xffff): Map<string, unknown> {
  return new Map([...store.scan(start, end)].map((e) => [`${store.names.get(e.stateId)!.name}/${e.key}`, decodeValue(e.value)]));
}

function inRange(model: Map<string, unknown>, start: number, end: number): Map<string, unknown> {
  return new Map([...model].filter(([id]) => {
    const g = hashKey(id.slice(2)) % MP;
    return g >= start && g <= end;
  }));
}

describe("run files", () => {
  it("round-trips a run whole: same ids, pages copied as they are", async () => {
    const { store, model } = await filled();
    const [run] = store.runs();
    const file = concat(exportRun(store, run.id));
    expect(file.length).toBeGreaterThan(run.bytes);
    const target = new RunStore(doSql(), "dst");
    target.stateId("a", "value");
    target.stateId("b", "map");
    const imported = (await importRunFile(target, file, noPause))!;
    expect(imported).toMatchObject({ epoch: 2, firstEpoch: 1, entries: run.entries, blocks: run.blocks, bytes: run.bytes });
    expect(contents(target)).toEqual(model);
    const h = hashKey("key-1");
    expect(target.get(1, h % MP, h, "key-1")).toEqual(store.get(1, h % MP, h, "key-1"));
  });

  it("imports a key-group range from only the bytes of its blocks, mapping state ids by name", async () => {
    const { store, model } = await filled();
    const [run] = store.runs();
    const file = concat(exportRun(store, run.id));
    // What a reader does against R2: the footer, then the meta, then one byte range.
    const { metaOffset, metaLength } = readRunFooter(file.subarray(file.length - RUN_FILE_FOOTER_BYTES));
    const meta = readRunMeta(file.subarray(metaOffset, metaOffset + metaLength));
    expect(meta.states.map((s) => s.name)).toEqual(["a", "b"]);
    const range = blockRangeFor(meta, 20, 29);
    expect(range.to - range.from).toBeLessThan(meta.blocks / 2);
    const target = new RunStore(doSql(), "dst");
    // Declared in the other order: ids differ, entries are rewritten.
    target.stateId("b", "map");
    await importRunBlocks(target, meta, file.slice(range.byteStart, range.byteEnd), range.byteStart, noPause, { keyGroupStart: 20, keyGroupEnd: 29, epoch: 7 });
    expect(target.runs()[0].epoch).toBe(7);
    expect(contents(target)).toEqual(inRange(model, 20, 29));
    // The whole-file import of a range gives the same.
    const again = new RunStore(doSql(), "dst");
    await importRunFile(again, file, noPause, { keyGroupStart: 20, keyGroupEnd: 29 });
    expect(contents(again)).toEqual(inRange(model, 20, 29));
  });

  it("imports through ranged reads of bounded size, whole (one run, pages as they are) or a key-group range (a run per chunk)", async () => {
    const { store, model } = await filled();
    const [run] = store.runs();
    const file = concat(exportRun(store, run.id));
    let largest = 0;
    let reads = 0;
    const read = async (offset: number, length: number) => {
      reads++;
      largest = Math.max(largest, length);
      return file.slice(offset, offset + length);
    };
    const whole = new RunStore(doSql(), "dst");
    const runs = await importRunRanged(whole, read, file.length, noPause, { epoch: 9, chunkBytes: 8192 });
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ epoch: 9, firstEpoch: 9, entries: run.entries, blocks: run.blocks, bytes: run.bytes });
    expect(contents(whole)).toEqual(model);
    // Footer, meta, and blocks and filters in chunks: no read much above the chunk size (one page at least).
    expect(reads).toBeGreaterThan(run.bytes / 8192);
    expect(largest).toBeLessThanOrEqual(Math.max(8192, file.length - run.bytes));
    const h = hashKey("key-7");
    expect(whole.get(1, h % MP, h, "key-7")).toEqual(store.get(1, h % MP, h, "key-7"));

    const part = new RunStore(doSql(), "dst");
    part.stateId("b", "map");
    const parts = await importRunRanged(part, read, file.length, noPause, { keyGroupStart: 10, keyGroupEnd: 40, chunkBytes: 8192 });
    expect(parts.length).toBeGreaterThan(1);
    expect(contents(part)).toEqual(inRange(model, 10, 40));
  });

  it("refuses what is not a run file of this version", async () => {
    const { store } = await filled();
    const file = concat(exportRun(store, store.runs()[0].id));
    expect(() => readRunFooter(new Uint8Array(10))).toThrow(RunFileError);
    const bad = file.slice();
    bad[bad.length - RUN_FILE_FOOTER_BYTES + 8] = 9;
    expect(() => readRunFooter(bad)).toThrow(/version 9 is not supported/);
    bad[bad.length - RUN_FILE_FOOTER_BYTES] = 0;
    await expect(importRunFile(new RunStore(doSql(), "x"), bad, noPause)).rejects.toThrow(/not a floe run file/);
  });
});
