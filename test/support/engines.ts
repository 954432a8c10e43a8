/**
 * The engines one test file starts, disposed after each test: `start`
 * starts one (over `persistDir` to restart over the same state), `crash`
 * SIGKILLs one's runtime and starts it again over its state.
 */
import { afterEach } from "vitest";
import { type Engine, startEngine } from "./engine.js";

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
    /** SIGKILLs `engine`'s runtime and starts the engine again over its state; resolves it (the same engine, at a new URL). */
    async crash(engine: Engine): Promise<Engine> {
      await engine.crash();
      return engine;
    },
  };
}

/** Waits until job `job` checkpointed past every record of `stream`: each went through the job before what is sent next. */
export async function caughtUp(engine: Engine, stream: string, job: string): Promise<void> {
  await engine.caughtUp(job, [stream]);
}
