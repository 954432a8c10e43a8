/**
 * End-to-end exactly-once through Kafka: keyed records produced to kafka-in,
 * the kafka-count job (Kafka source → keyed count → Kafka sink, in Kafka
 * transactions), and a read_committed consumer on kafka-out that must see
 * every update (user, n) for n in 1..count exactly once.
 */
import type { Admin } from "kafkajs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { kafkaClient as engineKafkaClient, kafkaConfig, lowLevelCluster } from "../../src/connectors/kafka/client.js";
import { crashEngine, resetCoordinator, resetSubtask } from "../support/crash.js";
import { type Engine, startEngine, waitFor } from "../support/engine.js";
import { createTopic, kafkaBrokers, kafkaClient, produceKeyed, readAll } from "../support/kafka.js";
import { Random } from "../support/random.js";
import { compareUpdates } from "../support/sinks-chaos.js";

const brokers = kafkaBrokers();

let engine: Engine | undefined;
afterEach(async () => {
  await engine?.dispose().catch(() => undefined);
  engine = undefined;
});

/** Deletes and creates the topics a test job uses. */
async function freshTopics(admin: Admin, topics: Record<string, number>): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const old = Object.keys(topics).filter((t) => existing.has(t));
  if (old.length > 0) {
    await admin.deleteTopics({ topics: old, timeout: 10_000 });
    await waitFor(async () => {
      const now = new Set(await admin.listTopics());
      return old.every((t) => !now.has(t));
    }, 20_000, "deleted topics");
  }
  for (const [t, n] of Object.entries(topics)) {
    let last: unknown;
    await waitFor(async () => {
      try {
        await createTopic(admin, t, n);
        return true;
      } catch (e) {
        last = e;
        // A try that timed out on a loaded machine may have created it (the next says "already exists"):
        // done once it is there with its partitions led.
        const meta = await admin.fetchTopicMetadata({ topics: [t] }).catch(() => null);
        const parts = meta?.topics.find((x) => x.name === t)?.partitions ?? [];
        return parts.length === n && parts.every((p) => p.leader >= 0);
      }
    }, 30_000, `topic ${t}`).catch((e) => {
      throw new Error(`${(e as Error).message}: ${String(last)}`);
    });
  }
}

/** The updates `{ user, n }` read from a topic, counted, checked as the sinks chaos test checks its outputs. */
function checkUpdates(values: (string | null)[], expected: Map<string, number>): string[] {
  const seen = new Map<string, number>();
  for (const v of values) {
    const r = JSON.parse(v!) as { user: string; n: number };
    seen.set(`${r.user}#${r.n}`, (seen.get(`${r.user}#${r.n}`) ?? 0) + 1);
  }
  return compareUpdates("kafka-out", seen, expected);
}

