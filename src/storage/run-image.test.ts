import { describe, expect, it } from "vitest";
import { doSql } from "../../test/support/do-sql.js";
import { keyText } from "../graph/key-groups.js";
import { keyGroupOfText, type StateEntry } from "../state/keyed-state.js";
import { encodeEntries } from "../state/snapshot-format.js";
import { IMAGE_CHECKPOINTS_KEPT, RESTORE_RUN_ENTRIES, RunImage } from "./run-image.js";

const MAX_PARALLELISM = 16;
const RANGE = { start: 0, end: MAX_PARALLELISM - 1 };
const noTurn = async () => undefined;

function image(sql = doSql()) {
  return new RunImage(sql, { pause: async () => undefined, targetBlockBytes: 512 });
}

/** A count entry of `key` (a string key's canonical text), or its deletion. */
function count(key: string, value: number | undefined): StateEntry {
  const text = keyText(key);
  return { state: "count", kind: "value", key: text, keyGroup: keyGroupOfText(text, MAX_PARALLELISM), value };
}

async function writeBack(img: RunImage, checkpointId: number, entries: StateEntry[], keys: number): Promise<void> {
  const w = img.begin(checkpointId);
  w.add("op", encodeEntries(entries));
  await w.seal(noTurn);
  img.mark(checkpointId, RANGE, { op: keys });
}

function read(img: RunImage, key: string): unknown {
  const text = keyText(key);
  return img.backing("op", 0).get("count", text, keyGroupOfText(text, MAX_PARALLELISM))?.value;
}

