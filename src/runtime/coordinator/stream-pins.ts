/**
 * What the coordinator tells the partitions of the HTTP streams its job
 * reads, so that retention deletes nothing the job still needs
 * (stream-consumers.ts): where each run starts (refused with
 * `offsets_truncated` when a savepoint's or checkpoint's offsets were
 * deleted), the offsets of each completed checkpoint (the pin follows
 * them), and that the job ended (the pins are released).
 *
 * A start waits for every partition's answer; checkpoint offsets and
 * releases are sent without waiting, as a lost one only keeps records
 * longer: the next checkpoint moves the pin, and a coordinator that
 * restarts with its job ended releases again.
 */
import type { JobDefinition } from "../../api/job.js";
import type { HttpStreamDefinition } from "../../api/types.js";
import type { CheckpointMetadata } from "../../checkpoint/types.js";
import { parsePartitionKey, partitionConfig } from "../../connectors/sources/http-source.js";
import { FloeError } from "../../errors.js";
import type { PartitionConfig } from "../../storage/stream-log.js";
import type { StartingOffsets, StartPosition } from "../../storage/stream-options.js";
import type { CoordinatorContext } from "./coordinator-context.js";
import type { JobRecord } from "./coordinator-store.js";

/** The calls a StreamPartition object takes from the coordinator. */
export interface StreamPartitionApi {
  startRun(config: PartitionConfig, job: string, runId: number, position: StartPosition): Promise<{ ok: true; offset: number } | { ok: false; error: { code: string; message: string; status: number } }>;
  checkpointed(config: PartitionConfig, job: string, runId: number, offset: number): Promise<void>;
  release(job: string, runId: number): Promise<void>;
}

/** Statuses after which a job reads nothing again until it is started anew. */
const ENDED = new Set(["CANCELED", "FAILED", "FINISHED"]);

/** The HTTP streams a job reads, each once. */
export function httpStreamsOf(definition: JobDefinition): HttpStreamDefinition[] {
  const out = new Map<string, HttpStreamDefinition>();
  for (const node of definition.nodes) for (const s of node.source?.httpStreams ?? []) out.set(s.name, s);
  return [...out.values()];
}

/** The lowest offset recorded per `stream/partition` of `streams` in a checkpoint's source positions (a partition not started has none). */
export function checkpointedOffsets(m: CheckpointMetadata, streams: ReadonlySet<string>): Map<string, number> {
  const out = new Map<string, number>();
  for (const op of Object.values(m.operators)) {
    for (const positions of Object.values(op.sources)) {
      for (const [key, offset] of Object.entries(positions)) {
        const p = parsePartitionKey(key);
        // NOT_STARTED: the run never read the partition, so the checkpoint says nothing of where to begin.
        if (!p || !streams.has(p.stream) || offset < 0) continue;
        out.set(key, Math.min(offset, out.get(key) ?? Infinity));
      }
    }
  }
  return out;
}

/** The coordinator's side of stream retention. */
export class StreamPins {
  /** The run whose end was last told to the partitions, so that each end is sent once per object life. */
  private releasedRun: number | null = null;

  constructor(private readonly ctx: CoordinatorContext) {}

