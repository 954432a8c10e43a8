/**
 * A fake R2 bucket: the subset the engine uses (put with
 * `onlyIf: { etagDoesNotMatch: "*" }`, get with `.text()`, `.arrayBuffer()`
 * and a streamed `.body`, head, paged list, delete), with latency, errors and slow writes.
 *
 * R2 is outside the objects: a request that was sent lands even if its
 * caller is reset meanwhile (only the caller's continuation is lost). An
 * error may come before the operation took effect or after it (the caller
 * cannot tell which).
 */
import type { Faults } from "./faults.js";
import type { Life, SimLoop } from "./loop.js";
import type { Caller } from "./network.js";
import type { Rng } from "./prng.js";
import type { Trace } from "./trace.js";

interface Stored {
  /** The object's bytes (state files are text, run files binary). */
  readonly body: Uint8Array;
  readonly etag: string;
  readonly uploadedMs: number;
}

const METADATA = /\/chk-(\d+)\/_metadata$/;

export class FakeR2 {
  readonly objects = new Map<string, Stored>();
  /** When each checkpoint's `_metadata` was first created (the commit point). */
  readonly metadataWrittenAt = new Map<number, number>();
  /** Operations served. */
  ops = 0;
  private etags = 0;

  constructor(
    private readonly loop: SimLoop,
    private readonly rng: Rng,
    private readonly faults: Faults,
    private readonly trace: Trace,
    /** Objects per list page (R2's default is 1000; smaller pages exercise paging). */
    private readonly pageSize: number,
  ) {}

