/**
 * The workerd processes a test's Miniflare started, found so that a test
 * can SIGKILL them the way a machine dies. Miniflare runs workerd as a
 * child of the Node process; killing the Node parent instead would orphan
 * it. Read from /proc where there is one (Linux), else from `ps`.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";

/** Pids of the workerd processes whose parent is this process. */
export function workerdChildren(): number[] {
  return existsSync("/proc/self/stat") ? fromProc() : fromPs();
}

function fromProc(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid …": comm may hold spaces or parentheses.
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const ppid = Number(stat.slice(close + 2).split(" ")[1]);
    if (ppid === process.pid && comm.startsWith("workerd")) pids.push(Number(entry));
  }
  return pids;
}

function fromPs(): number[] {
  const out = execFileSync("ps", ["-A", "-o", "pid=,ppid=,comm="], { encoding: "utf8" });
  const pids: number[] = [];
  for (const line of out.split("\n")) {
    const m = /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line);
    if (m && Number(m[2]) === process.pid && /(^|\/)workerd[^/]*$/.test(m[3].trim())) pids.push(Number(m[1]));
  }
  return pids;
}

/** SIGKILLs each process that is still there. */
export function killProcesses(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
