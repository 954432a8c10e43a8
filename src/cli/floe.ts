/**
 * The `floe` command: the REST API for a shell, as `flink` is for Flink.
 *
 *   floe run <job> [-s <savepoint>] [--from-checkpoint <id>] [-p <n> | -p <uid>=<n> ...]
 *            [--allow-non-restored-state] [--config <json>] [--starting-offsets earliest|latest|<epoch ms>]
 *   floe list
 *   floe status <job>
 *   floe savepoint <job> [--format canonical|native]
 *   floe stop <job> --savepoint [--drain]
 *   floe cancel <job> [--with-savepoint]
 *   floe checkpoints <job> [--trigger]
 *   floe ingest <stream> [<file.ndjson>]      (stdin when no file)
 *   floe streams [<stream>]
 *   floe init <dir> [--name <name>] [--force] [--floe <spec>]   a new project (src/cli/init.ts)
 *
 * Global: --url (default $FLOE_URL or http://127.0.0.1:8787), the token
 * from $FLOE_TOKEN (or $FLOE_ADMIN_TOKEN), --json for machine output.
 * Exit codes: 0 done, 1 the engine refused (its error is printed),
 * 2 bad usage, 3 the engine could not be reached.
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { retry } from "../retry.js";
import { INIT_USAGE, InitUsageError, init } from "./init.js";

const USAGE = `usage: floe <command> [options]
  run <job> [-s <savepoint>] [--from-checkpoint <id>] [-p <n> | -p <uid>=<n> ...] [--allow-non-restored-state] [--config <json>]
      [--starting-offsets earliest|latest|<epoch ms>]
  list
  status <job>
  savepoint <job> [--format canonical|native]
  stop <job> --savepoint [--drain]
  cancel <job> [--with-savepoint]
  checkpoints <job> [--trigger]
  ingest <stream> [<file.ndjson>]     NDJSON from the file, or from stdin
  streams [<stream>]                  ingestion streams: sizes, offsets, each job's lag
  init <dir> [--name <name>] [--force] a new project: a sample job, its tests, wrangler.toml (floe init --help)
options: --url <url> (default $FLOE_URL or http://127.0.0.1:8787), --json; the token comes from $FLOE_TOKEN`;

/** Records per ingest request. */
const INGEST_BATCH_RECORDS = 10_000;
const INGEST_BATCH_BYTES = 4 * 1024 * 1024;

class UsageError extends Error {}
class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
class ConnectionError extends Error {}

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  env: Record<string, string | undefined>;
  stdin: NodeJS.ReadableStream;
}

