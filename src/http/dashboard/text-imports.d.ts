/**
 * `import text from "./file?raw"`: the file's text, as a string. Vite (the
 * vitest projects) does this itself; for wrangler's bundles a Text module
 * rule for `?raw` imports in wrangler.toml does the same.
 */
declare module "*?raw" {
  const text: string;
  export default text;
}
