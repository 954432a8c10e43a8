import { describe, expect, it } from "vitest";
import { type KeyGroupRange, hashKey } from "../../graph/key-groups.js";
import { doSql } from "../../../test/support/do-sql.js";
import { Random } from "../../../test/support/random.js";
import { concat, writeTwoEpochs } from "../../../test/support/run-fixtures.js";
import type { Sql } from "../../storage/sql.js";
import { type FillKey, MAX_FILL_READS, RunFill } from "./run-fill.js";
import { type OpenedRunFile, exportRun, openRunFile } from "./run-file.js";
import { RunStore } from "./run-store.js";
import { decodeValue } from "./value-codec.js";

const noPause = async () => {};
const MP = 64;
const RANGE = { start: 0, end: MP - 1 };

/** Two run files of a source store (an older one, and a newer one with overwrites and tombstones), and the state they make. */
async function files(seed: number, targetBlockBytes = 1024): Promise<{ files: Uint8Array[]; model: Map<string, unknown> }> {
  const store = new RunStore(doSql(), "src", { targetBlockBytes });
  const out: Uint8Array[] = [];
  const model = await writeTwoEpochs(store, { seed, writes: 2500, keys: 3000, deletes: 0.15, maxParallelism: MP, mapValue: (k, epoch, i) => [[k, `${epoch}-${i}`]] }, (run) =>
    out.push(concat(exportRun(store, run.id))),
  );
  return { files: out, model };
}

/** A target store (states declared in the source's order, so that ids match) and the files opened in it, oldest first. */
interface Reads {
  count: number;
  bytes: number;
  open: number;
  maxOpen: number;
}

const noReads = (): Reads => ({ count: 0, bytes: 0, open: 0, maxOpen: 0 });

async function opened(sql: Sql, bytes: Uint8Array[], reads: Reads, clip?: KeyGroupRange): Promise<{ store: RunStore; opened: OpenedRunFile[] }> {
  const store = new RunStore(sql, "dst", { targetBlockBytes: 1024 });
  store.stateId("a", "value");
  store.stateId("b", "map");
  const out: OpenedRunFile[] = [];
  for (const file of bytes) {
    const read = async (offset: number, length: number) => {
      reads.count++;
      reads.bytes += length;
      reads.maxOpen = Math.max(reads.maxOpen, ++reads.open);
      await new Promise((r) => setTimeout(r, 0));
      reads.open--;
      return file.slice(offset, offset + length);
    };
    out.push((await openRunFile(store, read, file.length, noPause, 7, clip))!);
  }
  return { store, opened: out };
}

function get(store: RunStore, id: string): unknown {
  const [name, key] = [id.slice(0, 1), id.slice(2)];
  const stateId = store.stateId(name, name === "a" ? "value" : "map");
  const h = hashKey(key);
  const bytes = store.get(stateId, h % MP, h, key);
  return bytes == null ? undefined : decodeValue(bytes);
}

function contents(store: RunStore): Map<string, unknown> {
  return new Map([...store.scan()].map((e) => [`${store.names.get(e.stateId)!.name}/${e.key}`, decodeValue(e.value)]));
}

/** The fill's key of a model id ("a/key-1": state a, key key-1). */
function keyOf(id: string): FillKey {
  const hash = hashKey(id.slice(2));
  return { keyGroup: hash % MP, hash };
}

