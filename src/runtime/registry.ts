/**
 * The jobs compiled into this Worker, and the streams and tables they
 * declare: what the HTTP layer and the objects look names up in.
 */
import type { JobDefinition } from "../api/job.js";
import type { HttpStreamDefinition, TableDefinition } from "../api/types.js";

/** Jobs by name, with their HTTP streams and tables. */
export class JobRegistry {
  private readonly jobs = new Map<string, JobDefinition>();
  private readonly streams = new Map<string, HttpStreamDefinition>();
  private readonly tables = new Map<string, TableDefinition>();

  constructor(jobs: readonly JobDefinition[]) {
    for (const job of jobs) {
      if (this.jobs.has(job.name)) throw new Error(`two jobs are named "${job.name}"`);
      this.jobs.set(job.name, job);
      for (const node of job.nodes) {
        for (const s of node.source?.httpStreams ?? []) {
          const known = this.streams.get(s.name);
          if (known && known.partitions !== s.partitions) {
            throw new Error(`stream "${s.name}" is declared with ${known.partitions} and ${s.partitions} partitions`);
          }
          if (known) checkSameStream(known, s);
          this.streams.set(s.name, known ?? s);
        }
        for (const t of node.sink?.tables ?? []) {
          const known = this.tables.get(t.name);
          if (known && known.partitions !== t.partitions) {
            throw new Error(`table "${t.name}" is declared with ${known.partitions} and ${t.partitions} partitions`);
          }
          this.tables.set(t.name, known ?? t);
        }
      }
    }
  }

  job(name: string): JobDefinition | undefined {
    return this.jobs.get(name);
  }

  jobNames(): string[] {
    return [...this.jobs.keys()];
  }

  /** Names of every HTTP ingestion stream, sorted. */
  streamNames(): string[] {
    return [...this.streams.keys()].sort();
  }

  stream(name: string): HttpStreamDefinition | undefined {
    return this.streams.get(name);
  }

  table(name: string): TableDefinition | undefined {
    return this.tables.get(name);
  }
}

/**
 * Two declarations of one stream (in two jobs) must agree on what its
 * partitions and the ingestion route enforce, as only one of them is used:
 * the retention and limits, the partition key (a field's name, or a
 * function's source text: share one `httpSource` to use one function), and
 * the ingest token's variable.
 */
function checkSameStream(known: HttpStreamDefinition, s: HttpStreamDefinition): void {
  const differ: string[] = [];
  if (JSON.stringify(known.limits) !== JSON.stringify(s.limits)) differ.push(`retention or limits (${JSON.stringify(known.limits)} and ${JSON.stringify(s.limits)})`);
  if (known.partitionKeySource !== s.partitionKeySource) differ.push(`partition key (${known.partitionKeySource ?? "none"} and ${s.partitionKeySource ?? "none"})`);
  if (known.ingestTokenVar !== s.ingestTokenVar) differ.push(`ingest token variable (${known.ingestTokenVar ?? "none"} and ${s.ingestTokenVar ?? "none"})`);
  if (differ.length > 0) throw new Error(`stream "${s.name}" is declared twice with a different ${differ.join(", ")}: declare it once and share the source`);
}
