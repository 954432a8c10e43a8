import { DatabaseSync } from "node:sqlite";
import { describe, expect, it } from "vitest";
import { IMAGE_STATEMENT_CHARS_MAX, type ImageRow, type ImageSql, StateImage } from "./state-image.js";

/** node:sqlite with the limits of Durable Object SQLite that the image must respect, counting statements. */
function doSql(): ImageSql & { statements: number; db: DatabaseSync } {
  const db = new DatabaseSync(":memory:");
  const sql = {
    db,
    statements: 0,
    exec(query: string, ...bindings: (string | number | null)[]) {
      if (bindings.length > 100) throw new Error(`${bindings.length} bound parameters; Durable Objects allow 100`);
      if (query.length > 100_000) throw new Error("statement longer than 100 KB");
      for (const b of bindings) if (typeof b === "string" && Buffer.byteLength(b) > 2_000_000) throw new Error("string over 2 MB");
      sql.statements++;
      const stmt = db.prepare(query);
      const rows = /^\s*(SELECT|WITH)/i.test(query) ? (stmt.all(...bindings) as Record<string, unknown>[]) : (stmt.run(...bindings), []);
      return Object.assign(rows, { toArray: () => rows });
    },
  };
  return sql;
}

const row = (key: string, valueJson: string | null, state = "count", kind: ImageRow["kind"] = "value"): ImageRow => ({ state, kind, key, keyGroup: key.length % 128, valueJson });

function all(sql: ReturnType<typeof doSql>, uid = "op"): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of sql.db.prepare(`SELECT state, key, value FROM keyed_state WHERE op = ? ORDER BY state, key`).all(uid) as { state: string; key: string; value: string }[]) {
    out[`${r.state}/${r.key}`] = r.value;
  }
  return out;
}

describe("StateImage", () => {
  it("writes many rows in one statement and keeps each value's JSON text as it was", () => {
    const sql = doSql();
    const image = new StateImage(sql);
    const before = sql.statements;
    const tricky = ['"a \\"quoted\\" \\\\ text"', "1e+21", "-0", '{"b":[1,2,{"c":null}],"a":"\\u2028"}', '"\\ud800 lone"', '"日本語 ✓"'];
    image.write("op", [...tricky.map((v, i) => row(`k${i}`, v)), row('k"weird\u0000key', "7")]);
    expect(sql.statements - before).toBe(1);
    const got = all(sql);
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
    expect(all(sql)).toEqual({ "count/a": "2", "count/c": "5" });
  });

  it("updates the value of an existing row, and its kind only when asked", () => {
    const sql = doSql();
    const image = new StateImage(sql);
    image.write("op", [row("a", "1", "s", "value")]);
    image.write("op", [row("a", "[1]", "s", "list")]);
    expect(sql.db.prepare(`SELECT kind, value FROM keyed_state`).get()).toEqual({ kind: "value", value: "[1]" });
    image.write("op", [row("a", "[2]", "s", "list")], true);
    expect(sql.db.prepare(`SELECT kind, value FROM keyed_state`).get()).toEqual({ kind: "list", value: "[2]" });
  });

  it("splits statements to keep the bound JSON under the size limit, and writes an oversized row alone", () => {
    const sql = doSql();
    const image = new StateImage(sql);
    const big = JSON.stringify("x".repeat(1000));
    const rows = Array.from({ length: 2000 }, (_, i) => row(`k${i}`, big));
    const before = sql.statements;
    image.write("op", rows);
    const statements = sql.statements - before;
    expect(statements).toBeGreaterThanOrEqual(Math.ceil((2000 * 1000) / IMAGE_STATEMENT_CHARS_MAX));
    expect(statements).toBeLessThan(10);
    expect(Object.keys(all(sql))).toHaveLength(2000);
    // Escaping the quotes of this value doubles it: it is bound as it is.
    const quotes = JSON.stringify('"'.repeat(IMAGE_STATEMENT_CHARS_MAX / 2 + 10));
    image.write("op", [row("a", "1"), row("q", quotes), row("b", "2")]);
    expect(all(sql)["count/q"]).toBe(quotes);
    expect(all(sql)["count/b"]).toBe("2");
  });

  it("keeps operators apart, and reads rows back on demand", () => {
    const sql = doSql();
    const image = new StateImage(sql);
    image.write("one", [row("a", "1"), row("m", '[["x",1]]', "seen", "map")]);
    image.write("two", [row("a", "2")]);
    const b = image.backing("one");
    expect(b.count()).toBe(2);
    expect(b.get("count", "a")).toEqual({ kind: "value", value: 1 });
    expect(b.get("seen", "m")).toEqual({ kind: "map", value: [["x", 1]] });
    expect(b.get("count", "zz")).toBeUndefined();
    expect([...b.entries()].sort((x, y) => x.state.localeCompare(y.state))).toEqual([
      { state: "count", key: "a", kind: "value", value: 1 },
      { state: "seen", key: "m", kind: "map", value: [["x", 1]] },
    ]);
    image.clearOperator("one");
    expect(b.count()).toBe(0);
    expect(image.backing("two").count()).toBe(1);
    image.clear();
    expect(image.backing("two").count()).toBe(0);
  });
});
