import { describe, expect, it } from "vitest";
import { committedRecords, type DecodedMessage } from "./read-committed.js";

/** A record of producer `p` at `offset` (in a transaction unless `plain`), or its marker. */
const rec = (offset: number, p: string, opts: { plain?: boolean; marker?: boolean } = {}): DecodedMessage =>
  ({
    offset: String(offset),
    key: opts.marker ? Buffer.from([0, 0, 0, 0]) : Buffer.from("k"),
    value: Buffer.from(`${p}@${offset}`),
    timestamp: "0",
    attributes: 0,
    headers: {},
    isControlRecord: opts.marker ?? false,
    batchContext: { producerId: p, inTransaction: !opts.plain, isControlBatch: opts.marker ?? false },
  }) as unknown as DecodedMessage;

const values = (ms: DecodedMessage[]) => ms.map((m) => String(m.value));

describe("committedRecords", () => {
  it("drops aborted transactions of several producers, whatever order the broker lists them in", () => {
    // Producer A's transaction (10–12) commits; B's (11, 13) and C's (14) abort; B aborted after C.
    const messages = [rec(10, "A"), rec(11, "B"), rec(12, "A"), rec(13, "B"), rec(14, "C"), rec(15, "A", { marker: true }), rec(16, "C", { marker: true }), rec(17, "B", { marker: true }), rec(18, "D", { plain: true })];
    const aborted = [
      { producerId: "C", firstOffset: "14" },
      { producerId: "B", firstOffset: "11" },
    ];
    expect(values(committedRecords(messages, aborted, 10))).toEqual(["A@10", "A@12", "D@18"]);
  });

  it("enters every aborted transaction that began before the first fetched record", () => {
    const messages = [rec(20, "B"), rec(21, "C"), rec(22, "B", { marker: true }), rec(23, "C", { marker: true }), rec(24, "A")];
    const aborted = [
      { producerId: "B", firstOffset: "5" },
      { producerId: "C", firstOffset: "7" },
    ];
    expect(values(committedRecords(messages, aborted, 20))).toEqual(["A@24"]);
  });

  it("keeps a producer's later transaction after its aborted one ended, and skips records before the fetch offset", () => {
    const messages = [rec(1, "A"), rec(2, "A", { marker: true }), rec(3, "A"), rec(4, "A", { marker: true })];
    expect(values(committedRecords(messages, [{ producerId: "A", firstOffset: "1" }], 0))).toEqual(["A@3"]);
    expect(values(committedRecords(messages, [], 3))).toEqual(["A@3"]);
  });
});
