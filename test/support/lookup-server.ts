/**
 * A lookup service on 127.0.0.1 for async I/O tests, that answers
 * `GET /lookup?job=…&id=…&attempt=…&subtask=…&jobAttempt=…` with
 * `{ value: id * 2 }` — slowly for some ids, with a 503 to the first
 * request of others, and not in time (it hangs) on the first request of a
 * few — and counts every request per job and id, first attempts apart from
 * retries, and the requests open at once per subtask of each job attempt
 * (the platform allows 6 outgoing connections per invocation, so floe caps
 * each async subtask at 6).
 */
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";

/** How the service treats one id's request. */
export interface LookupBehaviour {
  /** Answer after this long. */
  delayMs(id: number): number;
  /** Answer 503 to the first request ever made for this id. */
  failsFirst(id: number): boolean;
  /** Hang for this long on the first request ever made for this id (past the caller's timeout); 0: not. */
  hangsFirstMs(id: number): number;
}

/** How the service counts the requests open per subtask. */
export interface LookupCounting {
  /**
   * A request open this long was given up by its caller (its timeout
   * aborted it) and stops counting as open for its subtask. workerd rejects
   * an aborted fetch at once, and the operator then gives its connection
   * permit to the next request, but the socket's close reaches this server
   * a few milliseconds later, possibly after that next request: without
   * this, a subtask at its cap of 6 would show 7 for those milliseconds.
   * Default: a request counts until its connection closes.
   */
  abandonedAfterMs?: number;
}

export interface LookupServer {
  readonly url: string;
  /** First attempts (attempt=1) per job and id: more than one means the record was requested again. */
  readonly firstAttempts: Map<string, Map<number, number>>;
  /** Every request in arrival order. */
  readonly log: { readonly job: string; readonly id: number; readonly attempt: number; readonly subtask: number }[];
  /** Every request per job and id, retries included. */
  readonly requests: Map<string, Map<number, number>>;
  /** Requests open now, and the most open at once. */
  open: number;
  maxOpen: number;
  /** The most requests open at once per subtask, by `job/subtask@jobAttempt` (a restarted job's subtasks are new instances). */
  readonly maxOpenPerSubtask: Map<string, number>;
  close(): Promise<void>;
}

function bump(m: Map<string, Map<number, number>>, job: string, id: number): number {
  const perJob = m.get(job) ?? new Map<number, number>();
  m.set(job, perJob);
  const n = (perJob.get(id) ?? 0) + 1;
  perJob.set(id, n);
  return n;
}

export async function startLookupServer(behaviour: LookupBehaviour, counting: LookupCounting = {}): Promise<LookupServer> {
  const state = { firstAttempts: new Map(), requests: new Map(), log: [], open: 0, maxOpen: 0, maxOpenPerSubtask: new Map() } as Omit<LookupServer, "url" | "close">;
  const openPerSubtask = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const q = new URL(req.url ?? "/", "http://x").searchParams;
    const job = q.get("job") ?? "";
    const id = Number(q.get("id"));
    const attempt = Number(q.get("attempt"));
    const n = bump(state.requests, job, id);
    state.log.push({ job, id, attempt, subtask: Number(q.get("subtask")) });
    if (attempt === 1) bump(state.firstAttempts, job, id);
    const subtask = `${job}/${q.get("subtask")}@${q.get("jobAttempt")}`;
    const openHere = (openPerSubtask.get(subtask) ?? 0) + 1;
    openPerSubtask.set(subtask, openHere);
    state.maxOpenPerSubtask.set(subtask, Math.max(state.maxOpenPerSubtask.get(subtask) ?? 0, openHere));
    let counted = true;
    const uncount = () => {
      if (!counted) return;
      counted = false;
      openPerSubtask.set(subtask, openPerSubtask.get(subtask)! - 1);
    };
    const abandoned = counting.abandonedAfterMs === undefined ? undefined : setTimeout(uncount, counting.abandonedAfterMs);
    state.open++;
    state.maxOpen = Math.max(state.maxOpen, state.open);
    // Finished, or the connection went away (the caller aborted, or its runtime was killed).
    res.on("close", () => {
      state.open--;
      clearTimeout(abandoned);
      uncount();
    });
    const end = (status: number, body: string) => {
      if (res.destroyed || res.writableEnded) return;
      res.writeHead(status, { "content-type": "application/json" }).end(body);
    };
    const hang = n === 1 ? behaviour.hangsFirstMs(id) : 0;
    if (hang > 0) {
      setTimeout(() => end(200, JSON.stringify({ value: id * 2 })), hang);
      return;
    }
    setTimeout(() => (n === 1 && behaviour.failsFirst(id) ? end(503, "{}") : end(200, JSON.stringify({ value: id * 2 }))), behaviour.delayMs(id));
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/lookup`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  }) as LookupServer;
}
