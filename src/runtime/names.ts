/**
 * Names of Durable Objects: the one module that decides which object holds
 * what. Changing a name orphans the objects (and the state) behind it.
 */

/** The Coordinator of a job. */
export function coordinatorName(job: string): string {
  return `job:${job}`;
}

/** One parallel subtask of one vertex of a job. */
export function subtaskName(job: string, vertex: string, index: number): string {
  return `job:${job}/vertex:${vertex}/subtask:${index}`;
}

/** One partition of an HTTP ingestion stream. */
export function streamPartitionName(stream: string, partition: number): string {
  return `stream:${stream}/partition:${partition}`;
}

/** One partition of a table written by a table sink. */
export function tablePartitionName(table: string, partition: number): string {
  return `table:${table}/partition:${partition}`;
}
