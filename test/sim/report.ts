/** How a failed run is shown in test output and on the command line. */
import type { RunResult } from "./run.js";
import { KNOWN_BUGS } from "./scenario.js";

/** The replay command of a run. */
export function replayCommand(r: Pick<RunResult, "seed" | "variant">, options: { known?: string; unaligned?: boolean; windows?: boolean; joins?: boolean; async?: boolean } = {}): string {
  const asyncIo = options.async === undefined ? "" : options.async ? "--async" : "--no-async";
  const joins = options.joins === undefined ? "" : options.joins ? "--joins" : "--no-joins";
  const windows = options.windows === undefined ? "" : options.windows ? "--windows" : "--no-windows";
  const extra = [r.variant !== "none" ? `--variant ${r.variant}` : "", options.known ? `--known ${options.known}` : "", options.unaligned === false ? "--aligned" : "", windows, joins, asyncIo].filter(Boolean);
  return `npm run sim -- --seed ${r.seed} --trace${extra.length > 0 ? ` ${extra.join(" ")}` : ""}`;
}

/** A failed run: what the oracle found, how to replay it, and the events leading to it. */
export function describeFailure(r: RunResult, options: { known?: string; unaligned?: boolean; windows?: boolean; joins?: boolean; async?: boolean } = {}): string {
  return [
    `seed ${r.seed} (${r.scenario})`,
    ...r.failures.slice(0, 8).map((f) => `  ${f}`),
    ...[...r.signatures].map(([name, k]) =>
      name in KNOWN_BUGS
        ? `  probably known bug ${name} (${KNOWN_BUGS[name as keyof typeof KNOWN_BUGS]}): at ${k.atMs}ms ${k.what}`
        : `  suspicious (${name}): at ${k.atMs}ms ${k.what}`,
    ),
    `  replay: ${replayCommand(r, options)}`,
    "  events leading to it:",
    ...r.trace.slice(-30).map((t) => `    ${t}`),
  ].join("\n");
}
