/**
 * `floe init <dir>`: writes a ready project from the template in
 * templates/project/ (shipped with the package): package.json depending on
 * floe and pinning Node 22 through the `node` devDependency as floe does,
 * wrangler.toml with floe's Durable Object classes, their SQLite migration
 * and the R2 buckets, .dev.vars.example, a sample job, its tests with
 * floe/testing, and a README. The versions of the tools are floe's own, so
 * a new project starts with the set floe is tested with.
 *
 * A template file named `_x` is written as `.x` (npm leaves some dotfiles
 * out of packages), and `{{name}}` in a file is the project's name.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

export const INIT_USAGE = `usage: floe init <dir> [--name <name>] [--force] [--floe <version or path>]
  writes a ready floe project into <dir> (which must be empty, unless --force)
  --name   the project's name: npm package, Worker and bucket names (default: from <dir>)
  --force  write into a folder that is not empty (files of the template are overwritten)
  --floe   the dependency on floe, as npm takes it (default: ^ this floe's version)`;

/** A usage error: exit code 2. */
export class InitUsageError extends Error {}

/** What `floe init` writes with. */
interface Io {
  out: (line: string) => void;
}

/** The tools a project gets, at floe's own versions (devDependencies of floe's package.json). */
const DEV_DEPENDENCIES = ["@cloudflare/workers-types", "@types/node", "miniflare", "node", "typescript", "vitest", "wrangler"] as const;

/** Runs `floe init`; resolves the exit code. Usage errors throw {@link InitUsageError}. */
export function init(argv: string[], io: Io, packageRoot = defaultPackageRoot()): number {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: "string" },
      force: { type: "boolean", default: false },
      floe: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    io.out(INIT_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new InitUsageError(positionals.length === 0 ? "init needs the project's folder" : `init takes one folder, got ${positionals.length}`);
  const dir = resolve(positionals[0]);
  const name = values.name ?? projectName(basename(dir));
  if (!/^[a-z0-9][a-z0-9-]{1,40}[a-z0-9]$/.test(name)) {
    throw new InitUsageError(`the project's name must be 3-42 lowercase letters, digits and dashes (it names the Worker and its buckets), got ${JSON.stringify(name)}: pass --name`);
  }
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new InitUsageError(`${positionals[0]} exists and is not a folder`);
    const present = readdirSync(dir).filter((f) => f !== ".git");
    if (present.length > 0 && !values.force) {
      throw new InitUsageError(`${positionals[0]} is not empty (${present.slice(0, 5).join(", ")}${present.length > 5 ? ", …" : ""}): choose an empty folder, or pass --force to write the template's files into it`);
    }
  }

  const floePackage = JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8")) as { version: string; devDependencies?: Record<string, string> };
  const written: string[] = [];
  const write = (path: string, text: string) => {
    const target = join(dir, path);
    mkdirSync(resolve(target, ".."), { recursive: true });
    writeFileSync(target, text);
    written.push(path);
  };
  write("package.json", `${JSON.stringify(projectPackage(name, values.floe ?? `^${floePackage.version}`, floePackage.devDependencies ?? {}), null, 2)}\n`);
  const templates = join(packageRoot, "templates", "project");
  for (const file of files(templates)) {
    const path = relative(templates, file)
      .split(/[\\/]/)
      .map((part) => (part.startsWith("_") ? `.${part.slice(1)}` : part))
      .join("/");
    write(path, readFileSync(file, "utf8").replaceAll("{{name}}", name));
  }

  const shown = relative(process.cwd(), dir) || ".";
  io.out(`created ${name} in ${shown} (floe ${floePackage.version}): ${written.join(", ")}`);
  io.out("");
  io.out("next:");
  if (shown !== ".") io.out(`  cd ${shown}`);
  io.out("  npm install && npm test    # type check, the job's tests, the job in Miniflare with a crash");
  io.out("  npm start                  # the Worker on http://127.0.0.1:8787; README.md has a tour and the deploy steps");
  return 0;
}

/** The generated package.json. */
function projectPackage(name: string, floeSpec: string, floeDevDependencies: Readonly<Record<string, string>>) {
  const devDependencies: Record<string, string> = {};
  for (const dep of DEV_DEPENDENCIES) {
    const spec = floeDevDependencies[dep];
    if (spec === undefined) throw new Error(`floe's package.json has no devDependency ${dep} to take its version from`);
    devDependencies[dep] = spec;
  }
  return {
    name,
    version: "0.1.0",
    private: true,
    type: "module",
    description: "Stream processing jobs on floe",
    scripts: {
      start: "node scripts/dev.mjs",
      test: "tsc -p . && vitest run",
      deploy: "wrangler deploy",
    },
    dependencies: { floe: floeSpec },
    devDependencies,
    // wrangler and workerd need Node 22; the `node` devDependency gives npm scripts Node 22 where the system's is older.
    engines: { node: ">=20" },
  };
}

/** A name for npm, the Worker and its buckets, from a folder's name. */
function projectName(folder: string): string {
  return folder
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .replace(/^-|-$/g, "")
    .slice(0, 42);
}

/** Every file under `dir`, sorted. */
function files(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((entry) => {
      const path = join(dir, entry);
      return statSync(path).isDirectory() ? files(path) : [path];
    });
}

/** The package's root: two folders up from src/cli/ (in the repository) or dist/cli/ (installed). */
function defaultPackageRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
}
