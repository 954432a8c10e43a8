/**
 * The Kafka sink, on the two-phase-commit framework: records of checkpoint
 * N are staged in the sink subtask's storage; when N completes, they are
 * produced in one Kafka transaction, which also commits N as the offset of
 * a consumer group that belongs to this sink subtask (TxnOffsetCommit, as a
 * Kafka Streams task records its input offsets). A repeated commit after a
 * crash finds N already recorded and produces nothing: read_committed
 * consumers see every record once.
 *
 * The transactional id is `<prefix>-<subtask>`: a new producer with it
 * fences an older one and aborts the transaction it left open.
 */
import type { Admin, Kafka, Producer, Transaction } from "kafkajs";
import type { CheckpointConfig } from "../../api/checkpoint-options.js";
import type { DeliveryGuarantee, SinkDefinition, SinkWriterContext } from "../../api/types.js";
import { retry } from "../../retry.js";
import { type SinkPublisher, TransactionalSinkWriter } from "../sinks/two-phase-commit.js";
import { type KafkaConnection, brokersProblem, kafkaClient, kafkaConfig } from "./client.js";

/** Options of {@link kafkaSink}. */
export interface KafkaSinkOptions<T> extends KafkaConnection {
  /** Default exactly_once: records become visible to read_committed consumers once their checkpoint completed. */
  guarantee?: DeliveryGuarantee;
  /** Prefix of the sink subtasks' transactional ids (and of their marker groups). Default "floe-<job>-<uid>". */
  transactionalIdPrefix?: string;
  /**
   * transaction.timeout.ms of the producer. Must exceed checkpoint interval +
   * checkpoint timeout (the engine refuses a job that breaks this), and the
   * broker's transaction.max.timeout.ms must allow it. Default 15 minutes.
   */
  transactionTimeoutMs?: number;
  /** The record's key (null: no key, the default partitioner spreads records). */
  key?: (record: T) => string | null;
  /** The record's value as text. Default: JSON. */
  value?: (record: T) => string;
  /**
   * Waits this long between producing a transaction's records and
   * committing it. For fault-injection tests, which need transactions that
   * stay open long enough for a crash to land inside them. Default 0.
   */
  commitDelayMs?: number;
}

/** The broker's default transaction.max.timeout.ms. */
export const DEFAULT_TRANSACTION_TIMEOUT_MS = 15 * 60 * 1000;

/**
 * Kafka's transaction timeout must outlast a checkpoint: a transaction the
 * broker aborted on its own would lose the records of a checkpoint that
 * completed meanwhile. Returns why a configuration breaks the rule.
 */
export function checkTransactionTimeout(transactionTimeoutMs: number, checkpoint: Pick<CheckpointConfig, "intervalMs" | "timeoutMs">, what: string): string | undefined {
  const needed = checkpoint.intervalMs + checkpoint.timeoutMs;
  if (checkpoint.intervalMs > 0 && transactionTimeoutMs <= needed) {
    return (
      `${what}: transaction.timeout.ms (transactionTimeoutMs) ${transactionTimeoutMs} must exceed checkpoint.interval_ms ${checkpoint.intervalMs} + ` +
      `checkpoint.timeout_ms ${checkpoint.timeoutMs} = ${needed}: records wait for the checkpoint that covers them, and a ` +
      `transaction the broker times out first would be aborted with them`
    );
  }
  return undefined;
}

/**
 * A two-phase-commit sink producing to one Kafka topic.
 *
 * @example .sink(kafkaSink<Count>("counts", { key: (c) => c.user }), { uid: "counts-out" })
 */
export function kafkaSink<T = unknown>(topic: string, options: KafkaSinkOptions<T> = {}): SinkDefinition<T> {
  if (!/^[a-zA-Z0-9._-]{1,249}$/.test(topic)) throw new TypeError(`kafkaSink: ${JSON.stringify(topic)} is not a valid Kafka topic name`);
  const timeout = options.transactionTimeoutMs ?? DEFAULT_TRANSACTION_TIMEOUT_MS;
  if (!Number.isInteger(timeout) || timeout < 1) throw new TypeError(`kafkaSink "${topic}": transactionTimeoutMs must be a positive integer`);
  return {
    kind: "kafka",
    checkConfig: (checkpoint, uid) => checkTransactionTimeout(timeout, checkpoint, `kafka sink "${uid}" (topic ${topic})`),
    checkVars: (vars, uid) => brokersProblem(options, vars, `kafka sink "${uid}" (topic ${topic})`),
    createWriter: (ctx) =>
      new TransactionalSinkWriter(
        { uid: ctx.uid, guarantee: options.guarantee ?? "exactly_once", staging: ctx.staging, now: () => ctx.now() },
        new KafkaPublisher(topic, options as KafkaSinkOptions<unknown>, ctx, timeout),
      ),
  };
}

/** A staged row: the record's key and value. */
type Row = [string | null, string];

/** Offsets are int64: a run's transactions sort after every earlier run's. */
const RUN_STRIDE = 10_000_000_000_000;

class KafkaPublisher implements SinkPublisher {
  private kafka: Kafka | undefined;
  private producer: Producer | undefined;
  private admin: Admin | undefined;

  constructor(
    private readonly topic: string,
    private readonly options: KafkaSinkOptions<unknown>,
    private readonly ctx: SinkWriterContext,
    private readonly transactionTimeoutMs: number,
  ) {}

  private get prefix(): string {
    return this.options.transactionalIdPrefix ?? `floe-${this.ctx.jobName}-${this.ctx.uid}`;
  }

