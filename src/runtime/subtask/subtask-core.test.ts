import { describe, expect, it } from "vitest";
import { type DoSql, doSql } from "../../../test/support/do-sql.js";
import { resolveCheckpointConfig } from "../../api/checkpoint-options.js";
import { job } from "../../api/job.js";
import { valueState } from "../../api/state.js";
import { generatorSource } from "../../connectors/sources/generator-source.js";
import { buildPlan } from "../../graph/plan.js";
import type { StateEntry } from "../../state/keyed-state.js";
import { encodeEntries, writeSnapshot } from "../../state/snapshot-format.js";
import type { RunImage } from "../../storage/run-image.js";
import type { RestoreSpec, SubtaskDeployment } from "../messages.js";
import { JobRegistry } from "../registry.js";
import type { StoredObject, SubtaskPorts } from "./ports.js";
import { DEPLOYED_KEEP_ALIVE_MS, RUNNING_KEEP_ALIVE_MS, SubtaskCore } from "./subtask-core.js";
import type { TaskHost } from "./task.js";

const count = valueState<number>("count");
const definition = job("t", { maxParallelism: 4 });
definition
  .source(generatorSource({ count: 0, make: () => ({ key: "a" }) }), { uid: "src" })
  .keyBy((r) => r.key)
  .process({ state: [count], processElement() {} }, { uid: "proc" });
const plan = buildPlan(definition);

const FILE = "chk-3/proc/0.state";
const restore: RestoreSpec = {
  checkpointId: 3,
  keyed: { proc: [{ files: [FILE], keyGroups: { start: 0, end: 3 }, stateBytes: 1, checkpointedBytes: 1, entries: 1 }] },
  sources: {},
};

function deployment(attempt: number, from: RestoreSpec | null): SubtaskDeployment {
  return { job: "t", vertex: "proc", index: 0, attempt, plan, checkpoint: resolveCheckpointConfig(), runId: 1, keyGroupRange: { start: 0, end: 3 }, restore: from };
}

/** A state file of checkpoint 3 holding one key. */
function stateFile(): StoredObject {
  const text = writeSnapshot({ uid: "proc", kind: "full", checkpointId: 3 }, encodeEntries([{ state: "count", kind: "value", key: '"a"', keyGroup: 1, value: 5 }]));
  return {
    body: (async function* () {
      yield new TextEncoder().encode(text);
    })(),
    text: async () => text,
    arrayBuffer: async () => new TextEncoder().encode(text).buffer as ArrayBuffer,
  };
}

/** Ports over one database, with timers run by hand and R2 reads answered by hand. */
function harness(sql: DoSql = doSql()) {
  const timers: { fn: () => void; ms: number; canceled: boolean }[] = [];
  const reads: { key: string; answer: (o: StoredObject | null) => void }[] = [];
  const alarms: (number | null)[] = [];
  const ports: SubtaskPorts = {
    registry: new JobRegistry([definition]),
    timers: {
      now: () => 1_000,
      sleep: () => Promise.resolve(),
      setTimeout: (fn, ms) => {
        const t = { fn, ms, canceled: false };
        timers.push(t);
        return { cancel: () => void (t.canceled = true) };
      },
    },
    alarm: { set: (atMs) => void alarms.push(atMs), delete: () => void alarms.push(null) },
    sql,
    bucket: {
      put: async () => undefined,
      get: (key) => new Promise((answer) => reads.push({ key, answer })),
      delete: async () => undefined,
      createMultipartUpload: () => Promise.reject(new Error("no multipart uploads in this test")),
    },
    stubs: {
      subtask: () => {
        throw new Error("no channels in this test");
      },
      coordinator: () => {
        throw new Error("no reports in this test");
      },
    },
    env: {},
  };
  /** Runs due zero-delay timers (the image merge) until none is left. */
  const runZeroTimers = () => {
    for (let t = timers.find((x) => !x.canceled && x.ms === 0); t; t = timers.find((x) => !x.canceled && x.ms === 0)) {
      t.canceled = true;
      t.fn();
    }
  };
  const settle = () => new Promise((r) => setImmediate(r));
  return { ports, sql, timers, reads, alarms, runZeroTimers, settle };
}

