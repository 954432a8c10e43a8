/**
 * A short in-process measurement of the keyed-state memory budget
 * (docs/state-backend.md): the real KeyedStateBackend, RunImage (on
 * node:sqlite under Durable Object limits) and KeyedSnapshotter, without
 * the Workers runtime, batches or RPC.
 *
 *   npx tsx scripts/measure-state-budget.ts [keys] [records]
 *
 * 1. The hot path: a keyed count over 10,000 keys (all fit) without a
 *    budget and with one that never evicts: what the CLOCK's reference
 *    bit costs per access.
 * 2. A keyed count over `keys` keys (default 200,000, ≈ 19 MB of entries)
 *    with incremental checkpoints every 100,000 records written back to
 *    the image as runs, compacted after each checkpoint as the Subtask
 *    does in the background: all in memory vs a 2 MiB budget (keys ≫
 *    budget, uniform access, so most accesses read back from SQLite).
 */
import { valueState } from "../src/api/state.js";
import { KeyedStateBackend } from "../src/state/keyed-state.js";
import { KeyedSnapshotter, type SnapshotStore } from "../src/state/snapshotter.js";
import { RunImage } from "../src/storage/run-image.js";
import { doSql } from "../test/support/do-sql.js";

const count = valueState<number>("count");
const RANGE = { start: 0, end: 127 };

function setup(budgetBytes: number | undefined) {
  const image = new RunImage(doSql(), { pause: async () => undefined });
  // The Subtask's block cache under the default 16 MiB budget; here a quarter of this budget (at least 1 MiB).
  image.setCacheBytes(Math.max(1 << 20, (budgetBytes ?? 16 << 20) / 4));
  image.resume(0);
  const store: SnapshotStore = {
    fileKey: (uid, id) => `chk-${id}/${uid}`,
    savepointFileKey: (uid, id) => `sp-${id}/${uid}`,
    put: async () => undefined,
    writeImage: (id) => image.begin(id),
    markImage: (id, keys) => {
      if (id === null) return;
      image.mark(id, RANGE, keys ?? {});
      // Every checkpoint completes at once here: compaction (in the background in a Subtask) is counted in.
      image.kick(id);
    },
    pause: async () => undefined,
  };
  const snapshotter = new KeyedSnapshotter(store, { incremental: true, fullEvery: 1_000_000, localRecovery: true }, RANGE);
  const b = new KeyedStateBackend(128, "op", { now: () => 0 });
  if (budgetBytes !== undefined) b.useBudget(budgetBytes, image.backing("op", 0));
  return { b, snapshotter, image };
}

/** Runs `records` increments over `keys` keys (a fixed pseudo-random sequence), checkpointing every `every`; events per CPU second. */
async function keyedCount(budgetBytes: number | undefined, keys: number, records: number, every: number) {
  const { b, snapshotter, image } = setup(budgetBytes);
  const names = Array.from({ length: keys }, (_, i) => `user-${i}`);
  let x = 12345;
  let cp = 0;
  // CPU time of this process, so that other sessions on the machine count less than in wall time.
  const c0 = process.cpuUsage();
  for (let i = 0; i < records; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b.setCurrentKey(names[(x >>> 8) % keys]);
    const s = b.getState(count);
    s.update((s.value() ?? 0) + 1);
    if (every > 0 && i % every === every - 1) {
      await snapshotter.upload(snapshotter.prepare(++cp, new Map([["op", b]])));
      await image.idle();
    }
  }
  const used = process.cpuUsage(c0);
  const ms = (used.user + used.system) / 1000;
  return { eventsPerS: Math.round(records / (ms / 1000)), ms: Math.round(ms), bytes: b.bytesInMemory, evicted: b.entriesEvicted, readbacks: b.readbacks, runs: image.runs("op").states.length };
}

const keys = Number(process.argv[2] ?? 200_000);
const records = Number(process.argv[3] ?? 1_000_000);

// Warm-up, then the two hot-path cases alternately, best of 7 each: the machine is shared.
await keyedCount(undefined, 10_000, 1_000_000, 0);
let plain = 0;
let budgeted = 0;
for (let i = 0; i < 7; i++) {
  plain = Math.max(plain, (await keyedCount(undefined, 10_000, 3_000_000, 0)).eventsPerS);
  budgeted = Math.max(budgeted, (await keyedCount(1 << 30, 10_000, 3_000_000, 0)).eventsPerS);
}
console.log("hot path, 10,000 keys, 3,000,000 records, no checkpoints (events per CPU second, best of 7)");
console.log(`  no budget ${plain}; budget that never evicts ${budgeted}; ${(1e9 / budgeted - 1e9 / plain).toFixed(1)} ns per record more`);
console.log(`keyed count, ${keys} keys, ${records} records, checkpoint every 100,000`);
console.log("  all in memory    ", await keyedCount(undefined, keys, records, 100_000));
console.log("  budget 2 MiB     ", await keyedCount(2 << 20, keys, records, 100_000));
