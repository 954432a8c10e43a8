#!/usr/bin/env node
// `npm run build:package` (and `npm pack`, through prepack): src/ to dist/ with tsc (tsconfig.package.json), then
// the dashboard's browser files, imported as text with `?raw` (wrangler.toml's [[rules]] here, Vite in tests), are
// inlined into dist/ as string constants, so that a user's wrangler bundles floe with no rules of its own.
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.package.json")], { cwd: root, stdio: "inherit" });

/** Every file under `dir`. */
function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

const RAW_IMPORT = /^import (\w+) from "(\.{1,2}\/[^"]+)\?raw";$/gm;
let inlined = 0;
for (const file of files(dist).filter((f) => f.endsWith(".js"))) {
  const text = readFileSync(file, "utf8");
  if (!/from "[^"]*\?raw"/.test(text)) continue;
  const source = join(root, "src", relative(dist, dirname(file)));
  const out = text.replace(RAW_IMPORT, (_line, name, path) => {
    inlined++;
    return `const ${name} = ${JSON.stringify(readFileSync(join(source, path), "utf8"))};`;
  });
  if (/from "[^"]*\?raw"/.test(out)) throw new Error(`${relative(root, file)}: a ?raw import this build cannot inline`);
  writeFileSync(file, out);
}
for (const file of files(dist).filter((f) => f.endsWith(".d.ts"))) {
  if (/from "[^"]*\?raw"/.test(readFileSync(file, "utf8"))) throw new Error(`${relative(root, file)}: a declaration refers to a ?raw import`);
}
console.log(`dist/: ${files(dist).length} files, ${inlined} text imports inlined`);
