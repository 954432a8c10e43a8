import { describe, expect, it } from "vitest";
import { type AlarmConcern, SharedAlarm } from "./shared-alarm.js";

function concern(name: string, dueMs: () => number | null, log: string[]): AlarmConcern {
  return {
    nextAlarmMs: () => dueMs(),
    onAlarm: async (nowMs) => {
      const at = dueMs();
      if (at !== null && nowMs >= at) log.push(`${name}@${nowMs}`);
    },
  };
}

describe("SharedAlarm", () => {
  it("runs every due concern in order, then sets the alarm to the earliest next time", async () => {
    let now = 100;
    const alarms: (number | null)[] = [];
    const log: string[] = [];
    const due = { a: 100 as number | null, b: 250 as number | null, c: 90 as number | null };
    const alarm = new SharedAlarm(
      [concern("a", () => due.a, log), concern("b", () => due.b, log), concern("c", () => due.c, log)],
      { now: () => now, setAlarm: async (at) => void alarms.push(at) },
    );
    await alarm.run();
    expect(log).toEqual(["a@100", "c@100"]);
    expect(alarms).toEqual([90]);
    due.a = null;
    due.c = 400;
    now = 260;
    await alarm.run();
    expect(log).toEqual(["a@100", "c@100", "b@260"]);
    expect(alarms).toEqual([90, 250]);
  });

  it("deletes the alarm when no concern is due", async () => {
    const alarms: (number | null)[] = [];
    const alarm = new SharedAlarm([concern("a", () => null, [])], { now: () => 0, setAlarm: async (at) => void alarms.push(at) });
    await alarm.schedule();
    expect(alarms).toEqual([null]);
  });
});
