/**
 * State for the run store's tests: two states ("a", a value; "b", a map)
 * written in two epochs over random keys, the second overwriting some
 * and deleting others, with the model of what they make.
 */
import { hashKey } from "../../src/graph/key-groups.js";
import type { RunInfo, RunStore } from "../../src/state/runs/run-store.js";
import { Random } from "./random.js";

export interface TwoEpochs {
  readonly seed: number;
  /** Writes per epoch, over keys `key-0 … key-<keys - 1>`. */
  readonly writes: number;
  readonly keys: number;
  /** The chance that a write of the second epoch is a deletion. */
  readonly deletes: number;
  /** Key groups (the keys' hash modulo this). */
  readonly maxParallelism: number;
  /** The value of write `i` of `epoch` to key `k`'s map state. */
  readonly mapValue: (k: string, epoch: number, i: number) => unknown;
}

/** Writes the two epochs as one run each (`written` gets each); answers the model, `<state>/<key>` → value. */
export async function writeTwoEpochs(store: RunStore, o: TwoEpochs, written: (run: RunInfo) => void = () => {}): Promise<Map<string, unknown>> {
  const a = store.stateId("a", "value");
  const b = store.stateId("b", "map");
  const rng = new Random(o.seed);
  const model = new Map<string, unknown>();
  for (let epoch = 1; epoch <= 2; epoch++) {
    const batch = store.batch();
    for (let i = 0; i < o.writes; i++) {
      const k = `key-${rng.int(o.keys)}`;
      const h = hashKey(k);
      const s = rng.chance(0.5) ? a : b;
      const name = s === a ? "a" : "b";
      if (epoch === 2 && rng.chance(o.deletes)) {
        batch.delete(s, h % o.maxParallelism, h, k);
        model.delete(`${name}/${k}`);
      } else {
        const v = s === a ? i : o.mapValue(k, epoch, i);
        batch.put(s, h % o.maxParallelism, h, k, v);
        model.set(`${name}/${k}`, v);
      }
    }
    const run = await store.writeRun(batch, epoch, async () => {});
    if (run) written(run);
  }
  return model;
}

/** The parts of a file (an export) as one array. */
export function concat(parts: Iterable<Uint8Array>): Uint8Array {
  const list = [...parts];
  const out = new Uint8Array(list.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of list) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
