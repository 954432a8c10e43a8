import { describe, expect, it } from "vitest";
import { parseSavepointRef, savepointDir } from "./layout.js";

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
