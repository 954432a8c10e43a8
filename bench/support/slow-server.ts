/**
 * The async I/O workload's lookup service: a node:http server on
 * 127.0.0.1, in the harness's process, that answers every
 * `GET /lookup?seq=N` with `{ "value": 2N }` after a fixed latency. It
 * measures what it sees, so that the harness can tell what limited a run
 * ({@link ConcurrencyMeter}: requests open over time, and how long each
 * took to answer).
 */
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";

/** Cumulative counters of a server, at one moment. */
export interface ServerCounters {
  /** Requests received. */
  requests: number;
  /** Requests answered. */
  answered: number;
  /** ∫ open requests dt, in request·ms: over an interval, divided by its length, the mean open. */
  openMs: number;
  /** Sum over answered requests of the ms from arrival to the answer's last byte handed to the socket. */
  serviceMs: number;
  /** The most requests open at once so far. */
  maxOpen: number;
}

/**
 * Counts requests open over time on an injected clock. `open` and `close`
 * bracket each request; the integral of open requests over time is kept
 * up to date lazily, at each change and when read.
 */
export class ConcurrencyMeter {
  private open = 0;
  private lastMs: number;
  private readonly counters: ServerCounters = { requests: 0, answered: 0, openMs: 0, serviceMs: 0, maxOpen: 0 };

  constructor(private readonly nowMs: () => number) {
    this.lastMs = nowMs();
  }

  private advance(): number {
    const now = this.nowMs();
    this.counters.openMs += this.open * (now - this.lastMs);
    this.lastMs = now;
    return now;
  }

  /** A request arrived; returns its start, for {@link close}. */
  start(): number {
    const now = this.advance();
    this.open++;
    this.counters.requests++;
    this.counters.maxOpen = Math.max(this.counters.maxOpen, this.open);
    return now;
  }

  /** The request that started at `startMs` ended; `answered`: it was answered (not dropped by the caller). */
  end(startMs: number, answered: boolean): void {
    const now = this.advance();
    this.open--;
    if (!answered) return;
    this.counters.answered++;
    this.counters.serviceMs += now - startMs;
  }

  /** The counters now. */
  read(): ServerCounters {
    this.advance();
    return { ...this.counters };
  }
}

export interface SlowServer {
  readonly url: string;
  readonly latencyMs: number;
  counters(): ServerCounters;
  close(): Promise<void>;
}

/** Starts the server on 127.0.0.1 (a free port); it answers each request after `latencyMs`. */
export async function startSlowServer(latencyMs: number): Promise<SlowServer> {
  const meter = new ConcurrencyMeter(() => performance.now());
  const server: Server = createServer((req, res) => {
    const startMs = meter.start();
    let done = false;
    const end = (answered: boolean) => {
      if (done) return;
      done = true;
      meter.end(startMs, answered);
    };
    res.on("finish", () => end(true));
    // The caller went away first (aborted, or its runtime was killed).
    res.on("close", () => end(false));
    const seq = Number(new URL(req.url ?? "/", "http://x").searchParams.get("seq"));
    setTimeout(() => {
      if (res.destroyed) return;
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ value: seq * 2 }));
    }, latencyMs);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/lookup`,
    latencyMs,
    counters: () => meter.read(),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
