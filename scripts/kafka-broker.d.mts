// Types for scripts/kafka-broker.mjs, which stays plain JavaScript so that CI's system Node 20 runs it.

/** `.cache/kafka` in the repo root: the jars, the CLI broker's data, the list of running brokers. */
export declare const KAFKA_CACHE_DIR: string;
/** The broker's default port; the controller listens on the next one. */
export declare const DEFAULT_KAFKA_PORT: number;

/** Java or Maven is missing, or Maven could not fetch the jars: Kafka tests cannot run here. */
export declare class KafkaUnavailableError extends Error {}

/** True when the jars for the current scripts/kafka/pom.xml are in the cache. */
export declare function kafkaFetched(): boolean;

/** Fetches the broker jars with Maven unless cached; `fetched` is false when the cache was used. */
export declare function fetchKafka(): { libsDir: string; fetched: boolean };

export interface StartKafkaOptions {
  /** Broker port on 127.0.0.1 (default 19092); 0 takes any two free neighbouring ports. */
  port?: number;
  /** Controller port (default port + 1). */
  controllerPort?: number;
  /** Holds server.properties, data/, logs/ and broker.json (default .cache/kafka/broker). */
  dir?: string;
  /** Wipe dir/data first; otherwise formatted data is kept and the same cluster restarts. */
  fresh?: boolean;
  /** Let the JVM outlive this process (the CLI); otherwise an orphan is stopped by the next start. */
  detached?: boolean;
  /** How long to wait for describeCluster to answer (default 90 000). */
  readyTimeoutMs?: number;
}

export interface RunningKafka {
  /** "127.0.0.1:<port>", for kafkajs's `brokers: [..]`. */
  brokers: string;
  pid: number;
  dir: string;
  /** SIGTERM, then SIGKILL after 20 s; idempotent. */
  stop(): Promise<void>;
}

/** Starts a broker and resolves once it answers describeCluster. */
export declare function startKafka(options?: StartKafkaOptions): Promise<RunningKafka>;

/** Stops the broker that runs from `dir` (by its broker.json); false when none ran. */
export declare function stopKafka(options?: { dir?: string }): Promise<boolean>;

/** What runs from `dir`. */
export declare function kafkaStatus(options?: { dir?: string }): { running: boolean; pid?: number; brokers?: string; dir: string; fetched: boolean };
