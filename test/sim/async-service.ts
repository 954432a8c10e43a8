/**
 * The slow service the async branch's function asks (async-job.ts): an
 * object on the simulated network (`service:lookup`), outside the job, as
 * an HTTP API or a Worker binding would be. Each request is one RPC on a
 * stub of its own (a connection per request, as `fetch` makes), so the
 * network's faults apply to it while faults are on: a dropped request never
 * reaches the service and the caller sees a lost connection; a dropped
 * reply reaches it, and the caller sees the same (the service answered a
 * request the caller will ask again); delays and holds add latency. The
 * network never duplicates a lookup (an HTTP client does not repeat a
 * request unasked).
 *
 * The service draws, per request and from its own random stream, how long
 * it takes (ordinary, slow, or later than the operator's timeout) and
 * whether it fails (a 503, retried); in runs that draw it, it refuses some
 * records for good (a 404, never retried). Its answer is a pure function of
 * the record ({@link answerOf}). Everything runs on the virtual clock, so a
 * seed replays.
 *
 * The service keeps a log of every request it saw, and the binding one of
 * every request the function sent (a superset: the network drops some):
 * the oracle asks the latter which records were requested more than once,
 * and by which job attempt.
 */
import { Life, type SimLoop } from "./loop.js";
import type { Caller, Network } from "./network.js";
import type { Rng } from "./prng.js";
import type { Trace } from "./trace.js";
import { type AsyncShape, type LookupClient, type LookupRequest, answerOf, refusedForGood } from "./async-job.js";

/** The service's object name on the simulated network. */
export const SERVICE = "service:lookup";

/** One request the service saw. */
export interface ServiceRequestLog extends LookupRequest {
  readonly atMs: number;
  readonly latencyMs: number;
  readonly outcome: "ok" | "503" | "404";
}

export class SimLookupService {
  readonly life = new Life(SERVICE, 0);
  /** Every request that reached the service, in arrival order. */
  readonly log: ServiceRequestLog[] = [];

  constructor(
    private readonly loop: SimLoop,
    private readonly rng: Rng,
    private readonly shape: AsyncShape,
    private readonly trace: Trace,
  ) {}

  invoke(method: string, args: unknown[]): unknown {
    if (method !== "lookup") throw new Error(`${SERVICE} has no method ${method}`);
    const req = args[0] as LookupRequest;
    const s = this.shape.service;
    const timeoutMs = this.shape.timeoutMs;
    const roll = this.rng.next();
    const latencyMs = roll < s.hang ? this.rng.range(timeoutMs + 1, 4 * timeoutMs) : roll < s.hang + s.slow ? this.rng.range(Math.ceil(timeoutMs / 2), timeoutMs) : this.rng.range(s.latencyMs[0], s.latencyMs[1]);
    const outcome = s.permanent && refusedForGood(req) ? "404" : this.rng.chance(s.fail) ? "503" : "ok";
    this.log.push({ ...req, atMs: this.loop.now(), latencyMs, outcome });
    if (latencyMs > timeoutMs) this.trace.log("svc", `q${req.part}|${req.off} try ${req.attempt} of att=${req.jobAttempt} answers in ${latencyMs}ms (past the timeout)`);
    return new Promise((resolve, reject) =>
      this.loop.after(latencyMs, () => {
        if (outcome === "ok") resolve({ value: answerOf(req) });
        else if (outcome === "503") reject(new Error(`lookup answered 503 for q${req.part}|${req.off}`));
        else reject(new Error(`lookup answered 404 for q${req.part}|${req.off}: permanent`));
      }),
    );
  }
}

/**
 * The binding a subtask incarnation gets: each lookup a new stub (connection)
 * to the service; an abort (the record's timeout, or the task's end) rejects
 * at once with the signal's reason, as `fetch` does, and the answer that
 * comes later is dropped.
 */
export function lookupClient(net: Network, caller: Caller, calls: LookupCalls, now: () => number): LookupClient {
  const key = `${caller.name}#${caller.life.incarnation}`;
  return {
    lookup(request, signal) {
      if (signal.aborted) return Promise.reject(signal.reason);
      calls.sent.push({ ...request, atMs: now() });
      const answer = net.call(net.channel(caller, SERVICE), "lookup", [request]) as Promise<{ value: number }>;
      const close = calls.open(key);
      return new Promise((resolve, reject) => {
        const onAbort = () => {
          close();
          reject(signal.reason);
        };
        signal.addEventListener("abort", onAbort, { once: true });
        answer.then(
          (v) => {
            signal.removeEventListener("abort", onAbort);
            close();
            resolve(v);
          },
          (e: unknown) => {
            signal.removeEventListener("abort", onAbort);
            close();
            reject(e);
          },
        );
      });
    },
  };
}

/**
 * The function's side of the traffic: every request it sent (the service
 * sees those the network did not drop), and the connections open at once
 * per subtask incarnation (the platform allows 6 per invocation; the
 * operator its maxConcurrentRequests).
 */
export class LookupCalls {
  /** Every request the function sent, in order. */
  readonly sent: (LookupRequest & { readonly atMs: number })[] = [];
  private readonly openNow = new Map<string, number>();
  /** The most open at once, per incarnation (`<subtask>#<incarnation>`). */
  readonly max = new Map<string, number>();

  /** A connection opens; the returned function closes it (once). */
  open(key: string): () => void {
    const n = (this.openNow.get(key) ?? 0) + 1;
    this.openNow.set(key, n);
    this.max.set(key, Math.max(n, this.max.get(key) ?? 0));
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      this.openNow.set(key, (this.openNow.get(key) ?? 1) - 1);
    };
  }
}
