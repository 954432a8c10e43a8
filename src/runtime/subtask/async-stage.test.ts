import { describe, expect, it } from "vitest";
import { AsyncDataStream } from "../../api/async-data-stream.js";
import type { AsyncFunction } from "../../api/async-function.js";
import type { DeadLetter } from "../../api/dead-letter.js";
import { job } from "../../api/job.js";
import { OutputTag } from "../../api/output-tag.js";
import { fakeSink, fakeSource } from "../../../test/support/plan-fixtures.js";
import { AsyncStage } from "./async-stage.js";

interface Item {
  id: number;
}

/** A service whose answers the test gives by hand, by id. */
function service() {
  const waiting = new Map<number, { answer: (v: string[]) => void; fail: (e: Error) => void }>();
  const fn: AsyncFunction<Item, string> = {
    asyncInvoke: (item) => new Promise<string[]>((answer, fail) => waiting.set(item.id, { answer, fail })),
  };
  return { fn, waiting };
}

async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

function stage(fn: AsyncFunction<Item, string>, deadLetters?: OutputTag<DeadLetter>) {
  const j = job("stage");
  const s = AsyncDataStream.orderedWait(j.source(fakeSource<Item>(), { uid: "in" }), fn, { uid: "lookup", timeoutMs: 60_000, deadLetters });
  s.sink(fakeSink(), { uid: "out" });
  if (deadLetters) s.getSideOutput(deadLetters).sink(fakeSink(), { uid: "dead" });
  const node = j.nodes.find((n) => n.kind === "async")!;
  const log: string[] = [];
  const st = new AsyncStage({
    node,
    fn,
    sleep: () => new Promise(() => undefined),
    emit: (v, ts) => log.push(`out ${JSON.stringify(v)}@${ts}`),
    emitSide: (tag, v, ts) => log.push(`${tag} ${(v as DeadLetter).error} ${JSON.stringify((v as DeadLetter).value)}@${ts}`),
    flush: async () => void log.push("flush"),
    onWatermark: async (channel, wm) => void log.push(`wm ${channel} ${wm}`),
    countDeadLetter: () => undefined,
  });
  return { st, log };
}

describe("AsyncStage", () => {
  it("emits results with their record's event time, and a held watermark after the records before it", async () => {
    const { fn, waiting } = service();
    const { st, log } = stage(fn);
    st.takeBatch([{ id: 1 }, { id: 2 }], [100, 200]);
    st.holdWatermark("c0", 150, false);
    await flush();
    waiting.get(2)!.answer(["two"]);
    await flush();
    await st.emitReady();
    expect(log, "ordered: 2 waits for 1").toEqual([]);
    waiting.get(1)!.answer(["one", "uno"]);
    await flush();
    await st.emitReady();
    expect(log).toEqual(['out "one"@100', 'out "uno"@100', 'out "two"@200', "flush", "wm c0 150", "flush"]);
    expect(st.isEmpty()).toBe(true);
  });

  it("keeps every record not emitted in its snapshot, with its event time, and requests restored ones again", async () => {
    const { fn, waiting } = service();
    const { st } = stage(fn);
    st.takeBatch([{ id: 1 }, { id: 2 }], [100, null]);
    await flush();
    waiting.get(2)!.answer(["two"]);
    await flush();
    await st.emitReady();
    expect(st.snapshot()).toEqual({ lookup: [{ value: { id: 1 }, timestampMs: 100 }, { value: { id: 2 } }] });

    const again = service();
    const restored = stage(again.fn);
    restored.st.restore(st.snapshot().lookup);
    await flush();
    expect([...again.waiting.keys()]).toEqual([1, 2]);
  });

  it("routes a record that failed to the dead-letter output when it has one", async () => {
    const { fn, waiting } = service();
    const dead = new OutputTag<DeadLetter>("dead");
    const { st, log } = stage(fn, dead);
    st.takeBatch([{ id: 7 }], [70]);
    await flush();
    waiting.get(7)!.fail(new Error("lookup answered 404"));
    await flush();
    await st.emitReady();
    expect(log).toEqual(['dead Error: lookup answered 404 {"id":7}@70', "flush"]);
  });

  it("fails the task naming the operator and the record when it has none", async () => {
    const { fn, waiting } = service();
    const { st } = stage(fn);
    st.takeBatch([{ id: 7 }], undefined);
    await flush();
    waiting.get(7)!.fail(new Error("lookup answered 404"));
    await flush();
    await expect(st.emitReady()).rejects.toThrow('async operator "lookup" failed for record {"id":7}: Error: lookup answered 404');
  });
});
