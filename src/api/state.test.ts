import { describe, expect, it } from "vitest";
import { type Click, fakeSink, fakeSource } from "../../test/support/plan-fixtures.js";
import { JobDefinitionError } from "../errors.js";
import { buildPlan } from "../graph/plan.js";
import { job } from "./job.js";
import { listState, mapState, type StateDescriptor, StateVisibility, stateTtl, UpdateType, valueState } from "./state.js";
import type { KeyedProcessFunction } from "./types.js";

describe("state TTL in descriptors", () => {
  it("keeps a copy of the config on the descriptor", () => {
    const config = { ttlMs: 1000, updateType: "OnReadAndWrite" as const };
    const d = valueState<number>("v", { ttl: config });
    (config as { ttlMs: number }).ttlMs = 5;
    expect(d.ttl).toEqual({ ttlMs: 1000, updateType: "OnReadAndWrite" });
    expect(valueState("plain").ttl).toBeUndefined();
    expect(mapState("m", { ttl: { ttlMs: 1 } }).ttl).toEqual({ ttlMs: 1 });
  });

  it("builds a config the way Flink's StateTtlConfig.newBuilder does", () => {
    expect(stateTtl(60_000).setUpdateType(UpdateType.OnReadAndWrite).setStateVisibility(StateVisibility.ReturnExpiredIfNotCleanedUp).build()).toEqual({
      ttlMs: 60_000,
      updateType: "OnReadAndWrite",
      stateVisibility: "ReturnExpiredIfNotCleanedUp",
    });
    expect(stateTtl(5).build()).toEqual({ ttlMs: 5, updateType: "OnCreateAndWrite", stateVisibility: "NeverReturnExpired" });
  });

  it("refuses, when the descriptor is made, a TTL of 0 or less or a non-finite one, naming the state", () => {
    for (const ttlMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, "1000" as unknown as number]) {
      let caught: unknown;
      try {
        listState("recent", { ttl: { ttlMs } });
      } catch (e) {
        caught = e;
      }
      expect(caught, String(ttlMs)).toBeInstanceOf(JobDefinitionError);
      expect((caught as Error).message).toMatch(/^state "recent": ttl.ttlMs must be a finite number of milliseconds > 0, got /);
    }
    expect(() => valueState("v", { ttl: { ttlMs: 1, updateType: "OnRead" as never } })).toThrow(/state "v": ttl.updateType must be "OnCreateAndWrite" or "OnReadAndWrite", got "OnRead"/);
    expect(() => valueState("v", { ttl: { ttlMs: 1, stateVisibility: "toString" as never } })).toThrow(/ttl.stateVisibility must be/);
    expect(() => valueState("v", { ttl: 1000 as never })).toThrow(/state "v": ttl must be an object/);
  });

  it("refuses, when the job starts, a bad TTL in state a function declares, naming the operator and the state", () => {
    const bad: StateDescriptor = { kind: "value", name: "session", ttl: { ttlMs: 0 } };
    const fn: KeyedProcessFunction<string, Click, number> = { state: [bad], processElement: () => undefined };
    const j = job("ttl-bad");
    j.source(fakeSource(), { uid: "in" })
      .keyBy((c) => c.user)
      .process(fn, { uid: "sessions" })
      .sink(fakeSink(), { uid: "out" });
    expect(() => buildPlan(j)).toThrow(JobDefinitionError);
    expect(() => buildPlan(j)).toThrow('operator "sessions": state "session": ttl.ttlMs must be a finite number of milliseconds > 0, got 0');
  });
});
