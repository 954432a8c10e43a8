import { describe, expect, it } from "vitest";
import { AsyncDataStream } from "../../api/async-data-stream.js";
import type { AsyncFunction } from "../../api/async-function.js";
import { AsyncRetryStrategies } from "../../async/retry-strategy.js";
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
    emitSide: (tag, v, ts) => {
      const d = v as DeadLetter;
      log.push(`${tag} ${d.error} ${JSON.stringify(d.value)}@${ts}${d.source ? ` from ${d.source.partition}:${d.source.offset}` : ""}${d.key === null ? "" : ` key ${d.key}`}`);
    },
    setOrigin: (o) => void (o && log.push(`origin ${o.partition}:${o.offset}`)),
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
    st.takeBatch([{ id: 7 }], [70], [{ partition: "clicks/0", offset: 3 }]);
    await flush();
    waiting.get(7)!.fail(new Error("lookup answered 404"));
    await flush();
    await st.emitReady();
    expect(log).toEqual(["origin clicks/0:3", 'dead Error: lookup answered 404 {"id":7}@70 from clicks/0:3', "flush"]);
  });

  it("fails the task naming the operator, the record, where it was read and its attempts when it has none, and why no key", async () => {
    const { fn, waiting } = service();
    const { st } = stage(fn);
    st.takeBatch([{ id: 7 }, { id: 8 }], undefined, [{ partition: "clicks/0", offset: 41 }, null]);
    await flush();
    waiting.get(7)!.fail(new Error("lookup answered 404"));
    await flush();
    const error = await st.emitReady().then(
      () => undefined,
      (e: Error) => e.message,
    );
    expect(error).toBe(
      'async operator "lookup" failed for record {"id":7} from clicks/0 offset 41, after 1 attempt: Error: lookup answered 404. ' +
        "It has no key (the operator's input is not a keyed stream). A deadLetters output would take such a record aside instead of failing the job",
    );
    // A record whose origin is unknown (a timer emitted it upstream, or in-flight data replayed it) says so.
    waiting.get(8)!.fail(new Error("lookup answered 500"));
    await flush();
    const unknown = await st.emitReady().then(
      () => undefined,
      (e: Error) => e.message,
    );
    expect(unknown).toMatch(/^async operator "lookup" failed for record \{"id":8\}, after 1 attempt: Error: lookup answered 500\. /);
    expect(unknown).toContain("It has no key (the operator's input is not a keyed stream); where it was read is not known (emitted by a timer upstream, or replayed from a checkpoint's in-flight data). ");
  });

  it("names the key of a keyed stream's record in its error and its dead letter", async () => {
    const { fn, waiting } = service();
    const { st } = stage(fn);
    st.takeBatch([{ id: 7 }], undefined, [{ partition: "clicks/0", offset: 41 }], ["user-7"]);
    await flush();
    waiting.get(7)!.fail(new Error("lookup answered 404"));
    await flush();
    await expect(st.emitReady()).rejects.toThrow(
      'async operator "lookup" failed for record {"id":7} of key "user-7" from clicks/0 offset 41, after 1 attempt: Error: lookup answered 404. A deadLetters output would take such a record aside instead of failing the job',
    );
    const dead = new OutputTag<DeadLetter>("dead");
    const again = service();
    const withDead = stage(again.fn, dead);
    withDead.st.takeBatch([{ id: 8 }], undefined, undefined, [8]);
    await flush();
    again.waiting.get(8)!.fail(new Error("gone"));
    await flush();
    await withDead.st.emitReady();
    expect(withDead.log).toEqual(["dead Error: gone {\"id\":8}@undefined key 8", "flush"]);
  });

  it("names the record's event time and the attempts its retries made", async () => {
    let attempts = 0;
    const fn: AsyncFunction<Item, string> = {
      asyncInvoke: async () => {
        attempts++;
        throw new Error("lookup answered 503");
      },
    };
    const j = job("stage");
    const s = AsyncDataStream.orderedWait(j.source(fakeSource<Item>(), { uid: "in" }), fn, {
      uid: "lookup",
      timeoutMs: 60_000,
      retry: AsyncRetryStrategies.fixedDelay<string>({ maxAttempts: 3, delayMs: 1 }).ifException(() => true),
    });
    s.sink(fakeSink(), { uid: "out" });
    const st = new AsyncStage({
      node: j.nodes.find((n) => n.kind === "async")!,
      fn,
      // The waits between attempts pass at once; the timeout never does.
      sleep: (ms) => (ms < 60_000 ? Promise.resolve() : new Promise(() => undefined)),
      emit: () => undefined,
      emitSide: () => undefined,
      setOrigin: () => undefined,
      flush: async () => undefined,
      onWatermark: async () => undefined,
      countDeadLetter: () => undefined,
    });
    st.takeBatch([{ id: 9 }], [90]);
    await flush();
    expect(attempts).toBe(3);
    await expect(st.emitReady()).rejects.toThrow('async operator "lookup" failed for record {"id":9} at event time 90, after 3 attempts: Error: lookup answered 503.');
  });
});