/** The core's local image. */
function imageOf(core: SubtaskCore): RunImage {
  return (core as unknown as { image: RunImage }).image;
}

/** A checkpoint's write-back as the snapshotter does it through the task's host: gathered, sealed, marked. */
async function writeBack(core: SubtaskCore, checkpointId: number, entries: StateEntry[], keys: number, attempt = 1): Promise<void> {
  const task = (core as unknown as { task: { host: TaskHost; deployment: SubtaskDeployment } }).task;
  expect(task.deployment.attempt).toBe(attempt);
  const writer = task.host.snapshots.writeImage(checkpointId);
  writer.add("proc", encodeEntries(entries));
  await writer.seal(async () => undefined);
  task.host.snapshots.markImage(checkpointId, { proc: keys });
}

describe("SubtaskCore", () => {
  it("fences off an older attempt whose restore was still reading R2 when a newer deploy arrived", async () => {
    const h = harness();
    const core = new SubtaskCore(h.ports);
    const older = core.deploy(deployment(1, restore));
    await h.settle();
    expect(h.reads.map((r) => r.key)).toEqual([FILE]);
    const newer = core.deploy(deployment(2, null));
    h.reads[0].answer(stateFile());
    expect(await older).toEqual({ ok: false, message: "attempt 1 was superseded by 2" });
    expect(await newer).toEqual({ ok: true });
    expect(core.ping(1)).toBe("lost");
    expect(core.ping(2)).toBe("running");
  });

  it("restores from R2 into the image as runs of the checkpoint, and restores the same checkpoint locally after a restart", async () => {
    const h = harness();
    const first = new SubtaskCore(h.ports);
    const deployed = first.deploy(deployment(1, restore));
    await h.settle();
    h.reads[0].answer(stateFile());
    expect(await deployed).toEqual({ ok: true });
    expect(h.sql.exec(`SELECT op, epoch FROM state_runs WHERE live = 1`).toArray()).toEqual([{ op: "proc", epoch: 3 }]);
    expect(h.sql.exec(`SELECT op, checkpoint_id, keys FROM image_checkpoints`).toArray()).toEqual([{ op: "proc", checkpoint_id: 3, keys: 1 }]);
    expect(imageOf(first).backing("proc", 1).get("count", '"a"', 1)).toMatchObject({ kind: "value", value: 5 });

    // A new incarnation over the same storage: the image holds checkpoint 3, so nothing is read from R2.
    const again = harness(h.sql);
    expect(await new SubtaskCore(again.ports).deploy(deployment(2, restore))).toEqual({ ok: true });
    expect(again.reads).toEqual([]);
  });

  it("restores a checkpoint older than SQLite's state by dropping the runs written after it; once a compaction merged across it, from R2", async () => {
    const h = harness();
    const core = new SubtaskCore(h.ports);
    const deployed = core.deploy(deployment(1, restore));
    await h.settle();
    h.reads[0].answer(stateFile());
    expect(await deployed).toEqual({ ok: true });
    // Checkpoint 4's write-back: "a" is 6 now, and "b" is new.
    await writeBack(core, 4, [{ state: "count", kind: "value", key: '"a"', keyGroup: 1, value: 6 }, { state: "count", kind: "value", key: '"b"', keyGroup: 2, value: 1 }], 2);
    expect(imageOf(core).backing("proc", 2).get("count", '"a"', 1)).toMatchObject({ value: 6 });

    // A failover to checkpoint 3 (4 never completed): local, without "b", and "a" back at 5.
    const again = harness(h.sql);
    const second = new SubtaskCore(again.ports);
    expect(await second.deploy(deployment(2, restore))).toEqual({ ok: true });
    expect(again.reads).toEqual([]);
    const image = imageOf(second);
    expect(image.backing("proc", 1).get("count", '"a"', 1)).toMatchObject({ value: 5 });
    expect(image.backing("proc", 1).get("count", '"b"', 2)).toBeUndefined();

    // Checkpoints 5 and 6 complete, and compaction merges runs 3..6 into one: checkpoint 5 is out of reach.
    await writeBack(second, 5, [{ state: "count", kind: "value", key: '"a"', keyGroup: 1, value: 7 }], 1, 2);
    await writeBack(second, 6, [{ state: "count", kind: "value", key: '"a"', keyGroup: 1, value: 8 }], 1, 2);
    await second.notifyCheckpointComplete(2, 6);
    await image.idle();
    expect(image.runs("proc").states.map((r) => [r.firstEpoch, r.epoch])).toEqual([[3, 6]]);
    const checkpoint5: RestoreSpec = { ...restore, checkpointId: 5 };
    const third = harness(h.sql);
    const deploying = new SubtaskCore(third.ports).deploy(deployment(3, checkpoint5));
    await third.settle();
    expect(third.reads.map((r) => r.key)).toEqual([FILE]);
    third.reads[0].answer(stateFile());
    expect(await deploying).toEqual({ ok: true });
  });

  it("a checkpoint's write-back keeps each entry's kind: an entry turns value-ttl when a newer job version gives its state a TTL", async () => {
    const h = harness();
    const core = new SubtaskCore(h.ports);
    const deployed = core.deploy(deployment(1, restore));
    await h.settle();
    h.reads[0].answer(stateFile());
    expect(await deployed).toEqual({ ok: true });
    expect(imageOf(core).backing("proc", 1).get("count", '"a"', 1)).toMatchObject({ kind: "value", value: 5 });
    // What the snapshotter hands the image at a checkpoint once the restored entry was read under a TTL.
    await writeBack(core, 4, [{ state: "count", kind: "value-ttl", key: '"a"', keyGroup: 1, value: [5, 1_000] }], 1);
    expect(imageOf(core).backing("proc", 1).get("count", '"a"', 1)).toMatchObject({ kind: "value-ttl", value: [5, 1_000] });
  });

  it("keeps a deployed task in memory until it starts, then while heartbeats come, and deletes the alarm when canceled", async () => {
    const h = harness();
    const core = new SubtaskCore(h.ports);
    expect(await core.deploy(deployment(1, null))).toEqual({ ok: true });
    const keepAlive = h.timers.find((t) => t.ms === DEPLOYED_KEEP_ALIVE_MS);
    expect(keepAlive?.canceled).toBe(false);
    await core.start(1);
    expect(keepAlive?.canceled).toBe(true);
    // Running, it stays in memory while heartbeats come: each renews a keep-alive.
    const running = () => h.timers.filter((t) => t.ms === RUNNING_KEEP_ALIVE_MS && !t.canceled);
    expect(running()).toHaveLength(1);
    const first = running()[0];
    expect(core.ping(1)).toBe("running");
    expect(first?.canceled).toBe(true);
    expect(running()).toHaveLength(1);
    await core.cancel(1);
    expect(running()).toHaveLength(0);
    expect(core.ping(1)).toBe("lost");
    expect(h.alarms).toEqual([null]);
  });

  it("asks beforeDeploy at every attempt: a refusal fails that deploy with its message and drops the running task; the next attempt deploys", async () => {
    const h = harness();
    const asked: number[] = [];
    let ready = true;
    const core = new SubtaskCore({
      ...h.ports,
      beforeDeploy: async (d) => {
        asked.push(d.attempt);
        if (!ready) throw new Error("needs the variable READY");
      },
    });
    expect(await core.deploy(deployment(1, null))).toEqual({ ok: true });
    expect(core.ping(1)).toBe("running");
    ready = false;
    expect(await core.deploy(deployment(2, null))).toEqual({ ok: false, message: "subtask proc/0: needs the variable READY" });
    expect(core.ping(1)).toBe("lost");
    expect(core.ping(2)).toBe("lost");
    ready = true;
    expect(await core.deploy(deployment(3, null))).toEqual({ ok: true });
    expect(core.ping(3)).toBe("running");
    expect(asked).toEqual([1, 2, 3]);
  });
});
