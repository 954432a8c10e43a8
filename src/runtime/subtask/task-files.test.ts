import { describe, expect, it } from "vitest";
import { TaskFiles } from "./task-files.js";

/** A store whose puts end when the test says so. */
function store() {
  const files = new Map<string, string>();
  const waiting: { key: string; body: string; done: () => void }[] = [];
  const deleted: string[][] = [];
  return {
    files,
    deleted,
    put: (key: string, body: Blob | string) =>
      new Promise<void>((done) =>
        waiting.push({
          key,
          body: body as string,
          done: () => {
            files.set(key, body as string);
            done();
          },
        }),
      ),
    delete: async (keys: string[]) => {
      deleted.push(keys);
      for (const k of keys) files.delete(k);
    },
    finish(key: string) {
      const i = waiting.findIndex((w) => w.key === key);
      waiting.splice(i, 1)[0]!.done();
    },
  };
}

const never = () => new Promise<void>(() => undefined);
const flush = () => new Promise((r) => setTimeout(r, 0));

describe("TaskFiles", () => {
  it("keeps the files an ack handed over, and deletes the others when the task is canceled", async () => {
    const s = store();
    const files = new TaskFiles(s);
    const a = files.put("chk-1/a", "1");
    const b = files.put("chk-2/b", "2");
    s.finish("chk-1/a");
    s.finish("chk-2/b");
    await Promise.all([a, b]);
    expect(files.handOver(["chk-1/a"])).toBe(true);
    expect(files.pending).toBe(1);
    await files.close(1_000, never);
    expect([...s.files.keys()]).toEqual(["chk-1/a"]);
    expect(s.deleted).toEqual([["chk-2/b"]]);
  });

  it("waits for uploads under way before deleting, and refuses acks and writes after the cancel", async () => {
    const s = store();
    const files = new TaskFiles(s);
    const upload = files.put("chk-3/a", "3");
    const closed = files.close(1_000, never);
    await flush();
    expect(s.deleted).toEqual([]);
    s.finish("chk-3/a");
    await upload;
    await closed;
    expect(s.files.size).toBe(0);
    expect(files.handOver(["chk-3/a"])).toBe(false);
    await expect(files.put("chk-4/a", "4")).rejects.toThrow(/canceled/);
    expect(s.files.size).toBe(0);
  });

  it("deletes an upload that ends after the cancel stopped waiting for it", async () => {
    const s = store();
    const files = new TaskFiles(s);
    const upload = files.put("chk-5/a", "5");
    await files.close(10, () => Promise.resolve());
    expect(s.files.size).toBe(0);
    s.finish("chk-5/a");
    await upload;
    expect(s.files.size).toBe(0);
    expect(s.deleted.flat()).toEqual(["chk-5/a"]);
  });

  it("a failed delete is logged, not thrown: an orphan costs storage, not correctness", async () => {
    const s = store();
    const files = new TaskFiles({ put: s.put, delete: () => Promise.reject(new Error("R2 is down")) });
    const upload = files.put("chk-6/a", "6");
    s.finish("chk-6/a");
    await upload;
    const errors: unknown[] = [];
    const log = console.error;
    console.error = (...args: unknown[]) => void errors.push(args.join(" "));
    try {
      await files.close(10, never);
    } finally {
      console.error = log;
    }
    expect(errors).toEqual([expect.stringContaining("R2 is down")]);
  });

  describe("a file given as parts", () => {
    /** A store with multipart uploads, keeping bytes. */
    function multipartStore(failPart?: number) {
      const files = new Map<string, Uint8Array>();
      const log: string[] = [];
      const bytesOf = async (b: Blob | string) => (typeof b === "string" ? new TextEncoder().encode(b) : new Uint8Array(await b.arrayBuffer()));
      return {
        files,
        log,
        put: async (key: string, body: Blob | string) => {
          log.push(`put ${key}`);
          files.set(key, await bytesOf(body));
        },
        delete: async (keys: string[]) => {
          log.push(`delete ${keys.join(",")}`);
          for (const k of keys) files.delete(k);
        },
        createMultipartUpload: async (key: string) => {
          const parts = new Map<number, Uint8Array>();
          return {
            uploadPart: async (n: number, value: Blob) => {
              if (n === failPart) throw new Error("part lost");
              log.push(`part ${n} ${value.size}`);
              parts.set(n, await bytesOf(value));
              return { partNumber: n, etag: `e${n}` };
            },
            complete: async (uploaded: { partNumber: number }[]) => {
              log.push(`complete ${uploaded.map((p) => p.partNumber).join(",")}`);
              const chunks = uploaded.map((p) => parts.get(p.partNumber)!);
              // R2's rule (and Miniflare's): every part but the last of one size, the last not larger.
              const size = chunks[0].length;
              if (chunks.slice(0, -1).some((c) => c.length !== size) || chunks.at(-1)!.length > size) {
                throw new Error("completeMultipartUpload: There was a problem with the multipart upload. (10048)");
              }
              const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
              let at = 0;
              for (const c of chunks) {
                out.set(c, at);
                at += c.length;
              }
              files.set(key, out);
            },
            abort: async () => void log.push("abort"),
          };
        },
      };
    }
    let read = 0;
    async function* parts(n: number, size: number): AsyncGenerator<Uint8Array> {
      try {
        for (let i = 0; i < n; i++) yield new Uint8Array(size).fill(i);
      } finally {
        read++;
      }
    }

    it("goes up in one put when it fits in a part, else as parts of the part size", async () => {
      const s = multipartStore();
      const files = new TaskFiles(s);
      await files.putParts("small.run", parts(3, 100), 1000);
      expect(s.log).toEqual(["put small.run"]);
      expect(s.files.get("small.run")!.length).toBe(300);
      await files.putParts("large.run", parts(25, 100), 1000);
      expect(s.log.slice(1)).toEqual(["part 1 1000", "part 2 1000", "part 3 500", "complete 1,2,3"]);
      const f = s.files.get("large.run")!;
      expect(f.length).toBe(2500);
      expect(f[0]).toBe(0);
      expect(f[2499]).toBe(24);
      expect(files.pending).toBe(2);
      // Pages that do not divide the part size are cut: every part but the last has exactly the part size (R2's rule).
      await files.putParts("uneven.run", parts(7, 300), 1000);
      expect(s.log.slice(5)).toEqual(["part 1 1000", "part 2 1000", "part 3 100", "complete 1,2,3"]);
      const u = s.files.get("uneven.run")!;
      expect([...u].map((b, i) => b === Math.floor(i / 300)).every(Boolean)).toBe(true);
      // Exactly one part's worth: one put.
      await files.putParts("exact.run", parts(10, 100), 1000);
      expect(s.log.at(-1)).toBe("put exact.run");
    });

    it("fails an upload that ends after the task was canceled (its file is deleted, so no one may take it as written)", async () => {
      const s = multipartStore();
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const files = new TaskFiles({ ...s, put: async (key: string, body: Blob | string) => (await gate, s.put(key, body)) });
      const upload = files.putParts("late.run", parts(2, 10), 1000);
      await files.close(1, () => Promise.resolve());
      release();
      await expect(upload).rejects.toThrow(/canceled: late.run was deleted/);
      expect(s.files.has("late.run")).toBe(false);
    });

    it("cuts parts at the part size exactly when chunks do not add up to it (R2 refuses parts of different sizes)", async () => {
      const s = multipartStore();
      const files = new TaskFiles(s);
      await files.putParts("odd.run", parts(25, 300), 1000);
      expect(s.log).toEqual(["part 1 1000", "part 2 1000", "part 3 1000", "part 4 1000", "part 5 1000", "part 6 1000", "part 7 1000", "part 8 500", "complete 1,2,3,4,5,6,7,8"]);
      const f = s.files.get("odd.run")!;
      expect(f.length).toBe(7500);
      for (let i = 0; i < 25; i++) expect([f[i * 300], f[i * 300 + 299]]).toEqual([i, i]);
    });

    it("aborts when a part fails, stops reading the parts, and deletes it with the task's files when canceled", async () => {
      const s = multipartStore(2);
      const files = new TaskFiles(s);
      read = 0;
      await expect(files.putParts("big.run", parts(100, 100), 1000)).rejects.toThrow("part lost");
      expect(s.log).toEqual(["part 1 1000", "abort"]);
      // The parts' generator was closed (its finally ran), so an export's lease on its run ends.
      expect(read).toBe(1);
      await files.close(10, never);
      expect(s.log.at(-1)).toBe("delete big.run");
    });

    it("reads the next part while the last goes up, and holds two parts at most", async () => {
      const s = multipartStore();
      // Each part's upload waits until the test lets it end.
      const ends: (() => void)[] = [];
      const events: string[] = [];
      const slow = {
        ...s,
        createMultipartUpload: async (key: string) => {
          const upload = await s.createMultipartUpload(key);
          return {
            ...upload,
            uploadPart: async (n: number, value: Blob) => {
              events.push(`up ${n}`);
              await new Promise<void>((r) => ends.push(r));
              events.push(`done ${n}`);
              return upload.uploadPart(n, value);
            },
          };
        },
      };
      async function* counted(): AsyncGenerator<Uint8Array> {
        for (let i = 0; i < 5; i++) {
          events.push(`read ${i}`);
          yield new Uint8Array(1000).fill(i);
        }
      }
      const done = new TaskFiles(slow).putParts("piped.run", counted(), 1000);
      const settle = () => new Promise((r) => setTimeout(r, 5));
      await settle();
      // Part 1 is going up, and part 2 was read meanwhile; part 3 waits until part 1 is up.
      expect(events).toEqual(["read 0", "read 1", "up 1", "read 2"]);
      ends.shift()!();
      await settle();
      expect(events.slice(4)).toEqual(["done 1", "up 2", "read 3"]);
      while (ends.length > 0 || !s.log.some((l) => l.startsWith("complete"))) {
        ends.shift()?.();
        await settle();
      }
      await done;
      expect(s.log).toEqual(["part 1 1000", "part 2 1000", "part 3 1000", "part 4 1000", "part 5 1000", "complete 1,2,3,4,5"]);
      expect([...s.files.get("piped.run")!].filter((b, i) => b !== Math.floor(i / 1000))).toEqual([]);
    });
  });
});