describe.skipIf(!brokers)("Kafka source and transactional sink", () => {
  let admin: Admin;
  beforeAll(async () => {
    admin = kafkaClient(brokers!).admin();
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.disconnect();
  });

  // The only test that writes kafka-out: the sink's commit markers are group offsets on that topic, and a
  // topic deleted and created again under the same name loses them (as it loses its records).
  // `FLOE_SEED=n npm run chaos:kafka` replays another fault schedule.
  it("stays exactly-once through user exceptions, object resets and process kills (100,000 records)", async () => {
    await freshTopics(admin, { "kafka-in": 4, "kafka-out": 3 });
    const random = new Random(Number(process.env.FLOE_SEED ?? 20261125));
    const bindings = { KAFKA_BROKERS: brokers! };
    engine = await startEngine({ testJobs: true, bindings });
    const start = await engine.api("/v1/jobs/kafka-count/start", { method: "POST", json: { config: { restart_strategy: { type: "fixed-delay", delay_ms: 20 } } } });
    expect(start.status, await start.clone().text()).toBe(200);
    const vertices = ((await start.json()) as { vertices: { id: string; parallelism: number }[] }).vertices;
    const subtasks = vertices.flatMap((v) => Array.from({ length: v.parallelism }, (_, i) => [v.id, i] as const));
    // Open transactions on kafka-out: the last stable offset (read_committed) is behind the high watermark.
    const views = [lowLevelCluster(engineKafkaClient(kafkaConfig({}, bindings, "test"))), lowLevelCluster(engineKafkaClient(kafkaConfig({ clientId: "floe-uncommitted" }, bindings, "test")), 0)];
    for (const v of views) {
      await v.connect();
      await v.addTargetTopic("kafka-out");
    }
    const latest = (v: (typeof views)[number]) => v.fetchTopicsOffset([{ topic: "kafka-out", partitions: [0, 1, 2].map((partition) => ({ partition })), fromBeginning: false }]);
    const openTransaction = async () => {
      const [[lso], [hwm]] = await Promise.all(views.map(latest));
      return lso.partitions.some((p) => Number(p.offset) < Number(hwm.partitions.find((h) => h.partition === p.partition)!.offset));
    };

    const expected = new Map<string, number>();
    const faults = { "user-exception": 0, "subtask-reset": 0, "coordinator-reset": 0, "process-kill": 0 };
    let midTransaction = 0;
    let failId = 0;
    const total = 100_000;
    for (let sent = 0; sent < total; ) {
      const n = Math.min(4_000, total - sent);
      const failAt = random.chance(0.3) ? random.int(n) : -1;
      const records = Array.from({ length: n }, (_, i) => {
        const user = `u${random.int(500)}`;
        expected.set(user, (expected.get(user) ?? 0) + 1);
        return { key: user, value: JSON.stringify(i === failAt ? { user, failOnce: `k${failId++}` } : { user }) };
      });
      if (failAt >= 0) faults["user-exception"]++;
      await produceKeyed(brokers!, "kafka-in", records, { partitions: 4 });
      sent += n;
      await new Promise((r) => setTimeout(r, random.int(150)));
      if (!random.chance(0.4)) continue;
      // Half the faults wait for a transaction the sink has open: the window Kafka transactions exist for.
      let open = false;
      if (random.chance(0.6)) {
        const until = Date.now() + 3_000;
        while (!(open = await openTransaction()) && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
      }
      const fault = random.pick(["subtask-reset", "subtask-reset", "coordinator-reset", "process-kill"] as const);
      faults[fault]++;
      if (open) midTransaction++;
      if (fault === "subtask-reset") {
        const [vertex, index] = random.pick(subtasks);
        await resetSubtask(engine, "kafka-count", vertex, index);
      } else if (fault === "coordinator-reset") {
        await resetCoordinator(engine, "kafka-count");
      } else {
        const dir = engine.persistDir;
        await crashEngine(engine);
        engine = await startEngine({ testJobs: true, bindings, persistDir: dir });
      }
    }
    let problems: string[] = [];
    let committed: { value: string | null }[] = [];
    await waitFor(async () => {
      committed = await readAll(brokers!, "kafka-out", { isolation: "read_committed", timeoutMs: 90_000 });
      problems = checkUpdates(committed.map((r) => r.value), expected);
      return problems.length === 0;
    }, 150_000, "the exact committed output").catch(async (e) => {
      const status = await (await engine!.api("/v1/jobs/kafka-count")).json().catch(() => null);
      const dupUser = /(u\d+) update/.exec(problems[0] ?? "")?.[1];
      if (dupUser) {
        const all = await readAll(brokers!, "kafka-out", { isolation: "read_committed" });
        const mine = all.filter((r) => r.key === dupUser);
        const twice = new Set(mine.map((r) => r.value).filter((v, i, xs) => xs.indexOf(v) !== i));
        console.log(mine.filter((r) => twice.has(r.value)).slice(0, 20).map((r) => `${r.partition}@${r.offset}:${r.value} cp${r.headers?.["floe-checkpoint"]}/s${r.headers?.["floe-subtask"]}`).join(" "));
      }
      throw new Error(`${(e as Error).message}; ${problems.join("; ")}; faults ${JSON.stringify(faults)}; job ${JSON.stringify(status)}`);
    });
    for (const v of views) await v.disconnect();
    expect(committed).toHaveLength(total);
    // A read_uncommitted reader also sees what transactions cut short by a fault left behind, aborted.
    const uncommitted = await readAll(brokers!, "kafka-out", { isolation: "read_uncommitted" });
    const status = (await (await engine.api("/v1/jobs/kafka-count")).json()) as { status: string; restarts: number };
    console.log(`kafka chaos: ${JSON.stringify(faults)}, ${midTransaction} while a transaction was open, ${status.restarts} restarts, ${uncommitted.length - committed.length} aborted records`);
    expect(status.status).toBe("RUNNING");
    expect(midTransaction).toBeGreaterThan(0);
    expect(uncommitted.length).toBeGreaterThan(committed.length);
  }, 400_000);

  it("refuses a transaction timeout that a checkpoint could outlast, and says why", async () => {
    engine = await startEngine({ testJobs: true, bindings: { KAFKA_BROKERS: brokers! } });
    // kafka-count's sink has transactionTimeoutMs 60,000: interval 200 + timeout 60,000 breaks the rule.
    const res = await engine.api("/v1/jobs/kafka-count/start", { method: "POST", json: { config: { checkpoint: { timeout_ms: 60_000 } } } });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("invalid_config");
    expect(body.error.message).toMatch(/kafka sink "kafka-out" \(topic kafka-out\): transaction\.timeout\.ms \(transactionTimeoutMs\) 60000 must exceed checkpoint\.interval_ms 200 \+ checkpoint\.timeout_ms 60000 = 60200/);
    expect(((await (await engine.api("/v1/jobs/kafka-count")).json()) as { status: string }).status).not.toBe("RUNNING");
    // Within the rule, the same job starts.
    const ok = await engine.api("/v1/jobs/kafka-count/start", { method: "POST", json: { config: { checkpoint: { timeout_ms: 59_000 } } } });
    expect(ok.status, await ok.clone().text()).toBe(200);
    await engine.api("/v1/jobs/kafka-count/cancel", { method: "POST", json: {} });
  });

  it("rewinds source offsets from a savepoint taken at another parallelism: nothing skipped, nothing counted twice", async () => {
    await freshTopics(admin, { "kafka-rs-in": 6 });
    const expected = new Map<string, number>();
    const produce = async (n: number, from: number) => {
      const records = Array.from({ length: n }, (_, i) => {
        const user = `r${(from + i) % 53}`;
        expected.set(user, (expected.get(user) ?? 0) + 1);
        return { key: user, value: JSON.stringify({ user }) };
      });
      await produceKeyed(brokers!, "kafka-rs-in", records, { partitions: 6 });
    };
    const counts = async () => {
      const res = await engine!.api("/v1/tables/kafka-rs-counts");
      return new Map(((await res.json()) as { rows: { key: string; value: number }[] }).rows.map((r) => [r.key, r.value]));
    };
    const exact = async () => {
      const rows = await counts();
      return rows.size === expected.size && [...expected].every(([k, v]) => rows.get(k) === v);
    };
    engine = await startEngine({ testJobs: true, bindings: { KAFKA_BROKERS: brokers! } });
    expect((await engine.api("/v1/jobs/kafka-rescale/start", { method: "POST", json: { parallelism: { "rs-in": 2 } } })).status).toBe(200);
    await produce(3_000, 0);
    // Stop with a savepoint while records are still arriving: the savepoint's offsets are mid-stream.
    const more = produce(3_000, 3_000);
    const stop = await engine.api("/v1/jobs/kafka-rescale/stop", { method: "POST", json: { savepoint: true } });
    expect(stop.status, await stop.clone().text()).toBe(200);
    const savepoint = ((await stop.json()) as { id: string }).id;
    await more;
    for (const parallelism of [3, 1]) {
      const res = await engine.api("/v1/jobs/kafka-rescale/start", { method: "POST", json: { fromSavepoint: savepoint, parallelism: { "rs-in": parallelism, "rs-count": parallelism } } });
      expect(res.status, await res.clone().text()).toBe(200);
      // New input changes every total the previous run left in the table.
      if (parallelism === 1) await produce(530, 7_000);
      await waitFor(exact, 60_000, `exact counts at source parallelism ${parallelism}`);
      if (parallelism === 3) {
        await produce(1_000, 6_000);
        await waitFor(exact, 60_000, "exact counts after more input");
        // Back to the savepoint: the records after it are read again, into state restored from before them.
        const cancel = await engine.api("/v1/jobs/kafka-rescale/cancel", { method: "POST", json: {} });
        expect(cancel.status).toBe(200);
      }
    }
    // Offsets of completed checkpoints also reach the monitoring group (never read back by floe).
    await waitFor(async () => {
      const [offsets] = await admin.fetchOffsets({ groupId: "floe-kafka-rescale-monitor", topics: ["kafka-rs-in"] });
      return offsets.partitions.reduce((n, p) => n + Math.max(0, Number(p.offset)), 0) === 7_530;
    }, 30_000, "the monitoring group's offsets");
  });

  it("with the at-least-once guarantee, produces at the barrier without transactions: every record at least once", async () => {
    await freshTopics(admin, { "kafka-alo-in": 2, "kafka-alo-out": 2 });
    const bindings = { KAFKA_BROKERS: brokers! };
    engine = await startEngine({ testJobs: true, bindings });
    expect((await engine.api("/v1/jobs/kafka-alo/start", { method: "POST", json: { config: { restart_strategy: { type: "fixed-delay", delay_ms: 20 } } } })).status).toBe(200);
    const users = Array.from({ length: 3_000 }, (_, i) => `a${i}`);
    await produceKeyed(brokers!, "kafka-alo-in", users.slice(0, 1_500).map((user) => ({ key: user, value: JSON.stringify({ user }) })), { partitions: 2 });
    // A reset of the sink's subtask midway: records after the last completed checkpoint are produced again.
    await new Promise((r) => setTimeout(r, 300));
    await resetSubtask(engine, "kafka-alo", "alo-in", 0);
    await produceKeyed(brokers!, "kafka-alo-in", users.slice(1_500).map((user) => ({ key: user, value: JSON.stringify({ user }) })), { partitions: 2 });
    let seen = new Map<string, number>();
    await waitFor(async () => {
      const out = await readAll(brokers!, "kafka-alo-out", { isolation: "read_committed" });
      seen = new Map();
      for (const r of out) seen.set(r.key!, (seen.get(r.key!) ?? 0) + 1);
      return users.every((u) => (seen.get(u) ?? 0) >= 1);
    }, 60_000, "every record in kafka-alo-out");
    // No transactions: what read_uncommitted sees is what read_committed sees.
    const uncommitted = await readAll(brokers!, "kafka-alo-out", { isolation: "read_uncommitted" });
    const committed = await readAll(brokers!, "kafka-alo-out", { isolation: "read_committed" });
    expect(uncommitted.length).toBe(committed.length);
    expect([...seen.keys()].every((k) => users.includes(k))).toBe(true);
    await engine.api("/v1/jobs/kafka-alo/cancel", { method: "POST", json: {} });
  });
});
