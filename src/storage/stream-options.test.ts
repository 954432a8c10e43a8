import { describe, expect, it } from "vitest";
import { FloeError } from "../errors.js";
import {
  DEFAULT_STREAM_LIMITS,
  IDEMPOTENCY_TTL_MS,
  MAX_BYTES_LIMIT,
  PARTITION_BYTES_MAX,
  idempotencyKeyBytes,
  idempotencyWindowMs,
  parseStartingOffsets,
  streamLimits,
} from "./stream-options.js";

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
    // A retention above the default limit raises the default limit with it, as far as the keys leave room.
    expect(streamLimits("s", { retentionBytes: 5 * 1024 ** 3, maxRequestsPerSecond: 10 }).maxBytes).toBe(MAX_BYTES_LIMIT);
    expect(streamLimits("s", { retentionBytes: 4.5e9 }).maxBytes).toBe(PARTITION_BYTES_MAX - idempotencyKeyBytes(DEFAULT_STREAM_LIMITS));
    expect(() => streamLimits("s", { maxBytes: 9 * 1024 ** 3 })).toThrow(/at most/);
    // A retention that leaves no room for the keys is refused rather than given a limit below it.
    expect(() => streamLimits("s", { retentionBytes: 4.8e9 })).toThrow(/Idempotency-Keys of 24 hours .* more than the 9000000000 a partition may hold/);
  });

  it("keeps the records and a window of Idempotency-Keys within what a partition may hold", () => {
    // The defaults: 4 GiB of records and a day of keys at 500 requests a second (4.32 GB).
    expect(idempotencyKeyBytes(DEFAULT_STREAM_LIMITS)).toBe(500 * 86_400 * 100);
    expect(DEFAULT_STREAM_LIMITS.maxBytes + idempotencyKeyBytes(DEFAULT_STREAM_LIMITS)).toBeLessThanOrEqual(PARTITION_BYTES_MAX);
    // Kafka's week of retention keeps a week of keys: at 500 requests a second, 30 GB of them.
    expect(() => streamLimits("clicks", { retentionMs: 7 * 86_400_000 })).toThrow(
      'stream "clicks": at 500 requests a second, the Idempotency-Keys of 168 hours (the retention, at least a day) take up to 30240000000 bytes, and with maxBytes (4294967296) more than the 9000000000 a partition may hold: lower retentionMs, maxRequestsPerSecond or maxBytes',
    );
    expect(streamLimits("clicks", { retentionMs: 7 * 86_400_000, maxRequestsPerSecond: 50 }).retentionMs).toBe(7 * 86_400_000);
    // The window is a day at least, whatever the retention.
    expect(idempotencyWindowMs({ retentionMs: 1000 })).toBe(IDEMPOTENCY_TTL_MS);
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
