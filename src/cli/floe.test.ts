import { Readable } from "node:stream";
import { afterEach, describe, expect, it, vi } from "vitest";
import { main } from "./floe.js";

/** Runs `floe ingest` on `lines`, with fetch answering from `answers` in turn (a status, or a thrown network error). */
async function ingest(lines: string[], answers: (number | Error)[]) {
  const keys: string[] = [];
  vi.stubGlobal("fetch", async (_url: string, init: RequestInit) => {
    keys.push((init.headers as Record<string, string>)["idempotency-key"]);
    const a = answers.shift();
    if (a === undefined || a instanceof Error) throw a ?? new Error("no more answers");
    const body = a === 200 ? { count: lines.length } : { error: { code: "invalid_record", message: "line 1: bad" } };
    return new Response(JSON.stringify(body), { status: a });
  });
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(["ingest", "clicks"], {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    env: { FLOE_URL: "http://engine.test", FLOE_TOKEN: "t" },
    stdin: Readable.from(lines.map((l) => `${l}\n`)),
  });
  return { code, out, err, keys };
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("floe ingest", () => {
  it("sends a batch again, with the same Idempotency-Key, when the engine could not be reached", async () => {
    const r = await ingest(['{"a":1}', '{"a":2}'], [new TypeError("fetch failed"), 200]);
    expect(r.code).toBe(0);
    expect(r.out).toEqual(["2 records in 1 requests"]);
    expect(r.keys).toHaveLength(2);
    expect(r.keys[1]).toBe(r.keys[0]);
  });

  it("does not send again when the engine answered with an error", async () => {
    const r = await ingest(['{"a":1}'], [400, 200]);
    expect(r.code).toBe(1);
    expect(r.keys).toHaveLength(1);
    expect(r.err.join("\n")).toMatch(/invalid_record/);
  });
});
