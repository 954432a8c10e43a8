import { describe, expect, it } from "vitest";
import { doSql } from "../../../test/support/do-sql.js";
import { OPEN_TXN } from "../../connectors/sinks/two-phase-commit.js";
import { createStagingTables, sqlStagingStore, stagedTransactions } from "./staging-store.js";

function store(options: Partial<Parameters<typeof sqlStagingStore>[1]> = {}) {
  const sql = doSql();
  createStagingTables(sql);
  return { sql, staging: sqlStagingStore(sql, { attempt: 1, ...options }) };
}

describe("sqlStagingStore", () => {
  it("seals the open transaction, keeps the rows in order, and drops a published one", () => {
    const { sql, staging } = store();
    staging.append("sink", OPEN_TXN, ["a", "b"]);
    staging.append("sink", OPEN_TXN, ["c"]);
    staging.seal("sink", 4);
    expect(staging.sealed("sink")).toEqual([4]);
    expect(staging.rows("sink", 4)).toEqual(["a", "b", "c"]);
    expect(staging.bytes("sink")).toBe(4);
    expect(stagedTransactions(sql)).toEqual([{ uid: "sink", txn: 4, rows: 3, sealed: true }]);
    staging.drop("sink", 4);
    expect(staging.sealed("sink")).toEqual([]);
    expect(stagedTransactions(sql)).toEqual([]);
  });

  it("drops the open transaction and the sealed ones after a restored checkpoint, and tells the observer which", () => {
    const seen: unknown[] = [];
    const { staging } = store({ observer: { droppedAfter: (uid, txn, dropped, attempt) => seen.push({ uid, txn, dropped, attempt }) } });
    for (const txn of [3, 5, 6]) {
      staging.append("sink", OPEN_TXN, [`r${txn}`]);
      staging.seal("sink", txn);
    }
    staging.append("sink", OPEN_TXN, ["open"]);
    staging.dropAfter("sink", 4);
    expect(staging.sealed("sink")).toEqual([3]);
    expect(staging.rows("sink", OPEN_TXN)).toEqual([]);
    expect(seen).toEqual([{ uid: "sink", txn: 4, dropped: [5, 6], attempt: 1 }]);
  });

  it("with the dropBeforePublish seam (a broken variant), reading a transaction for its publish deletes it", () => {
    const { staging } = store({ seams: { dropBeforePublish: true } });
    staging.append("sink", OPEN_TXN, ["a"]);
    staging.seal("sink", 2);
    expect(staging.rows("sink", 2)).toEqual(["a"]);
    expect(staging.sealed("sink")).toEqual([]);
  });
});
