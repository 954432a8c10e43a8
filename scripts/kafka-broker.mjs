#!/usr/bin/env node
// A real Apache Kafka broker for floe's Kafka tests: one combined KRaft node
// (broker + controller) on 127.0.0.1, run from Maven Central jars with the
// machine's Java 17, because no package registry here carries a broker and
// Docker does not run. Plain ESM that runs on Node 20, since CI calls
// `node scripts/kafka-broker.mjs fetch` with the system Node before `npm ci`
// has brought Node 22.
//
//   node scripts/kafka-broker.mjs fetch                 jars into .cache/kafka/libs (skipped when present)
//   node scripts/kafka-broker.mjs start [--port 19092] [--dir D] [--fresh]
//   node scripts/kafka-broker.mjs stop [--dir D]
//   node scripts/kafka-broker.mjs status [--dir D]
//
// The same logic is exported (fetchKafka, startKafka, stopKafka, kafkaStatus)
// for test/support/kafka-setup.ts.
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const POM = resolve(ROOT, "scripts/kafka/pom.xml");
const LOG_CONFIG = resolve(ROOT, "scripts/kafka/log4j2.properties");
/** Everything fetched or run lives here, outside git (`.cache/` is ignored). */
export const KAFKA_CACHE_DIR = resolve(ROOT, ".cache/kafka");
const LIBS_DIR = resolve(KAFKA_CACHE_DIR, "libs");
/** Holds the sha256 of the pom the jars came from: a changed pom fetches again. */
const LIBS_STAMP = resolve(LIBS_DIR, ".pom-sha256");
/** One file per broker started by this module, so that a run that died can have its JVM reaped. */
const RUNNING_DIR = resolve(KAFKA_CACHE_DIR, "running");
/** Where the CLI's broker keeps its data unless --dir says otherwise. */
const CLI_DIR = resolve(KAFKA_CACHE_DIR, "broker");

/** Not 9092, so that a developer's own Kafka keeps its port; the controller listens on port + 1. */
export const DEFAULT_KAFKA_PORT = 19092;
const HOST = "127.0.0.1";
const HEAP = "512m";
const READY_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 20_000;

/** Java or Maven is missing, or Maven could not fetch the jars: Kafka tests cannot run here. */
export class KafkaUnavailableError extends Error {
  constructor(message) {
    super(message);
    this.name = "KafkaUnavailableError";
  }
}

function javaBin() {
  return process.env.JAVA_HOME ? resolve(process.env.JAVA_HOME, "bin/java") : "java";
}

/** Undefined when `cmd args` runs and exits 0, else why not. */
function whyNotRunnable(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: "pipe", encoding: "utf8" });
  if (r.error) return r.error.code === "ENOENT" ? `${cmd} not found` : `${cmd}: ${r.error.message}`;
  if (r.status !== 0) return `${cmd} ${args.join(" ")} exited ${r.status}: ${(r.stderr || r.stdout).trim().split("\n").pop()}`;
  return undefined;
}

function requireJava() {
  const noJava = whyNotRunnable(javaBin(), ["-version"]);
  if (noJava) throw new KafkaUnavailableError(`${noJava} (Kafka needs Java 17: apt-get install openjdk-17-jre-headless)`);
}

function pomDigest() {
  return createHash("sha256").update(readFileSync(POM)).digest("hex");
}

/** True when the jars for the current pom are in the cache. */
export function kafkaFetched() {
  return existsSync(LIBS_STAMP) && readFileSync(LIBS_STAMP, "utf8").trim() === pomDigest();
}

/**
 * Fetches the broker jars and the logging binding from Maven Central into
 * .cache/kafka/libs; does nothing when the jars for the current pom are
 * there. Throws KafkaUnavailableError when java or mvn is missing or Maven
 * fails.
 *
 * @returns {{ libsDir: string, fetched: boolean }} `fetched` is false when the cache was used.
 */
export function fetchKafka() {
  requireJava();
  if (kafkaFetched()) return { libsDir: LIBS_DIR, fetched: false };
  const noMaven = whyNotRunnable("mvn", ["-v"]);
  if (noMaven) throw new KafkaUnavailableError(`${noMaven} (the broker jars come from Maven Central: apt-get install maven)`);

  // Into a fresh folder, renamed at the end: an interrupted fetch never looks complete.
  mkdirSync(KAFKA_CACHE_DIR, { recursive: true });
  const staging = resolve(KAFKA_CACHE_DIR, `libs.${process.pid}.tmp`);
  rmSync(staging, { recursive: true, force: true });
  const args = ["-q", "-B", "-Dstyle.color=never", "-f", POM, "dependency:copy-dependencies", "-DincludeScope=runtime", `-DoutputDirectory=${staging}`];
  const r = spawnSync("mvn", args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
  if (r.status !== 0) {
    rmSync(staging, { recursive: true, force: true });
    const output = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-15).join("\n");
    throw new KafkaUnavailableError(`mvn ${args.join(" ")} failed (exit ${r.status ?? r.signal}):\n${output}`);
  }
  writeFileSync(resolve(staging, ".pom-sha256"), `${pomDigest()}\n`);
  rmSync(LIBS_DIR, { recursive: true, force: true });
  renameSync(staging, LIBS_DIR);
  return { libsDir: LIBS_DIR, fetched: true };
}

