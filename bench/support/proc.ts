/**
 * Reading affinities from /proc, from outside the pinned processes: the
 * proof that a one-core run ran where it says. A monitor checks every
 * thread of the watched processes once a second during the run (threads a
 * JVM or workerd starts late are caught too) and once more at the end.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import {
  type PinningReport,
  type ProcStat,
  type ThreadAffinity,
  addCheck,
  descendantsOf,
  emptyReport,
  parseCpuList,
  parseSchedstat,
  type SchedStat,
  parseStat,
  parseStatus,
} from "./pinning.js";

/** Where taskset is looked for (util-linux). */
export const TASKSET_PATHS = ["/usr/bin/taskset", "/bin/taskset"];

/** The taskset executable; throws with what to install when there is none. */
export function findTaskset(): string {
  const found = TASKSET_PATHS.find((p) => existsSync(p));
  if (!found) throw new Error(`--cores 1 pins processes with taskset, found at none of ${TASKSET_PATHS.join(", ")}; on Debian: apt-get install util-linux`);
  return found;
}

/** The CPUs this (the harness's) process may run on. */
export function allowedCpus(): number[] {
  return parseCpuList(parseStatus(readFileSync("/proc/self/status", "utf8")).cpus);
}

function readOr<T>(read: () => T, fallback: T): T {
  try {
    return read();
  } catch {
    // The process or thread ended between the listing and the read.
    return fallback;
  }
}

/** Every process's pid, name and parent. */
function allStats(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const s = readOr(() => parseStat(readFileSync(`/proc/${name}/stat`, "utf8")), null);
    if (s) out.push(s);
  }
  return out;
}

/** Processes below this one named `comm` (e.g. the workerd that Miniflare spawned). */
export function descendantsNamed(comm: string): number[] {
  return descendantsOf(process.pid, allStats())
    .filter((s) => s.comm === comm)
    .map((s) => s.pid);
}

/** Each thread of `pid` with its time on a CPU and waiting for one, by thread id; empty once the process is gone. */
export function threadSchedstats(pid: number): Map<number, SchedStat> {
  const out = new Map<number, SchedStat>();
  for (const tid of readOr(() => readdirSync(`/proc/${pid}/task`), [] as string[])) {
    const st = readOr(() => parseSchedstat(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8")), null);
    if (st) out.set(Number(tid), st);
  }
  return out;
}

/** Each thread of `pid` with its name and Cpus_allowed_list; empty once the process is gone. */
export function threadAffinities(pid: number): ThreadAffinity[] {
  const tids = readOr(() => readdirSync(`/proc/${pid}/task`), [] as string[]);
  const out: ThreadAffinity[] = [];
  for (const tid of tids) {
    const st = readOr(() => parseStatus(readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8")), null);
    if (st) out.push({ tid: Number(tid), name: st.name, cpus: st.cpus });
  }
  return out;
}

/** Checks the threads of the processes `pids()` names, every `everyMs` until stopped. */
export class PinningMonitor {
  private report: PinningReport;
  private readonly seen = new Set<number>();
  private readonly timer: NodeJS.Timeout;

  /**
   * @param pids the processes to watch, looked up at each check
   * @param tasks names of the threads that do the engine's work, listed in the report's `task_threads`
   */
  constructor(
    cpu: number,
    private readonly pids: () => number[],
    private readonly tasks?: RegExp,
    everyMs = 1000,
  ) {
    this.report = emptyReport(cpu);
    this.timer = setInterval(() => this.check(), everyMs);
    this.timer.unref();
  }

  /** One look at every thread of the watched processes. */
  check(): void {
    for (const pid of this.pids()) {
      const threads = threadAffinities(pid);
      if (threads.length > 0) this.report = addCheck(this.report, pid, threads, this.seen, this.tasks);
    }
  }

  /**
   * Stops (after a last check while the processes still run) and returns
   * the report; throws when no thread was seen or one was not pinned.
   */
  stop(what: string): PinningReport {
    this.check();
    clearInterval(this.timer);
    const r = this.report;
    if (r.threads_seen === 0) throw new Error(`${what}: no thread of the pinned process was seen in /proc; cannot tell that it ran on CPU ${r.cpu}`);
    if (r.unpinned.length > 0) throw new Error(`${what}: threads not pinned to CPU ${r.cpu}: ${r.unpinned.slice(0, 5).join("; ")}`);
    return r;
  }

  /** Stops without judging (the run failed anyway). */
  cancel(): void {
    clearInterval(this.timer);
  }
}
