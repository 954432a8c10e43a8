/**
 * The benchmark's core modes, and pinning a process to one CPU with
 * `taskset` (util-linux).
 *
 * Locally every Durable Object of floe shares one workerd thread, while
 * Flink spreads its tasks over every core. "all" is that whole-machine
 * comparison; "1" gives each engine parallelism 1 and pins workerd and the
 * Flink JVM (every thread of it: the task manager's task threads, its
 * network and checkpoint threads, the GC) to the same single CPU. A JVM
 * started under `taskset` also sizes its GC and thread pools for one
 * processor, as it would on a one-core machine.
 *
 * The pure parts (argument parsing, the command lines, /proc parsing) are
 * here; reading /proc is in proc.ts.
 */

/** `all`: the whole machine, as before; `1`: parallelism 1, pinned to one CPU. */
export type CoresMode = "all" | "1";

/** Parses `--cores`: `all` (default), `1`, or `both` (whole machine first, then one core). */
export function parseCores(value: string | undefined): CoresMode[] {
  switch (value ?? "all") {
    case "all":
      return ["all"];
    case "1":
      return ["1"];
    case "both":
      return ["all", "1"];
    default:
      throw new Error(`--cores: expected all, 1 or both, got ${JSON.stringify(value)}`);
  }
}

/** Parses a Linux CPU list ("0-3,5,7-8", as in Cpus_allowed_list) into sorted CPU numbers. */
export function parseCpuList(list: string): number[] {
  const cpus = new Set<number>();
  for (const part of list.trim().split(",")) {
    if (part === "") continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new Error(`not a CPU list: ${JSON.stringify(list)}`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) throw new Error(`not a CPU list: ${JSON.stringify(list)}`);
    for (let c = from; c <= to; c++) cpus.add(c);
  }
  return [...cpus].sort((a, b) => a - b);
}

/**
 * The CPU both engines are pinned to: `requested` (`--cpu`) if the harness
 * may run there, else the highest-numbered allowed CPU (CPU 0 tends to
 * take more of the kernel's interrupt work).
 */
export function chooseCpu(allowed: readonly number[], requested?: string): number {
  if (allowed.length === 0) throw new Error("no CPU is allowed for this process");
  if (requested === undefined) return allowed[allowed.length - 1];
  const cpu = Number(requested);
  if (!Number.isInteger(cpu) || !allowed.includes(cpu)) {
    throw new Error(`--cpu: ${JSON.stringify(requested)} is not one of the CPUs this process may use (${allowed.join(",")})`);
  }
  return cpu;
}

/** `command args…` run on `cpu` only: taskset sets the affinity and execs, so the pid stays the command's. */
export function pinnedCommand(taskset: string, cpu: number, command: string, args: readonly string[]): { command: string; args: string[] } {
  return { command: taskset, args: ["-c", String(cpu), command, ...args] };
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * A shell script that runs workerd on `cpu`. Miniflare spawns the runtime
 * from MINIFLARE_WORKERD_PATH without a shell, so the wrapper is a file;
 * `exec` twice (sh → taskset → workerd) keeps one process, pinned from its
 * first instruction, so every thread it starts inherits the affinity.
 */
export function workerdWrapper(taskset: string, cpu: number, workerd: string): string {
  return `#!/bin/sh\nexec ${shellQuote(taskset)} -c ${cpu} ${shellQuote(workerd)} "$@"\n`;
}

/** The fields of /proc/<pid>/stat the harness reads. */
export interface ProcStat {
  pid: number;
  /** The executable's name, at most 15 characters. */
  comm: string;
  ppid: number;
}

/** Parses /proc/<pid>/stat; `comm` is in parentheses and may itself hold spaces and parentheses. */
export function parseStat(text: string): ProcStat {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) throw new Error(`not a /proc stat line: ${JSON.stringify(text.slice(0, 80))}`);
  const rest = text.slice(close + 2).split(" ");
  return { pid: Number(text.slice(0, open).trim()), comm: text.slice(open + 1, close), ppid: Number(rest[1]) };
}