  /**
   * Pins where run `runId` of `job` starts in every partition it reads:
   * the offsets of `from` (a savepoint or checkpoint), or `startingOffsets`
   * (the start request's, else the stream's, else earliest) for a
   * partition `from` has none for. With `from`, `startingOffsets` may only
   * be `"earliest"`: where its offsets were truncated, begin at the
   * earliest retained offset instead of refusing.
   */
  async startRun(job: string, definition: JobDefinition, runId: number, from: CheckpointMetadata | null, startingOffsets?: StartingOffsets): Promise<void> {
    const host = this.ctx.host;
    const streams = httpStreamsOf(definition);
    if (!host.streamPartition || streams.length === 0) return;
    if (from && startingOffsets !== undefined && startingOffsets !== "earliest") {
      throw new FloeError(
        "invalid_starting_offsets",
        `starting from a savepoint or checkpoint, starting_offsets may only be "earliest" (begin where its offsets were truncated at the earliest retained offset); got ${JSON.stringify(startingOffsets)}`,
      );
    }
    const recorded = from ? checkpointedOffsets(from, new Set(streams.map((s) => s.name))) : new Map<string, number>();
    const positions = streams.map((s) =>
      Array.from({ length: s.partitions }, (_, p): StartPosition => {
        const offset = recorded.get(`${s.name}/${p}`);
        return offset !== undefined ? { offset, orEarliest: startingOffsets === "earliest" } : (startingOffsets ?? s.startingOffsets ?? "earliest");
      }),
    );
    // A job definition's time cannot be checked when it is compiled (a Worker's global scope has no clock): it is here, before anything is pinned.
    const nowMs = this.ctx.now();
    streams.forEach((s, i) => {
      const future = positions[i].find((p) => typeof p === "object" && "timestamp" in p && p.timestamp > nowMs);
      if (future) {
        throw new FloeError(
          "invalid_starting_offsets",
          `stream "${s.name}": startingOffsets.timestamp ${(future as { timestamp: number }).timestamp} in the job's definition is in the future (now is ${nowMs}); start with starting_offsets to override it`,
        );
      }
    });
    const calls = streams.flatMap((s, i) => positions[i].map((position, p) => host.streamPartition!(s.name, p).startRun(partitionConfig(s, p), job, runId, position)));
    const refused = (await Promise.all(calls)).filter((r) => !r.ok).map((r) => (r as { ok: false; error: { message: string } }).error.message);
    if (refused.length === 0) return;
    // The run does not start: the partitions that pinned it let go again.
    await Promise.all(streams.flatMap((s) => Array.from({ length: s.partitions }, (_, p) => host.streamPartition!(s.name, p).release(job, runId).catch(() => undefined))));
    const more = refused.length > 1 ? ` (and ${refused.length - 1} more partition(s))` : "";
    throw new FloeError("offsets_truncated", `${refused[0].replace(/^offsets_truncated: /, "")}${more}`, 409);
  }

  /** A checkpoint of `s`'s run completed: each partition's pin moves to its offset. */
  checkpointCompleted(s: JobRecord, metadata: CheckpointMetadata): void {
    const host = this.ctx.host;
    const definition = this.ctx.registry.job(metadata.job);
    if (!host.streamPartition || !definition) return;
    const streams = new Map(httpStreamsOf(definition).map((d) => [d.name, d]));
    for (const [key, offset] of checkpointedOffsets(metadata, new Set(streams.keys()))) {
      const { stream, partition } = parsePartitionKey(key)!;
      void host
        .streamPartition(stream, partition)
        .checkpointed(partitionConfig(streams.get(stream)!, partition), metadata.job, s.runId, offset)
        .catch((e: unknown) => console.error(`telling ${key} of checkpoint ${metadata.checkpointId} failed: ${(e as Error)?.message ?? e}`));
    }
  }

  /** After any change of the job's status: an ended run releases its pins (once per object life). */
  afterTransition(): void {
    const s = this.ctx.store.job();
    const host = this.ctx.host;
    if (!ENDED.has(s.status) || !s.plan || !host.streamPartition || this.releasedRun === s.runId) return;
    const definition = this.ctx.registry.job(s.plan.job);
    if (!definition) return;
    this.releasedRun = s.runId;
    for (const d of httpStreamsOf(definition)) {
      for (let p = 0; p < d.partitions; p++) {
        void host
          .streamPartition(d.name, p)
          .release(s.plan.job, s.runId)
          .catch((e: unknown) => console.error(`releasing ${d.name}/${p} for job ${s.plan!.job} failed: ${(e as Error)?.message ?? e}`));
      }
    }
  }
}
