/**
 * The options of an HTTP ingestion stream that its partitions enforce
 * (retention, size limit, request rate) and where a job starts reading it
 * (`earliest`, `latest`, or an ingestion time), with their defaults and
 * checks. Pure: the HTTP source, the ingestion route, the coordinator and
 * the partition's log all read them from here.
 */
import { FloeError } from "../errors.js";
import { IDEMPOTENCY_KEY_BYTES } from "./idempotency-keys.js";

/** Per-partition limits of a stream. */
export interface StreamLimits {
  /** Records older than this may be deleted once no running job needs them. */
  readonly retentionMs: number;
  /** Past this size the oldest records may be deleted once no running job needs them. */
  readonly retentionBytes: number;
  /** Hard limit: a partition this full refuses appends with `stream_full` (429) until a job checkpoints past its records. */
  readonly maxBytes: number;
  /** Appends per second a partition accepts; more answer `rate_limited` (429). */
  readonly maxRequestsPerSecond: number;
}

/**
 * One day: Kafka's seven would keep a week of Idempotency-Keys too, more
 * than a partition can hold at its default request rate (see
 * {@link PARTITION_BYTES_MAX}).
 */
export const DEFAULT_RETENTION_MS = 24 * 60 * 60 * 1000;
/** One GiB per partition. */
export const DEFAULT_RETENTION_BYTES = 1024 ** 3;
/** Four GiB per partition: well under a Durable Object's 10 GB of SQLite. */
export const DEFAULT_MAX_BYTES = 4 * 1024 ** 3;
/** Half of the about 1,000 requests a second one object serves: the rest is for the readers. */
export const DEFAULT_MAX_REQUESTS_PER_SECOND = 500;
/** The most a partition may be configured to hold (a Durable Object holds 10 GB, indexes and free pages included). */
export const MAX_BYTES_LIMIT = 8 * 1024 ** 3;
/** Idempotency keys are remembered at least this long, and at least as long as the retention. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/**
 * What a partition's records (`maxBytes`) and the Idempotency-Keys of its
 * window (`maxRequestsPerSecond` × the window × {@link IDEMPOTENCY_KEY_BYTES})
 * may take together: 9 GB, leaving a tenth of the object's 10 GB to the
 * log's index, free pages and the rest.
 */
export const PARTITION_BYTES_MAX = 9 * 1000 ** 3;

/** The defaults, as documented in docs/streams.md. */
export const DEFAULT_STREAM_LIMITS: StreamLimits = {
  retentionMs: DEFAULT_RETENTION_MS,
  retentionBytes: DEFAULT_RETENTION_BYTES,
  maxBytes: DEFAULT_MAX_BYTES,
  maxRequestsPerSecond: DEFAULT_MAX_REQUESTS_PER_SECOND,
};

/**
 * The limits of stream `stream` from its options, defaults filled in;
 * a TypeError naming the stream and the option for a value that cannot be.
 *
 * @example streamLimits("clicks", { retentionMs: 3_600_000 }).maxBytes // DEFAULT_MAX_BYTES
 */
