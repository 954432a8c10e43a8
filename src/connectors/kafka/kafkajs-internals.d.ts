/**
 * Types for the few kafkajs 2.2.4 internals floe uses (the package is
 * pinned to that exact version): the low-level cluster, for fetching
 * assigned partitions without a consumer group (as Flink's KafkaSource does
 * with assign()), and the Batch that filters aborted and control records.
 */
declare module "kafkajs/src/consumer/batch.js" {
  import type { KafkaMessage } from "kafkajs";
  export default class Batch {
    constructor(topic: string, fetchedOffset: string, partitionData: unknown);
    readonly partition: number;
    readonly highWatermark: string;
    readonly messages: KafkaMessage[];
    isEmptyIncludingFiltered(): boolean;
    lastOffset(): string;
  }
}