describe("RunImage", () => {
  it("writes a checkpoint's changes as one run per store, tagged with the checkpoint; deletions hide older values", async () => {
    const img = image();
    const timer: StateEntry = { state: "timer:event", kind: "timer", key: keyText("a"), keyGroup: keyGroupOfText(keyText("a"), MAX_PARALLELISM), value: [5, 9] };
    const seen: StateEntry = { state: "seen", kind: "map-ttl", key: keyText("a"), keyGroup: timer.keyGroup, value: [["x", 1, 1000]] };
    await writeBack(img, 1, [count("a", 1), count("b", 2), timer, seen], 4);
    await writeBack(img, 2, [count("a", 3), count("b", undefined)], 3);
    expect(img.runs("op").states.map((r) => [r.epoch, r.entries, r.tombstones])).toEqual([
      [1, 3, 0],
      [2, 2, 1],
    ]);
    expect(img.runs("op").timers.map((r) => r.epoch)).toEqual([1]);
    expect(read(img, "a")).toBe(3);
    expect(read(img, "b")).toBeUndefined();
    const backing = img.backing("op", 3);
    expect(backing.count()).toBe(3);
    expect(backing.get("seen", seen.key, seen.keyGroup)).toMatchObject({ kind: "map-ttl", value: [["x", 1, 1000]] });
    expect([...backing.timers()]).toEqual([{ state: "timer:event", key: timer.key, value: [5, 9] }]);
    const all = [...backing.entries()].map((e) => [e.state, e.kind, e.key, e.value]);
    expect(all).toEqual(expect.arrayContaining([["count", "value", keyText("a"), 3], ["seen", "map-ttl", seen.key, [["x", 1, 1000]]], ["timer:event", "timer", timer.key, [5, 9]]]));
    expect(all).toHaveLength(3);
  });

  it("restores a checkpoint locally by dropping the runs above it while no compaction merged across it, and only for the range it was marked with", async () => {
    const sql = doSql();
    const img = image(sql);
    img.resume(0);
    for (let id = 1; id <= 4; id++) await writeBack(img, id, [count("a", id)], 1);
    // A new incarnation of the object over the same database.
    const again = image(sql);
    await again.halt();
    expect(again.localRestore("op", 3, { start: 0, end: 7 })).toBeUndefined();
    expect(again.localRestore("other", 3, RANGE)).toBeUndefined();
    expect(again.localRestore("op", 3, RANGE)).toBe(1);
    expect(read(again, "a")).toBe(3);
    again.mark(3, RANGE, { op: 1 });
    again.resume(3);
    await again.idle();
    // Runs 1..3 belong to a completed checkpoint: compacted into one, so 2 is out of reach; 3 is not.
    expect(again.runs("op").states.map((r) => [r.firstEpoch, r.epoch])).toEqual([[1, 3]]);
    expect(sql.exec(`SELECT checkpoint_id FROM image_checkpoints ORDER BY checkpoint_id`).toArray()).toEqual([{ checkpoint_id: 3 }]);
    await again.halt();
    expect(again.localRestore("op", 2, RANGE)).toBeUndefined();
    expect(again.localRestore("op", 3, RANGE)).toBe(1);
    // The dropped run's pages went in the background.
    expect(sql.exec(`SELECT COUNT(*) AS n FROM state_runs WHERE live = 0`).one().n).toBe(0);
  });

  it("keeps the newest checkpoints' rows only, when no compaction prunes them", async () => {
    const sql = doSql();
    const img = image(sql);
    for (let id = 1; id <= IMAGE_CHECKPOINTS_KEPT + 5; id++) {
      img.mark(id, RANGE, { op: 0 });
      img.kick();
    }
    await img.idle();
    const ids = sql.exec<{ checkpoint_id: number }>(`SELECT checkpoint_id FROM image_checkpoints ORDER BY checkpoint_id`).toArray().map((r) => r.checkpoint_id);
    expect(ids).toHaveLength(IMAGE_CHECKPOINTS_KEPT);
    expect(ids[ids.length - 1]).toBe(IMAGE_CHECKPOINTS_KEPT + 5);
  });

  it("marks no checkpoint after a failed write-back until the next restore: later runs may miss its changes", async () => {
    const sql = doSql();
    const img = image(sql);
    await writeBack(img, 1, [count("a", 1)], 1);
    await writeBack(img, 2, [count("a", 2)], 1);
    // Checkpoint 3's write-back fails (its task goes on).
    sql.beforeExec = (q) => {
      if (q.startsWith("INSERT INTO state_runs")) throw new Error("disk full");
    };
    const failing = img.begin(3);
    failing.add("op", encodeEntries([count("a", 3)]));
    await expect(failing.seal(noTurn)).rejects.toThrow(/disk full/);
    sql.beforeExec = undefined;
    await writeBack(img, 4, [count("b", 1)], 2);
    expect(sql.exec(`SELECT checkpoint_id FROM image_checkpoints ORDER BY checkpoint_id`).toArray()).toEqual([{ checkpoint_id: 1 }, { checkpoint_id: 2 }]);
    await img.halt();
    expect(img.localRestore("op", 4, RANGE)).toBeUndefined();
    expect(img.localRestore("op", 2, RANGE)).toBe(1);
    expect(read(img, "a")).toBe(2);
    expect(read(img, "b")).toBeUndefined();
  });

  it("halts after a write in flight: a canceled write-back ends at its next turn, and nothing of it is visible", async () => {
    const img = image();
    await writeBack(img, 1, [count("a", 1)], 1);
    let canceled = false;
    let turns = 0;
    const w = img.begin(2);
    w.add("op", encodeEntries(Array.from({ length: 20_000 }, (_, i) => count(`k${i}`, i))));
    const sealing = w.seal(async () => {
      turns++;
      await new Promise((r) => setTimeout(r, 1));
      if (canceled) throw new Error("snapshot 2 canceled");
    });
    while (turns === 0) await new Promise((r) => setTimeout(r, 1));
    canceled = true;
    await img.halt();
    await expect(sealing).rejects.toThrow(/canceled/);
    expect(img.runs("op").states.map((r) => r.epoch)).toEqual([1]);
    expect(img.localRestore("op", 1, RANGE)).toBe(1);
  });

  it("writes a restore from R2 as runs of the checkpoint, later files overwriting earlier ones, and counts a rescaled restore", async () => {
    const img = image();
    await writeBack(img, 1, [count("old", 1)], 1);
    await img.halt();
    img.clearOperator("op");
    const r = img.restoring("op", 7);
    const n = RESTORE_RUN_ENTRIES + 10;
    for (let i = 0; i < n; i++) {
      r.add(count(`k${i}`, i));
      if (r.full) await r.flush(noTurn);
    }
    // A delta file after the full one: one key changed, one deleted.
    r.add(count("k1", 100));
    r.add(count("k2", undefined));
    await r.flush(noTurn);
    expect(img.runs("op").states.map((x) => x.epoch)).toEqual([7, 7]);
    expect(read(img, "old")).toBeUndefined();
    expect(read(img, "k1")).toBe(100);
    expect(read(img, "k2")).toBeUndefined();
    expect(read(img, `k${n - 1}`)).toBe(n - 1);
    expect(await img.count("op", noTurn)).toBe(n - 1);
  });
});
