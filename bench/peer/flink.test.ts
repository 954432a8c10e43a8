import { describe, expect, it } from "vitest";
import { parseProgress } from "./flink.js";

describe("parseProgress", () => {
  it("reads the driver's progress lines and nothing else", () => {
    expect(parseProgress("[progress] 10042 1515520 10")).toEqual({ sinceFirstRecordMs: 10042, count: 1515520, checkpoints: 10 });
    expect(parseProgress("[progress] 10042 1515520 10\r")).toEqual({ sinceFirstRecordMs: 10042, count: 1515520, checkpoints: 10 });
    expect(parseProgress("[flink] running")).toBeNull();
    expect(parseProgress("[progress] 1 2")).toBeNull();
  });
});