export function streamLimits(stream: string, options: Partial<StreamLimits> = {}): StreamLimits {
  // Only the limits: the options of a source carry more (partitions, key, validation).
  const { retentionMs, retentionBytes, maxBytes, maxRequestsPerSecond } = options;
  const limits = { ...DEFAULT_STREAM_LIMITS, ...stripUndefined({ retentionMs, retentionBytes, maxBytes, maxRequestsPerSecond }) };
  for (const name of ["retentionMs", "retentionBytes", "maxBytes", "maxRequestsPerSecond"] as const) {
    const v = limits[name];
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw new TypeError(`stream "${stream}": ${name} must be a positive number, got ${JSON.stringify(v)}`);
    }
  }
  const keyBytes = idempotencyKeyBytes(limits);
  // A size retention above the size limit would never delete before producers are refused.
  if (options.maxBytes === undefined && limits.maxBytes < limits.retentionBytes) {
    limits.maxBytes = Math.max(limits.retentionBytes, Math.min(MAX_BYTES_LIMIT, limits.retentionBytes * 2, PARTITION_BYTES_MAX - keyBytes));
  }
  if (limits.maxBytes < limits.retentionBytes) {
    throw new TypeError(`stream "${stream}": maxBytes (${limits.maxBytes}) must be at least retentionBytes (${limits.retentionBytes})`);
  }
  if (limits.maxBytes > MAX_BYTES_LIMIT) throw new TypeError(`stream "${stream}": maxBytes must be at most ${MAX_BYTES_LIMIT} (a Durable Object holds 10 GB)`);
  // Keys are remembered for the window whatever retention deletes: with the records, they must fit in the object.
  if (limits.maxBytes + keyBytes > PARTITION_BYTES_MAX) {
    const windowHours = idempotencyWindowMs(limits) / 3_600_000;
    throw new TypeError(
      `stream "${stream}": at ${limits.maxRequestsPerSecond} requests a second, the Idempotency-Keys of ${windowHours} hours (the retention, at least a day) take up to ${keyBytes} bytes, ` +
        `and with maxBytes (${limits.maxBytes}) more than the ${PARTITION_BYTES_MAX} a partition may hold: lower retentionMs, maxRequestsPerSecond or maxBytes`,
    );
  }
  return limits;
}

/** How long a partition remembers an Idempotency-Key: a day, or the retention when longer. */
export function idempotencyWindowMs(limits: Pick<StreamLimits, "retentionMs">): number {
  return Math.max(IDEMPOTENCY_TTL_MS, limits.retentionMs);
}

/** The most the Idempotency-Keys of one window may take: one key per request the rate quota lets through. */
export function idempotencyKeyBytes(limits: Pick<StreamLimits, "retentionMs" | "maxRequestsPerSecond">): number {
  return Math.ceil((limits.maxRequestsPerSecond * idempotencyWindowMs(limits)) / 1000) * IDEMPOTENCY_KEY_BYTES;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Where a job started without a savepoint or checkpoint reads a stream from, as Flink's `OffsetsInitializer`. */
export type StartingOffsets = "earliest" | "latest" | { readonly timestamp: number };

/**
 * Checks a `starting_offsets` value (from a job definition or a start
 * request): a {@link FloeError} `invalid_starting_offsets` for anything but
 * `"earliest"`, `"latest"` or `{ "timestamp": ms }` with ms a whole number
 * not after `nowMs`.
 */
export function parseStartingOffsets(value: unknown, nowMs: number): StartingOffsets {
  if (value === "earliest" || value === "latest") return value;
  const expected = `starting_offsets must be "earliest", "latest" or { "timestamp": <epoch ms> }`;
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new FloeError("invalid_starting_offsets", `${expected}, got ${JSON.stringify(value)}`);
  const keys = Object.keys(value);
  const ts = (value as { timestamp?: unknown }).timestamp;
  if (keys.length !== 1 || keys[0] !== "timestamp") throw new FloeError("invalid_starting_offsets", `${expected}, got ${JSON.stringify(value)}`);
  if (typeof ts !== "number" || !Number.isInteger(ts) || ts < 0) {
    throw new FloeError("invalid_starting_offsets", `starting_offsets.timestamp must be a whole number of epoch ms, got ${JSON.stringify(ts)}`);
  }
  if (ts > nowMs) throw new FloeError("invalid_starting_offsets", `starting_offsets.timestamp ${ts} is in the future (now is ${nowMs})`);
  return { timestamp: ts };
}

/**
 * Where one run of a job starts in one partition: a resolved
 * {@link StartingOffsets}, or the offset a savepoint or checkpoint
 * recorded (`orEarliest`: begin at the earliest retained offset when it
 * was truncated, instead of refusing).
 */
export type StartPosition = StartingOffsets | { readonly offset: number; readonly orEarliest: boolean };