/** Time a thread spent on a CPU and waiting for one, from /proc/<pid>/task/<tid>/schedstat. */
export interface SchedStat {
  runMs: number;
  /** Runnable but not running: on a run queue, waiting for a CPU. */
  waitMs: number;
}

/** Parses a schedstat line: ns on a CPU, ns waiting on a run queue, time slices. */
export function parseSchedstat(text: string): SchedStat {
  const [run, wait] = text.trim().split(/\s+/).map(Number);
  if (!Number.isFinite(run) || !Number.isFinite(wait)) throw new Error(`not a schedstat line: ${JSON.stringify(text.slice(0, 80))}`);
  return { runMs: run / 1e6, waitMs: wait / 1e6 };
}

/** Every pid below `root` in the process tree (children, grandchildren, …), from pid → ppid pairs. */
export function descendantsOf(root: number, stats: readonly ProcStat[]): ProcStat[] {
  const below = new Set([root]);
  const out: ProcStat[] = [];
  // Parents may be listed after their children: repeat until nothing is added.
  for (let added = true; added; ) {
    added = false;
    for (const s of stats) {
      if (!below.has(s.pid) && below.has(s.ppid)) {
        below.add(s.pid);
        out.push(s);
        added = true;
      }
    }
  }
  return out;
}

/** One thread's affinity as read from /proc/<pid>/task/<tid>/status. */
export interface ThreadAffinity {
  tid: number;
  name: string;
  cpus: string;
}

/** `Name` and `Cpus_allowed_list` from a /proc status file. */
export function parseStatus(text: string): { name: string; cpus: string } {
  const field = (f: string) => new RegExp(`^${f}:\\s*(.*)$`, "m").exec(text)?.[1]?.trim() ?? "";
  return { name: field("Name"), cpus: field("Cpus_allowed_list") };
}

/**
 * What a check of a pinned process found: every thread seen (over all
 * checks of a run) and those allowed on any CPU but `cpu`.
 */
export interface PinningReport {
  cpu: number;
  pids: number[];
  /** Distinct threads seen over the run's checks. */
  threads_seen: number;
  checks: number;
  /** Threads whose Cpus_allowed_list was not exactly `cpu`, as "name (tid): list". */
  unpinned: string[];
  /** Some thread names seen (the first 12 distinct). */
  sample_threads: string[];
  /** Distinct names of the engine's task threads seen (those the monitor was told to look for), at most 20. */
  task_threads: string[];
}

/** Folds the threads of one check into a report (threads are told apart by tid). */
export function addCheck(report: PinningReport, pid: number, threads: readonly ThreadAffinity[], seen: Set<number>, tasks?: RegExp): PinningReport {
  const want = String(report.cpu);
  const unpinned = [...report.unpinned];
  const sample = [...report.sample_threads];
  const taskThreads = [...report.task_threads];
  for (const t of threads) {
    if (seen.has(t.tid)) continue;
    seen.add(t.tid);
    if (parseCpuList(t.cpus).join(",") !== want) unpinned.push(`${t.name} (${t.tid}): ${t.cpus}`);
    if (sample.length < 12 && !sample.includes(t.name)) sample.push(t.name);
    if (tasks?.test(t.name) && taskThreads.length < 20 && !taskThreads.includes(t.name)) taskThreads.push(t.name);
  }
  return {
    ...report,
    pids: report.pids.includes(pid) ? report.pids : [...report.pids, pid],
    threads_seen: seen.size,
    checks: report.checks + 1,
    unpinned,
    sample_threads: sample,
    task_threads: taskThreads,
  };
}

/** An empty report for `cpu`. */
export function emptyReport(cpu: number): PinningReport {
  return { cpu, pids: [], threads_seen: 0, checks: 0, unpinned: [], sample_threads: [], task_threads: [] };
}