function serverProperties({ port, controllerPort, dataDir }) {
  return [
    "# Written by scripts/kafka-broker.mjs: one combined KRaft node for tests.",
    "process.roles=broker,controller",
    "node.id=1",
    `controller.quorum.voters=1@${HOST}:${controllerPort}`,
    `listeners=PLAINTEXT://${HOST}:${port},CONTROLLER://${HOST}:${controllerPort}`,
    `advertised.listeners=PLAINTEXT://${HOST}:${port}`,
    "inter.broker.listener.name=PLAINTEXT",
    "controller.listener.names=CONTROLLER",
    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    `log.dirs=${dataDir}`,
    // One node: every internal topic must have one replica, or coordinators never come up.
    "default.replication.factor=1",
    "min.insync.replicas=1",
    "offsets.topic.replication.factor=1",
    "offsets.topic.num.partitions=1",
    "transaction.state.log.replication.factor=1",
    "transaction.state.log.min.isr=1",
    "transaction.state.log.num.partitions=1",
    "share.coordinator.state.topic.replication.factor=1",
    "share.coordinator.state.topic.min.isr=1",
    "group.initial.rebalance.delay.ms=0",
    // The engine keeps a transaction open across a checkpoint interval; tests choose short timeouts themselves.
    "transaction.max.timeout.ms=3600000",
    // Timed-out transactions are aborted within a second instead of ten, so zombie tests stay quick.
    "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000",
    // A typo in a topic name fails instead of creating a topic nobody reads.
    "auto.create.topics.enable=false",
    "num.partitions=1",
    // A small footprint on a 2-core machine shared with the rest of the suite.
    "num.network.threads=2",
    "num.io.threads=4",
    "background.threads=4",
    "",
  ].join("\n");
}

function runJava(classpath, mainArgs, logsDir) {
  return [
    `-Xmx${HEAP}`,
    "-Xms128m",
    "-XX:+ExitOnOutOfMemoryError",
    // Start-up, not peak speed, is what tests wait for: the C1 compiler alone and one GC
    // thread take about a third off the time to ready on a busy 2-core machine.
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-Djava.awt.headless=true",
    `-Dlog4j2.configurationFile=${LOG_CONFIG}`,
    `-Dkafka.logs.dir=${logsDir}`,
    "-cp",
    classpath,
    ...mainArgs,
  ];
}

/** Resolves whether 127.0.0.1:port can be bound right now. */
function portFree(port) {
  return new Promise((done) => {
    const server = createServer();
    server.once("error", () => done(false));
    server.listen(port, HOST, () => server.close(() => done(true)));
  });
}

/** Two free neighbouring ports (broker, controller), found by asking the OS for ephemeral ones. */
async function freePortPair() {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise((done, fail) => {
      const server = createServer();
      server.once("error", fail);
      server.listen(0, HOST, () => {
        const p = server.address().port;
        server.close(() => done(p));
      });
    });
    if (port < 65535 && (await portFree(port + 1))) return port;
  }
  throw new Error("no two neighbouring free ports on 127.0.0.1");
}

function portAnswers(port) {
  return new Promise((done) => {
    const socket = connect({ host: HOST, port });
    socket.once("connect", () => {
      socket.destroy();
      done(true);
    });
    socket.once("error", () => done(false));
  });
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === "EPERM";
  }
}

/** True when pid is a live broker JVM; checks the command line so a recycled pid is never killed. */
function isBrokerJvm(pid) {
  if (!alive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes("kafka.Kafka");
  } catch {
    return true; // no /proc (macOS): trust the pid file
  }
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

function tail(file, lines) {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return undefined;
  }
}

function removeQuietly(file) {
  try {
    unlinkSync(file);
  } catch {
    /* already gone */
  }
}

async function killBroker(pid) {
  if (!isBrokerJvm(pid)) return false;
  process.kill(pid, "SIGTERM");
  // SIGTERM runs Kafka's controlled shutdown (a second or two); SIGKILL only if it hangs.
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (alive(pid) && Date.now() < deadline) await sleep(100);
  if (alive(pid)) {
    process.kill(pid, "SIGKILL");
    while (alive(pid)) await sleep(50);
  }
  return true;
}

