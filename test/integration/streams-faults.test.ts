/**
 * Fault injection on the ingestion log: SIGKILL of the runtime while
 * requests split across partitions by key are in flight and while
 * retention truncates (a 300 ms retention keeps it truncating all the
 * time). A request cut off is sent again with its Idempotency-Key after the
 * restart; nothing acknowledged is lost, nothing is doubled, and each key's
 * records reach the job that checks them in order.
 */
import { afterEach, describe, expect, it } from "vitest";
import { crashEngine } from "../support/crash.js";
import { type Engine, startEngine } from "../support/engine.js";
import { Random } from "../support/random.js";
import { SeqProducer, expectExactlyOnceInOrder, streamView } from "../support/streams.js";

const KEYS = Array.from({ length: 9 }, (_, i) => `user-${i}`);
const KILLS = 3;

let engine: Engine | undefined;
afterEach(async () => {
  await engine?.dispose();
  engine = undefined;
});

describe("the ingestion log under SIGKILL", () => {
  it(`keeps per-key order and exactly-once output across ${KILLS} kills during split requests and truncation`, async () => {
    const random = new Random(21);
    let current = (engine = await startEngine({ testJobs: true }));
    expect((await current.api("/v1/jobs/streams-order/start", { method: "POST", json: {} })).status).toBe(200);
    const producer = new SeqProducer("ordered", KEYS, "order");
    let stop = false;
    let requests = 0;
    // One request at a time: one key's records of two requests must not race each other to its partition.
    const sending = (async () => {
      while (!stop) {
        await producer.send(() => current, producer.next(3, { pad: "z".repeat(200) }), 50, 60_000);
        requests++;
      }
    })();
    const earliestSeen: number[] = [];
    for (let kill = 0; kill < KILLS; kill++) {
      await new Promise((r) => setTimeout(r, 500 + random.int(500)));
      earliestSeen.push(Math.min(...(await streamView(current, "ordered")).partitions.map((p) => p.earliest_offset)));
      const dir = current.persistDir;
      await crashEngine(current);
      current = engine = await startEngine({ testJobs: true, persistDir: dir });
    }
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await sending;
    console.log(`streams-faults: ${requests} requests of ${KEYS.length * 3} records over ${KILLS} kills, ${producer.cutOff} tries cut off; earliest offsets seen before each kill ${earliestSeen.join(", ")}`);
    expect(producer.cutOff, "requests cut off by a kill").toBeGreaterThan(0);
    await expectExactlyOnceInOrder(current, "ordered-out", producer.acked, 40_000);
    const view = await streamView(current, "ordered");
    for (const p of view.partitions) {
      // The counters the truncation steps keep agree with the log after every kill.
      expect(p.records, `partition ${p.partition}`).toBe(p.next_offset - p.earliest_offset);
      expect(p.earliest_offset, `partition ${p.partition}`).toBeGreaterThan(0);
    }
  });
});
