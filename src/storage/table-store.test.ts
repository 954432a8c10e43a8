import { describe, expect, it } from "vitest";
import { doSql } from "../../test/support/do-sql.js";
import { type TableRowWrite, TableStore } from "./table-store.js";

const row = (key: string, value: unknown): TableRowWrite => [key, JSON.stringify(key), value === null ? null : JSON.stringify(value)];

describe("TableStore", () => {
  it("upserts rows and deletes a row whose value is null", () => {
    const store = new TableStore(doSql());
    expect(store.upsert([row("a", 1), row("b", { n: 2 })])).toEqual({ applied: true });
    expect(store.upsert([row("a", 3), row("b", null)])).toEqual({ applied: true });
    expect(store.get("a")).toEqual({ key: "a", value: 3 });
    expect(store.get("b")).toBeNull();
    expect([...store.stored()]).toEqual([["a", ['"a"', "3"]]]);
  });

  it("applies each transaction of a writer once: a repeated or older one is skipped", () => {
    const store = new TableStore(doSql());
    expect(store.upsert([row("k", 1)], "w", 5)).toEqual({ applied: true });
    expect(store.upsert([row("k", 2)], "w", 5)).toEqual({ applied: false });
    expect(store.upsert([row("k", 3)], "w", 4)).toEqual({ applied: false });
    expect(store.get("k")?.value).toBe(1);
    expect(store.lastTxn("w")).toBe(5);
    expect(store.upsert([row("k", 4)], "w", 6)).toEqual({ applied: true });
    expect(store.get("k")?.value).toBe(4);
  });

  it("fences each writer on its own, and never a batch without writer and transaction", () => {
    const store = new TableStore(doSql());
    store.upsert([row("x", 1)], "w1", 9);
    expect(store.upsert([row("y", 1)], "w2", 1)).toEqual({ applied: true });
    expect(store.upsert([row("x", 2)])).toEqual({ applied: true });
    expect(store.upsert([row("x", 3)])).toEqual({ applied: true });
    expect(store.get("x")?.value).toBe(3);
    expect(store.lastTxn("w2")).toBe(1);
    expect(store.lastTxn("w3")).toBeUndefined();
  });

  it("keeps rows and fences across a new store on the same database (an object restart)", () => {
    const sql = doSql();
    new TableStore(sql).upsert([row("k", 1)], "w", 3);
    const again = new TableStore(sql);
    expect(again.upsert([row("k", 2)], "w", 3)).toEqual({ applied: false });
    expect(again.get("k")?.value).toBe(1);
  });

  it("lists rows in key order, a page at a time", () => {
    const store = new TableStore(doSql());
    store.upsert(["c", "a", "e", "b", "d"].map((k) => row(k, k.toUpperCase())));
    const first = store.list(null, 2);
    expect(first).toEqual({ rows: [{ key: "a", value: "A" }, { key: "b", value: "B" }], last: "b" });
    const second = store.list(first.last, 2);
    expect(second.rows.map((r) => r.key)).toEqual(["c", "d"]);
    const third = store.list(second.last, 2);
    expect(third).toEqual({ rows: [{ key: "e", value: "E" }], last: null });
  });
});