/**
 * Stops the brokers whose starter has died without stopping them (a test
 * run killed with SIGKILL): they would hold their ports and 512 MB forever.
 * Brokers started by the CLI have no owner and are left alone.
 */
async function reapOrphans() {
  if (!existsSync(RUNNING_DIR)) return;
  for (const name of readdirSync(RUNNING_DIR)) {
    const file = resolve(RUNNING_DIR, name);
    const entry = readJson(file);
    if (!entry || !isBrokerJvm(entry.pid)) {
      removeQuietly(file);
      continue;
    }
    if (entry.ownerPid && !alive(entry.ownerPid)) {
      await killBroker(entry.pid);
      removeQuietly(file);
    }
  }
}

async function waitUntilReady({ brokers, port, exited, logsDir, timeoutMs }) {
  const { Kafka, logLevel } = (await import("kafkajs")).default;
  const deadline = Date.now() + timeoutMs;
  const failure = (why) =>
    new Error(`Kafka broker ${why}\n--- ${logsDir}/stdout.log ---\n${tail(resolve(logsDir, "stdout.log"), 20)}\n--- ${logsDir}/server.log ---\n${tail(resolve(logsDir, "server.log"), 20)}`);
  while (!(await portAnswers(port))) {
    if (exited.code !== undefined) throw failure(`exited (${exited.code}) before listening on ${brokers}`);
    if (Date.now() > deadline) throw failure(`not listening on ${brokers} after ${timeoutMs} ms`);
    await sleep(200);
  }
  // The port opens before the broker has registered with its controller; metadata answers only after.
  const kafka = new Kafka({ clientId: "floe-kafka-broker-ready", brokers: [brokers], logLevel: logLevel.NOTHING, retry: { retries: 0 } });
  while (true) {
    if (exited.code !== undefined) throw failure(`exited (${exited.code}) while starting`);
    const admin = kafka.admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      if (cluster.brokers.length > 0 && cluster.controller !== null) return;
    } catch {
      /* not yet */
    } finally {
      await admin.disconnect().catch(() => {});
    }
    if (Date.now() > deadline) throw failure(`did not answer describeCluster within ${timeoutMs} ms`);
    await sleep(250);
  }
}

/**
 * Starts a broker and resolves once it answers `describeCluster`.
 *
 * `dir` holds server.properties, the data (`dir/data`), the logs
 * (`dir/logs/server.log`, `dir/logs/stdout.log`) and `dir/broker.json`.
 * Data already formatted in `dir` is kept, so stop() then startKafka() with
 * the same dir and port restarts the same cluster; `fresh` wipes it first.
 * `port: 0` takes any two free neighbouring ports. `detached` lets the JVM
 * outlive this process (the CLI); otherwise, should this process die without
 * calling stop(), the next startKafka() stops the orphan.
 *
 * @example
 *   const broker = await startKafka({ dir: mkdtempSync(join(tmpdir(), "kafka-")) });
 *   // ... new Kafka({ brokers: [broker.brokers] }) ...
 *   await broker.stop();
 */
export async function startKafka({ port = DEFAULT_KAFKA_PORT, controllerPort, dir = CLI_DIR, fresh = false, detached = false, readyTimeoutMs = READY_TIMEOUT_MS } = {}) {
  if (kafkaFetched()) requireJava();
  else fetchKafka();
  await reapOrphans();
  dir = resolve(dir);
  const pidFile = resolve(dir, "broker.json");
  const previous = readJson(pidFile);
  if (previous && isBrokerJvm(previous.pid)) throw new Error(`a Kafka broker (pid ${previous.pid}) already runs from ${dir}: stop it first`);

  if (port === 0) port = await freePortPair();
  controllerPort ??= port + 1;
  for (const p of [port, controllerPort]) {
    if (!(await portFree(p))) throw new Error(`port ${HOST}:${p} is in use (another broker? \`node scripts/kafka-broker.mjs stop\`, or choose another port)`);
  }

  const dataDir = resolve(dir, "data");
  const logsDir = resolve(dir, "logs");
  if (fresh) rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(logsDir, { recursive: true });
  const propsFile = resolve(dir, "server.properties");
  writeFileSync(propsFile, serverProperties({ port, controllerPort, dataDir }));
  const classpath = `${LIBS_DIR}/*`;

  // With static controller.quorum.voters, `format` needs no --standalone (that is for dynamic quorums).
  if (!existsSync(resolve(dataDir, "meta.properties"))) {
    const format = spawnSync(javaBin(), runJava(classpath, ["kafka.tools.StorageTool", "format", "-t", clusterId(), "-c", propsFile], logsDir), {
      stdio: "pipe",
      encoding: "utf8",
    });
    if (format.status !== 0) throw new Error(`kafka storage format failed (exit ${format.status}):\n${format.stdout}${format.stderr}`);
  }

  const out = openSync(resolve(logsDir, "stdout.log"), "a");
  const child = spawn(javaBin(), runJava(classpath, ["kafka.Kafka", propsFile], logsDir), { cwd: dir, detached, stdio: ["ignore", out, out] });
  closeSync(out);
  const exited = { code: undefined };
  child.once("exit", (code, signal) => (exited.code = code ?? signal));
  child.once("error", (error) => (exited.code = error.message));
  const pid = child.pid;
  const brokers = `${HOST}:${port}`;
  const record = { pid, brokers, port, controllerPort, dir, ownerPid: detached ? null : process.pid, startedAt: new Date().toISOString() };
  writeFileSync(pidFile, `${JSON.stringify(record, null, 2)}\n`);
  mkdirSync(RUNNING_DIR, { recursive: true });
  const runningFile = resolve(RUNNING_DIR, `${pid}.json`);
  writeFileSync(runningFile, JSON.stringify(record));

  let stopping;
  const stop = () =>
    (stopping ??= (async () => {
      await killBroker(pid);
      removeQuietly(pidFile);
      removeQuietly(runningFile);
    })());
  try {
    await waitUntilReady({ brokers, port, exited, logsDir, timeoutMs: readyTimeoutMs });
  } catch (error) {
    await stop();
    throw error;
  }
  if (detached) child.unref();
  return { brokers, pid, dir, stop };
}

