/**
 * The webhook sink: each committed transaction is one POST of a JSON array
 * to an HTTP endpoint, with `Idempotency-Key: job/uid/subtask/transaction`
 * so that the receiver can recognize a repeated delivery (after a crash
 * between publishing and forgetting). Network errors, 5xx and 429 are
 * retried with exponential backoff; any other 4xx is reported at once: the
 * endpoint refused the data, and retrying cannot help.
 */
import type { DeliveryGuarantee, SinkDefinition, SinkWriterContext } from "../../api/types.js";
import { retry } from "../../retry.js";
import { type SinkPublisher, TransactionalSinkWriter, encodeJson } from "./two-phase-commit.js";

/** Options of {@link webhookSink}. */
export interface WebhookSinkOptions {
  /** The endpoint; or give `urlVar`. */
  url?: string;
  /** Name of a Worker variable holding the endpoint. */
  urlVar?: string;
  /** Name of a Worker secret sent as `Authorization: Bearer <secret>`. */
  tokenVar?: string;
  /** Default exactly_once: a POST happens once its checkpoint completed. */
  guarantee?: DeliveryGuarantee;
  /** Attempts per transaction before the sink fails. Default 8. */
  maxAttempts?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Per request. Default 10 s. */
  timeoutMs?: number;
}

/** The endpoint refused a delivery: not retried. */
export class WebhookRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookRefusedError";
  }
}

/** The Idempotency-Key of one transaction of one sink subtask. */
export function webhookIdempotencyKey(job: string, uid: string, subtask: number, txn: number): string {
  return `${job}/${uid}/${subtask}/${txn}`;
}

/** @example .sink(webhookSink({ urlVar: "ALERTS_URL", tokenVar: "ALERTS_TOKEN" }), { uid: "alerts" }) */
export function webhookSink<T = unknown>(options: WebhookSinkOptions): SinkDefinition<T> {
  if ((options.url === undefined) === (options.urlVar === undefined)) throw new TypeError("webhookSink needs exactly one of url and urlVar");
  if (options.url !== undefined && !/^https?:\/\//.test(options.url)) throw new TypeError(`webhookSink url must be http(s), got ${JSON.stringify(options.url)}`);
  if (options.maxAttempts !== undefined && !(Number.isInteger(options.maxAttempts) && options.maxAttempts >= 1)) {
    throw new TypeError(`webhookSink maxAttempts must be an integer ≥ 1, got ${options.maxAttempts}`);
  }
  for (const name of ["initialBackoffMs", "maxBackoffMs", "timeoutMs"] as const) {
    const v = options[name];
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new TypeError(`webhookSink ${name} must be a number ≥ 0, got ${v}`);
  }
  return {
    kind: "webhook",
    checkVars: (vars, uid) => {
      if (options.urlVar === undefined) return undefined;
      const url = vars[options.urlVar];
      if (typeof url !== "string" || url.length === 0) {
        return `webhook sink "${uid}": the Worker variable ${options.urlVar} (the webhook URL) is not set; add it under [vars] in wrangler.toml, to .dev.vars, or with \`wrangler secret put ${options.urlVar}\``;
      }
      if (!/^https?:\/\//.test(url)) return `webhook sink "${uid}": the Worker variable ${options.urlVar} must be an http(s) URL, got ${JSON.stringify(url)}`;
      return undefined;
    },
    createWriter: (ctx) =>
      new TransactionalSinkWriter(
        { uid: ctx.uid, guarantee: options.guarantee ?? "exactly_once", staging: ctx.staging, now: () => ctx.now() },
        new WebhookPublisher(options, ctx),
      ),
  };
}

/** Publishes each transaction as one POST; exported for its tests. */
export class WebhookPublisher implements SinkPublisher {
  private readonly vars: Record<string, unknown>;

  constructor(
    private readonly options: WebhookSinkOptions,
    private readonly ctx: Pick<SinkWriterContext, "jobName" | "uid" | "subtaskIndex" | "env" | "sleep">,
  ) {
    this.vars = ctx.env as Record<string, unknown>;
  }

  encode(record: unknown): string {
    return encodeJson(record);
  }

  async publish(txn: number, rows: readonly string[]): Promise<void> {
    if (rows.length === 0) return;
    const url = this.options.url ?? (this.vars[this.options.urlVar!] as string | undefined);
    if (typeof url !== "string" || url.length === 0) throw new WebhookRefusedError(`the Worker variable ${this.options.urlVar} (the webhook URL) is not set`);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "idempotency-key": webhookIdempotencyKey(this.ctx.jobName, this.ctx.uid, this.ctx.subtaskIndex, txn),
    };
    if (this.options.tokenVar) headers.authorization = `Bearer ${String(this.vars[this.options.tokenVar] ?? "")}`;
    const body = `[${rows.join(",")}]`;
    const attempts = this.options.maxAttempts ?? 8;
    try {
      await retry(
        async () => {
          const res = await fetch(url, { method: "POST", headers, body, signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000) });
          await res.body?.cancel();
          if (res.ok) return;
          if (refuses(res.status)) throw new WebhookRefusedError(`webhook ${url} refused transaction ${txn} with ${res.status} ${res.statusText}`);
          throw new Error(`${res.status} ${res.statusText}`);
        },
        {
          attempts,
          delayMs: this.options.initialBackoffMs ?? 100,
          maxDelayMs: this.options.maxBackoffMs ?? 5_000,
          // Network errors and the server's answers (5xx, 408, 429) may pass on a later try; a refusal will not.
          isRetryable: (e) => !(e instanceof WebhookRefusedError),
          sleep: (ms) => this.ctx.sleep(ms),
        },
      );
    } catch (e) {
      if (e instanceof WebhookRefusedError) throw e;
      throw new Error(`webhook ${url} did not take transaction ${txn} after ${attempts} attempts; last: ${(e as Error)?.message ?? e}`);
    }
  }
}

/** A 4xx answer other than a timeout (408) or a rate limit (429): the endpoint refused the data itself. */
function refuses(status: number): boolean {
  return status >= 400 && status < 500 && status !== 429 && status !== 408;
}
