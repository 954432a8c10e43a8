import { describe, expect, it } from "vitest";
import { checkpointIdOfKey, metadataKey, parseSavepointRef, runFileKey, savepointDir, stateFileKey } from "./layout.js";

describe("parseSavepointRef", () => {
  it("reads a savepoint id, and the location the engine prints for it, with or without the slash or _metadata", () => {
    expect(parseSavepointRef("savepoint-12")).toEqual({ checkpointId: 12 });
    expect(parseSavepointRef(`r2://${savepointDir("", "clicks", 12)}`)).toEqual({ checkpointId: 12, prefix: "", job: "clicks" });
    expect(parseSavepointRef("r2://savepoints/clicks/savepoint-12")).toEqual({ checkpointId: 12, prefix: "", job: "clicks" });
    expect(parseSavepointRef("r2://savepoints/clicks/savepoint-12/_metadata")).toEqual({ checkpointId: 12, prefix: "", job: "clicks" });
    expect(parseSavepointRef(`r2://${savepointDir("team-a/", "page-views", 7)}`)).toEqual({ checkpointId: 7, prefix: "team-a/", job: "page-views" });
  });

  it("answers null for anything else", () => {
    for (const bad of ["12", "savepoint-", "savepoint-1x", "r2://savepoints/clicks/chk-12/", "s3://savepoints/clicks/savepoint-12/", "r2://savepoints/Clicks!/savepoint-1/"]) {
      expect(parseSavepointRef(bad), bad).toBeNull();
    }
  });
});

describe("checkpointIdOfKey", () => {
  it("reads the checkpoint a metadata key, a state file or a run file was written at (what garbage collection goes by)", () => {
    expect(checkpointIdOfKey(metadataKey("p/", "clicks", 8))).toBe(8);
    expect(checkpointIdOfKey(stateFileKey("", "clicks", "count", 3, 12))).toBe(12);
    expect(runFileKey("", "clicks", "count", 3, 12, "timers", 41)).toBe("checkpoints/clicks/shared/count/3/chk-12.timers-41.run");
    expect(checkpointIdOfKey(runFileKey("", "clicks", "count", 3, 12, "timers", 41))).toBe(12);
    expect(checkpointIdOfKey(runFileKey("", "clicks", "count", 3, 7, "states", 2))).toBe(7);
    for (const other of ["checkpoints/clicks/shared/count/3/chk-12.other-1.run", "checkpoints/clicks/shared/count/3/chk-12.states-1.run.tmp", "checkpoints/clicks/chk-x/_metadata"]) {
      expect(checkpointIdOfKey(other), other).toBeNull();
    }
  });
});
