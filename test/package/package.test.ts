/**
 * The proof that floe works as a package in a project of the user's own,
 * with no step done by hand: `npm pack` of this repository, `floe init`
 * from that tarball (as `npx floe init` runs it), `npm install` of the new
 * project against the local npm cache, then the project's own `npm test`
 * (type check, its operator tests, its job in Miniflare with a crash) and
 * `wrangler deploy --dry-run`. Each step is a command a user types; a
 * failing step fails the test with its output.
 *
 * The installed `floe` bin is run as a process for what `floe init` must
 * refuse: an unknown option and a folder that is not empty (exit code 2).
 *
 * The commands run without this repository's node_modules/.bin on PATH, as
 * in a user's shell: the new project's own `node` devDependency must give
 * its npm scripts Node 22. About a minute; part of `npm test` (run after
 * the other projects), alone `npm run test:package`. `npm pack` builds
 * dist/ here (ignored by git); the test removes it again when it was not
 * there before, and checks that it left the repository as it found it.
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");

/** PATH without this repository's node_modules/.bin (npm puts it first when it runs this test), however it is linked. */
const USER_PATH = (process.env.PATH ?? "")
  .split(delimiter)
  .filter((p) => !resolve(p).startsWith(resolve(ROOT, "node_modules")) && realPath(p) !== realPath(join(ROOT, "node_modules/.bin")))
  .join(delimiter);

function realPath(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/** The environment of a user's shell: this repository's node_modules/.bin off PATH, no colours, no telemetry. */
const USER_ENV = { ...process.env, PATH: USER_PATH, NO_COLOR: "1", FORCE_COLOR: "0", WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", npm_config_yes: "true" };

/** Runs a command the way a user's shell would; resolves its exit code and output (stdout, then stderr). */
function run(command: string, args: string[], cwd: string, timeoutMs = 300_000): Promise<{ code: number; output: string; ms: number }> {
  const started = Date.now();
  return new Promise((done) => {
    execFile(command, args, { cwd, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env: USER_ENV }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
      done({ code, output: `${stdout}\n${stderr}`, ms: Date.now() - started });
    });
  });
}

/** {@link run}, for a step that must succeed: resolves its output, fails with it. */
async function sh(command: string, args: string[], cwd: string, timeoutMs = 300_000): Promise<string> {
  const r = await run(command, args, cwd, timeoutMs);
  if (r.code !== 0) throw new Error(`${command} ${args.join(" ")} (in ${cwd}) failed with exit code ${r.code} after ${r.ms} ms:\n${r.output.slice(-8000)}`);
  return r.output;
}

/**
 * The files git does not track in the repository, ignored ones included (what a test could leave behind; edits
 * to tracked files made meanwhile are not the test's); undefined outside a git checkout.
 */
function untrackedFiles(): string[] | undefined {
  if (!existsSync(join(ROOT, ".git"))) return undefined;
  const status = execFileSync("git", ["status", "--porcelain", "--ignored"], { cwd: ROOT, encoding: "utf8" });
  return status.split("\n").filter((line) => line.startsWith("??") || line.startsWith("!!"));
}

describe("floe as a package in a new project", () => {
  const work = mkdtempSync(join(tmpdir(), "floe-package-"));
  const dist = join(ROOT, "dist");
  const distBefore = existsSync(dist);
  const before = untrackedFiles();
  /** Puts the repository back as it was: `npm pack` (prepack) builds dist/. */
  const tidy = () => {
    if (!distBefore) rmSync(dist, { recursive: true, force: true });
  };
  afterAll(() => {
    tidy();
    rmSync(work, { recursive: true, force: true });
  });

  it("packs, creates a project with floe init, installs it, and passes its npm test and wrangler deploy --dry-run", async () => {
    // npm pack runs the package's build (prepack).
    await sh("npm", ["pack", "--pack-destination", work], ROOT);
    const tarball = readdirSync(work).find((f) => /^floe-.*\.tgz$/.test(f));
    expect(tarball, "the tarball").toBeDefined();
    const tgz = join(work, tarball!);

    // `npx floe init` from the tarball; the dependency on floe points at the tarball, since it is not published.
    const init = await sh("npm", ["exec", "--prefer-offline", `--package=${tgz}`, "--", "floe", "init", "app", "--floe", `file:${tgz}`], work);
    expect(init).toMatch(/created app/);
    const app = join(work, "app");
    expect(JSON.parse(readFileSync(join(app, "package.json"), "utf8")).dependencies.floe).toBe(`file:${tgz}`);

    await sh("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund"], app);
    expect(existsSync(join(app, "node_modules/floe/dist/index.js")), "floe installed from the tarball").toBe(true);
    expect(existsSync(join(app, "node_modules/floe/src")), "the package ships no sources").toBe(false);

    const test = await sh("npm", ["test"], app);
    expect(test).toMatch(/Test Files\s+2 passed/);
    expect(test).toMatch(/counts every click once across a crash of the runtime/);

    const deploy = await sh("npx", ["wrangler", "deploy", "--dry-run", "--outdir", "dist"], app);
    expect(deploy).toMatch(/--dry-run: exiting now/);
    for (const [binding, className] of [
      ["COORDINATOR", "Coordinator"],
      ["SUBTASK", "Subtask"],
      ["STREAM_PARTITION", "StreamPartition"],
      ["TABLE_PARTITION", "TablePartition"],
    ]) {
      expect(deploy, binding).toMatch(new RegExp(`env\\.${binding} \\(${className}\\)\\s+Durable Object`));
    }
    expect(deploy).toMatch(/env\.CHECKPOINTS \(app-checkpoints\)\s+R2 Bucket/);
    // The dashboard's browser files are inside the bundle: no module rules in the project.
    expect(readdirSync(join(app, "dist")).filter((f) => f.endsWith(".js"))).toEqual(["index.js"]);
    expect(readFileSync(join(app, "wrangler.toml"), "utf8")).not.toMatch(/\[\[rules\]\]|\[alias\]/);

    // The installed bin, as a process: what `floe init` refuses is a usage error, exit code 2, and writes nothing.
    const floe = join(app, "node_modules/.bin/floe");
    const unknown = await run(floe, ["init", "other", "--bogus"], work);
    expect(unknown.code, unknown.output).toBe(2);
    expect(unknown.output).toMatch(/floe init: Unknown option '--bogus'/);
    expect(unknown.output).toMatch(/usage: floe init <dir>/);
    expect(existsSync(join(work, "other")), "nothing written on a usage error").toBe(false);
    const packageJson = readFileSync(join(app, "package.json"), "utf8");
    const nonEmpty = await run(floe, ["init", "app"], work);
    expect(nonEmpty.code, nonEmpty.output).toBe(2);
    expect(nonEmpty.output).toMatch(/floe init: app is not empty \(.+\): choose an empty folder, or pass --force/);
    expect(readFileSync(join(app, "package.json"), "utf8"), "the project is left as it was").toBe(packageJson);

    tidy();
    expect(untrackedFiles(), "the test leaves no file in the repository").toEqual(before);
  });
});