/** Runs the command; resolves the exit code. */
export async function main(argv: string[], io: Io): Promise<number> {
  if (argv[0] === "init") {
    // Needs no engine and no token: a command of its own.
    try {
      return init(argv.slice(1), io);
    } catch (e) {
      if (e instanceof InitUsageError || (e as { code?: string }).code?.startsWith?.("ERR_PARSE_ARGS")) {
        io.err(`floe init: ${(e as Error).message}\n${INIT_USAGE}`);
        return 2;
      }
      io.err(`floe init: ${(e as Error)?.message ?? e}`);
      return 1;
    }
  }
  let json = false;
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        url: { type: "string" },
        json: { type: "boolean", default: false },
        savepoint: { type: "boolean", default: false },
        "with-savepoint": { type: "boolean", default: false },
        drain: { type: "boolean", default: false },
        trigger: { type: "boolean", default: false },
        s: { type: "string", short: "s" },
        "from-savepoint": { type: "string" },
        "from-checkpoint": { type: "string" },
        p: { type: "string", short: "p", multiple: true },
        "allow-non-restored-state": { type: "boolean", default: false },
        config: { type: "string" },
        "starting-offsets": { type: "string" },
        format: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
    json = values.json ?? false;
    if (values.help) {
      io.out(USAGE);
      return 0;
    }
    const [command, name, file] = positionals;
    const token = io.env.FLOE_TOKEN ?? io.env.FLOE_ADMIN_TOKEN;
    if (!token) throw new UsageError("no token: set FLOE_TOKEN to the engine's admin (or ingest) token");
    const api = client(values.url ?? io.env.FLOE_URL ?? "http://127.0.0.1:8787", token);
    const need = (what: string) => {
      if (!name) throw new UsageError(`${command} needs a ${what}`);
      return name;
    };
    const print = (value: unknown, text: string) => io.out(json ? JSON.stringify(value) : text);
    switch (command) {
      case "run": {
        const job = need("job name");
        const body: Record<string, unknown> = {};
        const savepoint = values.s ?? values["from-savepoint"];
        if (savepoint) body.fromSavepoint = savepoint;
        if (values["from-checkpoint"]) body.fromCheckpoint = Number(values["from-checkpoint"]);
        if (values.p?.length) body.parallelism = parseParallelism(values.p);
        if (values["allow-non-restored-state"]) body.allowNonRestoredState = true;
        if (values.config) {
          try {
            body.config = JSON.parse(values.config);
          } catch {
            throw new UsageError("--config must be JSON, e.g. '{\"checkpoint\":{\"interval_ms\":1000}}'");
          }
        }
        const from = values["starting-offsets"];
        if (from !== undefined) {
          if (from !== "earliest" && from !== "latest" && !/^\d+$/.test(from)) throw new UsageError("--starting-offsets takes earliest, latest or a time in epoch ms");
          body.starting_offsets = /^\d+$/.test(from) ? { timestamp: Number(from) } : from;
        }
        const s = (await api("POST", `/v1/jobs/${job}/start`, body)) as Status;
        print(s, `${s.name} ${s.status} (attempt ${s.attempt})${savepoint ? ` from ${savepoint}` : ""}`);
        return 0;
      }
      case "list": {
        const { jobs } = (await api("GET", "/v1/jobs")) as { jobs: Status[] };
        print(jobs, jobs.map((j) => `${j.name}\t${j.status}\trestarts ${j.restarts}${j.last_error ? `\t${j.last_error}` : ""}`).join("\n"));
        return 0;
      }
      case "status": {
        const s = (await api("GET", `/v1/jobs/${need("job name")}`)) as Status;
        print(s, `${s.name} ${s.status} (attempt ${s.attempt}, restarts ${s.restarts})${s.last_error ? `\nlast error: ${s.last_error}` : ""}`);
        return 0;
      }
      case "savepoint": {
        const r = (await api("POST", `/v1/jobs/${need("job name")}/savepoints`, values.format ? { format: values.format } : {})) as { id?: string; location?: string; trigger_id: string };
        print(r, r.id ? `${r.id}\t${r.location}` : `savepoint triggered (${r.trigger_id}), still in progress`);
        return 0;
      }
      case "stop": {
        if (!values.savepoint) throw new UsageError("stop takes a final savepoint: floe stop <job> --savepoint [--drain] (or floe cancel)");
        const r = (await api("POST", `/v1/jobs/${need("job name")}/stop`, { savepoint: true, drain: values.drain })) as { id: string; location: string; status?: Status };
        print(r, `${r.id}\t${r.location}\t${r.status?.status ?? ""}`);
        return 0;
      }
      case "cancel": {
        const job = need("job name");
        if (values["with-savepoint"]) {
          const r = (await api("POST", `/v1/jobs/${job}/cancel`, { savepoint: true })) as { id: string; location: string; status?: Status };
          print(r, `${r.id}\t${r.location}\t${r.status?.status ?? ""}`);
        } else {
          const s = (await api("POST", `/v1/jobs/${job}/cancel`)) as Status;
          print(s, `${s.name} ${s.status}`);
        }
        return 0;
      }
      case "checkpoints": {
        const job = need("job name");
        if (values.trigger) {
          const r = (await api("POST", `/v1/jobs/${job}/checkpoints`)) as { id: number };
          print(r, `checkpoint ${r.id} triggered`);
          return 0;
        }
        const o = (await api("GET", `/v1/jobs/${job}/checkpoints`)) as Overview;
        const lines = [
          `completed ${o.counts.completed}, failed ${o.counts.failed}, in progress ${o.counts.in_progress}, restored ${o.counts.restored}`,
          ...o.history.slice(0, 10).map((h) => `${h.id}\t${h.checkpoint_type}\t${h.status}\t${h.end_to_end_duration} ms\t${h.checkpointed_size} B${h.failure_message ? `\t${h.failure_message}` : ""}`),
        ];
        print(o, lines.join("\n"));
        return 0;
      }
      case "ingest": {
        const stream = need("stream name");
        const input = file ? createReadStream(file) : io.stdin;
        const r = await ingest(api, stream, input);
        print(r, `${r.records} records in ${r.requests} requests`);
        return 0;
      }
      case "streams": {
        if (name) {
          const st = (await api("GET", `/v1/streams/${name}`)) as StreamView;
          const lines = [
            `${st.stream}: ${st.records} records, ${st.bytes} B in ${st.partition_count} partition(s); retention ${st.retention_ms} ms or ${st.retention_bytes} B, limit ${st.max_bytes} B`,
            ...st.partitions.map(
              (p) =>
                `${p.partition}\toffsets ${p.earliest_offset}..${p.next_offset}\t${p.records} records\t${p.bytes} B${p.jobs
                  .filter((j) => j.active)
                  .map((j) => `\t${j.job} at ${j.checkpointed_offset} (lag ${j.lag})`)
                  .join("")}`,
            ),
          ];
          print(st, lines.join("\n"));
        } else {
          const { streams } = (await api("GET", "/v1/streams")) as { streams: StreamView[] };
          print(streams, streams.map((st) => `${st.stream}\t${st.partition_count} partition(s)\t${st.records} records\t${st.bytes} B${Object.entries(st.lag).map(([j, n]) => `\t${j} lag ${n}`).join("")}`).join("\n"));
        }
        return 0;
      }
      case undefined:
        throw new UsageError("no command");
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith?.("ERR_PARSE_ARGS")) {
      io.err(`floe: ${(e as Error).message}\n${USAGE}`);
      return 2;
    }
    if (e instanceof ApiError) {
      io.err(json ? JSON.stringify({ error: { status: e.status, code: e.code, message: e.message } }) : `floe: ${e.code}: ${e.message}`);
      return 1;
    }
    if (e instanceof ConnectionError) {
      io.err(`floe: ${e.message}`);
      return 3;
    }
    io.err(`floe: ${(e as Error)?.message ?? e}`);
    return 1;
  }
}

