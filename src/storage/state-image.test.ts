import { describe, expect, it } from "vitest";
import { type DoSql, doSql as baseSql } from "../../test/support/do-sql.js";
import { Random } from "../../test/support/random.js";
import { STATE_ENTRY_BYTES_MAX, StateTooLargeError } from "../state/state-limits.js";
import { IMAGE_CHUNK_CHARS, type ImageRow, StateImage } from "./state-image.js";

/** The Durable Object SQL port on node:sqlite, remembering its statements and failing one on demand. */
function doSql(): DoSql & { queries: string[]; failOn?: RegExp } {
  const sql: DoSql & { queries: string[]; failOn?: RegExp } = Object.assign(baseSql(), { queries: [] as string[], failOn: undefined as RegExp | undefined });
  sql.beforeExec = (query) => {
    if (sql.failOn?.test(query)) {
      sql.failOn = undefined;
      throw new Error("crash");
    }
    sql.queries.push(query);
  };
  return sql;
}

/** The key group the tests' rows give a key. */
const kg = (key: string) => key.length % 128;

const row = (key: string, valueJson: string | null, state = "count", kind: ImageRow["kind"] = "value"): ImageRow => ({ state, kind, key, keyGroup: key.length % 128, valueJson });

/** The table's rows, after merging every pending chunk. */
function all(sql: ReturnType<typeof doSql>, uid = "op", image = new StateImage(sql)): Record<string, string> {
  image.mergeAll();
  const out: Record<string, string> = {};
  for (const r of sql.db.prepare(`SELECT state, key, value FROM keyed_state WHERE op = ? ORDER BY state, key`).all(uid) as { state: string; key: string; value: string }[]) {
    out[`${r.state}/${r.key}`] = r.value;
  }
  return out;
}

