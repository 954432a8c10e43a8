import { describe, expect, it } from "vitest";
import { addCheck, chooseCpu, descendantsOf, emptyReport, parseCores, parseCpuList, parseSchedstat, parseStat, parseStatus, pinnedCommand, workerdWrapper } from "./pinning.js";

describe("parseCores", () => {
  it("defaults to the whole machine and runs both modes on request, whole machine first", () => {
    expect(parseCores(undefined)).toEqual(["all"]);
    expect(parseCores("all")).toEqual(["all"]);
    expect(parseCores("1")).toEqual(["1"]);
    expect(parseCores("both")).toEqual(["all", "1"]);
  });

  it("names the flag and the value it refuses", () => {
    expect(() => parseCores("2")).toThrow('--cores: expected all, 1 or both, got "2"');
    expect(() => parseCores("")).toThrow("--cores");
  });
});

describe("parseCpuList", () => {
  it("reads ranges and single CPUs, sorted and without repeats", () => {
    expect(parseCpuList("0-1")).toEqual([0, 1]);
    expect(parseCpuList("5,0-2,2\n")).toEqual([0, 1, 2, 5]);
    expect(parseCpuList("3")).toEqual([3]);
  });

  it("refuses what is not a list", () => {
    expect(() => parseCpuList("a")).toThrow("not a CPU list");
    expect(() => parseCpuList("3-1")).toThrow("not a CPU list");
  });
});

describe("chooseCpu", () => {
  it("takes the highest allowed CPU unless one is asked for", () => {
    expect(chooseCpu([0, 1])).toBe(1);
    expect(chooseCpu([0, 1], "0")).toBe(0);
  });

  it("refuses a CPU the harness may not use", () => {
    expect(() => chooseCpu([0, 1], "2")).toThrow("--cpu: \"2\" is not one of the CPUs this process may use (0,1)");
    expect(() => chooseCpu([0, 1], "x")).toThrow("--cpu");
    expect(() => chooseCpu([])).toThrow("no CPU");
  });
});

describe("pinned commands", () => {
  it("runs the command under taskset on one CPU, arguments unchanged", () => {
    expect(pinnedCommand("/usr/bin/taskset", 1, "java", ["-Xmx3g", "-cp", "a:b/*", "Main"])).toEqual({
      command: "/usr/bin/taskset",
      args: ["-c", "1", "java", "-Xmx3g", "-cp", "a:b/*", "Main"],
    });
  });

  it("wraps workerd in a script that execs taskset with the arguments passed through", () => {
    expect(workerdWrapper("/usr/bin/taskset", 1, "/x/it's/workerd")).toBe(`#!/bin/sh\nexec '/usr/bin/taskset' -c 1 '/x/it'\\''s/workerd' "$@"\n`);
  });
});

describe("/proc parsing", () => {
  it("reads pid, name and parent from a stat line whose name holds spaces and parentheses", () => {
    expect(parseStat("4242 (Source: gen (1) S 17 4242 17 0 -1 4194560 0 0")).toEqual({ pid: 4242, comm: "Source: gen (1", ppid: 17 });
    expect(parseStat("7 (workerd) R 3 7 3 0")).toEqual({ pid: 7, comm: "workerd", ppid: 3 });
    expect(() => parseStat("garbage")).toThrow("not a /proc stat line");
  });

  it("finds every descendant, whatever the order of the listing", () => {
    const stats = [
      { pid: 30, comm: "workerd", ppid: 20 },
      { pid: 20, comm: "sh", ppid: 10 },
      { pid: 10, comm: "node", ppid: 1 },
      { pid: 40, comm: "other", ppid: 1 },
    ];
    expect(descendantsOf(10, stats).map((s) => s.pid).sort()).toEqual([20, 30]);
    expect(descendantsOf(40, stats)).toEqual([]);
  });

  it("reads the name and allowed CPUs of a status file", () => {
    const status = "Name:\tC2 CompilerThre\nUmask:\t0022\nState:\tS (sleeping)\nCpus_allowed:\t2\nCpus_allowed_list:\t1\nMems_allowed_list:\t0\n";
    expect(parseStatus(status)).toEqual({ name: "C2 CompilerThre", cpus: "1" });
  });
});

describe("pinning reports", () => {
  it("counts each thread once over several checks and lists those allowed elsewhere", () => {
    const seen = new Set<number>();
    let r = addCheck(emptyReport(1), 100, [{ tid: 100, name: "java", cpus: "1" }, { tid: 101, name: "GC Thread#0", cpus: "1" }], seen);
    r = addCheck(r, 100, [{ tid: 101, name: "GC Thread#0", cpus: "1" }, { tid: 102, name: "Keyed Process", cpus: "0-1" }], seen, /^Keyed/);
    expect(r).toEqual({
      cpu: 1,
      pids: [100],
      threads_seen: 3,
      checks: 2,
      unpinned: ["Keyed Process (102): 0-1"],
      sample_threads: ["java", "GC Thread#0", "Keyed Process"],
      task_threads: ["Keyed Process"],
    });
  });
});

describe("parseSchedstat", () => {
  it("reads the ns on a CPU and waiting for one, as ms", () => {
    expect(parseSchedstat("1234567000 89000000 321\n")).toEqual({ runMs: 1234.567, waitMs: 89 });
  });

  it("refuses what is not a schedstat line", () => {
    expect(() => parseSchedstat("n/a")).toThrow("not a schedstat line");
  });
});
