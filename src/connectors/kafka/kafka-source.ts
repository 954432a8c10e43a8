/**
 * The Kafka source (Flink's KafkaSource): partition p of the topic belongs
 * to source subtask p mod parallelism; each subtask fetches its partitions
 * itself, read_committed, with no consumer group, and its position in each
 * partition (the next offset) goes into every checkpoint. A restore rewinds
 * to the checkpointed offsets, a rescale hands them to the new owners, and
 * a consumer group's committed offsets are never read: at most, with
 * `commitOffsetsToGroup`, they are written after each completed checkpoint,
 * for monitoring tools.
 */
import { RejectedRecord } from "../../api/dead-letter.js";
import type { KafkaMessage } from "kafkajs";
import type { SourceBatch, SourceDefinition, SourceReader, SourceReaderContext } from "../../api/types.js";
import { type KafkaConnection, type LowLevelCluster, READ_COMMITTED, kafkaClient, kafkaConfig, lowLevelCluster } from "./client.js";
import { type AbortedTransaction, type DecodedMessage, committedRecords } from "./read-committed.js";

/** One record as the Kafka source emits it. */
export interface KafkaRecord<T> {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  /** Milliseconds since the epoch (the record's timestamp). */
  readonly timestamp: number;
  readonly key: string | null;
  readonly value: T;
  readonly headers: Record<string, string>;
}

/** Options of {@link kafkaSource}. */
export interface KafkaSourceOptions extends KafkaConnection {
  /** The topic's partition count: the default source parallelism. Default 1. */
  partitions?: number;
  /** Where a partition without a checkpointed offset starts. Default "earliest". */
  startingOffsets?: "earliest" | "latest";
  /** How record values are decoded. Default "json". */
  format?: "json" | "text";
  /** After each completed checkpoint, commit its offsets to this group (monitoring only; never read back). */
  commitOffsetsToGroup?: string;
  /** Longest time a fetch waits at the broker for new records. Default 100 ms. */
  maxWaitMs?: number;
  /** Bytes fetched per partition and request. Default 1 MiB. */
  maxPartitionBytes?: number;
}

/** Name of a topic partition in source positions. */
export function kafkaPartitionKey(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}

/**
 * A replayable source reading one Kafka topic.
 *
 * @example .source(kafkaSource<Click>("clicks", { partitions: 8 }), { uid: "clicks-in" })
 */
export function kafkaSource<T = unknown>(topic: string, options: KafkaSourceOptions = {}): SourceDefinition<KafkaRecord<T>> {
  if (!/^[a-zA-Z0-9._-]{1,249}$/.test(topic)) throw new TypeError(`kafkaSource: ${JSON.stringify(topic)} is not a valid Kafka topic name`);
  const partitions = options.partitions ?? 1;
  if (!Number.isInteger(partitions) || partitions < 1) throw new TypeError(`kafkaSource "${topic}": partitions must be a positive integer`);
  return {
    kind: "kafka",
    defaultParallelism: partitions,
    replayable: true,
    createReader: (ctx) => new KafkaSourceReader(topic, options, ctx),
  };
}

interface OwnedPartition {
  readonly partition: number;
  readonly key: string;
  /** Next offset to emit. */
  offset: number;
  /** The partition's high watermark at the last fetch. */
  high: number;
  /** Fetched and not emitted yet. */
  buffer: KafkaMessage[];
  /** Offset after the fetched range (past filtered aborted and control records). */
  bufferEnd: number;
}

class KafkaSourceReader implements SourceReader {
  private owned: OwnedPartition[] | undefined;
  private restored: Record<string, number> = {};
  private cluster: LowLevelCluster | undefined;
  private ready: Promise<void> | undefined;
  private cursor = 0;
  private readonly decoder = new TextDecoder();

  constructor(
    private readonly topic: string,
    private readonly options: KafkaSourceOptions,
    private readonly ctx: SourceReaderContext,
  ) {}

  private mine(partition: number): boolean {
    return partition % this.ctx.parallelism === this.ctx.subtaskIndex;
  }

  positions(): Record<string, number> {
    if (this.owned) return Object.fromEntries(this.owned.map((o) => [o.key, o.offset]));
    // Not connected yet: what was restored is still the position.
    const prefix = `${this.topic}/`;
    return Object.fromEntries(Object.entries(this.restored).filter(([k]) => k.startsWith(prefix) && this.mine(Number(k.slice(prefix.length)))));
  }

  seek(positions: Record<string, number>): void {
    this.restored = { ...positions };
    for (const o of this.owned ?? []) {
      const at = positions[o.key];
      if (at !== undefined) {
        o.offset = at;
        o.buffer = [];
        o.bufferEnd = at;
      }
    }
  }

  lag(): number | null {
    if (!this.owned) return null;
    return this.owned.reduce((n, o) => n + Math.max(0, o.high - o.offset), 0);
  }

  async poll(maxRecords: number): Promise<SourceBatch | null> {
    this.ready ??= this.connect().catch((e: unknown) => {
      this.ready = undefined;
      throw e;
    });
    await this.ready;
    const owned = this.owned!;
    if (owned.length === 0) return null;
    const buffered = this.take(owned, maxRecords);
    if (buffered) return buffered;
    await this.fetch(owned);
    return this.take(owned, maxRecords);
  }

  /** Stops fetching (the subtask's task ended). */
  async close(): Promise<void> {
    const c = this.cluster;
    this.cluster = undefined;
    this.ready = undefined;
    // The reader is done with the cluster either way; a failed disconnect leaves nothing to undo.
    await c?.disconnect().catch(() => undefined);
  }