  /** The bucket as one caller sees it: replies reach the caller only while it lives. */
  bucket(caller: Caller, options: { onRequest?: (op: string, key: string) => void } = {}): R2Bucket {
    const life = caller.life;
    const op = <T>(name: string, key: string, apply: () => T): Promise<T> => {
      options.onRequest?.(name, key);
      return life.gate(this.schedule(caller.name, name, key, apply));
    };
    const bucket = {
      put: (key: string, value: unknown, options?: { onlyIf?: { etagDoesNotMatch?: string } }) => {
        const body = toBytes(value);
        return op("put", key, () => {
          if (options?.onlyIf?.etagDoesNotMatch === "*" && this.objects.has(key)) return null;
          const stored: Stored = { body, etag: `e${++this.etags}`, uploadedMs: this.loop.now() };
          this.objects.set(key, stored);
          const m = METADATA.exec(key);
          if (m && !this.metadataWrittenAt.has(Number(m[1]))) this.metadataWrittenAt.set(Number(m[1]), this.loop.now());
          return meta(key, stored);
        });
      },
      get: (key: string, options?: { range?: { offset: number; length: number } }) =>
        op("get", key, () => {
          const o = this.objects.get(key);
          if (!o) return null;
          const r = options?.range;
          return this.objectBody(key, r ? { ...o, body: o.body.slice(r.offset, r.offset + r.length) } : o, life);
        }),
      head: (key: string) =>
        op("head", key, () => {
          const o = this.objects.get(key);
          return o ? meta(key, o) : null;
        }),
      list: (options?: { prefix?: string; cursor?: string; limit?: number }) =>
        op("list", options?.prefix ?? "", () => {
          const prefix = options?.prefix ?? "";
          const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix) && (options?.cursor === undefined || k > options.cursor)).sort();
          const n = Math.min(options?.limit ?? 1000, this.pageSize);
          const page = keys.slice(0, n);
          const truncated = keys.length > n;
          return { objects: page.map((k) => meta(k, this.objects.get(k)!)), truncated, cursor: truncated ? page[page.length - 1] : undefined, delimitedPrefixes: [] };
        }),
      // Parts land as one object when completed (R2's size rules are checked by TaskFiles' own test, not here).
      createMultipartUpload: async (key: string) => {
        const parts = new Map<number, Uint8Array>();
        return {
          uploadPart: async (partNumber: number, value: unknown) => {
            const bytes = value instanceof Blob ? new Uint8Array(await life.gate(value.arrayBuffer())) : toBytes(value);
            parts.set(partNumber, bytes);
            return { partNumber, etag: `p${partNumber}` };
          },
          complete: (uploaded: { partNumber: number }[]) => {
            const chunks = uploaded.map((p) => parts.get(p.partNumber)!);
            const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
            let at = 0;
            for (const c of chunks) {
              bytes.set(c, at);
              at += c.length;
            }
            return bucket.put(key, bytes);
          },
          abort: async () => undefined,
        };
      },
      delete: (keys: string | string[]) =>
        op("delete", Array.isArray(keys) ? `${keys.length} keys` : keys, () => {
          for (const k of Array.isArray(keys) ? keys : [keys]) this.objects.delete(k);
        }),
    };
    return bucket as unknown as R2Bucket;
  }

  private schedule<T>(who: string, name: string, key: string, apply: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let d1 = this.rng.range(1, 4);
      const d2 = this.rng.range(1, 4);
      if (this.faults.roll("r2-slow")) {
        this.faults.count("r2-slow");
        d1 += this.rng.range(50, 1500);
        this.trace.log("fault", `r2 slow ${name} ${key} +${d1}ms (${who})`);
      }
      const error = this.faults.roll("r2-error") ? (this.rng.chance(0.5) ? "before" : "after") : null;
      if (error) {
        this.faults.count("r2-error");
        this.trace.log("fault", `r2 error ${error} ${name} ${key} (${who})`);
      }
      this.loop.after(d1, () => {
        this.ops++;
        if (error === "before") {
          this.loop.after(d2, () => reject(new Error(`R2 ${name} ${key}: internal error (simulated)`)));
          return;
        }
        let v: T;
        try {
          v = apply();
        } catch (e) {
          this.loop.after(d2, () => reject(e));
          return;
        }
        if (name === "put" || name === "delete") this.trace.log("r2", `${name} ${key}${v === null ? " (exists)" : ""} (${who})`);
        this.loop.after(d2, () => (error === "after" ? reject(new Error(`R2 ${name} ${key}: internal error after it took effect (simulated)`)) : resolve(v)));
      });
    });
  }

  /** A got object: its text at once, or its body as a stream of byte chunks that arrive over time. */
  private objectBody(key: string, o: Stored, life: Life) {
    const bytes = o.body;
    // Chunk boundaries may split a UTF-8 character: readers must decode with { stream: true }.
    const cuts: number[] = [];
    for (let at = 0; at < bytes.length; ) {
      at = Math.min(bytes.length, at + this.rng.range(1, 400));
      cuts.push(at);
    }
    const failAt = this.faults.roll("r2-error") ? this.rng.int(Math.max(1, cuts.length)) : -1;
    if (failAt >= 0) {
      this.faults.count("r2-error");
      this.trace.log("fault", `r2 stream of ${key} breaks at chunk ${failAt}`);
    }
    const loop = this.loop;
    const rng = this.rng;
    return {
      ...meta(key, o),
      text: () => Promise.resolve(new TextDecoder().decode(o.body)),
      arrayBuffer: () => Promise.resolve(bytes.slice().buffer),
      body: {
        async *[Symbol.asyncIterator]() {
          let from = 0;
          for (let i = 0; i < cuts.length; i++) {
            await life.gate(loop.sleep(rng.int(2)));
            if (i === failAt) throw new Error(`R2 get ${key}: stream broken (simulated)`);
            yield bytes.subarray(from, cuts[i]);
            from = cuts[i];
          }
        },
      },
    };
  }
}

function meta(key: string, o: Stored) {
  return { key, size: o.body.length, etag: o.etag, httpEtag: `"${o.etag}"`, uploaded: new Date(o.uploadedMs), version: o.etag };
}

function toBytes(value: unknown): Uint8Array {
  if (typeof value === "string") return new TextEncoder().encode(value);
  if (value instanceof Uint8Array) return value.slice();
  if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
  throw new TypeError(`the simulated R2 takes strings and bytes, got ${Object.prototype.toString.call(value)}`);
}
