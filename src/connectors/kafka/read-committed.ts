/**
 * read_committed filtering of a fetched partition, as Kafka's Java consumer
 * does it. kafkajs 2.2.4's filter assumes the broker lists aborted
 * transactions by first offset and enters at most one per record; the
 * broker lists them in the order they were aborted, so with several
 * producers writing one partition (the subtasks of a sink) records of an
 * aborted transaction leaked to read_committed readers.
 */
import type { KafkaMessage } from "kafkajs";

/** A record as kafkajs decodes it, with its batch's context. */
export type DecodedMessage = KafkaMessage & {
  readonly isControlRecord?: boolean;
  readonly batchContext: { readonly producerId: string; readonly inTransaction: boolean; readonly isControlBatch?: boolean };
};

/** An aborted transaction in a fetch response. */
export interface AbortedTransaction {
  readonly producerId: string;
  readonly firstOffset: string;
}

/** Committed data records from `fetchOffset` on (control records and aborted transactions left out). */
export function committedRecords(messages: readonly DecodedMessage[], aborted: readonly AbortedTransaction[] | undefined, fetchOffset: number): DecodedMessage[] {
  // Ascending by first offset: a transaction is entered when its first record comes.
  const pending = [...(aborted ?? [])].sort((a, b) => compare(a.firstOffset, b.firstOffset));
  const open = new Set<string>();
  const out: DecodedMessage[] = [];
  for (const m of messages) {
    if (Number(m.offset) < fetchOffset) continue;
    while (pending.length > 0 && compare(pending[0].firstOffset, m.offset) <= 0) open.add(pending.shift()!.producerId);
    const { producerId, inTransaction } = m.batchContext;
    if (m.isControlRecord || m.batchContext.isControlBatch) {
      // A transaction marker (commit or abort) ends whatever this producer had open.
      open.delete(producerId);
      continue;
    }
    if (inTransaction && open.has(producerId)) continue;
    out.push(m);
  }
  return out;
}

function compare(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
