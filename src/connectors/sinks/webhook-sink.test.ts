import { afterEach, describe, expect, it, vi } from "vitest";
import { WebhookPublisher, WebhookRefusedError, type WebhookSinkOptions, webhookSink } from "./webhook-sink.js";

/** A publisher whose fetch answers from `answers` in turn (a status, or an error to throw), with a sleep that records its waits. */
function publisher(options: Partial<WebhookSinkOptions>, answers: (number | Error)[]) {
  const waits: number[] = [];
  const requests: { url: string; init: RequestInit }[] = [];
  vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
    requests.push({ url, init });
    const a = answers.shift();
    if (a === undefined) throw new Error("no more answers");
    if (a instanceof Error) throw a;
    return new Response(a === 200 ? "ok" : "no", { status: a, statusText: `status ${a}` });
  });
  const p = new WebhookPublisher(
    { url: "https://hook.example/in", ...options },
    { jobName: "job", uid: "out", subtaskIndex: 2, env: {}, sleep: async (ms) => void waits.push(ms) },
  );
  return { p, waits, requests };
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("webhook sink delivery", () => {
  it("posts a transaction once as a JSON array with its Idempotency-Key", async () => {
    const { p, waits, requests } = publisher({}, [200]);
    await p.publish(7, ['{"a":1}', '{"a":2}']);
    expect(requests).toHaveLength(1);
    expect(requests[0].init.body).toBe('[{"a":1},{"a":2}]');
    expect((requests[0].init.headers as Record<string, string>)["idempotency-key"]).toBe("job/out/2/7");
    expect(waits).toEqual([]);
  });

  it("retries 5xx, 408, 429 and network errors with doubling backoff up to the cap", async () => {
    const { p, waits, requests } = publisher({ initialBackoffMs: 100, maxBackoffMs: 300 }, [503, new TypeError("fetch failed"), 429, 408, 200]);
    await p.publish(1, ["1"]);
    expect(requests).toHaveLength(5);
    expect(waits).toEqual([100, 200, 300, 300]);
  });

  it("does not retry a refusal (another 4xx)", async () => {
    const { p, waits, requests } = publisher({}, [500, 422, 200]);
    await expect(p.publish(3, ["1"])).rejects.toBeInstanceOf(WebhookRefusedError);
    await expect(publisher({}, [400]).p.publish(3, ["1"])).rejects.toThrow(/refused transaction 3 with 400/);
    expect(requests).toHaveLength(2);
    expect(waits).toEqual([100]);
  });

  it("gives up after maxAttempts, naming the last failure", async () => {
    const { p, waits, requests } = publisher({ maxAttempts: 3, initialBackoffMs: 10 }, [500, 502, 503, 200]);
    await expect(p.publish(4, ["1"])).rejects.toThrow("webhook https://hook.example/in did not take transaction 4 after 3 attempts; last: 503 status 503");
    expect(requests).toHaveLength(3);
    expect(waits).toEqual([10, 20]);
  });

  it("posts nothing for an empty transaction", async () => {
    const { p, requests } = publisher({}, []);
    await p.publish(5, []);
    expect(requests).toHaveLength(0);
  });

  it("checks its retry options when the job is defined", () => {
    expect(() => webhookSink({ url: "https://x.example", maxAttempts: 0 })).toThrow(/maxAttempts must be an integer ≥ 1/);
    expect(() => webhookSink({ url: "https://x.example", initialBackoffMs: -1 })).toThrow(/initialBackoffMs must be a number ≥ 0/);
    expect(() => webhookSink({ url: "https://x.example", maxAttempts: 2, maxBackoffMs: 0 })).not.toThrow();
  });
});
