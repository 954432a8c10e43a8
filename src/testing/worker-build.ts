/**
 * Builds a project's Worker the way `wrangler deploy` does (a dry run into
 * a folder) and reads the bindings its wrangler config declares, so that a
 * test can run the very bundle that would be deployed in Miniflare
 * ({@link startEngine}). wrangler is the project's own (a devDependency of
 * any Worker project), run with the Node that runs the tests.
 *
 * The description of a build is written beside the bundle
 * (`floe-worker.json`), so that a vitest globalSetup can build once and
 * every test file start engines from the folder.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { basename, dirname, extname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

/** The bindings of a Worker, as its wrangler config declares them and Miniflare needs them. */
export interface WorkerConfig {
  readonly compatibilityDate: string;
  readonly compatibilityFlags: readonly string[];
  /** Durable Object bindings: binding name → class, and whether a migration made it SQLite-backed. */
  readonly durableObjects: Readonly<Record<string, { readonly className: string; readonly useSQLite: boolean }>>;
  /** R2 bucket binding names. */
  readonly r2Buckets: readonly string[];
  /** KV namespace binding names. */
  readonly kvNamespaces: readonly string[];
  /** D1 database binding names. */
  readonly d1Databases: readonly string[];
  /** `[vars]`. */
  readonly vars: Readonly<Record<string, unknown>>;
}

/** The type of a module of a bundle (Miniflare's and wrangler's names). */
export type ModuleType = "ESModule" | "CommonJS" | "Text" | "Data" | "CompiledWasm";

/** A bundled Worker and its bindings. */
export interface BuiltWorker {
  /** The bundle's entry module. */
  readonly scriptPath: string;
  /** The other modules of the bundle (those wrangler's module rules attach), with their types. */
  readonly modules: readonly { readonly path: string; readonly type: ModuleType }[];
  readonly config: WorkerConfig;
}

/** Options of {@link buildWorker}. */
export interface BuildWorkerOptions {
  /** The project's folder, where its package.json and wrangler config are (default: the current directory). */
  readonly root?: string;
  /** The wrangler config file, relative to `root` (default: the one wrangler finds, e.g. wrangler.toml). */
  readonly config?: string;
  /** Another entry module than the config's `main`, relative to `root`. */
  readonly entry?: string;
  /** Where the bundle goes (default: a new temporary folder). */
  readonly outdir?: string;
}

/** Name of the build's description in its folder. */
const DESCRIPTION = "floe-worker.json";

/**
 * Bundles the project's Worker with `wrangler deploy --dry-run --outdir`
 * and reads its wrangler config's bindings.
 *
 * @example const worker = await buildWorker(); // ./wrangler.toml
 */
export async function buildWorker(options: BuildWorkerOptions = {}): Promise<BuiltWorker> {
  const root = resolve(options.root ?? process.cwd());
  const outdir = resolve(root, options.outdir ?? mkdtempSync(join(tmpdir(), "floe-worker-")));
  const wrangler = wranglerOf(root);
  const config = options.config === undefined ? undefined : resolve(root, options.config);
  const configArgs = config === undefined ? [] : ["--config", config];
  // wrangler resolves the config's [alias] paths from its project root: the config's folder, but the working
  // directory when an entry is given; run it in the config's folder so that both agree.
  const cwd = config === undefined ? root : dirname(config);
  const [, raw] = await Promise.all([
    run(
      [wrangler.bin, "deploy", "--dry-run", "--outdir", outdir, ...configArgs, ...(options.entry === undefined ? [] : [resolve(root, options.entry)])],
      cwd,
      "wrangler deploy --dry-run",
    ),
    configOf(wrangler.api, root, options.config),
  ]);
  const main = options.entry === undefined ? raw.main : resolve(root, options.entry);
  if (!main) throw new Error(`the wrangler config in ${root} has no "main" and no entry was given`);
  const scriptPath = join(outdir, `${basename(main, extname(main))}.js`);
  const built: BuiltWorker = { scriptPath, modules: attachedModules(outdir, scriptPath, raw.ruleTypes), config: raw.config };
  writeFileSync(join(outdir, DESCRIPTION), JSON.stringify(built, null, 2));
  return built;
}

/** A build that {@link buildWorker} wrote into `outdir` (e.g. in a vitest globalSetup). */
export function loadBuiltWorker(outdir: string): BuiltWorker {
  const path = join(resolve(outdir), DESCRIPTION);
  try {
    return JSON.parse(readFileSync(path, "utf8")) as BuiltWorker;
  } catch (e) {
    throw new Error(`no Worker build in ${outdir} (${DESCRIPTION}): run buildWorker({ outdir }) first (${String(e)})`);
  }
}

