/**
 * The streams API: `GET /v1/streams` (every ingestion stream with its
 * totals) and `GET /v1/streams/:stream` (per partition `earliest_offset`,
 * `next_offset`, `records`, `bytes`, `earliest_timestamp`, and the offset
 * each job has checkpointed with its lag). Thin: it asks each partition.
 */
import { Hono } from "hono";
import type { HttpStreamDefinition } from "../api/types.js";
import { partitionConfig } from "../connectors/sources/http-source.js";
import { FloeError } from "../errors.js";
import type { FloeEnv } from "../runtime/env.js";
import { streamPartitionName } from "../runtime/names.js";
import type { JobRegistry } from "../runtime/registry.js";
import { streamLimits } from "../storage/stream-options.js";

/** One partition as the API shows it. */
export interface PartitionBody {
  partition: number;
  earliest_offset: number;
  next_offset: number;
  records: number;
  bytes: number;
  /** Ingestion time (epoch ms) of the earliest retained record; null when empty. */
  earliest_timestamp: number | null;
  /** The object's SQLite file as the platform counts it. */
  database_bytes: number;
  /** Jobs reading the partition: the offset of their latest completed checkpoint (their start before one) and the records after it. */
  jobs: { job: string; run_id: number; checkpointed_offset: number; lag: number; active: boolean }[];
}

/** A stream as `GET /v1/streams/:stream` shows it. */
export interface StreamBody {
  stream: string;
  partition_count: number;
  retention_ms: number;
  retention_bytes: number;
  max_bytes: number;
  max_requests_per_second: number;
  partition_key: boolean;
  starting_offsets: unknown;
  records: number;
  bytes: number;
  /** Per job, the records it has not checkpointed past, over all partitions (live jobs only). */
  lag: Record<string, number>;
  partitions: PartitionBody[];
}

/** Reads every partition of `stream` and sums it up. */
export async function describeStream(env: FloeEnv, stream: HttpStreamDefinition): Promise<StreamBody> {
  const limits = stream.limits ?? streamLimits(stream.name);
  const partitions = await Promise.all(
    Array.from({ length: stream.partitions }, async (_, p): Promise<PartitionBody> => {
      const stub = env.STREAM_PARTITION.get(env.STREAM_PARTITION.idFromName(streamPartitionName(stream.name, p)));
      const s = await stub.stats(partitionConfig(stream, p));
      return {
        partition: p,
        earliest_offset: s.earliestOffset,
        next_offset: s.nextOffset,
        records: s.records,
        bytes: s.bytes,
        earliest_timestamp: s.earliestTimestampMs,
        database_bytes: s.databaseBytes,
        jobs: s.consumers.map((c) => ({ job: c.job, run_id: c.runId, checkpointed_offset: c.offset, lag: Math.max(0, s.nextOffset - c.offset), active: !c.released })),
      };
    }),
  );
  const lag: Record<string, number> = {};
  for (const p of partitions) for (const j of p.jobs) if (j.active) lag[j.job] = (lag[j.job] ?? 0) + j.lag;
  return {
    stream: stream.name,
    partition_count: stream.partitions,
    retention_ms: limits.retentionMs,
    retention_bytes: limits.retentionBytes,
    max_bytes: limits.maxBytes,
    max_requests_per_second: limits.maxRequestsPerSecond,
    partition_key: stream.partitionKey !== undefined,
    starting_offsets: stream.startingOffsets ?? "earliest",
    records: partitions.reduce((n, p) => n + p.records, 0),
    bytes: partitions.reduce((n, p) => n + p.bytes, 0),
    lag,
    partitions,
  };
}

/** The streams routes, mounted at /v1/streams (behind the admin token). */
export function streamRoutes(registry: JobRegistry) {
  const app = new Hono<{ Bindings: FloeEnv }>();
  app.get("/", async (c) => {
    const streams = await Promise.all(registry.streamNames().map((name) => describeStream(c.env, registry.stream(name)!)));
    return c.json({ streams: streams.map(({ partitions: _partitions, ...summary }) => summary) });
  });
  app.get("/:stream", async (c) => {
    const name = c.req.param("stream");
    const stream = registry.stream(name);
    if (!stream) throw new FloeError("stream_not_found", `no stream named "${name}"; streams are: ${registry.streamNames().join(", ")}`, 404);
    return c.json(await describeStream(c.env, stream));
  });
  return app;
}