  /** This sink subtask's consumer group, whose offset records the last transaction committed. */
  get markerGroup(): string {
    return `${this.prefix}-${this.ctx.subtaskIndex}-commits`;
  }

  encode(record: unknown): string {
    const key = this.options.key ? this.options.key(record) : null;
    if (key !== null && typeof key !== "string") throw new TypeError(`the key function returned ${typeof key}, not a string or null`);
    const value = this.options.value ? this.options.value(record) : JSON.stringify(record);
    if (typeof value !== "string") throw new TypeError(`${String(record)} has no ${this.options.value ? "text value" : "JSON form"}`);
    return JSON.stringify([key, value] satisfies Row);
  }

  async publish(txn: number, rows: readonly string[]): Promise<void> {
    if (rows.length === 0) return;
    const marker = this.ctx.runId * RUN_STRIDE + txn;
    // Each record names the checkpoint whose transaction carried it (lineage, and debugging).
    const headers = { "floe-checkpoint": String(txn), "floe-subtask": String(this.ctx.subtaskIndex) };
    const messages = rows.map((r) => {
      const [key, value] = JSON.parse(r) as Row;
      return { key, value, headers };
    });
    if (this.options.guarantee === "at_least_once") {
      // At the barrier, without a transaction: a failure before the checkpoint completes repeats them.
      await (await this.plainProducer()).send({ topic: this.topic, messages });
      return;
    }
    try {
      const producer = await this.transactionalProducer();
      // The first transaction of a producer fences older ones and waits until the transaction they
      // left (committing or aborting) has completed; only then is the recorded marker final.
      const transaction: Transaction = await producer.transaction();
      try {
        const recorded = await this.recordedMarker();
        if (recorded >= marker) {
          // Committed before a crash: not again.
          await transaction.abort();
          return;
        }
        for (let i = 0; i < messages.length; i += 10_000) await transaction.send({ topic: this.topic, messages: messages.slice(i, i + 10_000) });
        await sendOffsetsRetrying(
          transaction,
          { consumerGroupId: this.markerGroup, topics: [{ topic: this.topic, partitions: [{ partition: 0, offset: String(marker) }] }] },
          (ms) => this.ctx.sleep(ms),
        );
        if (this.options.commitDelayMs) await this.ctx.sleep(this.options.commitDelayMs);
        await transaction.commit();
      } catch (e) {
        // The first error is the one to report. An abort that fails too is safe to lose: the producer is
        // replaced below, and the next one with this transactional id aborts what this one left open.
        await transaction.abort().catch(() => undefined);
        throw e;
      }
    } catch (e) {
      // A producer in an unknown state (fenced, timed out) is replaced on the next try.
      await this.reset();
      throw new Error(`kafka sink "${this.ctx.uid}" could not commit transaction ${txn} to topic ${this.topic}: ${(e as Error)?.message ?? e}`);
    }
  }

  private client(): Kafka {
    this.kafka ??= kafkaClient(kafkaConfig(this.options, this.ctx.env, `kafka sink "${this.ctx.uid}"`));
    return this.kafka;
  }

  /** Read in every transaction, after the producer fenced older ones: never a cached value another producer overtook. */
  private async recordedMarker(): Promise<number> {
    if (!this.admin) {
      const admin = this.client().admin();
      await admin.connect();
      this.admin = admin;
    }
    const [offsets] = await this.admin.fetchOffsets({ groupId: this.markerGroup, topics: [this.topic] });
    const p0 = offsets?.partitions.find((p) => p.partition === 0);
    return p0 && Number(p0.offset) >= 0 ? Number(p0.offset) : -1;
  }

  close(): void {
    this.closed = true;
    void this.reset();
    const admin = this.admin;
    this.admin = undefined;
    // Nothing waits for a closed sink's admin client: a failed disconnect only leaves a connection the isolate drops.
    void admin?.disconnect().catch(() => undefined);
  }

  private closed = false;

  private async transactionalProducer(): Promise<Producer> {
    if (this.closed) throw new Error("the sink was closed");
    if (this.producer) return this.producer;
    const producer = this.client().producer({
      transactionalId: `${this.prefix}-${this.ctx.subtaskIndex}`,
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: this.transactionTimeoutMs,
      allowAutoTopicCreation: false,
    });
    await producer.connect();
    this.producer = producer;
    return producer;
  }

  private async plainProducer(): Promise<Producer> {
    if (this.producer) return this.producer;
    const producer = this.client().producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
    await producer.connect();
    this.producer = producer;
    return producer;
  }

  private async reset(): Promise<void> {
    const producer = this.producer;
    this.producer = undefined;
    // Safe to lose: the producer is dropped either way, and its successor (same transactional id) fences it.
    await producer?.disconnect().catch(() => undefined);
  }
}

/**
 * Sends a transaction's offsets, trying again while the broker answers
 * CONCURRENT_TRANSACTIONS: kafkajs does not retry it right after a previous
 * commit (kafkajs issue 430). About 6 s of tries in all.
 */
export async function sendOffsetsRetrying(
  transaction: Transaction,
  offsets: Parameters<Transaction["sendOffsets"]>[0],
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
): Promise<void> {
  await retry(() => transaction.sendOffsets(offsets), { attempts: 21, delayMs: 20, multiplier: 1.5, maxDelayMs: 400, isRetryable: isConcurrentTransactions, sleep });
}

/** Whether kafkajs failed with CONCURRENT_TRANSACTIONS (on the error or its cause). */
export function isConcurrentTransactions(e: unknown): boolean {
  const type = (e as { type?: string } | null)?.type ?? (e as { cause?: { type?: string } } | null)?.cause?.type;
  return type === "CONCURRENT_TRANSACTIONS";
}
