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
});
