/**
 * A subtask's acknowledgement for tests of the checkpoint protocol: every
 * timing and size zero, attempt 1, unless `o` says otherwise.
 */
import type { SubtaskAck } from "../../src/checkpoint/types.js";

/** An ack of `subtask` (`vertex/index`) with nothing in it but what `o` sets. */
export function subtaskAck(subtask: string, o: Partial<SubtaskAck> = {}): SubtaskAck {
  return {
    subtask,
    attempt: 1,
    keyed: {},
    sources: {},
    sinks: {},
    syncMs: 0,
    asyncMs: 0,
    alignmentMs: 0,
    startDelayMs: 0,
    ackTimestamp: 0,
    checkpointedBytes: 0,
    stateBytes: 0,
    ...o,
  };
}