describe("StateImage", () => {
  it("writes many rows as one chunk per key group and keeps each value's JSON text as it was", () => {
    const sql = doSql();
    const image = new StateImage(sql);
    const before = sql.statements;
    const tricky = ['"a \\"quoted\\" \\\\ text"', "1e+21", "-0", '{"b":[1,2,{"c":null}],"a":"\\u2028"}', '"\\ud800 lone"', '"日本語 ✓"'];
    image.write("op", [...tricky.map((v, i) => row(`k${i}`, v)), row('k"weird\u0000key', "7")]);
    expect(sql.statements - before).toBe(0);
    image.seal();
    // One chunk per key group: the k0…k5 keys share one, the weird key has its own.
    expect(sql.statements - before).toBe(2);
    const got = all(sql, "op", image);
    tricky.forEach((v, i) => expect(got[`count/k${i}`]).toBe(v));
    // Compared in SQL: node:sqlite cuts text read back at a NUL, SQLite itself keeps it.
    expect(sql.db.prepare(`SELECT value FROM keyed_state WHERE key = ?`).get('k"weird\u0000key')).toEqual({ value: "7" });
    const k0 = sql.db.prepare(`SELECT key_group, typeof(key_group) AS t, kind FROM keyed_state WHERE key = 'k0'`).get() as Record<string, unknown>;
    expect(k0).toEqual({ key_group: 2, t: "integer", kind: "value" });
  });

  it("applies rows in order: an upsert after a deletion of the same key wins, and the reverse", () => {
    const sql = doSql();
    const image = new StateImage(sql);
    image.write("op", [row("a", "1"), row("b", "1")]);
    image.write("op", [row("a", null), row("a", "2"), row("b", "3"), row("b", null), row("c", "4"), row("c", "5")]);
    expect(all(sql, "op", image)).toEqual({ "count/a": "2", "count/c": "5" });
  });

  it("updates the value of an existing row, and its kind only when asked", () => {
    const sql = doSql();
    const image = new StateImage(sql);
    image.write("op", [row("a", "1", "s", "value")]);
    image.write("op", [row("a", "[1]", "s", "list")]);
    expect(image.backing("op").get("s", "a", kg("a"))).toEqual({ kind: "value", value: [1] });
    image.mergeAll();
    expect(sql.db.prepare(`SELECT kind, value FROM keyed_state`).get()).toEqual({ kind: "value", value: "[1]" });
    image.write("op", [row("a", "[2]", "s", "list")], true);
    expect(image.backing("op").get("s", "a", kg("a"))).toEqual({ kind: "list", value: [2] });
    image.mergeAll();
    expect(sql.db.prepare(`SELECT kind, value FROM keyed_state`).get()).toEqual({ kind: "list", value: "[2]" });
  });

  it("splits statements to keep the bound JSON under the size limit, and writes an oversized row alone", () => {
    const sql = doSql();
    const image = new StateImage(sql);
    const big = JSON.stringify("x".repeat(1000));
    const rows = Array.from({ length: 2000 }, (_, i) => row(`k${i}`, big));
    const before = sql.statements;
    image.write("op", rows);
    image.seal();
    const statements = sql.statements - before;
    expect(statements).toBeGreaterThanOrEqual(Math.ceil((2000 * 1000) / IMAGE_CHUNK_CHARS));
    expect(statements).toBeLessThan(20);
    expect(Object.keys(all(sql, "op", image))).toHaveLength(2000);
    // Escaping the quotes of this value doubles it: it is bound as it is.
    const quotes = JSON.stringify('"'.repeat(IMAGE_CHUNK_CHARS / 2 + 10));
    image.write("op", [row("a", "1"), row("q", quotes), row("b", "2")]);
    expect(all(sql, "op", image)["count/q"]).toBe(quotes);
    expect(all(sql, "op", image)["count/b"]).toBe("2");
  });

  it("refuses a row too large for SQLite by operator, state and key instead of binding it, in both write paths", () => {
    for (const through of [false, true]) {
      const sql = doSql();
      const image = new StateImage(sql);
      // A state file written before captures checked sizes, restored from R2: 2,100,002 bytes of JSON.
      const huge = JSON.stringify("€".repeat(700_000));
      const write = () => (through ? image.writeThrough("count-per-user", [row("a", "1"), row("big", huge), row("b", "2")]) : image.write("count-per-user", [row("a", "1"), row("big", huge)]));
      expect(write).toThrow(StateTooLargeError);
      expect(write).toThrow(/^operator "count-per-user": state "count" for key "big" takes 2100010 bytes .*at most 1999800 bytes/);
      expect(sql.queries.some((q) => q.includes("VALUES (?, ?, ?, ?, ?, ?)"))).toBe(false);
      // A row just under the limit is written alone, as before.
      const fits = JSON.stringify("x".repeat(STATE_ENTRY_BYTES_MAX - "count".length - "ok".length - 2));
      image.write("count-per-user", [row("ok", fits)]);
      expect(all(sql, "count-per-user", image)["count/ok"]).toBe(fits);
    }
  });

  it("keeps operators apart, and reads rows back on demand", () => {
    const sql = doSql();
    const image = new StateImage(sql);
    image.write("one", [row("a", "1"), row("m", '[["x",1]]', "seen", "map")]);
    image.write("two", [row("a", "2")]);
    const b = image.backing("one");
    expect(b.count()).toBe(2);
    expect(b.get("count", "a", kg("a"))).toEqual({ kind: "value", value: 1 });
    expect(b.get("seen", "m", kg("m"))).toEqual({ kind: "map", value: [["x", 1]] });
    expect(b.get("count", "zz", kg("zz"))).toBeUndefined();
    expect([...b.entries()].sort((x, y) => x.state.localeCompare(y.state))).toEqual([
      { state: "count", key: "a", kind: "value", value: 1 },
      { state: "seen", key: "m", kind: "map", value: [["x", 1]] },
    ]);
    image.clearOperator("one");
    expect(image.backing("one").count()).toBe(0);
    expect(image.backing("two").count()).toBe(1);
    image.clear();
    expect(image.backing("two").count()).toBe(0);
  });

  it("appends a write to the log and leaves the table to the merge", () => {
    const sql = doSql();
    const image = new StateImage(sql);
    image.write("op", [row("a", "1"), row("b", "2")]);
    image.write("op", [row("a", null)]);
    expect(sql.db.prepare(`SELECT COUNT(*) AS n FROM keyed_state`).get()).toEqual({ n: 0 });
    expect(image.pending()).toBe(2);
    const before = image.backing("op");
    expect(before.count()).toBe(1);
    expect(before.get("count", "a", kg("a"))).toBeUndefined();
    expect(image.mergeStep()).toBe(true);
    expect(image.mergeStep()).toBe(false);
    expect(image.pending()).toBe(0);
    expect(image.mergeStep()).toBe(false);
    expect(all(sql, "op", image)).toEqual({ "count/b": "2" });
    // A backing made before the merge reads what it read before.
    expect(before.get("count", "b", kg("b"))).toEqual({ kind: "value", value: 2 });
    expect([...before.entries()]).toEqual([{ state: "count", key: "b", kind: "value", value: 2 }]);
  });

  it("counts a key once whether the table, the log or both hold it", () => {
    const sql = doSql();
    const image = new StateImage(sql);
    image.write("op", [row("a", "1"), row("b", "1"), row("c", "1")]);
    image.mergeAll();
    // b and c are in the table; a is deleted in the log, b rewritten, d and e new, e deleted again.
    image.write("op", [row("b", "2"), row("d", "2"), row("e", "2")]);
    image.write("op", [row("a", null), row("e", null), row("zz", null)]);
    const b = image.backing("op");
    expect(b.count()).toBe(3);
    expect(
      [...b.entries()].map((e) => `${e.key}=${e.value}`).sort(),
    ).toEqual(["b=2", "c=1", "d=2"]);
  });

  it("keeps the image through merges cut short at any statement, over many random runs", () => {
    const rng = new Random(1234);
    const random = () => rng.next();
    const pick = <T>(xs: readonly T[]) => rng.pick(xs);
    const ops = ["one", "two"];
    const states = ["count", "seen"];
    // Keys of three lengths: three key groups.
    const keys = Array.from({ length: 9 }, (_, i) => `k${"x".repeat(i % 3)}${i}`);
    for (let run = 0; run < 25; run++) {
      const sql = doSql();
      let image = new StateImage(sql);
      const model = new Map<string, string>();
      for (let step = 0; step < 30; step++) {
        const roll = random();
        if (roll < 0.5) {
          const uid = pick(ops);
          const rows: ImageRow[] = Array.from({ length: 1 + Math.floor(random() * 6) }, () => row(pick(keys), random() < 0.3 ? null : String(Math.floor(random() * 100)), pick(states)));
          if (random() < 0.5) image.write(uid, rows);
          else image.writeThrough(uid, rows);
          for (const r of rows) {
            const id = `${uid}/${r.state}/${r.key}`;
            if (r.valueJson === null) model.delete(id);
            else model.set(id, r.valueJson);
          }
        } else if (roll < 0.8) {
          image.mergeStep();
        } else {
          // The object dies in the middle of a merge; a new one opens the same database.
          sql.failOn = pick([/^INSERT INTO keyed_state/, /^DELETE FROM keyed_state/, /^DELETE FROM image_chunks/]);
          try {
            image.mergeStep();
          } catch {
            // the crash
          }
          sql.failOn = undefined;
          image = new StateImage(sql);
        }
        for (const uid of ops) {
          const expected = [...model].filter(([id]) => id.startsWith(`${uid}/`)).map(([id, v]) => `${id.slice(uid.length + 1)}=${v}`).sort();
          const b = image.backing(uid);
          expect([...b.entries()].map((e) => `${e.state}/${e.key}=${JSON.stringify(e.value)}`).sort()).toEqual(expected);
          expect(b.count()).toBe(expected.length);
          for (const k of keys) {
            const v = model.get(`${uid}/count/${k}`);
            expect(b.get("count", k, kg(k))?.value).toEqual(v === undefined ? undefined : JSON.parse(v));
          }
        }
      }
      image.mergeAll();
      expect(image.pending()).toBe(0);
      const merged = { ...all(sql, "one") };
      expect(merged).toEqual(Object.fromEntries([...model].filter(([id]) => id.startsWith("one/")).map(([id, v]) => [id.slice(4), v])));
    }
  });

  it("reads a key group's pending chunks only when one of its keys is first asked for, and takes the count it is given", () => {
    const sql = doSql();
    const image = new StateImage(sql);
    image.write("op", [row("a", "1"), row("bb", "2"), row("ccc", "3")]);
    image.mergeAll();
    image.write("op", [row("a", "10"), row("bb", null), row("dd", "4")]);
    sql.queries.length = 0;
    const b = image.backing("op", 3);
    const chunkReads = () => sql.queries.filter((q) => q.includes("FROM image_chunks WHERE op = ? AND key_group = ?")).length;
    expect(chunkReads()).toBe(0);
    expect(b.count()).toBe(3);
    expect(b.get("count", "a", kg("a"))).toEqual({ kind: "value", value: 10 });
    expect(chunkReads()).toBe(1);
    expect(b.get("count", "ccc", kg("ccc"))).toEqual({ kind: "value", value: 3, bytes: 1 });
    expect(chunkReads()).toBe(1);
    expect(b.get("count", "bb", kg("bb"))).toBeUndefined();
    expect(b.get("count", "dd", kg("dd"))).toEqual({ kind: "value", value: 4 });
    expect(chunkReads()).toBe(2);
    // Counted, when not given: the same.
    expect(image.backing("op").count()).toBe(3);
  });

  it("reads the timer entries alone, from the table and the pending chunks in order, without loading key groups", () => {
    const sql = doSql();
    const image = new StateImage(sql);
    const timer = (key: string, json: string | null, domain = "event") => row(key, json, `timer:${domain}`, "timer");
    image.writeThrough("op", [row("a", "1"), timer("a", "[5,9]"), timer("bb", "[7]", "processing"), timer("gone", "[1]")]);
    image.writeThrough("other", [timer("a", "[99]")]);
    // Restored from R2 over it: chunks pending, one deleting, one replacing, one adding.
    image.write("op", [timer("gone", null), timer("a", "[9]"), timer("ccc", "[3]"), row("ccc", "4")], true);
    sql.queries.length = 0;
    const b = image.backing("op", 4);
    const timers = [...b.timers()].map((t) => `${t.state}/${t.key}=${JSON.stringify(t.value)}`).sort();
    expect(timers).toEqual(["timer:event/a=[9]", "timer:event/ccc=[3]", "timer:processing/bb=[7]"]);
    expect(sql.queries.filter((q) => q.includes("key_group = ?")).length).toBe(0);
    image.mergeAll();
    expect([...image.backing("op", 4).timers()].map((t) => `${t.state}/${t.key}=${JSON.stringify(t.value)}`).sort()).toEqual(timers);
  });

  it("keeps each key group's order, and merges chunks of every group", () => {
    const sql = doSql();
    const image = new StateImage(sql);
    image.write("op", [row("a", "1"), row("bb", "1"), row("a", null), row("bb", "2"), row("a", "3")]);
    expect(image.pending()).toBe(4);
    expect([...image.backing("op").entries()].map((e) => `${e.key}=${e.value}`).sort()).toEqual(["a=3", "bb=2"]);
    image.mergeAll();
    expect(all(sql, "op", image)).toEqual({ "count/a": "3", "count/bb": "2" });
  });

  it("writes through to the table when nothing is pending, and behind the pending chunks when some are", () => {
    const sql = doSql();
    const image = new StateImage(sql);
    image.writeThrough("op", [row("a", "1"), row("bb", "2"), row("a", null), row("a", "3")]);
    expect(image.pending()).toBe(0);
    expect(sql.db.prepare(`SELECT key, value FROM keyed_state ORDER BY key`).all()).toEqual([
      { key: "a", value: "3" },
      { key: "bb", value: "2" },
    ]);
    image.write("op", [row("a", "4")]);
    // A write-through now would overtake the chunk: it is appended behind it.
    image.writeThrough("op", [row("a", "5")]);
    expect(image.pending()).toBe(1);
    expect(sql.db.prepare(`SELECT value FROM keyed_state WHERE key = 'a'`).get()).toEqual({ value: "3" });
    expect(image.backing("op").get("count", "a", kg("a"))).toEqual({ kind: "value", value: 5 });
    // Another operator has nothing pending: straight into the table.
    image.writeThrough("other", [row("z", "9")]);
    expect(sql.db.prepare(`SELECT value FROM keyed_state WHERE op = 'other'`).get()).toEqual({ value: "9" });
    image.mergeAll();
    expect(all(sql, "op", image)).toEqual({ "count/a": "5", "count/bb": "2" });
  });

  it("a backing reads what the image holds now, after writes behind pending chunks and straight into the table (a memory budget reads evicted keys again)", () => {
    const sql = doSql();
    const image = new StateImage(sql);
    image.write("op", [row("a", "1"), row("bb", "2")]);
    const b = image.backing("op");
    expect(b.get("count", "a", kg("a"))?.value).toBe(1);
    // Written back behind the pending chunks, and sealed (a checkpoint's write-back).
    image.writeThrough("op", [row("a", "10"), row("bb", null)]);
    image.seal();
    expect(b.get("count", "a", kg("a"))?.value).toBe(10);
    expect(b.get("count", "bb", kg("bb"))).toBeUndefined();
    // Merged (which changes nothing a key reads), then written straight into the table.
    image.mergeAll();
    expect(b.get("count", "a", kg("a"))?.value).toBe(10);
    image.writeThrough("op", [row("a", "11"), row("bb", "3")]);
    expect(b.get("count", "a", kg("a"))?.value).toBe(11);
    expect(b.get("count", "bb", kg("bb"))).toEqual({ kind: "value", value: 3, bytes: 1 });
  });

  it("reads every entry in pages of its own statements, so that a pass suspended between entries survives writes and merges", () => {
    const sql = doSql();
    const image = new StateImage(sql);
    const keys = Array.from({ length: 2500 }, (_, i) => `k${i}`);
    image.writeThrough("op", keys.map((k) => row(k, "1")));
    image.write("op", [row("k1", "2"), row("zz", "3")]);
    const b = image.backing("op");
    const seen = new Map<string, unknown>();
    let n = 0;
    for (const e of b.entries()) {
      seen.set(e.key, e.value);
      // Mid-pass: a merge, and a write of a key the pass already gave (the keyed-state backend holds such keys in memory).
      if (++n === 1200) {
        image.mergeAll();
        image.writeThrough("op", [row("k0", "9")]);
      }
    }
    expect(n).toBe(2501);
    expect(seen.get("k1")).toBe(2);
    expect(seen.get("zz")).toBe(3);
    expect(seen.get("k2499")).toBe(1);
    expect(sql.queries.filter((q) => q.includes("(state, key) > (?2, ?3)")).length).toBe(2);
  });
});
