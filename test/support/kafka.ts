/**
 * Helpers for tests against the run's real Kafka broker (started by
 * ./kafka-setup.ts): the broker's address, topics, keyed producing, and
 * reading a whole topic as a committed or uncommitted reader would.
 *
 * @example
 *   const brokers = kafkaBrokers();
 *   describe.skipIf(!brokers)("kafka source", () => {
 *     it("reads", async () => {
 *       const admin = kafkaClient(brokers!).admin();
 *       await admin.connect();
 *       const topic = uniqueTopic("in");
 *       await createTopic(admin, topic, 4);
 *       await produceKeyed(brokers!, topic, [{ key: "a", value: "1" }], { partitions: 4 });
 *       const records = await readAll(brokers!, topic, { isolation: "read_committed" });
 *     });
 *   });
 */
import { type Admin, Kafka, type KafkaJSProtocolError, Partitioners, logLevel } from "kafkajs";
import { inject } from "vitest";
import { READ_COMMITTED, lowLevelCluster } from "../../src/connectors/kafka/client.js";
import { type AbortedTransaction, type DecodedMessage, committedRecords } from "../../src/connectors/kafka/read-committed.js";

/** The run's broker ("127.0.0.1:<port>"), or null when Kafka tests skip (no Java or Maven here). */
export function kafkaBrokers(): string | null {
  return inject("kafkaBrokers");
}

/** A kafkajs client that logs nothing (its errors reach the test as exceptions). */
export function kafkaClient(brokers: string, clientId = "floe-test"): Kafka {
  return new Kafka({ clientId, brokers: [brokers], logLevel: logLevel.NOTHING, retry: { initialRetryTime: 100, retries: 8 } });
}

let topicCount = 0;
/**
 * A topic or group name no other test of this run uses: tests share one
 * broker, and vitest runs files in parallel worker processes.
 */
export function uniqueTopic(prefix: string): string {
  return `${prefix}-${process.pid}-${++topicCount}`;
}

/** Creates a topic with one replica and waits for its partition leaders; a name in use is an error. */
export async function createTopic(admin: Admin, name: string, partitions: number): Promise<void> {
  const created = await admin.createTopics({ topics: [{ topic: name, numPartitions: partitions, replicationFactor: 1 }], waitForLeaders: true });
  if (!created) throw new Error(`topic ${name} already exists`);
}

/** A record read from, or written to, a topic. Offsets are numbers: test topics stay far below 2^53. */
export interface KafkaRecord {
  partition: number;
  offset: number;
  key: string | null;
  value: string | null;
  headers?: Record<string, string>;
}

/** What produceKeyed writes: a partition of its own, or one chosen from the key. */
export interface KeyedRecord {
  key: string;
  value: string;
  partition?: number;
}

/**
 * Kafka's default partitioner (murmur2 of the key, as the Java client and
 * kafkajs's DefaultPartitioner compute it) for a topic of `partitions`
 * partitions: where a Java producer would put `key`.
 */
export function partitionForKey(key: string, partitions: number): number {
  const metadata = Array.from({ length: partitions }, (_, partitionId) => ({ partitionErrorCode: 0, partitionId, leader: 1, replicas: [1], isr: [1] }));
  const partitioner = Partitioners.DefaultPartitioner();
  return partitioner({ topic: "", partitionMetadata: metadata, message: { key, value: null } });
}

/**
 * Writes `records` in one idempotent, non-transactional request and returns
 * them with the partition and offset each got. A record without a partition
 * of its own goes where Kafka's default partitioner puts its key, for
 * `partitions` (the topic's partition count; asked of the broker when not
 * given), so a test can know it with partitionForKey before producing.
 */
export async function produceKeyed(brokers: string, topic: string, records: KeyedRecord[], options: { partitions?: number } = {}): Promise<KafkaRecord[]> {
  const kafka = kafkaClient(brokers, "floe-test-producer");
  const partitions = options.partitions ?? (await partitionCount(kafka, topic));
  const messages = records.map((r) => ({ key: r.key, value: r.value, partition: r.partition ?? partitionForKey(r.key, partitions) }));
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    const written = await producer.send({ topic, messages, acks: -1 });
    // One send: each partition's records are one batch, in order, from its baseOffset.
    const next = new Map(written.map((w) => [w.partition, Number(w.baseOffset)]));
    return messages.map((m) => {
      const offset = next.get(m.partition)!;
      next.set(m.partition, offset + 1);
      return { partition: m.partition, offset, key: m.key, value: m.value };
    });
  } finally {
    await producer.disconnect();
  }
}

