/**
 * A local floe engine for tests: the bundled Worker in Miniflare (real
 * workerd), with Durable Object and R2 storage persisted to a folder so that
 * a test can restart the engine over the same state.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { BUNDLE, TEST_BUNDLE } from "./build.js";

export const TEST_TOKEN = "test-admin-token";

export interface Engine {
  readonly url: string;
  readonly persistDir: string;
  readonly mf: Miniflare;
  /** fetch against the engine with the admin token. */
  api(path: string, init?: RequestInit & { json?: unknown }): Promise<Response>;
  dispose(): Promise<void>;
}

/** A fresh folder for persisted state. */
export function tempDir(prefix = "floe-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Starts the engine over `persistDir` (a new folder when omitted). */
export async function startEngine(
  options: {
    persistDir?: string;
    token?: string;
    bindings?: Record<string, string>;
    /** Run the test Worker, with test-only jobs. */
    testJobs?: boolean;
    /** Run this bundle instead. */
    script?: string;
  } = {},
): Promise<Engine> {
  const persistDir = options.persistDir ?? tempDir();
  const token = options.token ?? TEST_TOKEN;
  const mf = new Miniflare({
    modules: true,
    // wrangler.toml's Text rule (`?raw` imports: the dashboard's browser files) puts text modules beside the bundle;
    // wrangler bundles all code into the entry, so every other .js there is one of them.
    modulesRules: [{ type: "Text", include: ["**/*.js"] }],
    scriptPath: options.script ?? (options.testJobs ? TEST_BUNDLE : BUNDLE),
    compatibilityDate: "2026-08-01",
    compatibilityFlags: ["nodejs_compat"],
    durableObjects: {
      COORDINATOR: { className: "Coordinator", useSQLite: true },
      SUBTASK: { className: "Subtask", useSQLite: true },
      STREAM_PARTITION: { className: "StreamPartition", useSQLite: true },
      TABLE_PARTITION: { className: "TablePartition", useSQLite: true },
    },
    r2Buckets: ["CHECKPOINTS", "FILES"],
    bindings: { FLOE_ADMIN_TOKEN: token, ...options.bindings },
    durableObjectsPersist: join(persistDir, "do"),
    r2Persist: join(persistDir, "r2"),
    host: "127.0.0.1",
    port: 0,
    // workerd's output must be consumed (unread pipes stalled and killed large runs);
    // FLOE_RUNTIME_STDIO=1 shows it.
    handleRuntimeStdio: (out: NodeJS.ReadableStream, err: NodeJS.ReadableStream) => {
      for (const stream of [out, err]) {
        if (process.env.FLOE_RUNTIME_STDIO) stream.pipe(process.stderr);
        else stream.resume();
      }
    },
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  return {
    url,
    persistDir,
    mf,
    api: (path, init = {}) => {
      const headers = new Headers(init.headers);
      if (!headers.has("authorization")) headers.set("authorization", `Bearer ${token}`);
      let body = init.body;
      if (init.json !== undefined) {
        headers.set("content-type", "application/json");
        body = JSON.stringify(init.json);
      }
      return fetch(`${url}${path}`, { ...init, headers, body });
    },
    dispose: () => mf.dispose(),
  };
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(fn: () => Promise<T | undefined | false | null>, timeoutMs = 20_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every row of a table sink's table, following `next_cursor` page by page. */
export async function readTable<V = unknown>(engine: Engine, table: string): Promise<Map<string, V>> {
  const rows = new Map<string, V>();
  let cursor: string | null = null;
  do {
    const res = await engine.api(`/v1/tables/${table}?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    if (res.status !== 200) throw new Error(`reading table ${table} answered ${res.status}: ${await res.text()}`);
    const page = (await res.json()) as { rows: { key: string; value: V }[]; next_cursor: string | null };
    for (const r of page.rows) rows.set(r.key, r.value);
    cursor = page.next_cursor;
  } while (cursor);
  return rows;
}
