import { describe, expect, it } from "vitest";
import {
  adoptLive,
  isExpired,
  plainKindOf,
  pruneLive,
  sameTtl,
  Stamped,
  ttlFromPersisted,
  TtlList,
  TtlMap,
  ttlPolicy,
  ttlToPersisted,
  unexpiredLive,
  unexpiredPersisted,
} from "./ttl.js";

const policy = ttlPolicy({ ttlMs: 100 });

describe("ttl", () => {
  it("expires at lastAccess + ttl, as Flink (expiration timestamp <= now)", () => {
    expect(isExpired(1000, policy, 1099)).toBe(false);
    expect(isExpired(1000, policy, 1100)).toBe(true);
  });

  it("reads the config's defaults: OnCreateAndWrite, NeverReturnExpired", () => {
    expect(ttlPolicy({ ttlMs: 5 })).toEqual({ ttlMs: 5, updateOnRead: false, returnExpired: false });
    expect(ttlPolicy({ ttlMs: 5, updateType: "OnReadAndWrite", stateVisibility: "ReturnExpiredIfNotCleanedUp" })).toEqual({ ttlMs: 5, updateOnRead: true, returnExpired: true });
    expect(sameTtl({ ttlMs: 5 }, { ttlMs: 5, updateType: "OnCreateAndWrite" })).toBe(true);
    expect(sameTtl({ ttlMs: 5 }, { ttlMs: 6 })).toBe(false);
    expect(sameTtl(undefined, { ttlMs: 6 })).toBe(false);
  });

  it("round-trips each live form through its persisted form", () => {
    const forms = [
      ["value-ttl", [{ a: 1 }, 7]],
      ["map-ttl", [["k", 1, 5], ["j", null, 6]]],
      ["list-ttl", [["x", 1], ["y", 2]]],
    ] as const;
    for (const [kind, value] of forms) expect(ttlToPersisted(ttlFromPersisted(kind, value))).toEqual(value);
    expect(JSON.stringify(new Stamped("v", 3))).toBe('["v",3]');
    expect(plainKindOf("map-ttl")).toBe("map");
    expect(plainKindOf("timer")).toBe("timer");
  });

  it("prunes in place and reports what went", () => {
    const m = new TtlMap(new Map([["old", new Stamped(1, 0)], ["new", new Stamped(2, 50)]]));
    expect(pruneLive(m, policy, 100)).toBe("some");
    expect([...m.entries.keys()]).toEqual(["new"]);
    expect(pruneLive(m, policy, 149)).toBe("none");
    expect(pruneLive(m, policy, 150)).toBe("all");
    const l = new TtlList([new Stamped("a", 0), new Stamped("b", 60)]);
    expect(pruneLive(l, policy, 100)).toBe("some");
    expect(l.items.map((s) => s.value)).toEqual(["b"]);
    expect(pruneLive(new Stamped(1, 0), policy, 100)).toBe("all");
  });

  it("copies only the unexpired part for a snapshot, leaving the live entry as it is", () => {
    const m = new TtlMap(new Map([["a", new Stamped(1, 60)], ["old", new Stamped(2, 0)], ["b", new Stamped(3, 70)]]));
    const kept = unexpiredLive(m, policy, 100) as TtlMap;
    expect([...kept.entries.keys()]).toEqual(["a", "b"]);
    expect(m.entries.size).toBe(3);
    expect(unexpiredLive(m, policy, 50)).toBe(m);
    expect(unexpiredLive(m, policy, 200)).toBeUndefined();
    const l = new TtlList([new Stamped("a", 0), new Stamped("b", 60)]);
    expect((unexpiredLive(l, policy, 100) as TtlList).items.map((s) => s.value)).toEqual(["b"]);
    expect(l.items).toHaveLength(2);
    expect(unexpiredPersisted("list-ttl", [["a", 0], ["b", 60]], policy, 100)).toEqual([["b", 60]]);
    expect(unexpiredPersisted("value-ttl", ["a", 0], policy, 100)).toBeUndefined();
  });

  it("converts an entry across a TTL added (stamped now) or removed (timestamps dropped)", () => {
    expect(adoptLive("value", 5, true, 42)).toEqual(new Stamped(5, 42));
    expect(adoptLive("map", new Map([["k", 1]]), true, 42)).toEqual(new TtlMap(new Map([["k", new Stamped(1, 42)]])));
    expect(adoptLive("list", [1, 2], true, 42)).toEqual(new TtlList([new Stamped(1, 42), new Stamped(2, 42)]));
    expect(adoptLive("value", new Stamped(5, 1), false, 42)).toBe(5);
    expect(adoptLive("map", new TtlMap(new Map([["k", new Stamped(1, 1)]])), false, 42)).toEqual(new Map([["k", 1]]));
    expect(adoptLive("list", new TtlList([new Stamped(1, 1)]), false, 42)).toEqual([1]);
    const same = new Stamped(1, 1);
    expect(adoptLive("value", same, true, 42)).toBe(same);
  });
});