async function partitionCount(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    return topics[0].partitions.length;
  } finally {
    await admin.disconnect();
  }
}

/** Which records a reader sees: "read_committed" skips aborted and still-open transactions. */
export type Isolation = "read_committed" | "read_uncommitted";

/**
 * Reads `topic` from the beginning up to the end offsets it has when the
 * call starts (the last stable offset for "read_committed", the high
 * watermark otherwise) and returns the records by partition, then offset.
 * Control records (transaction markers) are never returned; with
 * "read_committed", neither are aborted records. It fetches partitions
 * directly and filters aborted transactions with the engine's own
 * read_committed filter: kafkajs's consumer lets records of aborted
 * transactions through when several producers write one partition.
 */
export async function readAll(brokers: string, topic: string, options: { isolation: Isolation; timeoutMs?: number }): Promise<KafkaRecord[]> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  const committed = options.isolation === "read_committed";
  const cluster = lowLevelCluster(kafkaClient(brokers, `floe-test-reader-${options.isolation}`), committed ? READ_COMMITTED : 0);
  await cluster.connect();
  const records: KafkaRecord[] = [];
  try {
    await cluster.addTargetTopic(topic);
    const partitions = cluster.findTopicPartitionMetadata(topic).map((m) => ({ partition: m.partitionId }));
    const [ends] = await cluster.fetchTopicsOffset([{ topic, partitions, fromBeginning: false }]);
    const [starts] = await cluster.fetchTopicsOffset([{ topic, partitions, fromBeginning: true }]);
    for (const { partition } of partitions) {
      const end = Number(ends.partitions.find((p) => p.partition === partition)!.offset);
      let offset = Number(starts.partitions.find((p) => p.partition === partition)!.offset);
      while (offset < end) {
        if (Date.now() > deadline) throw new Error(`readAll(${topic}, ${options.isolation}) did not reach the end within ${options.timeoutMs ?? 30_000} ms: partition ${partition} at ${offset} of ${end}`);
        const leader = Object.entries(cluster.findLeaderForPartitions(topic, [partition]))[0][0];
        const broker = await cluster.findBroker({ nodeId: leader });
        const { responses } = await broker.fetch({
          isolationLevel: committed ? READ_COMMITTED : 0,
          maxWaitTime: 100,
          minBytes: 1,
          maxBytes: 8 * 1024 * 1024,
          topics: [{ topic, partitions: [{ partition, fetchOffset: String(offset), maxBytes: 4 * 1024 * 1024 }] }],
        });
        const data = responses[0]?.partitions.find((p) => p.partition === partition) as unknown as { messages: DecodedMessage[]; abortedTransactions?: AbortedTransaction[] } | undefined;
        const fetched = (data?.messages ?? []).filter((m) => Number(m.offset) >= offset && Number(m.offset) < end);
        if (fetched.length === 0) continue;
        const kept = committed ? committedRecords(fetched, data!.abortedTransactions, offset) : fetched.filter((m) => !m.isControlRecord && !m.batchContext.isControlBatch);
        for (const m of kept) {
          const headers = Object.fromEntries(Object.entries(m.headers ?? {}).map(([k, v]) => [k, String(v)]));
          const record: KafkaRecord = { partition, offset: Number(m.offset), key: m.key?.toString() ?? null, value: m.value?.toString() ?? null };
          if (Object.keys(headers).length > 0) record.headers = headers;
          records.push(record);
        }
        offset = Number(fetched[fetched.length - 1].offset) + 1;
      }
    }
  } finally {
    await cluster.disconnect();
  }
  return records.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}

/** True for the errors that say another producer with the same transactionalId has taken over. */
export function isFencingError(error: unknown): boolean {
  const type = (error as KafkaJSProtocolError | undefined)?.type;
  const code = (error as { code?: number } | undefined)?.code;
  // Brokers answer PRODUCER_FENCED (90) to new clients and INVALID_PRODUCER_EPOCH (47) to old ones like kafkajs.
  return type === "INVALID_PRODUCER_EPOCH" || type === "PRODUCER_FENCED" || code === 47 || code === 90;
}

/** The sink's own retry of kafkajs issue 430 (CONCURRENT_TRANSACTIONS right after a commit). */
export { sendOffsetsRetrying } from "../../src/connectors/kafka/kafka-sink.js";
