/**
 * The "floe" entry in Node (package.json's "node" condition): the same API
 * as src/index.ts, so that a test or a tool can import a Worker's jobs, and
 * even its Hono app, outside the Workers runtime (floe/testing's operator
 * harnesses, vitest in Node). Durable Objects exist only in the Workers
 * runtime (their base class comes from `cloudflare:workers`), so the
 * classes `createFloe` returns here refuse to be constructed; run the
 * Worker in workerd for them (floe/testing's `startEngine`, `wrangler dev`).
 */
import { type DurableObjectClass, type Floe, type FloeConfig, floeParts } from "./floe-config.js";

export * from "./public-api.js";
export type { DurableObjectClass, Floe, FloeConfig } from "./floe-config.js";

/** A class that says why it cannot be constructed here. */
function workerdOnly<T>(name: string): DurableObjectClass<T> {
  return class {
    constructor() {
      throw new Error(
        `floe's ${name} is a Durable Object: it runs in the Workers runtime (wrangler dev, wrangler deploy, or floe/testing's startEngine), not in Node`,
      );
    }
  } as unknown as DurableObjectClass<T>;
}

/** As in workerd (src/index.ts): the registry, the app and the Worker's fetch work; the Durable Object classes do not. */
export function createFloe(config: FloeConfig): Floe {
  return {
    ...floeParts(config),
    Coordinator: workerdOnly("Coordinator"),
    Subtask: workerdOnly("Subtask"),
    StreamPartition: workerdOnly("StreamPartition"),
    TablePartition: workerdOnly("TablePartition"),
  };
}
