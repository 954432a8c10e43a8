/**
 * How one ingestion request reaches its partitions. A stream with a
 * partition key sends each record to `hashKey(key) mod partitions`, so one
 * key's records stay in one partition in the order they arrived; a request
 * spanning several partitions is split into one part per partition, in
 * record order.
 *
 * Under an Idempotency-Key every part is appended idempotently under that
 * key, with the hash of the whole request's records: a retry after a
 * partial failure appends the missing parts and answers the others as
 * duplicates. The key's home partition (`hashKey(idempotency key) mod
 * partitions`) is appended to first, with its part or with no records at
 * all: it holds the key for the whole request, so a reused key with
 * another body is refused there before any other partition takes a part.
 */
import { hashKey } from "../graph/key-groups.js";
import type { HttpStreamDefinition } from "../api/types.js";
import { partitionConfig } from "../connectors/sources/http-source.js";
import type { FloeEnv } from "../runtime/env.js";
import { streamPartitionName } from "../runtime/names.js";
import type { AppendResult } from "../storage/stream-log.js";

/** Records by partition, each part in request order. */
export function splitByKey(records: readonly string[], keys: readonly string[], partitions: number): Map<number, string[]> {
  const parts = new Map<number, string[]>();
  for (let i = 0; i < records.length; i++) {
    const p = hashKey(keys[i]) % partitions;
    let part = parts.get(p);
    if (!part) parts.set(p, (part = []));
    part.push(records[i]);
  }
  return parts;
}

/**
 * A hash of a request's records (53 bits of cyrb53, in hex): what tells a
 * retry of a request from another request under the same Idempotency-Key.
 * Not a defence against an attacker, who holds the token anyway.
 */
export function bodyHash(records: readonly string[]): string {
  let h1 = 0xdeadbeef ^ records.length;
  let h2 = 0x41c6ce57 ^ records.length;
  for (const r of records) {
    for (let i = 0; i < r.length; i++) {
      const ch = r.charCodeAt(i);
      h1 = Math.imul(h1 ^ ch, 2654435761);
      h2 = Math.imul(h2 ^ ch, 1597334677);
    }
    h1 = Math.imul(h1 ^ 10, 2654435761);
    h2 = Math.imul(h2 ^ 10, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(16);
}

/** Offsets one partition gave a part. */
export interface PartOffsets {
  readonly partition: number;
  readonly firstOffset: number;
  readonly endOffset: number;
}

/** What a request's append came to: every part stored (some perhaps before), or the refusal to answer with. */
export type RequestOutcome =
  | { ok: true; duplicate: boolean; offsets: PartOffsets[] }
  | { ok: false; status: number; code: string; message: string; retryAfterMs: number };

/** Refusals by precedence: a reused key says the most, a full partition more than a busy one. */
const REFUSAL_STATUS = { idempotency_key_reused: 422, stream_full: 429, rate_limited: 429 } as const;
const PRECEDENCE = ["idempotency_key_reused", "stream_full", "rate_limited"] as const;

/** Appends each part to its partition (the key's home partition first), and sums up the answers. */
export async function appendRequest(
  env: FloeEnv,
  stream: HttpStreamDefinition,
  parts: ReadonlyMap<number, string[]>,
  idempotencyKey: string | undefined,
  hash: string | undefined,
): Promise<RequestOutcome> {
  const append = (partition: number, records: string[]): Promise<[number, AppendResult]> => {
    const stub = env.STREAM_PARTITION.get(env.STREAM_PARTITION.idFromName(streamPartitionName(stream.name, partition)));
    return stub.append(records, idempotencyKey, { config: partitionConfig(stream, partition), bodyHash: hash }).then((r) => [partition, r as AppendResult]);
  };
  const results: [number, AppendResult][] = [];
  let rest = [...parts];
  if (idempotencyKey !== undefined) {
    const home = hashKey(idempotencyKey) % stream.partitions;
    const first = await append(home, parts.get(home) ?? []);
    if (first[1].refused) return refusal([first], [], true);
    results.push(first);
    rest = rest.filter(([p]) => p !== home);
  }
  results.push(...(await Promise.all(rest.map(([p, records]) => append(p, records)))));
  const stored = results.filter(([, r]) => !r.refused && r.count > 0).map(([p, r]) => ({ partition: p, firstOffset: r.firstOffset!, endOffset: r.endOffset! }));
  if (results.some(([, r]) => r.refused)) return refusal(results, stored, idempotencyKey !== undefined);
  return { ok: true, duplicate: results.every(([, r]) => r.duplicate), offsets: stored.sort((a, b) => a.partition - b.partition) };
}

function refusal(results: [number, AppendResult][], stored: PartOffsets[], keyed: boolean): RequestOutcome {
  const refused = results.filter(([, r]) => r.refused).map(([p, r]) => ({ partition: p, r: r as Extract<AppendResult, { refused: string }> }));
  refused.sort((a, b) => PRECEDENCE.indexOf(a.r.refused) - PRECEDENCE.indexOf(b.r.refused));
  const worst = refused[0].r;
  const retryAfterMs = Math.max(...refused.map((x) => x.r.retryAfterMs));
  const partial =
    stored.length === 0
      ? ""
      : `; partition(s) ${stored.map((s) => s.partition).join(", ")} stored their part of this request: ${
          keyed ? "retry it with the same Idempotency-Key to complete it without duplicates" : "it had no Idempotency-Key, so a retry stores those parts again"
        }`;
  return { ok: false, status: REFUSAL_STATUS[worst.refused], code: worst.refused, message: worst.message + partial, retryAfterMs };
}
