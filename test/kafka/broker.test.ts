/**
 * The test broker does what floe's exactly-once Kafka connectors rely on:
 * transactions that commit or abort records and consumer offsets together,
 * readers that honour the isolation level, and fencing of a producer whose
 * transactionalId another producer has taken over.
 */
import type { Admin, Kafka, Producer } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTopic, isFencingError, kafkaBrokers, kafkaClient, partitionForKey, produceKeyed, readAll, sendOffsetsRetrying, uniqueTopic } from "../support/kafka.js";

const brokers = kafkaBrokers();

/** Short, so a transaction a failing test leaves open blocks committed readers for seconds, not minutes. */
const TRANSACTION_TIMEOUT_MS = 10_000;

function transactionalProducer(kafka: Kafka, transactionalId: string): Producer {
  return kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1, transactionTimeout: TRANSACTION_TIMEOUT_MS });
}

const values = (records: { value: string | null }[]) => records.map((r) => r.value).sort();

describe.skipIf(!brokers)("the Kafka test broker", () => {
  let kafka: Kafka;
  let admin: Admin;

  beforeAll(async () => {
    kafka = kafkaClient(brokers!);
    admin = kafka.admin();
    await admin.connect();
  });

  afterAll(async () => {
    await admin?.disconnect();
  });

  it("produces keyed records where Kafka's default partitioner puts them", async () => {
    const topic = uniqueTopic("keyed");
    await createTopic(admin, topic, 4);
    const records = Array.from({ length: 20 }, (_, i) => ({ key: `k${i % 7}`, value: `v${i}` }));
    const written = await produceKeyed(brokers!, topic, records, { partitions: 4 });
    for (const w of written) expect(w.partition).toBe(partitionForKey(w.key!, 4));
    expect(new Set(written.map((w) => w.partition)).size).toBeGreaterThan(1);

    const read = await readAll(brokers!, topic, { isolation: "read_committed" });
    expect(read).toEqual([...written].sort((a, b) => a.partition - b.partition || a.offset - b.offset));
  });

  it("commits records and consumer offsets in one transaction, and hides aborted ones from committed readers", async () => {
    const output = uniqueTopic("eos-out");
    const input = uniqueTopic("eos-in");
    await createTopic(admin, output, 4);
    await createTopic(admin, input, 2);
    const groupId = uniqueTopic("eos-group");
    const message = (value: string) => ({ key: value, value, partition: partitionForKey(value, 4) });
    const producer = transactionalProducer(kafka, uniqueTopic("eos-txn"));
    await producer.connect();
    try {
      const first = await producer.transaction();
      await first.send({ topic: output, messages: ["c1", "c2", "c3", "c4", "c5"].map(message) });
      await sendOffsetsRetrying(first, {
        consumerGroupId: groupId,
        topics: [{ topic: input, partitions: [{ partition: 0, offset: "3" }, { partition: 1, offset: "7" }] }],
      });
      await first.commit();

      const aborted = await producer.transaction();
      await aborted.send({ topic: output, messages: ["a1", "a2", "a3"].map(message) });
      await sendOffsetsRetrying(aborted, { consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: "100" }] }] });
      await aborted.abort();

      // Offsets first, right after the abort: where kafkajs meets CONCURRENT_TRANSACTIONS (issue 430).
      const second = await producer.transaction();
      await sendOffsetsRetrying(second, { consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: "5" }] }] });
      await second.send({ topic: output, messages: ["c6", "c7"].map(message) });
      await second.commit();
    } finally {
      await producer.disconnect();
    }

    const committed = await readAll(brokers!, output, { isolation: "read_committed" });
    expect(values(committed)).toEqual(["c1", "c2", "c3", "c4", "c5", "c6", "c7"]);
    for (const r of committed) expect(r.partition).toBe(partitionForKey(r.value!, 4));

    const uncommitted = await readAll(brokers!, output, { isolation: "read_uncommitted" });
    expect(values(uncommitted)).toEqual(["a1", "a2", "a3", "c1", "c2", "c3", "c4", "c5", "c6", "c7"]);

    // The aborted transaction's offset (100) never took effect.
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [input] });
    expect(offsets.partitions.map((p) => [p.partition, p.offset]).sort()).toEqual([
      [0, "5"],
      [1, "7"],
    ]);
  });

  it("fences a producer once another takes over its transactionalId", async () => {
    const topic = uniqueTopic("fenced");
    await createTopic(admin, topic, 1);
    const transactionalId = uniqueTopic("fenced-txn");
    const zombie = transactionalProducer(kafka, transactionalId);
    const successor = transactionalProducer(kafka, transactionalId);
    await zombie.connect();
    try {
      const stale = await zombie.transaction();
      await stale.send({ topic, messages: [{ key: "k", value: "from-zombie" }] });

      // kafkajs registers a transactionalId on the first transaction(), not on connect(): only
      // then is the epoch bumped and the zombie's open transaction aborted.
      await successor.connect();
      const current = await successor.transaction();
      await current.send({ topic, messages: [{ key: "k", value: "from-successor" }] });
      await current.commit();

      const failure = await stale.commit().then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure, "the zombie's commit must fail").toBeDefined();
      expect(isFencingError(failure), `not a fencing error: ${String(failure)}`).toBe(true);
    } finally {
      await zombie.disconnect();
      await successor.disconnect();
    }

    expect(values(await readAll(brokers!, topic, { isolation: "read_committed" }))).toEqual(["from-successor"]);
    expect(values(await readAll(brokers!, topic, { isolation: "read_uncommitted" }))).toEqual(["from-successor", "from-zombie"]);
  });
});
