import { describe, expect, it } from "vitest";
import { FloeError } from "../errors.js";
import { DEFAULT_STREAM_LIMITS, MAX_BYTES_LIMIT, parseStartingOffsets, streamLimits } from "./stream-options.js";

describe("streamLimits", () => {
  it("fills in the defaults", () => {
    expect(streamLimits("s")).toEqual(DEFAULT_STREAM_LIMITS);
    expect(streamLimits("s", { retentionMs: 1000 })).toEqual({ ...DEFAULT_STREAM_LIMITS, retentionMs: 1000 });
  });

  it("refuses zero, negative and non-numeric limits, naming the stream and the option", () => {
    expect(() => streamLimits("clicks", { retentionMs: 0 })).toThrow('stream "clicks": retentionMs must be a positive number, got 0');
    expect(() => streamLimits("clicks", { retentionBytes: -5 })).toThrow(/retentionBytes must be a positive number, got -5/);
    expect(() => streamLimits("clicks", { maxRequestsPerSecond: Number.NaN })).toThrow(/maxRequestsPerSecond/);
    expect(() => streamLimits("clicks", { maxBytes: "1" as unknown as number })).toThrow(/maxBytes must be a positive number, got "1"/);
  });

  it("keeps the size limit at or above the size retention", () => {
    expect(() => streamLimits("s", { retentionBytes: 100, maxBytes: 50 })).toThrow(/maxBytes \(50\) must be at least retentionBytes \(100\)/);
    // A retention above the default limit raises the default limit with it.
    expect(streamLimits("s", { retentionBytes: 5 * 1024 ** 3 }).maxBytes).toBe(MAX_BYTES_LIMIT);
    expect(() => streamLimits("s", { maxBytes: 9 * 1024 ** 3 })).toThrow(/at most/);
  });
});

describe("parseStartingOffsets", () => {
  const now = 1_000_000;
  it("takes earliest, latest and a past timestamp", () => {
    expect(parseStartingOffsets("earliest", now)).toBe("earliest");
    expect(parseStartingOffsets("latest", now)).toBe("latest");
    expect(parseStartingOffsets({ timestamp: 5 }, now)).toEqual({ timestamp: 5 });
  });

  it.each([
    ["newest", /must be "earliest", "latest" or/],
    [{ timestamp: now + 1 }, /is in the future/],
    [{ timestamp: "yesterday" }, /whole number of epoch ms, got "yesterday"/],
    [{ timestamp: 1.5 }, /whole number/],
    [{ timestamp: 1, extra: true }, /must be/],
    [null, /must be/],
    [[], /must be/],
  ])("refuses %j with invalid_starting_offsets", (value, message) => {
    let caught: unknown;
    try {
      parseStartingOffsets(value, now);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(FloeError);
    expect((caught as FloeError).code).toBe("invalid_starting_offsets");
    expect((caught as FloeError).status).toBe(400);
    expect((caught as FloeError).message).toMatch(message);
  });
});
