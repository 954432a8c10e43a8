/**
 * The HTTP source: reads the StreamPartition logs that `POST
 * /v1/ingest/:stream` appends to. Partition p of a stream belongs to source
 * subtask p mod parallelism; the position in each partition is an offset,
 * which is what makes the source replayable.
 *
 * A run started without a savepoint or checkpoint reads each partition from
 * where the coordinator pinned the run's start (`startingOffsets`:
 * earliest, latest, or an ingestion time), which the reader asks the
 * partition for before its first read: every attempt of the run, restarted
 * before its first checkpoint, starts at the same offsets.
 */
import type { HttpStreamDefinition, SourceBatch, SourceDefinition, SourceReader, SourceReaderContext } from "../../api/types.js";
import type { FloeEnv } from "../../runtime/env.js";
import { streamPartitionName } from "../../runtime/names.js";
import type { PartitionConfig } from "../../storage/stream-log.js";
import { FloeError } from "../../errors.js";
import { type StartingOffsets, type StreamLimits, parseStartingOffsets, streamLimits } from "../../storage/stream-options.js";

/** Options of {@link httpSource}. */
export interface HttpSourceOptions<T> extends Partial<StreamLimits> {
  /** Partitions of the stream; the default source parallelism. Default 1. Each partition is one object: size it against about 500 requests a second each (docs/streams.md). */
  partitions?: number;
  /** Validates a record at ingestion: returns an error message, or undefined when the record is fine. */
  validate?: (record: unknown) => string | undefined;
  /** Worker variable holding an ingest-only token for this stream. */
  ingestTokenVar?: string;
  /**
   * Chooses each record's partition by a key, so that one key's records
   * keep their order: a field of the record, or a function of it. A request
   * whose records have no such field is refused with 400.
   */
  partitionKey?: string | ((record: T) => string | number);
  /** Where a job started without a savepoint or checkpoint begins; `POST /v1/jobs/:job/start` may override it. Default `"earliest"`. */
  startingOffsets?: StartingOffsets;
  /** Phantom: the record type. */
  type?: T;
}

/** The source position of a partition the reader has not started reading: no offset yet (the run's start is asked for when it is). */
export const NOT_STARTED = -1;

/** Name of the partition as it appears in source positions. */
export function partitionKey(stream: string, partition: number): string {
  return `${stream}/${partition}`;
}

/** The stream and partition a source position names, or null for another source's position. */
export function parsePartitionKey(key: string): { stream: string; partition: number } | null {
  const m = /^([a-z0-9][a-z0-9_-]{0,62})\/(\d+)$/.exec(key);
  return m ? { stream: m[1], partition: Number(m[2]) } : null;
}

/** What a partition of `stream` is told about itself: its name and limits. */
export function partitionConfig(stream: HttpStreamDefinition, partition: number): PartitionConfig {
  return { stream: stream.name, partition, ...(stream.limits ?? streamLimits(stream.name)) };
}

/**
 * A replayable source fed by HTTP ingestion.
 *
 * @example httpSource<Click>("clicks", { partitions: 4, validate: checkClick, partitionKey: "user", retentionMs: 86_400_000 })
 */
export function httpSource<T = unknown>(stream: string, options: HttpSourceOptions<T> = {}): SourceDefinition<T> {
  const partitions = options.partitions ?? 1;
  if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(stream)) throw new TypeError(`stream name must match [a-z0-9][a-z0-9_-]{0,62}, got ${JSON.stringify(stream)}`);
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > 1024) throw new TypeError(`stream "${stream}": partitions must be an integer in 1..1024`);
  const limits = streamLimits(stream, options);
  let startingOffsets: StartingOffsets = "earliest";
  if (options.startingOffsets !== undefined) {
    try {
      startingOffsets = parseStartingOffsets(options.startingOffsets, Number.MAX_SAFE_INTEGER);
    } catch (e) {
      throw new TypeError(`stream "${stream}": ${(e as FloeError).message}`);
    }
  }
  const key = options.partitionKey;
  if (key !== undefined && typeof key !== "function" && (typeof key !== "string" || key.length === 0)) {
    throw new TypeError(`stream "${stream}": partitionKey must be a field name or a function of the record`);
  }
  const definition: HttpStreamDefinition = {
    name: stream,
    partitions,
    validate: options.validate,
    ingestTokenVar: options.ingestTokenVar,
    limits,
    startingOffsets,
    partitionKey: key === undefined ? undefined : keyReader(key as string | ((record: unknown) => string | number)),
    partitionKeySource: key === undefined ? undefined : typeof key === "string" ? `field "${key}"` : `function ${String(key)}`,
  };
  return {
    kind: "http",
    defaultParallelism: partitions,
    replayable: true,
    httpStreams: [definition],
    createReader: (ctx) => new HttpSourceReader(stream, partitions, ctx),
  };
}

