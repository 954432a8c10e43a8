/**
 * The engines one test file starts, disposed after each test: `start`
 * starts one (over `persistDir` to restart over the same state), `crash`
 * SIGKILLs one's runtime and starts a new one over its state.
 */
import { afterEach } from "vitest";
import { crashEngine } from "./crash.js";
import { type Engine, startEngine, waitFor } from "./engine.js";

export function engineSet(options: { testJobs?: boolean } = { testJobs: true }) {
  let engines: Engine[] = [];
  afterEach(async () => {
    for (const e of engines) await e.dispose().catch(() => undefined);
    engines = [];
  });
  const start = async (persistDir?: string): Promise<Engine> => {
    const e = await startEngine({ testJobs: options.testJobs, persistDir });
    engines.push(e);
    return e;
  };
  return {
    start,
    /** SIGKILLs `engine`'s runtime and starts the engine again over its state. */
    async crash(engine: Engine): Promise<Engine> {
      await crashEngine(engine);
      engines = engines.filter((e) => e !== engine);
      return start(engine.persistDir);
    },
  };
}

/** Waits until job `job` checkpointed past every record of `stream`: each went through the job before what is sent next. */
export async function caughtUp(engine: Engine, stream: string, job: string): Promise<void> {
  await waitFor(async () => {
    const s = (await (await engine.api(`/v1/streams/${stream}`)).json()) as { partitions: { next_offset: number; jobs: { job: string; lag: number; active: boolean }[] }[] };
    return s.partitions.every((p) => p.next_offset === 0 || p.jobs.some((j) => j.job === job && j.active && j.lag === 0));
  }, 30_000, `${job} checkpointed past ${stream}`);
}