/** The project's wrangler: its CLI script and its module (for the config reader). */
function wranglerOf(root: string): { bin: string; api: string } {
  const require = createRequire(join(root, "package.json"));
  let pkgPath: string;
  try {
    pkgPath = require.resolve("wrangler/package.json");
  } catch {
    throw new Error(`wrangler is not installed in ${root}: floe/testing builds the Worker with the project's own wrangler (npm install -D wrangler)`);
  }
  const pkg = JSON.parse(readFileSync(pkgPath, "utf8")) as { bin: string | Record<string, string> };
  const bin = typeof pkg.bin === "string" ? pkg.bin : (pkg.bin.wrangler ?? Object.values(pkg.bin)[0]);
  return { bin: join(pkgPath, "..", bin), api: require.resolve("wrangler") };
}

/** Runs a Node script, resolving its output, rejecting with it on failure. */
function run(args: string[], cwd: string, what: string): Promise<string> {
  return new Promise((done, fail) => {
    execFile(
      process.execPath,
      args,
      {
        cwd,
        env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1", FORCE_COLOR: "0" },
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => (error ? fail(new Error(`${what} failed in ${cwd}:\n${stdout}\n${stderr}`)) : done(stdout)),
    );
  });
}

/** What is read of a wrangler config: the entry, the bindings, and the types of its module rules. */
interface RawConfig {
  readonly main: string | undefined;
  readonly config: WorkerConfig;
  readonly ruleTypes: readonly string[];
}

/** wrangler's default module rules, by extension (they apply after the config's own). */
const DEFAULT_TYPES: Readonly<Record<string, ModuleType>> = { ".txt": "Text", ".html": "Text", ".sql": "Text", ".bin": "Data", ".wasm": "CompiledWasm" };

/**
 * The modules wrangler wrote beside the entry: those its module rules
 * attached, each named `<sha1 of its content>-<name>`. The folder does
 * not say which rule attached one, so: a default rule's extension gives
 * its type, and any other takes the type of the config's own rules (all of
 * one type, as floe's Text rule for `?raw` imports), or it is an error.
 */
function attachedModules(outdir: string, scriptPath: string, ruleTypes: readonly string[]): BuiltWorker["modules"] {
  const modules: { path: string; type: ModuleType }[] = [];
  for (const name of readdirSync(outdir).sort()) {
    const path = join(outdir, name);
    if (path === scriptPath || !/^[0-9a-f]{40}-/.test(name)) continue;
    const byExtension = DEFAULT_TYPES[extname(name)];
    const own = [...new Set(ruleTypes)];
    if (byExtension === undefined && own.length !== 1) {
      throw new Error(`cannot tell the type of module ${name} of the bundle: the wrangler config's rules have ${own.length === 0 ? "no type" : `types ${own.join(", ")}`}`);
    }
    modules.push({ path, type: byExtension ?? (own[0] as ModuleType) });
  }
  return modules;
}

/** Configs read, by project, config file and the files' modification times: several builds of one config read it once. */
const configs = new Map<string, Promise<RawConfig>>();

function configOf(api: string, root: string, config: string | undefined): Promise<RawConfig> {
  const files = config === undefined ? ["wrangler.json", "wrangler.jsonc", "wrangler.toml"] : [config];
  const key = JSON.stringify([root, config, files.map((f) => mtimeMs(resolve(root, f)))]);
  let read = configs.get(key);
  if (!read) {
    read = readConfig(api, root, config);
    configs.set(key, read);
    read.catch(() => configs.delete(key));
  }
  return read;
}

function mtimeMs(path: string): number | null {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return null;
  }
}

/**
 * Reads the wrangler config with wrangler's own reader, in a child process
 * (loading wrangler takes seconds; this runs beside the build).
 */
async function readConfig(api: string, root: string, config: string | undefined): Promise<RawConfig> {
  const out = join(mkdtempSync(join(tmpdir(), "floe-config-")), "config.json");
  const script = `
    const w = await import(${JSON.stringify(pathToFileURL(api).href)});
    const c = w.unstable_readConfig({ ${config === undefined ? "" : `config: ${JSON.stringify(config)}`} }, { hideWarnings: true });
    const sqlite = w.unstable_getDurableObjectClassNameToUseSQLiteMap(c.migrations);
    const external = c.durable_objects.bindings.filter((b) => b.script_name);
    if (external.length) throw new Error("Durable Object bindings of another Worker (script_name) are not supported: " + external.map((b) => b.name).join(", "));
    const config = {
      compatibilityDate: c.compatibility_date,
      compatibilityFlags: c.compatibility_flags ?? [],
      durableObjects: Object.fromEntries(c.durable_objects.bindings.map((b) => [b.name, { className: b.class_name, useSQLite: sqlite.get(b.class_name) === true }])),
      r2Buckets: c.r2_buckets.map((b) => b.binding),
      kvNamespaces: c.kv_namespaces.map((b) => b.binding),
      d1Databases: c.d1_databases.map((b) => b.binding),
      vars: c.vars ?? {},
    };
    (await import("node:fs")).writeFileSync(${JSON.stringify(out)}, JSON.stringify({ main: c.main, config, ruleTypes: (c.rules ?? []).map((r) => r.type) }));
  `;
  await run(["--input-type=module", "-e", script], root, "reading the wrangler config");
  return JSON.parse(readFileSync(out, "utf8")) as RawConfig;
}
