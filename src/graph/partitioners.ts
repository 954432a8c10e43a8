/**
 * Channel selection: which downstream subtask receives a record.
 * forward keeps subtask i → i, rebalance deals records round-robin, hash
 * routes by key group so that every record of a key meets its state,
 * broadcast sends each record to every subtask (the record writer copies
 * it to every target; it never asks this partitioner).
 */
import type { PartitionerKind } from "../api/job.js";
import { type Key, keyGroupOf, subtaskForKeyGroup } from "./key-groups.js";

/** Picks a target subtask for each record. */
export interface Partitioner {
  /** Target subtask index for a record with `key` (ignored unless hashing). */
  select(key: Key | undefined): number;
}

/** Builds the partitioner of one output edge for sender subtask `senderIndex`. */
export function createPartitioner(
  kind: PartitionerKind,
  senderIndex: number,
  targetParallelism: number,
  maxParallelism: number,
): Partitioner {
  switch (kind) {
    case "forward":
      if (senderIndex >= targetParallelism) throw new RangeError(`forward from subtask ${senderIndex} to parallelism ${targetParallelism}`);
      return { select: () => senderIndex };
    case "rebalance": {
      let next = senderIndex % targetParallelism;
      return {
        select: () => {
          const t = next;
          next = next + 1 === targetParallelism ? 0 : next + 1;
          return t;
        },
      };
    }
    case "broadcast":
      return {
        select: () => {
          throw new TypeError("a broadcast edge sends every record to every subtask: it selects none");
        },
      };
    case "hash":
      return {
        select: (key) => {
          if (key === undefined) throw new TypeError("hash partitioning needs a key");
          return subtaskForKeyGroup(maxParallelism, targetParallelism, keyGroupOf(key, maxParallelism));
        },
      };
  }
}

/** Which upstream subtasks send to `receiverIndex` over an edge of this kind. */
export function upstreamSenders(kind: PartitionerKind, upstreamParallelism: number, receiverIndex: number): number[] {
  if (kind === "forward") return [receiverIndex];
  return Array.from({ length: upstreamParallelism }, (_, i) => i);
}
