import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "./floe.js";

/** Runs the floe command; resolves its exit code and output. */
async function floe(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l), env: {}, stdin: process.stdin });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

const root = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string; devDependencies: Record<string, string> };

describe("floe init", () => {
  it("writes a ready project: package.json on floe and Node 22, wrangler.toml with the objects, migration and buckets, a job, its tests, a README", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "floe-init-")), "My Clicks");
    const r = await floe("init", dir);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/created my-clicks in .*\(floe /);
    expect(r.out).toContain("npm install && npm test");

    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    expect(pkg).toMatchObject({ name: "my-clicks", private: true, type: "module", dependencies: { floe: `^${root.version}` } });
    expect(pkg.devDependencies.node).toBe(root.devDependencies.node);
    expect(pkg.devDependencies.wrangler).toBe(root.devDependencies.wrangler);
    expect(pkg.devDependencies.miniflare).toBe(root.devDependencies.miniflare);
    expect(Object.keys(pkg.scripts)).toEqual(["start", "test", "deploy"]);

    const toml = readFileSync(join(dir, "wrangler.toml"), "utf8");
    expect(toml).toContain('name = "my-clicks"');
    for (const c of ["Coordinator", "Subtask", "StreamPartition", "TablePartition"]) expect(toml).toContain(`class_name = "${c}"`);
    expect(toml).toContain('new_sqlite_classes = ["Coordinator", "Subtask", "StreamPartition", "TablePartition"]');
    expect(toml).toContain('bucket_name = "my-clicks-checkpoints"');
    expect(toml).not.toContain("{{");

    for (const f of [".gitignore", ".dev.vars.example", "tsconfig.json", "vitest.config.ts", "scripts/dev.mjs", "src/index.ts", "src/jobs/clicks.ts", "test/clicks.test.ts", "test/clicks-engine.test.ts", "README.md"]) {
      expect(existsSync(join(dir, f)), f).toBe(true);
    }
    expect(readFileSync(join(dir, ".dev.vars.example"), "utf8")).toMatch(/^FLOE_ADMIN_TOKEN=/m);
    const readme = readFileSync(join(dir, "README.md"), "utf8");
    expect(readme).toContain("npm install && npm start");
    expect(readme).toContain("npm install && npm test");
    expect(readme).toContain("npx wrangler r2 bucket create my-clicks-checkpoints");
  });

  it("refuses a folder that is not empty unless --force, and takes --name and --floe", async () => {
    const dir = mkdtempSync(join(tmpdir(), "floe-init-"));
    writeFileSync(join(dir, "notes.txt"), "mine");
    const refused = await floe("init", dir);
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/is not empty \(notes\.txt\): choose an empty folder, or pass --force/);
    expect(existsSync(join(dir, "package.json"))).toBe(false);

    const forced = await floe("init", dir, "--force", "--name", "clicks-app", "--floe", "file:../floe.tgz");
    expect(forced.code, forced.err).toBe(0);
    expect(readFileSync(join(dir, "notes.txt"), "utf8")).toBe("mine");
    expect(JSON.parse(readFileSync(join(dir, "package.json"), "utf8"))).toMatchObject({ name: "clicks-app", dependencies: { floe: "file:../floe.tgz" } });

    const git = mkdtempSync(join(tmpdir(), "floe-init-"));
    mkdirSync(join(git, ".git"));
    expect((await floe("init", git, "--name", "with-git")).code, "a folder with only .git counts as empty").toBe(0);
  });

  it("answers a usage error (exit 2) for an unknown option, no folder, or a name that cannot name a Worker", async () => {
    const unknown = await floe("init", "x", "--forse");
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/floe init: Unknown option '--forse'/);
    expect(unknown.err).toContain("usage: floe init <dir>");
    expect((await floe("init")).code).toBe(2);
    const badName = await floe("init", join(mkdtempSync(join(tmpdir(), "floe-init-")), "x"), "--name", "Bad_Name");
    expect(badName.code).toBe(2);
    expect(badName.err).toMatch(/project's name must be/);
    expect((await floe("init", "--help")).code).toBe(0);
  });
});