describe("RunFill: a lazy restore of run files", () => {
  it("reads the blocks of a key group when asked, and the rest in the background, to the same state as an eager import", async () => {
    const { files: bytes, model } = await files(1);
    const reads = noReads();
    const sql = doSql();
    const { store, opened: opened_ } = await opened(sql, bytes, reads);
    const fill = new RunFill(store, opened_, RANGE, 16 * 1024);
    const total = bytes.reduce((n, f) => n + f.length, 0);
    // Opening read the footers, metas and bloom filters, not the blocks.
    expect(reads.bytes).toBeLessThan(total / 4);
    expect(fill.progress().missing).toBe(fill.progress().blocks);
    const ids = [...model.keys()];
    const id = ids[0];
    const k = keyOf(id);
    expect(fill.has(k)).toBe(false);
    expect(() => get(store, id)).toThrow(/not restored yet/);
    const before = reads.bytes;
    await fill.ensure([k]);
    expect(fill.has(k)).toBe(true);
    // Every state of that key reads as the model says (newest file wins, tombstones hide), from a block or two a file.
    for (const other of ids.filter((x) => x.slice(2) === id.slice(2))) expect(get(store, other)).toEqual(model.get(other));
    expect(reads.bytes - before).toBeLessThanOrEqual(2 * 2 * 1024 + 2 * 1024);
    expect(fill.progress().demandReads).toBe(1);
    // A key asked for again reads nothing.
    const again = reads.count;
    await fill.ensure([k]);
    expect(reads.count).toBe(again);
    // A batch of keys: their blocks in few ranged reads, at most MAX_FILL_READS at once.
    const batch = ids.slice(1, 200).map(keyOf);
    const reading = reads.count;
    await fill.ensure(batch);
    for (const x of ids.slice(1, 200)) expect(get(store, x)).toEqual(model.get(x));
    expect(reads.count - reading).toBeLessThan(batch.length);
    expect(reads.maxOpen).toBeLessThanOrEqual(MAX_FILL_READS);
    expect(reads.maxOpen).toBeGreaterThan(1);
    // Nothing compacts a run that is not whole.
    expect(store.planCompaction(100, true)).toBeUndefined();
    await fill.run(noPause);
    expect(fill.complete).toBe(true);
    expect(fill.progress().missing).toBe(0);
    expect(contents(store)).toEqual(model);
    expect(store.planCompaction(100, true)).toBeDefined();
    // Whole runs are durable: a store opened again over the same SQLite finds them.
    expect(contents(new RunStore(sql, "dst"))).toEqual(model);
  });

  it("clipped to the key groups a subtask owns (a rescale out), reads only their blocks and holds only their state, through compaction and a restart", async () => {
    const { files: bytes, model } = await files(13);
    const clip = { start: 20, end: 37 };
    const inClip = new Map([...model].filter(([id]) => keyOf(id).keyGroup >= clip.start && keyOf(id).keyGroup <= clip.end));
    const reads = noReads();
    const sql = doSql();
    const { store, opened: opened_ } = await opened(sql, bytes, reads, clip);
    const fill = new RunFill(store, opened_, clip, 8192);
    const blocks = opened_.reduce((n, f) => n + f.meta.blocks, 0);
    // Blocks that cannot hold the clip's key groups are not to be read: about (37 - 20 + 1) / 64 of them are.
    expect(fill.progress().blocks).toBeLessThan(blocks / 2);
    expect(fill.progress().missing).toBe(fill.progress().blocks);
    const ids = [...inClip.keys()];
    await fill.ensure(ids.slice(0, 50).map(keyOf));
    for (const id of ids.slice(0, 50)) expect(get(store, id)).toEqual(model.get(id));
    // A key group outside the clip is not this subtask's: the fill refuses it.
    await expect(fill.ensure([{ keyGroup: 5, hash: 7 }])).rejects.toThrow(/outside this fill's range/);
    await fill.run(noPause);
    expect(fill.progress().missing).toBe(0);
    // What was read: the blocks of the clip, less than half the files' block bytes.
    const blockBytes = opened_.reduce((n, f) => n + f.meta.blockOffsets[f.meta.blocks] - f.meta.blockOffsets[0], 0);
    expect(fill.progress().bytesRead).toBeLessThan(blockBytes / 2);
    // Lookups and scans see the clip's state only, whatever key group they ask for.
    expect(contents(store)).toEqual(inClip);
    expect([...store.scan(0, 25)].every((e) => e.keyGroup >= clip.start && e.keyGroup <= 25)).toBe(true);
    expect([...store.scan(50, 63)]).toEqual([]);
    for (const [id] of [...model].filter(([x]) => !inClip.has(x)).slice(0, 50)) expect(get(store, id)).toBeUndefined();
    // A clipped run keeps its clip: it lists it (a checkpoint references the file with it), and cannot be exported.
    expect(store.runs().map((r) => r.keyGroups)).toEqual([clip, clip]);
    expect(() => concat(exportRun(store, store.runs()[0].id))).toThrow(/cannot be exported/);
    // A restarted object finds the clips again.
    const reopened = new RunStore(sql, "dst", { targetBlockBytes: 1024 });
    expect(reopened.runs().map((r) => r.keyGroups)).toEqual([clip, clip]);
    expect(contents(reopened)).toEqual(inClip);
    // A compaction writes the clip's entries alone, into a run that is not clipped.
    const merged = await reopened.compact(reopened.planCompaction(100, true)!, noPause);
    expect(merged?.keyGroups).toBeUndefined();
    expect(reopened.runs()).toHaveLength(1);
    expect(contents(reopened)).toEqual(inClip);
    expect(merged!.entries).toBe(inClip.size);
    reopened.collectGarbageNow();
    expect(sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM state_run_clips WHERE op = 'dst'`).one().n).toBe(0);
  });

  it("serves reads on demand while the background reads, over seeds, and every key asked for reads as the model", async () => {
    for (let seed = 1; seed <= 12; seed++) {
      const rng = new Random(seed);
      // Some seeds cut a block at every entry: every key group then ends at a block's end.
      const { files: bytes, model: all } = await files(seed * 11, seed % 4 === 0 ? 1 : 1024);
      // Half the seeds clip the files to a random range of key groups (a rescale out), as narrow as one.
      const start = rng.int(MP);
      const clip = seed % 2 === 0 ? { start, end: Math.min(MP - 1, start + rng.int(MP / 2)) } : undefined;
      const model = clip ? new Map([...all].filter(([id]) => keyOf(id).keyGroup >= clip.start && keyOf(id).keyGroup <= clip.end)) : all;
      const { store, opened: opened_ } = await opened(doSql(), bytes, noReads(), clip);
      const fill = new RunFill(store, opened_, clip ?? RANGE, 4096 + rng.int(8192));
      const ids = [...model.keys()];
      const background = fill.run(async () => {
        await new Promise((r) => setTimeout(r, 0));
      });
      const asked: Promise<void>[] = [];
      for (let i = 0; i < 20; i++) {
        const batch = Array.from({ length: 1 + rng.int(40) }, () => ids[rng.int(ids.length)]);
        asked.push(
          fill.ensure(batch.map(keyOf)).then(() => {
            for (const id of batch) {
              expect(fill.has(keyOf(id))).toBe(true);
              expect(get(store, id)).toEqual(model.get(id));
            }
          }),
        );
        if (rng.chance(0.5)) await new Promise((r) => setTimeout(r, 0));
      }
      await Promise.all(asked);
      await background;
      expect(contents(store), `seed ${seed}`).toEqual(model);
      // Compacted, the clip's state alone.
      await store.compact(store.planCompaction(100, true)!, noPause);
      expect(contents(store), `seed ${seed}, compacted`).toEqual(model);
    }
  });

  it("reads each block once when records ask for what the background is reading, or has yet to reach", async () => {
    const { files: bytes, model } = await files(7);
    const reads = noReads();
    const { store, opened: opened_ } = await opened(doSql(), bytes, reads);
    const fill = new RunFill(store, opened_, RANGE, 8192);
    const opening = reads.bytes;
    const blockBytes = opened_.reduce((n, f) => n + f.meta.blockOffsets[f.meta.blocks] - f.meta.blockOffsets[0], 0);
    const background = fill.run(async () => {
        await new Promise((r) => setTimeout(r, 0));
    });
    // Asked for while the background's first chunk is on its way (a key at the start is in it), and for the last keys (past it).
    const keys = [...model.keys()].map(keyOf);
    await Promise.all([fill.ensure(keys.filter((k) => k.keyGroup === 0)), fill.ensure(keys.filter((k) => k.keyGroup >= MP - 2))]);
    await background;
    expect(contents(store)).toEqual(model);
    expect(fill.progress().bytesRead).toBe(blockBytes);
    expect(reads.bytes - opening).toBe(blockBytes);
  });

  it("forgets runs not whole when the object restarts, and stops when a restore drops them", async () => {
    const { files: bytes } = await files(3);
    const sql = doSql();
    const { store, opened: opened_ } = await opened(sql, bytes, noReads());
    const fill = new RunFill(store, opened_, RANGE, 8192);
    await fill.ensure([1, 2, 3].map((g) => ({ keyGroup: g, hash: 7 })));
    expect(store.runs()).toHaveLength(2);
    // A restart: the runs were published as filling, so they are not live, and their pages are garbage.
    const reopened = new RunStore(sql, "dst");
    expect(reopened.runs()).toEqual([]);
    expect(reopened.hasGarbage).toBe(true);
    reopened.collectGarbageNow();
    expect(sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM state_run_pages WHERE op = 'dst'`).one().n).toBe(0);
    // A restore clears the store while the fill runs: its next write fails, naming the run.
    store.clear();
    await expect(fill.run(noPause)).rejects.toThrow(/no longer live/);
    await expect(fill.ensure([40, 41, 42, 43, 44].map((g) => ({ keyGroup: g, hash: 7 })))).rejects.toThrow(/no longer live/);
  });

  it("is not used for a file whose state ids differ from the store's (its entries are rewritten on import instead)", async () => {
    const { files: bytes } = await files(5);
    const store = new RunStore(doSql(), "dst");
    store.stateId("b", "map");
    store.stateId("a", "value");
    const file = bytes[0];
    expect(await openRunFile(store, async (o, n) => file.slice(o, o + n), file.length, noPause)).toBeUndefined();
    expect(store.runs()).toEqual([]);
  });
});
