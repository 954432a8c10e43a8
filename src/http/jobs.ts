/**
 * The job control API: list, status, start, cancel, metrics. Thin: it
 * checks input and asks the job's Coordinator.
 */
import { zValidator } from "@hono/zod-validator";
import { Hono } from "hono";
import { z } from "zod";
import { FloeError, unwrap } from "../errors.js";
import type { FloeEnv } from "../runtime/env.js";
import { coordinatorName } from "../runtime/names.js";
import type { JobRegistry } from "../runtime/registry.js";
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
  })
  .strict();

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
    if (body.fromSavepoint !== undefined || body.fromCheckpoint !== undefined) {
      throw new FloeError("unsupported", "starting from a savepoint or checkpoint is not available in this version of floe", 400);
    }
    return c.json(unwrap(await stub.start(job, { parallelism: body.parallelism, config: body.config })));
  });

  app.post("/:job/cancel", async (c) => {
    const job = c.req.param("job");
    return c.json(unwrap(await coordinator(c.env, job).cancel(job)));
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
