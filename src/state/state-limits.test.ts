import { describe, expect, it } from "vitest";
import { keyText } from "../graph/key-groups.js";
import { STATE_ENTRY_BYTES_MAX, STATE_ROW_BYTES_MAX, StateTooLargeError, checkStateEntry, displayKey, stringEntryMayBeTooLarge } from "./state-limits.js";

describe("checkStateEntry", () => {
  it("keeps room in a 2 MB row for the operator uid, kind, key group and record header", () => {
    expect(STATE_ROW_BYTES_MAX).toBe(2_000_000);
    expect(STATE_ENTRY_BYTES_MAX).toBeLessThan(STATE_ROW_BYTES_MAX - 64);
  });

  it("lets an entry of exactly the limit through and refuses one byte more, counting UTF-8 bytes of state, key and value", () => {
    const value = (bytes: number) => JSON.stringify("x".repeat(bytes - 2));
    expect(() => checkStateEntry("op", "s", "k", value(STATE_ENTRY_BYTES_MAX - 2))).not.toThrow();
    expect(() => checkStateEntry("op", "s", "k", value(STATE_ENTRY_BYTES_MAX - 1))).toThrow(StateTooLargeError);
    // The key counts: a long key leaves less room for the value.
    expect(() => checkStateEntry("op", "s", "k".repeat(1001), value(STATE_ENTRY_BYTES_MAX - 1001))).toThrow(/takes 1999801 bytes/);
    // Three-byte characters: a third as many of them fill the entry.
    const euros = Math.floor(STATE_ENTRY_BYTES_MAX / 3) - 2;
    expect(() => checkStateEntry("op", "s", "k", JSON.stringify("€".repeat(euros)))).not.toThrow();
    expect(() => checkStateEntry("op", "s", "k", JSON.stringify("€".repeat(euros + 1)))).toThrow(StateTooLargeError);
  });

  it("names the operator, the state and the key, and says what to do", () => {
    let thrown: StateTooLargeError | undefined;
    try {
      checkStateEntry("sessions", "events", keyText("user-7"), JSON.stringify(["a".repeat(2_000_000)]));
    } catch (e) {
      thrown = e as StateTooLargeError;
    }
    expect(thrown).toBeInstanceOf(StateTooLargeError);
    expect(thrown!.message).toBe(
      'operator "sessions": state "events" for key "user-7" takes 2000016 bytes (state name, key and value as JSON, in UTF-8); ' +
        "a keyed-state entry may take at most 1999800 bytes, because each is one row of the subtask's SQLite (a Durable Object stores at most 2 MB in a row). Keep less state under one key",
    );
    expect(thrown).toMatchObject({ operator: "sessions", state: "events", key: '"user-7"', entryBytes: 2_000_016 });
  });
});

describe("stringEntryMayBeTooLarge", () => {
  it("is false for strings whose JSON cannot reach the limit, even all escapes, and true otherwise", () => {
    const safe = Math.floor((STATE_ENTRY_BYTES_MAX - 2 - 3 * 2) / 6);
    expect(stringEntryMayBeTooLarge("s", "k", "\u0001".repeat(safe))).toBe(false);
    expect(stringEntryMayBeTooLarge("s", "k", "x".repeat(safe + 1))).toBe(true);
    const escaped = "\u0001".repeat(safe);
    expect(JSON.stringify(escaped).length + 2).toBeLessThanOrEqual(STATE_ENTRY_BYTES_MAX);
  });
});

describe("displayKey", () => {
  it("shows a string key as JSON and a number key as the number, cut when long", () => {
    expect(displayKey(keyText("a\"b"))).toBe('"a\\"b"');
    expect(displayKey(keyText(42))).toBe("42");
    expect(displayKey(keyText(-1.5))).toBe("-1.5");
    const long = displayKey("k".repeat(1000));
    expect(long).toHaveLength(201);
    expect(long.endsWith("…")).toBe(true);
  });
});
