/**
 * The HTTP source: reads the StreamPartition logs that `POST
 * /v1/ingest/:stream` appends to. Partition p of a stream belongs to source
 * subtask p mod parallelism; the position in each partition is an offset,
 * which is what makes the source replayable.
 */
import type { HttpStreamDefinition, SourceBatch, SourceDefinition, SourceReader, SourceReaderContext } from "../../api/types.js";
import type { FloeEnv } from "../../runtime/env.js";
import { streamPartitionName } from "../../runtime/names.js";

/** Options of {@link httpSource}. */
export interface HttpSourceOptions<T> {
  /** Partitions of the stream; the default source parallelism. Default 1. */
  partitions?: number;
  /** Validates a record at ingestion: returns an error message, or undefined when the record is fine. */
  validate?: (record: unknown) => string | undefined;
  /** Worker variable holding an ingest-only token for this stream. */
  ingestTokenVar?: string;
  /** Phantom: the record type. */
  type?: T;
}

/** Name of the partition as it appears in source positions. */
export function partitionKey(stream: string, partition: number): string {
  return `${stream}/${partition}`;
}

/**
 * A replayable source fed by HTTP ingestion.
 *
 * @example httpSource<Click>("clicks", { partitions: 4, validate: checkClick })
 */
export function httpSource<T = unknown>(stream: string, options: HttpSourceOptions<T> = {}): SourceDefinition<T> {
  const partitions = options.partitions ?? 1;
  if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(stream)) throw new TypeError(`stream name must match [a-z0-9][a-z0-9_-]{0,62}, got ${JSON.stringify(stream)}`);
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > 1024) throw new TypeError(`stream "${stream}": partitions must be an integer in 1..1024`);
  const definition: HttpStreamDefinition = { name: stream, partitions, validate: options.validate, ingestTokenVar: options.ingestTokenVar };
  return {
    kind: "http",
    defaultParallelism: partitions,
    replayable: true,
    httpStreams: [definition],
    createReader: (ctx) => new HttpSourceReader(stream, partitions, ctx),
  };
}

class HttpSourceReader implements SourceReader {
  private readonly owned: { key: string; partition: number; offset: number; end: number }[] = [];
  private cursor = 0;
  private readonly env: FloeEnv;

  constructor(
    private readonly stream: string,
    partitions: number,
    ctx: SourceReaderContext,
  ) {
    this.env = ctx.env as FloeEnv;
    for (let p = ctx.subtaskIndex; p < partitions; p += ctx.parallelism) {
      this.owned.push({ key: partitionKey(stream, p), partition: p, offset: 0, end: 0 });
    }
  }

  positions(): Record<string, number> {
    return Object.fromEntries(this.owned.map((o) => [o.key, o.offset]));
  }

  lag(): number {
    return this.owned.reduce((n, o) => n + Math.max(0, o.end - o.offset), 0);
  }

  seek(positions: Record<string, number>): void {
    for (const o of this.owned) if (positions[o.key] !== undefined) o.offset = positions[o.key];
  }

  async poll(maxRecords: number): Promise<SourceBatch | null> {
    for (let i = 0; i < this.owned.length; i++) {
      const o = this.owned[(this.cursor + i) % this.owned.length];
      const stub = this.env.STREAM_PARTITION.get(this.env.STREAM_PARTITION.idFromName(streamPartitionName(this.stream, o.partition)));
      const r = await stub.read(o.offset, maxRecords);
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