interface Status {
  name: string;
  status: string;
  attempt: number;
  restarts: number;
  last_error: string | null;
}

interface Overview {
  counts: { completed: number; failed: number; in_progress: number; restored: number };
  history: { id: number; checkpoint_type: string; status: string; end_to_end_duration: number; checkpointed_size: number; failure_message: string | null }[];
}

interface StreamView {
  stream: string;
  partition_count: number;
  records: number;
  bytes: number;
  retention_ms: number;
  retention_bytes: number;
  max_bytes: number;
  lag: Record<string, number>;
  partitions: { partition: number; earliest_offset: number; next_offset: number; records: number; bytes: number; jobs: { job: string; checkpointed_offset: number; lag: number; active: boolean }[] }[];
}

type Api = (method: string, path: string, body?: unknown, headers?: Record<string, string>, raw?: string) => Promise<unknown>;

function client(base: string, token: string): Api {
  return async (method, path, body, headers = {}, raw) => {
    let res: Response;
    try {
      res = await fetch(`${base.replace(/\/$/, "")}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
        body: raw ?? (body !== undefined ? JSON.stringify(body) : undefined),
      });
    } catch (e) {
      throw new ConnectionError(`cannot reach the engine at ${base}: ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`);
    }
    const text = await res.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON
    }
    if (!res.ok) {
      const err = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
      throw new ApiError(res.status, err?.code ?? `http_${res.status}`, err?.message ?? text.slice(0, 200));
    }
    return parsed;
  };
}

/** `p` values: one number for the whole job, or uid=n pairs. */
function parseParallelism(values: string[]): number | Record<string, number> {
  if (values.length === 1 && /^\d+$/.test(values[0])) return Number(values[0]);
  const out: Record<string, number> = {};
  for (const v of values) {
    const m = /^([A-Za-z0-9_.-]+)=(\d+)$/.exec(v);
    if (!m) throw new UsageError(`-p takes a number, or <uid>=<number>; got ${JSON.stringify(v)}`);
    out[m[1]] = Number(m[2]);
  }
  return out;
}

/** Sends NDJSON lines in batches, each with an Idempotency-Key so that a retried batch is not stored twice. */
async function ingest(api: Api, stream: string, input: NodeJS.ReadableStream): Promise<{ records: number; requests: number }> {
  const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  let batch: string[] = [];
  let bytes = 0;
  let records = 0;
  let requests = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const key = `floe-cli-${run}-${requests}`;
    // An engine that could not be reached, or a full or busy partition (429), is tried again; any other answer is final.
    await retry(() => api("POST", `/v1/ingest/${stream}`, undefined, { "content-type": "application/x-ndjson", "idempotency-key": key }, batch.join("\n")), {
      attempts: 10,
      delayMs: 500,
      isRetryable: (e) => e instanceof ConnectionError || (e instanceof ApiError && e.status === 429),
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    });
    records += batch.length;
    requests++;
    batch = [];
    bytes = 0;
  };
  for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
    if (line.trim().length === 0) continue;
    batch.push(line);
    bytes += line.length + 1;
    if (batch.length >= INGEST_BATCH_RECORDS || bytes >= INGEST_BATCH_BYTES) await flush();
  }
  await flush();
  return { records, requests };
}
