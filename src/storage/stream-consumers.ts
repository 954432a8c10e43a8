/**
 * The jobs reading one stream partition and the offset each still needs:
 * its pin. A run of a job pins the partition where it starts; each
 * checkpoint the job completes moves the pin to the offset recorded in it
 * (a restart replays from there, never from before); a job that ends
 * (canceled, finished, failed) releases it. Retention deletes nothing at or
 * after the lowest live pin.
 *
 * Every change names the job's run (`runId`, one per start): a late message
 * of an earlier run never moves the pin of a later one, and a release covers
 * the runs up to the one it names.
 *
 * Table `consumers`: job → run, start offset, pinned offset, when it last
 * moved, whether released.
 */
import type { Sql } from "./sql.js";

/** One job's pin on a partition. */
export interface ConsumerPin {
  readonly job: string;
  readonly runId: number;
  /** Where the run started. */
  readonly startOffset: number;
  /** The offset its latest completed checkpoint recorded (its start before the first): retention keeps everything from here. */
  readonly offset: number;
  readonly updatedMs: number;
  /** The job ended: the pin no longer holds anything. */
  readonly released: boolean;
}

interface Row extends Record<string, string | number | null> {
  job: string;
  run_id: number;
  start_offset: number;
  offset: number;
  updated_ms: number;
  released: number;
}

/** The consumers of a partition, on its SQLite. */
export class StreamConsumers {
  constructor(
    private readonly sql: Sql,
    private readonly now: () => number,
  ) {
    sql.exec(
      `CREATE TABLE IF NOT EXISTS consumers (job TEXT PRIMARY KEY, run_id INTEGER NOT NULL, start_offset INTEGER NOT NULL, offset INTEGER NOT NULL, updated_ms INTEGER NOT NULL, released INTEGER NOT NULL)`,
    );
  }

  /** Run `runId` of `job` starts at `offset` and pins it; ignored when a later run already started. */
  start(job: string, runId: number, offset: number): void {
    const row = this.row(job);
    if (row && row.run_id > runId) return;
    this.sql.exec(`INSERT OR REPLACE INTO consumers (job, run_id, start_offset, offset, updated_ms, released) VALUES (?, ?, ?, ?, ?, 0)`, job, runId, offset, offset, this.now());
  }

  /** A checkpoint of run `runId` completed with `offset`: the pin moves forward to it (never back). */
  checkpointed(job: string, runId: number, offset: number): boolean {
    const row = this.row(job);
    if (!row || row.run_id !== runId || row.released === 1 || row.offset >= offset) return false;
    this.sql.exec(`UPDATE consumers SET offset = ?, updated_ms = ? WHERE job = ?`, offset, this.now(), job);
    return true;
  }

  /** `job` ended: its runs up to `runId` pin nothing any more. */
  release(job: string, runId: number): void {
    this.sql.exec(`UPDATE consumers SET released = 1, updated_ms = ? WHERE job = ? AND run_id <= ? AND released = 0`, this.now(), job, runId);
  }

  /** Where `job`'s latest run started; null when it never started here. */
  startOffset(job: string): number | null {
    return this.row(job)?.start_offset ?? null;
  }

  /** The lowest offset a live job still needs; null when none pins this partition. */
  minPin(): number | null {
    return this.sql.exec<{ m: number | null }>(`SELECT MIN(offset) AS m FROM consumers WHERE released = 0`).one().m;
  }

  /** Every job's pin, by job name. */
  list(): ConsumerPin[] {
    return this.sql
      .exec<Row>(`SELECT * FROM consumers ORDER BY job`)
      .toArray()
      .map((r) => ({ job: r.job, runId: r.run_id, startOffset: r.start_offset, offset: r.offset, updatedMs: r.updated_ms, released: r.released === 1 }));
  }

  private row(job: string): Row | undefined {
    return this.sql.exec<Row>(`SELECT * FROM consumers WHERE job = ?`, job).toArray()[0];
  }
}
