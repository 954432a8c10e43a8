/**
 * Kafka clients for connectors: brokers and credentials from the Worker's
 * variables and secrets (never from code), one kafkajs client per
 * configuration and isolate.
 */
import { Kafka, type KafkaConfig, logLevel } from "kafkajs";

/** Where a Kafka connector finds its cluster. */
export interface KafkaConnection {
  /** Worker variable holding the bootstrap brokers, comma-separated. Default KAFKA_BROKERS. */
  brokersVar?: string;
  /** client.id sent to the brokers. Default "floe". */
  clientId?: string;
  /** TLS to the brokers. Default: the Worker variable KAFKA_SSL is "true". */
  ssl?: boolean;
  /**
   * SASL: mechanism plain, scram-sha-256 or scram-sha-512, with the user and
   * password from Worker secrets. Default: KAFKA_SASL_MECHANISM, KAFKA_USERNAME and KAFKA_PASSWORD when set.
   */
  sasl?: { mechanism: "plain" | "scram-sha-256" | "scram-sha-512"; usernameVar: string; passwordVar: string };
}

const clients = new Map<string, Kafka>();

/** kafkajs's internal cluster factory (kafkajs 2.2.4): fetching assigned partitions needs no consumer group. */
export interface LowLevelCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  addTargetTopic(topic: string): Promise<void>;
  refreshMetadata(): Promise<void>;
  findTopicPartitionMetadata(topic: string): { partitionId: number; leader: number }[];
  findLeaderForPartitions(topic: string, partitions: number[]): Record<string, number[]>;
  findBroker(q: { nodeId: string | number }): Promise<LowLevelBroker>;
  findGroupCoordinator(q: { groupId: string }): Promise<LowLevelBroker>;
  fetchTopicsOffset(topics: { topic: string; partitions: { partition: number }[]; fromBeginning: boolean }[]): Promise<{ topic: string; partitions: { partition: number; offset: string }[] }[]>;
}

export interface LowLevelBroker {
  fetch(request: {
    isolationLevel: number;
    maxWaitTime: number;
    minBytes: number;
    maxBytes: number;
    topics: { topic: string; partitions: { partition: number; fetchOffset: string; maxBytes: number }[] }[];
  }): Promise<{ responses: { topicName: string; partitions: { partition: number; errorCode: number; highWatermark: string }[] }[] }>;
  offsetCommit(request: {
    groupId: string;
    groupGenerationId: number;
    memberId: string;
    topics: { topic: string; partitions: { partition: number; offset: string }[] }[];
  }): Promise<unknown>;
}

export const READ_COMMITTED = 1;

function vars(env: unknown): Record<string, unknown> {
  return (env ?? {}) as Record<string, unknown>;
}

/** The Worker variable holding a connection's brokers. */
function brokersVarOf(connection: KafkaConnection): string {
  return connection.brokersVar ?? "KAFKA_BROKERS";
}

/** Why the brokers of a connection are not configured in `env`, if they are not. */
export function brokersProblem(connection: KafkaConnection, env: unknown, what: string): string | undefined {
  const raw = vars(env)[brokersVarOf(connection)];
  if (typeof raw !== "string" || raw.trim() === "") return `${what}: the Worker variable ${brokersVarOf(connection)} (Kafka bootstrap brokers, host:port, comma-separated) is not set`;
  return undefined;
}

/** The kafkajs configuration of a connection; throws when the brokers are not configured. */
export function kafkaConfig(connection: KafkaConnection, env: unknown, what: string): KafkaConfig {
  const problem = brokersProblem(connection, env, what);
  if (problem) throw new Error(problem);
  const v = vars(env);
  const raw = v[brokersVarOf(connection)] as string;
  const brokers = raw.split(",").map((b) => b.trim()).filter((b) => b.length > 0);
  const config: KafkaConfig = {
    clientId: connection.clientId ?? "floe",
    brokers,
    ssl: connection.ssl ?? v.KAFKA_SSL === "true",
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5_000,
    requestTimeout: 30_000,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 5_000 },
  };
  const sasl = connection.sasl ?? (typeof v.KAFKA_SASL_MECHANISM === "string" ? { mechanism: v.KAFKA_SASL_MECHANISM as "plain", usernameVar: "KAFKA_USERNAME", passwordVar: "KAFKA_PASSWORD" } : undefined);
  if (sasl) {
    const username = v[sasl.usernameVar];
    const password = v[sasl.passwordVar];
    if (typeof username !== "string" || typeof password !== "string") {
      throw new Error(`${what}: SASL needs the Worker secrets ${sasl.usernameVar} and ${sasl.passwordVar}`);
    }
    config.sasl = { mechanism: sasl.mechanism, username, password } as KafkaConfig["sasl"];
  }
  return config;
}

/** One kafkajs client per configuration, for this isolate. */
export function kafkaClient(config: KafkaConfig): Kafka {
  const key = JSON.stringify(config);
  let kafka = clients.get(key);
  if (!kafka) clients.set(key, (kafka = new Kafka(config)));
  return kafka;
}

/** A low-level cluster client, read_committed unless told otherwise (kafkajs internals, 2.2.4). */
export function lowLevelCluster(kafka: Kafka, isolationLevel = READ_COMMITTED): LowLevelCluster {
  const symbol = Object.getOwnPropertySymbols(kafka).find((s) => s.description === "private:Kafka:createCluster");
  if (!symbol) throw new Error("this kafkajs version has no cluster factory: floe needs kafkajs 2.2.4");
  const create = (kafka as unknown as Record<symbol, (o: object) => LowLevelCluster>)[symbol];
  return create({ isolationLevel, allowAutoTopicCreation: false, metadataMaxAge: 300_000 });
}
