/**
 * Kafka connectors. A separate entry point: kafkajs goes into a Worker's
 * bundle only when a job imports it.
 *
 * @example import { kafkaSource, kafkaSink } from "floe/kafka";
 */
export { kafkaSource, kafkaPartitionKey, type KafkaRecord, type KafkaSourceOptions } from "./kafka-source.js";
export { kafkaSink, checkTransactionTimeout, DEFAULT_TRANSACTION_TIMEOUT_MS, type KafkaSinkOptions } from "./kafka-sink.js";
export type { KafkaConnection } from "./client.js";