/**
 * Kafka's cluster ids are 16 random bytes in URL-safe base64 without padding
 * (22 characters); like Kafka's own Uuid.randomUuid, never one that starts
 * with "-", which the format command would take for an option.
 */
function clusterId() {
  while (true) {
    const id = Buffer.from(randomUUID().replace(/-/g, ""), "hex").toString("base64url");
    if (!id.startsWith("-")) return id;
  }
}

/** Stops the broker that runs from `dir` (by its broker.json); false when none ran. */
export async function stopKafka({ dir = CLI_DIR } = {}) {
  const pidFile = resolve(dir, "broker.json");
  const record = readJson(pidFile);
  if (!record) return false;
  const stopped = await killBroker(record.pid);
  removeQuietly(pidFile);
  removeQuietly(resolve(RUNNING_DIR, `${record.pid}.json`));
  return stopped;
}

/** What runs from `dir`: `{ running, pid?, brokers?, dir }`. */
export function kafkaStatus({ dir = CLI_DIR } = {}) {
  const record = readJson(resolve(dir, "broker.json"));
  if (!record || !isBrokerJvm(record.pid)) return { running: false, dir: resolve(dir), fetched: kafkaFetched() };
  return { running: true, pid: record.pid, brokers: record.brokers, dir: record.dir, fetched: true };
}

function parseFlags(argv) {
  const flags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--fresh") flags.fresh = true;
    else if (arg === "--port" || arg === "--dir") flags[arg.slice(2)] = argv[++i];
    else if (arg.startsWith("--port=") || arg.startsWith("--dir=")) flags[arg.slice(2, arg.indexOf("="))] = arg.slice(arg.indexOf("=") + 1);
    else throw new Error(`unknown argument ${arg}`);
  }
  if (flags.port !== undefined) {
    const port = Number(flags.port);
    if (!Number.isInteger(port) || port < 0 || port > 65534) throw new Error(`--port must be 0..65534, got ${flags.port}`);
    flags.port = port;
  }
  return flags;
}

async function main([command, ...rest]) {
  const flags = parseFlags(rest);
  switch (command) {
    case "fetch": {
      const started = Date.now();
      const { libsDir, fetched } = fetchKafka();
      console.log(fetched ? `fetched Kafka into ${libsDir} in ${((Date.now() - started) / 1000).toFixed(1)} s` : `Kafka already fetched in ${libsDir}`);
      return;
    }
    case "start": {
      const { brokers, pid, dir } = await startKafka({ port: flags.port, dir: flags.dir, fresh: flags.fresh, detached: true });
      console.log(JSON.stringify({ brokers, pid, dir }));
      return;
    }
    case "stop":
      console.log((await stopKafka({ dir: flags.dir })) ? "stopped" : "no broker was running");
      return;
    case "status":
      console.log(JSON.stringify(kafkaStatus({ dir: flags.dir })));
      return;
    default:
      console.error("usage: node scripts/kafka-broker.mjs fetch | start [--port 19092] [--dir D] [--fresh] | stop [--dir D] | status [--dir D]");
      process.exitCode = 2;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((error) => {
    console.error(error instanceof KafkaUnavailableError ? `Kafka unavailable: ${error.message}` : error.message);
    process.exitCode = 1;
  });
}
