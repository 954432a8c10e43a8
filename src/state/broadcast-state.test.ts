import { describe, expect, it } from "vitest";
import { mapState } from "../api/state.js";
import { BROADCAST_STATE_MAX_BYTES, BroadcastStateStore, BroadcastStateTooLargeError } from "./broadcast-state.js";

const rules = mapState<{ limit: number }>("rules");
const flags = mapState<boolean>("flags");

describe("BroadcastStateStore", () => {
  it("writes through the broadcast view and reads through the read-only one", () => {
    const store = new BroadcastStateStore([rules, flags], "apply-rules");
    const rw = store.state(rules);
    const ro = store.view(rules);
    expect(ro.isEmpty()).toBe(true);
    rw.put("/a", { limit: 3 });
    rw.put("/b", { limit: 5 });
    expect(ro.get("/a")).toEqual({ limit: 3 });
    expect(ro.contains("/b")).toBe(true);
    expect(ro.size()).toBe(2);
    expect(ro.keys()).toEqual(["/a", "/b"]);
    expect("put" in ro).toBe(false);
    rw.remove("/a");
    expect(ro.entries()).toEqual([["/b", { limit: 5 }]]);
    store.state(flags).put("dark", true);
    expect(store.size()).toBe(2);
    rw.clear();
    expect(store.size()).toBe(1);
  });

  it("snapshots as JSON that later changes do not reach, and restores it", () => {
    const store = new BroadcastStateStore([rules, flags], "apply-rules");
    expect(store.snapshot()).toBeUndefined();
    store.state(rules).put("/a", { limit: 3 });
    const text = store.snapshot()!;
    store.state(rules).put("/a", { limit: 4 });
    expect(JSON.parse(text)).toEqual({ rules: [["/a", { limit: 3 }]], flags: [] });

    const restored = new BroadcastStateStore([rules, flags], "apply-rules");
    restored.state(flags).put("stale", false);
    restored.restore({ ...JSON.parse(text), gone: [["x", 1]] });
    expect(restored.view(rules).entries()).toEqual([["/a", { limit: 3 }]]);
    expect(restored.view(flags).isEmpty()).toBe(true);
    expect(restored.size()).toBe(1);
  });

  it("refuses undeclared state, non-string keys, undefined values and a state over the limit, naming the operator", () => {
    const store = new BroadcastStateStore([rules], "apply-rules");
    expect(() => store.view(flags)).toThrow(/operator "apply-rules" asks for broadcast state "flags", which its broadcast stream does not declare \(it declares "rules"\)/);
    expect(() => store.state(rules).put(1 as unknown as string, { limit: 1 })).toThrow(/broadcast state "rules" of operator "apply-rules": keys are strings/);
    expect(() => store.state(rules).put("/a", undefined as never)).toThrow(/put\("\/a", undefined\); use remove\(\)/);
    const big = "x".repeat(1024);
    for (let i = 0; i < BROADCAST_STATE_MAX_BYTES / 1024 + 1; i++) store.state(rules).put(`k${i}`, { limit: i, big } as never);
    expect(() => store.snapshot()).toThrow(BroadcastStateTooLargeError);
    expect(() => store.snapshot()).toThrow(/operator "apply-rules": its broadcast state holds \d+ bytes as JSON, more than 1048576/);
  });
});
