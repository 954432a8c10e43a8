import { describe, expect, it } from "vitest";
import { hashKey } from "../../graph/key-groups.js";
import { doSql } from "../../../test/support/do-sql.js";
import { Random } from "../../../test/support/random.js";
import type { Sql } from "../../storage/sql.js";
import { RunFill } from "./run-fill.js";
import { type OpenedRunFile, exportRun, openRunFile } from "./run-file.js";
import { RunStore } from "./run-store.js";
import { decodeValue } from "./value-codec.js";

const noPause = async () => {};
const MP = 64;
const RANGE = { start: 0, end: MP - 1 };

function concat(parts: Iterable<Uint8Array>): Uint8Array {
  const list = [...parts];
  const out = new Uint8Array(list.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of list) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Two run files of a source store (an older one, and a newer one with overwrites and tombstones), and the state they make. */
async function files(seed: number): Promise<{ files: Uint8Array[]; model: Map<string, unknown> }> {
  const store = new RunStore(doSql(), "src", { targetBlockBytes: 1024 });
  const a = store.stateId("a", "value");
  const b = store.stateId("b", "map");
  const rng = new Random(seed);
  const model = new Map<string, unknown>();
  const out: Uint8Array[] = [];
  for (let epoch = 1; epoch <= 2; epoch++) {
    const batch = store.batch();
    for (let i = 0; i < 2500; i++) {
      const k = `key-${rng.int(3000)}`;
      const h = hashKey(k);
      const s = rng.chance(0.5) ? a : b;
      const name = s === a ? "a" : "b";
      if (epoch === 2 && rng.chance(0.15)) {
        batch.delete(s, h % MP, h, k);
        model.delete(`${name}/${k}`);
      } else {
        const v = s === a ? i : [[k, `${epoch}-${i}`]];
        batch.put(s, h % MP, h, k, v);
        model.set(`${name}/${k}`, v);
      }
    }
    const run = await store.writeRun(batch, epoch, noPause);
    out.push(concat(exportRun(store, run!.id)));
  }
  return { files: out, model };
}

/** A target store (states declared in the source's order, so that ids match) and the files opened in it, oldest first. */
async function opened(sql: Sql, bytes: Uint8Array[], reads: { count: number; bytes: number }): Promise<{ store: RunStore; opened: OpenedRunFile[] }> {
  const store = new RunStore(sql, "dst", { targetBlockBytes: 1024 });
  store.stateId("a", "value");
  store.stateId("b", "map");
  const out: OpenedRunFile[] = [];
  for (const file of bytes) {
    const read = async (offset: number, length: number) => {
      reads.count++;
      reads.bytes += length;
      await new Promise((r) => setTimeout(r, 0));
      return file.slice(offset, offset + length);
    };
    out.push((await openRunFile(store, read, file.length, noPause, 7))!);
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

function groupOf(id: string): number {
  return hashKey(id.slice(2)) % MP;
}

describe("RunFill: a lazy restore of run files", () => {
  it("reads the blocks of a key group when asked, and the rest in the background, to the same state as an eager import", async () => {
    const { files: bytes, model } = await files(1);
    const reads = { count: 0, bytes: 0 };
    const sql = doSql();
    const { store, opened: opened_ } = await opened(sql, bytes, reads);
    const fill = new RunFill(store, opened_, RANGE, 16 * 1024);
    const total = bytes.reduce((n, f) => n + f.length, 0);
    // Opening read the footers, metas and bloom filters, not the blocks.
    expect(reads.bytes).toBeLessThan(total / 4);
    expect(fill.progress().missing).toBe(fill.progress().blocks);
    const ids = [...model.keys()];
    const id = ids[0];
    const g = groupOf(id);
    expect(fill.has(g)).toBe(false);
    expect(() => get(store, id)).toThrow(/not restored yet/);
    const before = reads.bytes;
    await fill.ensure([g]);
    expect(fill.has(g)).toBe(true);
    // Every key of that group reads as the model says (newest file wins, tombstones hide), from a few blocks.
    for (const other of ids.filter((x) => groupOf(x) === g)) expect(get(store, other)).toEqual(model.get(other));
    expect(reads.bytes - before).toBeLessThan(total / 8);
    expect(fill.progress().demandReads).toBe(1);
    // A group asked for again reads nothing.
    const again = reads.count;
    await fill.ensure([g]);
    expect(reads.count).toBe(again);
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

  it("serves reads on demand while the background reads, over seeds, and every group asked for reads as the model", async () => {
    for (let seed = 1; seed <= 6; seed++) {
      const { files: bytes, model } = await files(seed * 11);
      const rng = new Random(seed);
      const { store, opened: opened_ } = await opened(doSql(), bytes, { count: 0, bytes: 0 });
      const fill = new RunFill(store, opened_, RANGE, 4096 + rng.int(8192));
      const ids = [...model.keys()];
      const background = fill.run(async () => {
        await new Promise((r) => setTimeout(r, 0));
      });
      const asked: Promise<void>[] = [];
      for (let i = 0; i < 20; i++) {
        const groups = Array.from({ length: 1 + rng.int(5) }, () => rng.int(MP));
        asked.push(
          fill.ensure(groups).then(() => {
            for (const g of groups) expect(fill.has(g)).toBe(true);
            for (const id of ids.filter((x) => groups.includes(groupOf(x)))) expect(get(store, id)).toEqual(model.get(id));
          }),
        );
        if (rng.chance(0.5)) await new Promise((r) => setTimeout(r, 0));
      }
      await Promise.all(asked);
      await background;
      expect(contents(store), `seed ${seed}`).toEqual(model);
    }
  });

  it("reads each block once when records ask for what the background is reading, or has yet to reach", async () => {
    const { files: bytes, model } = await files(7);
    const reads = { count: 0, bytes: 0 };
    const { store, opened: opened_ } = await opened(doSql(), bytes, reads);
    const fill = new RunFill(store, opened_, RANGE, 8192);
    const opening = reads.bytes;
    const blockBytes = opened_.reduce((n, f) => n + f.meta.blockOffsets[f.meta.blocks] - f.meta.blockOffsets[0], 0);
    const background = fill.run(async () => {
        await new Promise((r) => setTimeout(r, 0));
    });
    // Asked for while the background's first chunk is on its way (group 0 is in it), and for the last groups (past it).
    await Promise.all([fill.ensure([0]), fill.ensure([MP - 2, MP - 1])]);
    await background;
    expect(contents(store)).toEqual(model);
    expect(fill.progress().bytesRead).toBe(blockBytes);
    expect(reads.bytes - opening).toBe(blockBytes);
  });

  it("forgets runs not whole when the object restarts, and stops when a restore drops them", async () => {
    const { files: bytes } = await files(3);
    const sql = doSql();
    const { store, opened: opened_ } = await opened(sql, bytes, { count: 0, bytes: 0 });
    const fill = new RunFill(store, opened_, RANGE, 8192);
    await fill.ensure([1, 2, 3]);
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
    await expect(fill.ensure([40, 41, 42, 43, 44])).rejects.toThrow(/no longer live/);
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
