/**
 * A local floe engine whose workerd runs on one CPU, for `--cores 1`.
 *
 * Miniflare spawns workerd from MINIFLARE_WORKERD_PATH when it is set, so
 * the harness points it, for the start of this engine only, at a wrapper
 * script that execs workerd under taskset (pinning.ts). The process is
 * pinned from its first instruction and every thread it starts inherits
 * the affinity; a monitor checks from outside, in /proc, once a second.
 */
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Engine, startEngine } from "../../test/support/engine.js";
import { workerdWrapper } from "./pinning.js";
import { PinningMonitor, descendantsNamed } from "./proc.js";

/** Where and with what to pin. */
export interface Pin {
  cpu: number;
  taskset: string;
}

/** The workerd binary Miniflare would start (its own dependency, or MINIFLARE_WORKERD_PATH). */
function workerdPath(): string {
  if (process.env.MINIFLARE_WORKERD_PATH) return process.env.MINIFLARE_WORKERD_PATH;
  const fromMiniflare = createRequire(createRequire(import.meta.url).resolve("miniflare"));
  return (fromMiniflare("workerd") as { default: string }).default;
}

/**
 * Starts the engine; with `pin`, its workerd on that CPU only, watched by
 * the returned monitor (stop it while the engine still runs).
 */
export async function startBenchEngine(options: Parameters<typeof startEngine>[0], pin?: Pin): Promise<{ engine: Engine; monitor?: PinningMonitor }> {
  if (!pin) return { engine: await startEngine(options) };
  const dir = join(tmpdir(), `floe-bench-pin-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const wrapper = join(dir, `workerd-cpu${pin.cpu}`);
  writeFileSync(wrapper, workerdWrapper(pin.taskset, pin.cpu, workerdPath()));
  chmodSync(wrapper, 0o755);
  const before = process.env.MINIFLARE_WORKERD_PATH;
  process.env.MINIFLARE_WORKERD_PATH = wrapper;
  let engine: Engine;
  try {
    engine = await startEngine(options);
  } finally {
    if (before === undefined) delete process.env.MINIFLARE_WORKERD_PATH;
    else process.env.MINIFLARE_WORKERD_PATH = before;
  }
  const monitor = new PinningMonitor(pin.cpu, () => descendantsNamed("workerd"));
  monitor.check();
  return { engine, monitor };
}