  /** A checkpoint completed: optionally publish its offsets to a consumer group, for monitoring. */
  async checkpointComplete(positions: Record<string, number>): Promise<void> {
    const group = this.options.commitOffsetsToGroup;
    if (!group || !this.cluster) return;
    const partitions = Object.entries(positions)
      .filter(([k]) => k.startsWith(`${this.topic}/`))
      .map(([k, offset]) => ({ partition: Number(k.slice(this.topic.length + 1)), offset: String(offset) }));
    if (partitions.length === 0) return;
    const coordinator = await this.cluster.findGroupCoordinator({ groupId: group });
    await coordinator.offsetCommit({ groupId: group, groupGenerationId: -1, memberId: "", topics: [{ topic: this.topic, partitions }] });
  }

  private async connect(): Promise<void> {
    const kafka = kafkaClient(kafkaConfig(this.options, this.ctx.env, `kafka source "${this.topic}"`));
    const cluster = lowLevelCluster(kafka);
    await cluster.connect();
    await cluster.addTargetTopic(this.topic);
    const metadata = cluster.findTopicPartitionMetadata(this.topic);
    if (metadata.length === 0) throw new Error(`kafka source: topic "${this.topic}" does not exist`);
    const partitions = metadata.map((m) => m.partitionId).filter((p) => this.mine(p)).sort((a, b) => a - b);
    const missing = partitions.filter((p) => this.restored[kafkaPartitionKey(this.topic, p)] === undefined);
    const start = new Map<number, number>();
    if (missing.length > 0) {
      const [offsets] = await cluster.fetchTopicsOffset([
        { topic: this.topic, partitions: missing.map((partition) => ({ partition })), fromBeginning: (this.options.startingOffsets ?? "earliest") === "earliest" },
      ]);
      for (const p of offsets?.partitions ?? []) start.set(p.partition, Number(p.offset));
    }
    this.owned = partitions.map((partition) => {
      const key = kafkaPartitionKey(this.topic, partition);
      const offset = this.restored[key] ?? start.get(partition) ?? 0;
      return { partition, key, offset, high: offset, buffer: [], bufferEnd: offset };
    });
    this.cluster = cluster;
  }

  /** The next buffered records of one partition (round-robin), as one batch. */
  private take(owned: OwnedPartition[], maxRecords: number): SourceBatch | null {
    for (let i = 0; i < owned.length; i++) {
      const o = owned[(this.cursor + i) % owned.length];
      if (o.buffer.length === 0) {
        // Aborted records and transaction markers at the end of a fetch are skipped over.
        o.offset = Math.max(o.offset, o.bufferEnd);
        continue;
      }
      this.cursor = (this.cursor + i + 1) % owned.length;
      const messages = o.buffer.splice(0, maxRecords);
      const records = messages.map((m) => this.record(o.partition, m));
      o.offset = o.buffer.length > 0 ? Number(o.buffer[0].offset) : o.bufferEnd;
      return { partition: o.key, firstOffset: Number(messages[0].offset), records };
    }
    return null;
  }

  private async fetch(owned: OwnedPartition[]): Promise<void> {
    const cluster = this.cluster!;
    const byLeader = cluster.findLeaderForPartitions(this.topic, owned.map((o) => o.partition));
    await Promise.all(
      Object.entries(byLeader).map(async ([nodeId, partitions]) => {
        const broker = await cluster.findBroker({ nodeId });
        const requested = owned.filter((o) => partitions.includes(o.partition));
        const { responses } = await broker.fetch({
          isolationLevel: READ_COMMITTED,
          maxWaitTime: this.options.maxWaitMs ?? 100,
          minBytes: 1,
          maxBytes: 8 * 1024 * 1024,
          topics: [{ topic: this.topic, partitions: requested.map((o) => ({ partition: o.partition, fetchOffset: String(o.offset), maxBytes: this.options.maxPartitionBytes ?? 1024 * 1024 })) }],
        });
        for (const r of responses) {
          for (const data of r.partitions) {
            const o = requested.find((x) => x.partition === data.partition);
            if (!o) continue;
            const { messages, abortedTransactions } = data as unknown as { messages: DecodedMessage[]; abortedTransactions?: AbortedTransaction[] };
            o.high = Number(data.highWatermark);
            const fetched = messages.filter((m) => Number(m.offset) >= o.offset);
            if (fetched.length === 0) continue;
            o.buffer = committedRecords(fetched, abortedTransactions, o.offset);
            // Past the fetched range, aborted records and transaction markers included.
            o.bufferEnd = Number(fetched[fetched.length - 1].offset) + 1;
          }
        }
      }),
    );
  }

  /** The record of a message; a message that is not JSON (format "json") is rejected in its place, to the source's dead letters. */
  private record(partition: number, m: KafkaMessage): KafkaRecord<unknown> | RejectedRecord {
    const text = m.value ? this.decoder.decode(m.value) : "";
    let value: unknown = text;
    if ((this.options.format ?? "json") === "json") {
      try {
        value = m.value ? JSON.parse(text) : null;
      } catch (e) {
        return new RejectedRecord(
          { topic: this.topic, partition, offset: Number(m.offset), text },
          `kafka source "${this.topic}": the record at partition ${partition} offset ${m.offset} is not JSON (${(e as Error).message}); use format: "text" to read it as text`,
        );
      }
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(m.headers ?? {})) if (v !== undefined) headers[k] = Array.isArray(v) ? v.map(String).join(",") : String(v);
    return {
      topic: this.topic,
      partition,
      offset: Number(m.offset),
      timestamp: Number(m.timestamp),
      key: m.key ? this.decoder.decode(m.key) : null,
      value,
      headers,
    };
  }
}
