/**
 * The job control API: list, status, start, cancel, metrics. Thin: it
 * checks input and asks the job's Coordinator.
 */
import { zValidator } from "@hono/zod-validator";
import { Hono } from "hono";
import { z } from "zod";
import { FloeError, type Result, unwrap } from "../errors.js";
import type { JobStatus, SavepointAction, SavepointFormat } from "../runtime/coordinator/coordinator.js";
import type { FloeEnv } from "../runtime/env.js";
import { coordinatorName } from "../runtime/names.js";
import type { JobRegistry } from "../runtime/registry.js";
import { parseStartingOffsets } from "../storage/stream-options.js";
import { metricsBody } from "./metrics.js";
import { requireJsonBody, validationHook } from "./validation.js";

const parallelism = z.union([z.number().int().min(1), z.record(z.string(), z.number().int().min(1))]);

/** Body of `POST /v1/jobs/:job/start`. */
export const startBody = z
  .object({
    parallelism: parallelism.optional(),
    fromSavepoint: z.string().optional(),
    fromCheckpoint: z.union([z.string(), z.number()]).optional(),
    allowNonRestoredState: z.boolean().optional(),
    config: z.record(z.string(), z.unknown()).optional(),
    /** `"earliest"`, `"latest"` or `{ "timestamp": ms }`: checked by {@link parseStartingOffsets} for its own error code. */
    starting_offsets: z.unknown().optional(),
  })
  .strict();

/** Body of `POST /v1/jobs/:job/stop`. */
const format = z.enum(["canonical", "native"]).optional();
export const stopBody = z.object({ savepoint: z.boolean().optional(), drain: z.boolean().optional(), format }).strict();
/** Body of `POST /v1/jobs/:job/cancel`. */
export const cancelBody = z.object({ savepoint: z.boolean().optional(), format }).strict();
/** Body of `POST /v1/jobs/:job/savepoints`. */
export const savepointBody = z.object({ format }).strict();

/** How long savepoint requests wait for completion before answering with a trigger id to poll. */
export const SAVEPOINT_WAIT_MS = 60_000;

async function waitForStatus(stub: { status(job: string): Promise<Result<JobStatus>> }, job: string, wanted: string[]): Promise<JobStatus> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const s = unwrap(await stub.status(job));
    if (wanted.includes(s.status) || Date.now() > deadline) return s;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The job routes, mounted at /v1/jobs. */
