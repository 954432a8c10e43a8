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
          // Its partitions enforce one retention and one key: two declarations must agree on them.
          if (known && (JSON.stringify(known.limits) !== JSON.stringify(s.limits) || (known.partitionKey === undefined) !== (s.partitionKey === undefined))) {
            throw new Error(`stream "${s.name}" is declared twice with different retention, limits or partition key`);
          }
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
