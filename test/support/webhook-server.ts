/**
 * A real HTTP server on 127.0.0.1 that receives webhook deliveries the way
 * a careful receiver does: by Idempotency-Key, so that a repeated delivery
 * of one transaction is recognized (and must carry the same body).
 */
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Random } from "./random.js";

export interface WebhookServer {
  readonly url: string;
  /** Body per Idempotency-Key, first delivery. */
  readonly deliveries: Map<string, string>;
  /** Deliveries whose key had been seen before. */
  repeats: number;
  /** Repeats whose body differed from the first delivery's (must stay 0). */
  conflicts: number;
  /** Requests answered 503 on purpose. */
  refused: number;
  close(): Promise<void>;
}

/** Starts the server; `failRate` answers some requests 503 (seeded), `delayMs` slows every answer. */
export async function startWebhookServer(options: { random?: Random; failRate?: number; delayMs?: number } = {}): Promise<WebhookServer> {
  const state = { deliveries: new Map<string, string>(), repeats: 0, conflicts: 0, refused: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const answer = () => {
        if (options.random && options.failRate && options.random.chance(options.failRate)) {
          state.refused++;
          res.writeHead(503).end();
          return;
        }
        const key = String(req.headers["idempotency-key"] ?? "");
        const body = Buffer.concat(chunks).toString("utf8");
        const seen = state.deliveries.get(key);
        if (seen !== undefined) {
          state.repeats++;
          if (seen !== body) state.conflicts++;
        } else state.deliveries.set(key, body);
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      };
      if (options.delayMs) setTimeout(answer, options.delayMs);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/hook`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }) as WebhookServer;
}
