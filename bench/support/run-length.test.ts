import { describe, expect, it } from "vitest";
import { DURATION_INPUT_BOUND, parseRunLength } from "./run-length.js";

describe("parseRunLength", () => {
  it("runs by duration by default: 20 s, 10 s with --quick", () => {
    expect(parseRunLength({ quick: false })).toEqual({ by: "duration", minSeconds: 20, events: DURATION_INPUT_BOUND });
    expect(parseRunLength({ quick: true })).toEqual({ by: "duration", minSeconds: 10, events: DURATION_INPUT_BOUND });
    expect(parseRunLength({ quick: false, seconds: "60" })).toEqual({ by: "duration", minSeconds: 60, events: DURATION_INPUT_BOUND });
  });

  it("runs a fixed number of events when asked", () => {
    expect(parseRunLength({ quick: false, events: "2000000" })).toEqual({ by: "events", events: 2_000_000 });
  });

  it("refuses runs shorter than 10 s, odd or oversized inputs, and both flags at once", () => {
    expect(() => parseRunLength({ quick: false, seconds: "5" })).toThrow('--seconds: expected a whole number of seconds, at least 10 (a shorter run has no steady figure), got "5"');
    expect(() => parseRunLength({ quick: false, seconds: "12.5" })).toThrow("--seconds");
    expect(() => parseRunLength({ quick: false, events: "3" })).toThrow("--events: expected a positive multiple of 2");
    expect(() => parseRunLength({ quick: false, events: String(2 ** 31) })).toThrow("--events");
    expect(() => parseRunLength({ quick: false, events: "x" })).toThrow("--events");
    expect(() => parseRunLength({ quick: false, events: "2", seconds: "10" })).toThrow("--seconds and --events exclude each other");
  });
});
