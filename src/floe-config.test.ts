import { describe, expect, it } from "vitest";
import { job } from "./api/job.js";
import { httpSource } from "./connectors/sources/http-source.js";
import { tableSink } from "./connectors/sinks/table-sink.js";
import { createFloe } from "./index.node.js";

function counting(name: string) {
  const j = job(name);
  j.source(httpSource(`${name}-in`, { partitions: 1 }), { uid: "in" }).sink(tableSink(`${name}-out`), { uid: "out" });
  return j;
}

describe("createFloe refuses a config that cannot work, naming the problem", () => {
  it("two jobs of one name", () => {
    expect(() => createFloe({ jobs: [counting("a"), counting("a")] })).toThrow(/two jobs are named "a"/);
  });

  it("a job without a source", () => {
    expect(() => createFloe({ jobs: [counting("a"), job("empty")] })).toThrow(/job "empty" has no source/);
  });

  it("a base path without a leading slash, or with what a path cannot hold", () => {
    expect(() => createFloe({ jobs: [counting("a")], basePath: "floe" })).toThrow(/basePath must start with "\/", e\.g\. "\/floe"; got "floe"/);
    expect(() => createFloe({ jobs: [counting("a")], basePath: "/a b" })).toThrow(/basePath must be/);
  });

  it("jobs that are not jobs", () => {
    expect(() => createFloe({ jobs: counting("a") as never })).toThrow(/"jobs" must be an array/);
    expect(() => createFloe({ jobs: [{ name: "a" } as never] })).toThrow(/jobs\[0\] is not a job/);
  });

  it("and takes a good one, its Durable Object classes refusing construction outside workerd", () => {
    const floe = createFloe({ jobs: [counting("a"), counting("b")], basePath: "/floe" });
    expect(floe.registry.jobNames()).toEqual(["a", "b"]);
    expect(() => new floe.Coordinator({} as DurableObjectState, {} as never)).toThrow(/runs in the Workers runtime/);
  });
});