export function jobRoutes(registry: JobRegistry) {
  const app = new Hono<{ Bindings: FloeEnv }>();
  const coordinator = (env: FloeEnv, job: string) => {
    if (!registry.job(job)) {
      throw new FloeError("job_not_found", `no job named "${job}"; jobs are: ${registry.jobNames().join(", ")}`, 404);
    }
    return env.COORDINATOR.get(env.COORDINATOR.idFromName(coordinatorName(job)));
  };

  app.get("/", async (c) => {
    const jobs = await Promise.all(registry.jobNames().map(async (name) => unwrap(await coordinator(c.env, name).status(name))));
    return c.json({ jobs });
  });

  app.get("/:job", async (c) => {
    const job = c.req.param("job");
    return c.json(unwrap(await coordinator(c.env, job).status(job)));
  });

  app.post("/:job/start", requireJsonBody, zValidator("json", startBody, validationHook), async (c) => {
    const job = c.req.param("job");
    const stub = coordinator(c.env, job);
    const body = c.req.valid("json");
    const fromCheckpoint = body.fromCheckpoint === undefined ? undefined : Number(body.fromCheckpoint);
    if (fromCheckpoint !== undefined && (!Number.isInteger(fromCheckpoint) || fromCheckpoint < 1)) {
      throw new FloeError("invalid_request", "fromCheckpoint is a checkpoint id: a positive integer");
    }
    return c.json(
      unwrap(
        await stub.start(job, {
          parallelism: body.parallelism,
          config: body.config,
          fromSavepoint: body.fromSavepoint,
          fromCheckpoint,
          allowNonRestoredState: body.allowNonRestoredState,
          starting_offsets: body.starting_offsets === undefined ? undefined : parseStartingOffsets(body.starting_offsets, Date.now()),
        }),
      ),
    );
  });

  /** Triggers a savepoint and waits for it (up to `SAVEPOINT_WAIT_MS`), as Flink's REST API can. */
  const savepoint = async (env: FloeEnv, job: string, action: SavepointAction, format: SavepointFormat = "canonical", drain = false) => {
    const stub = coordinator(env, job);
    const { trigger_id } = unwrap(await stub.triggerSavepoint(job, action, format, drain));
    const deadline = Date.now() + SAVEPOINT_WAIT_MS;
    for (;;) {
      const s = unwrap(await stub.savepointStatus(job, trigger_id));
      if (s.status === "COMPLETED") return { done: true as const, status: s };
      if (s.status === "FAILED") throw new FloeError("savepoint_failed", `savepoint ${trigger_id} failed: ${s.failure_message}`, 500);
      if (Date.now() > deadline) return { done: false as const, status: s };
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  app.post("/:job/savepoints", requireJsonBody, zValidator("json", savepointBody, validationHook), async (c) => {
    const job = c.req.param("job");
    const r = await savepoint(c.env, job, "keep", c.req.valid("json").format);
    if (!r.done) return c.json({ trigger_id: r.status.trigger_id }, 202);
    return c.json({ id: r.status.id, location: r.status.location, trigger_id: r.status.trigger_id });
  });

  app.get("/:job/savepoints/:trigger", async (c) => {
    const job = c.req.param("job");
    return c.json(unwrap(await coordinator(c.env, job).savepointStatus(job, c.req.param("trigger"))));
  });

  app.post("/:job/stop", requireJsonBody, zValidator("json", stopBody, validationHook), async (c) => {
    const job = c.req.param("job");
    const body = c.req.valid("json");
    if (body.savepoint === false) {
      throw new FloeError("invalid_request", "stop always takes a final savepoint ({ savepoint: true }); to end a job without one, cancel it");
    }
    const r = await savepoint(c.env, job, "stop", body.format, body.drain ?? false);
    if (!r.done) return c.json({ trigger_id: r.status.trigger_id }, 202);
    const status = await waitForStatus(coordinator(c.env, job), job, ["FINISHED", "CANCELED", "FAILED", "RESTARTING"]);
    return c.json({ id: r.status.id, location: r.status.location, drain: body.drain ?? false, status });
  });

  app.post("/:job/cancel", requireJsonBody, zValidator("json", cancelBody, validationHook), async (c) => {
    const job = c.req.param("job");
    const body = c.req.valid("json");
    if (!body.savepoint) return c.json(unwrap(await coordinator(c.env, job).cancel(job)));
    const r = await savepoint(c.env, job, "cancel", body.format);
    if (!r.done) return c.json({ trigger_id: r.status.trigger_id }, 202);
    const status = await waitForStatus(coordinator(c.env, job), job, ["CANCELED", "FINISHED", "FAILED", "RESTARTING"]);
    return c.json({ id: r.status.id, location: r.status.location, status });
  });

  app.post("/:job/checkpoints", async (c) => {
    const job = c.req.param("job");
    return c.json(unwrap(await coordinator(c.env, job).triggerCheckpointNow(job)), 202);
  });

  app.get("/:job/checkpoints", async (c) => {
    const job = c.req.param("job");
    return c.json(unwrap(await coordinator(c.env, job).checkpointOverview(job)));
  });

  app.get("/:job/checkpoints/:id", async (c) => {
    const job = c.req.param("job");
    const id = Number(c.req.param("id"));
    if (!Number.isInteger(id) || id < 1) throw new FloeError("invalid_request", "a checkpoint id is a positive integer");
    return c.json(unwrap(await coordinator(c.env, job).checkpointDetail(job, id)));
  });

  app.get("/:job/metrics", async (c) => {
    const job = c.req.param("job");
    const m = unwrap(await coordinator(c.env, job).metrics(job));
    return c.json(metricsBody(job, m.subtasks, m.runningSinceMs, Date.now()));
  });

  return app;
}