/** Reads a record's partition key: its text, or a message saying why the record has none. */
function keyReader(key: string | ((record: unknown) => string | number)): (record: unknown) => { key: string } | { problem: string } {
  if (typeof key === "function") {
    return (record) => {
      const k = key(record);
      return typeof k === "string" || (typeof k === "number" && Number.isFinite(k)) ? { key: String(k) } : { problem: `its partition key function returned ${JSON.stringify(k) ?? "undefined"}` };
    };
  }
  return (record) => {
    const v = typeof record === "object" && record !== null && !Array.isArray(record) ? (record as Record<string, unknown>)[key] : undefined;
    if (typeof v === "string" || (typeof v === "number" && Number.isFinite(v))) return { key: String(v) };
    return { problem: v === undefined ? `it has no field "${key}", the stream's partition key` : `its partition key "${key}" is ${JSON.stringify(v)}, not a string or number` };
  };
}

class HttpSourceReader implements SourceReader {
  /**
   * `started` false: the run's pinned start is asked for before the first
   * read, and the position is the later of it and a restored offset (they
   * differ only for a run begun from a snapshot whose offsets retention
   * deleted, pinned at the earliest retained offset).
   */
  private readonly owned: { key: string; partition: number; offset: number | null; end: number; started: boolean }[] = [];
  private cursor = 0;
  private readonly env: FloeEnv;
  private readonly job: string;

  constructor(
    private readonly stream: string,
    partitions: number,
    ctx: SourceReaderContext,
  ) {
    this.env = ctx.env as FloeEnv;
    this.job = ctx.jobName;
    for (let p = ctx.subtaskIndex; p < partitions; p += ctx.parallelism) {
      this.owned.push({ key: partitionKey(stream, p), partition: p, offset: null, end: 0, started: false });
    }
  }

  /**
   * Every partition this reader owns (the task learns its partitions here,
   * to hold the watermark back for each), at its offset; one not started
   * yet at {@link NOT_STARTED}: a restore of this run asks for the run's
   * start again, and another run starts it at its own starting position.
   */
  positions(): Record<string, number> {
    return Object.fromEntries(this.owned.map((o) => [o.key, o.offset ?? NOT_STARTED]));
  }

  lag(): number {
    return this.owned.reduce((n, o) => n + Math.max(0, o.end - (o.offset ?? o.end)), 0);
  }

  seek(positions: Record<string, number>): void {
    for (const o of this.owned) if (positions[o.key] !== undefined) o.offset = positions[o.key] === NOT_STARTED ? null : positions[o.key];
  }

  async poll(maxRecords: number): Promise<SourceBatch | null> {
    for (let i = 0; i < this.owned.length; i++) {
      const o = this.owned[(this.cursor + i) % this.owned.length];
      const stub = this.env.STREAM_PARTITION.get(this.env.STREAM_PARTITION.idFromName(streamPartitionName(this.stream, o.partition)));
      if (!o.started) {
        // Unpinned (a coordinator that pins no streams): from the restored offset, else from 0.
        const start = (await stub.startOffset(this.job)) ?? 0;
        o.offset = Math.max(o.offset ?? start, start);
        o.started = true;
      }
      const r = await stub.read(o.offset!, maxRecords);
      o.end = r.endOffset;
      if (r.count === 0) continue;
      this.cursor = (this.cursor + i + 1) % this.owned.length;
      // Stored lines are JSON texts without raw newlines, so they join into one array.
      const records = JSON.parse(`[${r.lines.replaceAll("\n", ",")}]`) as unknown[];
      o.offset = r.firstOffset + r.count;
      return { partition: o.key, firstOffset: r.firstOffset, records };
    }
    return null;
  }
}
