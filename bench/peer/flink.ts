/**
 * The Flink peer: builds bench/flink (Maven) into .cache/flink-bench/ and
 * runs one workload variant per JVM, each on its own local MiniCluster.
 * Its JSON line has the field names of floe's results.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { pinnedCommand } from "../support/pinning.js";
import { PinningMonitor } from "../support/proc.js";
import type { BenchResult } from "../workloads/common.js";

const ROOT = resolve(import.meta.dirname, "../..");
const PROJECT = resolve(ROOT, "bench/flink");
const TARGET = resolve(ROOT, ".cache/flink-bench/target");
const MAIN_CLASS = join(TARGET, "classes/floe/bench/FlinkBench.class");

/** Java or Maven is missing: the peer cannot run here. */
export class PeerUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PeerUnavailableError";
  }
}

/** Checks that `java` (17+) and `mvn` answer. */
export function checkJavaAndMaven(): { java: string; maven: string } {
  const java = spawnSync("java", ["-version"], { encoding: "utf8" });
  if (java.error || java.status !== 0) {
    throw new PeerUnavailableError("--peer flink needs Java 17 or newer on PATH (`java -version` failed); on Debian: apt-get install openjdk-17-jdk-headless");
  }
  const version = /version "(\d+)/.exec(java.stderr)?.[1];
  if (version !== undefined && Number(version) < 17) throw new PeerUnavailableError(`--peer flink needs Java 17 or newer, found ${version}`);
  const mvn = spawnSync("mvn", ["-v"], { encoding: "utf8" });
  if (mvn.error || mvn.status !== 0) throw new PeerUnavailableError("--peer flink needs Apache Maven on PATH (`mvn -v` failed); on Debian: apt-get install maven");
  return { java: java.stderr.split("\n")[0].trim(), maven: mvn.stdout.split("\n")[0].replace(/\u001b\[[0-9;]*m/g, "").trim() };
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** Builds the peer unless its classes are newer than its sources. */
export function buildFlinkPeer(log: (m: string) => void): void {
  const sources = Math.max(newestSource(join(PROJECT, "src")), statSync(join(PROJECT, "pom.xml")).mtimeMs);
  if (existsSync(MAIN_CLASS) && existsSync(join(TARGET, "lib")) && statSync(MAIN_CLASS).mtimeMs > sources) return;
  log("building the Flink peer (mvn -q package)");
  const r = spawnSync("mvn", ["-q", "-f", join(PROJECT, "pom.xml"), "package"], { encoding: "utf8", cwd: ROOT });
  if (r.status !== 0) throw new Error(`building bench/flink failed:\n${r.stdout}\n${r.stderr}`);
}

/** Options every JVM gets: heap, and the module openings Flink's own scripts pass on Java 17. */
const JVM_OPTIONS = [
  "-Xmx3g",
  "-XX:+UseG1GC",
  ...["java.base/java.util", "java.base/java.lang", "java.base/java.lang.reflect", "java.base/java.io", "java.base/java.nio", "java.base/sun.nio.ch", "java.base/java.net", "java.base/java.time", "java.base/java.util.concurrent", "java.base/java.util.concurrent.atomic", "java.base/java.text"].map(
    (m) => `--add-opens=${m}=ALL-UNNAMED`,
  ),
];

/** Pin the JVM, every thread of it, to one CPU with taskset. */
export interface FlinkPinning {
  cpu: number;
  taskset: string;
}

/** A `[progress]` line of a run by duration: once a second, from the JVM's driver. */
export interface FlinkProgress {
  sinceFirstRecordMs: number;
  count: number;
  /** Completed since the first record. */
  checkpoints: number;
}

/** Parses `[progress] <ms since the first record> <records> <checkpoints>`; null for any other line. */
export function parseProgress(line: string): FlinkProgress | null {
  const m = /^\[progress\] (\d+) (\d+) (\d+)$/.exec(line.trim());
  return m ? { sinceFirstRecordMs: Number(m[1]), count: Number(m[2]), checkpoints: Number(m[3]) } : null;
}

/** Flink's task threads ("Source: gen (1/1)#0", "Keyed Process (1/1)#0", "join -> Sink: …", …), as /proc shows their first 15 characters. */
const TASK_THREAD = /^(Source|Keyed|KeyedProcess|Sink|Map|Filter|Process|join)/;

/**
 * Runs `FlinkBench <workload> name=value…` and returns its JSON line. With
 * `pin`, the JVM runs under taskset and a monitor checks every thread's
 * affinity from outside once a second; the line then has `pinning`, and a
 * thread allowed elsewhere fails the run. In a run by duration, `mayStop`
 * sees each progress line and, once it answers true, the JVM is told to
 * stop (a line "stop" on its stdin).
 */
export function runFlink(
  workload: string,
  params: Record<string, string | number | boolean>,
  log: (m: string) => void,
  o: { timeoutMs?: number; pin?: FlinkPinning; mayStop?: (p: FlinkProgress) => boolean } = {},
): Promise<BenchResult> {
  const timeoutMs = o.timeoutMs ?? 900_000;
  const javaArgs = [...JVM_OPTIONS, "-cp", `${join(TARGET, "classes")}:${join(TARGET, "lib")}/*`, "floe.bench.FlinkBench", workload, ...Object.entries(params).map(([k, v]) => `${k}=${v}`)];
  const { command, args } = o.pin ? pinnedCommand(o.pin.taskset, o.pin.cpu, "java", javaArgs) : { command: "java", args: javaArgs };
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
    let stopSent = false;
    const monitor = o.pin && child.pid !== undefined ? new PinningMonitor(o.pin.cpu, () => [child.pid!], TASK_THREAD) : undefined;
    let out = "";
    let err = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => {
      const text = c.toString("utf8");
      err += text;
      for (const line of text.split("\n")) {
        if (line.startsWith("[flink]")) log(line.slice(8));
        const p = o.mayStop && !stopSent ? parseProgress(line) : null;
        if (p && o.mayStop!(p)) {
          stopSent = true;
          child.stdin.end("stop\n");
        }
      }
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      const line = out.split("\n").filter((l) => l.startsWith("{")).pop();
      if (code !== 0 || !line) {
        monitor?.cancel();
        return reject(new Error(`FlinkBench ${workload} exited ${code}:\n${err.split("\n").slice(0, 30).join("\n")}`));
      }
      const result = JSON.parse(line) as BenchResult;
      if (!monitor) return resolvePromise(result);
      // The JVM is gone: the report holds what the checks saw while it ran.
      try {
        resolvePromise({ ...result, pinning: monitor.stop(`Flink ${workload}`) });
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}
