/**
 * vitest globalSetup of the "kafka" project: one real Kafka broker for the
 * whole run, on a fresh temporary data folder, stopped on teardown. Tests
 * read its address with `inject("kafkaBrokers")` (see ./kafka.ts).
 *
 * Without Java or Maven the tests skip with one line of explanation,
 * unless FLOE_REQUIRE_KAFKA=1 (CI), where a missing broker must fail.
 * FLOE_KAFKA_PORT pins the broker's port (the controller takes the next);
 * otherwise two free ports are taken, so that runs in parallel, or a broker
 * started with `node scripts/kafka-broker.mjs start`, never clash.
 * FLOE_KAFKA_KEEP=1 keeps the data folder and its logs after the run.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { KafkaUnavailableError, type RunningKafka, fetchKafka, startKafka } from "../../scripts/kafka-broker.mjs";

declare module "vitest" {
  interface ProvidedContext {
    /** "127.0.0.1:<port>" of the run's broker, or null when Kafka tests skip. */
    kafkaBrokers: string | null;
  }
}

/** Starts the broker; returns the teardown that stops it. */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const required = process.env.FLOE_REQUIRE_KAFKA === "1";
  try {
    fetchKafka();
  } catch (error) {
    if (required || !(error instanceof KafkaUnavailableError)) throw error;
    console.warn(`Kafka tests skipped: ${error.message.split("\n")[0]}`);
    project.provide("kafkaBrokers", null);
    return undefined;
  }

  const port = process.env.FLOE_KAFKA_PORT ? Number(process.env.FLOE_KAFKA_PORT) : 0;
  if (!Number.isInteger(port) || port < 0 || port > 65534) throw new Error(`FLOE_KAFKA_PORT must be a port number, got ${process.env.FLOE_KAFKA_PORT}`);
  const dir = mkdtempSync(join(tmpdir(), "floe-kafka-"));
  let broker: RunningKafka;
  try {
    broker = await startKafka({ port, dir, fresh: true });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  // Should vitest exit without running the teardown, the JVM must not outlive it.
  const killOnExit = () => {
    try {
      process.kill(broker.pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  };
  process.once("exit", killOnExit);
  project.provide("kafkaBrokers", broker.brokers);

  return async () => {
    await broker.stop();
    process.off("exit", killOnExit);
    if (process.env.FLOE_KAFKA_KEEP === "1") console.log(`Kafka broker data and logs kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  };
}
