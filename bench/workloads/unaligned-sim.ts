/**
 * Aligned against unaligned checkpoints under backpressure, in the
 * simulator's virtual time (test/sim/bench-scenario.ts): a fast and a slow
 * source into a slow keyed two-input operator, the input above what it can
 * take, checkpoints every 250 ms, in three modes. Objects work concurrently
 * there, as on Cloudflare; in the local workerd every object shares one
 * thread and the `unaligned` workload cannot show the difference.
 *
 * Then each mode once more, failed over under backpressure: the output must
 * still be exactly once (the restored unaligned checkpoint's in-flight data
 * replayed). A failure of either is thrown: the figures of a broken
 * protocol prove nothing.
 *
 * Returns one result line; prints a side-by-side table on stderr and writes
 * `unaligned-sim.svg` (checkpoint duration over time and over the backlog).
 */
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  type BackpressureOptions,
  type CheckpointSample,
  DEFAULT_BACKPRESSURE,
  MODES,
  type ModeRun,
  type ModeSummary,
  RESTORE_CHECK,
  runBackpressure,
  summarize,
} from "../../test/sim/bench-scenario.js";
import { type BenchResult, progress } from "./common.js";

export interface UnalignedSimOptions {
  /** Where the SVG goes (bench/out). */
  readonly outDir: string;
  /** Also copy it here (`--plots`). */
  readonly plotsDir?: string;
  readonly scenario?: BackpressureOptions;
}

export async function benchUnalignedSim(o: UnalignedSimOptions): Promise<BenchResult> {
  const s = o.scenario ?? DEFAULT_BACKPRESSURE;
  const runs: ModeRun[] = [];
  for (const mode of MODES) {
    const run = await runBackpressure(mode, s);
    progress(`unaligned-sim ${mode}: ${run.checkpoints.length} checkpoints, ${run.records.toLocaleString("en-US")} records, ${Math.round(run.wallMs)} ms wall`);
    runs.push(run);
  }
  // The same job failed over under backpressure: the restored checkpoint's in-flight data must replay exactly once.
  const restores: ModeRun[] = [];
  for (const mode of MODES) restores.push(await runBackpressure(mode, { ...RESTORE_CHECK, seed: s.seed }));
  progress(`unaligned-sim failovers: restored ${restores.map((r) => `${r.mode} checkpoint ${r.restored?.id ?? "none"} (${r.restored?.persistedBytes ?? 0} bytes in flight)`).join(", ")}`);
  const summaries = runs.map((r) => summarize(r, s));
  const failures = [...runs, ...restores].flatMap((r) => r.failures.map((f) => `${r.mode}${r === runs.find((x) => x.mode === r.mode) ? "" : " (failover)"}: ${f}`));
  process.stderr.write(`\n${sideBySide(summaries, restores)}\n\n`);
  const svg = plot(runs, s);
  mkdirSync(o.outDir, { recursive: true });
  const file = join(o.outDir, "unaligned-sim.svg");
  writeFileSync(file, svg);
  if (o.plotsDir) {
    mkdirSync(resolve(o.plotsDir), { recursive: true });
    copyFileSync(file, join(resolve(o.plotsDir), "unaligned-sim.svg"));
  }
  progress(`plot: ${file}`);
  if (failures.length > 0) throw new Error(`exactly-once does not hold, so the figures prove nothing:\n${failures.slice(0, 10).join("\n")}`);
  const [aligned, unaligned] = summaries;
  return {
    bench: "unaligned_sim",
    engine: "floe",
    variant: `simulator, virtual time: ${s.perRecordMs} ms/record, batch ${s.batchSize}, checkpoints every ${s.intervalMs} ms`,
    records: runs[0].records,
    overload_from_ms: s.overloadFromMs,
    ingest_end_ms: s.ingestEndMs,
    exactly_once: true,
    // After a failover 4 s into the overload: the checkpoint restored, and its in-flight data in bytes.
    restored: Object.fromEntries(restores.map((r) => [r.mode.replace("-", "_"), r.restored ? { id: r.restored.id, persisted_bytes: r.restored.persistedBytes } : null])),
    late_duration_ratio: unaligned.lateMsP50 > 0 ? Math.round((aligned.lateMsP50 / unaligned.lateMsP50) * 10) / 10 : null,
    ...Object.fromEntries(summaries.map((m) => [m.mode.replace("-", "_"), snake(m)])),
    // [id, trigger ms, duration ms, alignment ms, start delay ms, persisted bytes, unaligned 0/1, backlog, of it in flight]
    checkpoints: Object.fromEntries(runs.map((r) => [r.mode.replace("-", "_"), r.checkpoints.filter((c) => c.status === "COMPLETED").map(compact)])),
  };
}

function snake(m: ModeSummary) {
  return {
    completed: m.completed,
    failed: m.failed,
    unaligned: m.unaligned,
    early_ms_p50: m.earlyMsP50,
    late_ms_p50: m.lateMsP50,
    end_to_end_ms_p50: m.durationMsP50,
    end_to_end_ms_max: m.durationMsMax,
    alignment_ms_max: m.alignmentMsMax,
    start_delay_ms_max: m.startDelayMsMax,
    persisted_bytes_total: m.persistedBytesTotal,
    persisted_bytes_max: m.persistedBytesMax,
    backlog_at_last: m.backlogAtLast.records,
    in_flight_at_last: m.backlogAtLast.inFlight,
  };
}

const compact = (c: CheckpointSample) => [c.id, c.triggerMs, c.durationMs, c.alignmentMs, c.startDelayMs, c.persistedBytes, c.type === "UNALIGNED_CHECKPOINT" ? 1 : 0, c.backlog.records, c.backlog.inFlight];

/** The three modes in columns. */
function sideBySide(ms: readonly ModeSummary[], restores: readonly ModeRun[]): string {
  const restoreOf = (m: ModeSummary) => restores.find((r) => r.mode === m.mode);
  const n = (x: number) => Math.round(x).toLocaleString("en-US");
  const rows: [string, (m: ModeSummary) => string][] = [
    ["checkpoints completed (unaligned)", (m) => `${m.completed} (${m.unaligned})`],
    ["duration p50, before the overload", (m) => `${n(m.earlyMsP50)} ms`],
    ["duration p50, last third of it", (m) => `${n(m.lateMsP50)} ms`],
    ["duration p50 / max, whole run", (m) => `${n(m.durationMsP50)} / ${n(m.durationMsMax)} ms`],
    ["alignment max", (m) => `${n(m.alignmentMsMax)} ms`],
    ["start delay max", (m) => `${n(m.startDelayMsMax)} ms`],
    ["persisted in-flight max / total", (m) => `${n(m.persistedBytesMax / 1e3)} / ${n(m.persistedBytesTotal / 1e3)} kB`],
    ["backlog at the last trigger (in flight)", (m) => `${n(m.backlogAtLast.records)} (${n(m.backlogAtLast.inFlight)})`],
    ["exactly once", (m) => (m.exactlyOnce ? "yes" : "NO")],
    ["after a failover (in-flight bytes restored)", (m) => `${restoreOf(m)?.failures.length === 0 ? "yes" : "NO"} (${n(restoreOf(m)?.restored?.persistedBytes ?? 0)})`],
  ];
  const table = [["", ...ms.map((m) => m.mode)], ...rows.map(([label, f]) => [label, ...ms.map(f)])];
  const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
  return table.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ")).join("\n");
}

// ---- the plot -------------------------------------------------------------

const COLORS: Record<string, string> = { aligned: "#d62728", unaligned: "#1f77b4", "alignment-timeout": "#2ca02c" };
const W = 760;
const PANEL_H = 180;
const LEFT = 70;
const PLOT_W = W - LEFT - 20;
const GAP = 62;

/** Round axis maxima, and how many grid steps keep their labels round. */
const NICE: readonly [number, number][] = [[1, 5], [1.5, 3], [2, 4], [2.5, 5], [3, 6], [4, 4], [5, 5], [6, 6], [8, 4], [10, 5]];

/** The axis maximum at or above `x`, and its grid steps. */
function niceMax(x: number): { max: number; steps: number } {
  if (x <= 0) return { max: 1, steps: 5 };
  const p = 10 ** Math.floor(Math.log10(x));
  const [m, steps] = NICE.find(([m]) => m * p >= x)!;
  return { max: m * p, steps };
}

const fmt = (x: number) => (x >= 1e3 ? `${Math.round(x / 10) / 100}k` : String(Math.round(x * 10) / 10));

/** One framed panel with grid and axis labels; returns its scales and parts. */
function panel(top: number, xAxis: { max: number; steps: number }, yAxis: { max: number; steps: number }, xLabel: string, yLabel: string) {
  const x = (v: number) => LEFT + (v / xAxis.max) * PLOT_W;
  const y = (v: number) => top + PANEL_H - (v / yAxis.max) * PANEL_H;
  const parts = [`<rect x="${LEFT}" y="${top}" width="${PLOT_W}" height="${PANEL_H}" fill="none" stroke="#999"/>`];
  for (let i = 0; i <= yAxis.steps; i++) {
    const v = (yAxis.max * i) / yAxis.steps;
    parts.push(`<line x1="${LEFT}" x2="${LEFT + PLOT_W}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`);
    parts.push(`<text x="${LEFT - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11">${fmt(v)}</text>`);
  }
  const xSteps = xAxis.steps * 2;
  for (let i = 0; i <= xSteps; i++) parts.push(`<text x="${x((xAxis.max * i) / xSteps)}" y="${top + PANEL_H + 14}" text-anchor="middle" font-size="11">${fmt((xAxis.max * i) / xSteps)}</text>`);
  parts.push(`<text x="${LEFT + PLOT_W / 2}" y="${top + PANEL_H + 30}" text-anchor="middle" font-size="11">${xLabel}</text>`);
  parts.push(`<text x="16" y="${top + PANEL_H / 2}" font-size="12" transform="rotate(-90 16 ${top + PANEL_H / 2})" text-anchor="middle">${yLabel}</text>`);
  return { x, y, parts };
}

const polyline = (pts: [number, number][], color: string, dash = "") =>
  `<polyline points="${pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" ")}" fill="none" stroke="${color}" stroke-width="1.5"${dash ? ` stroke-dasharray="${dash}"` : ""}/>`;

/**
 * Three panels: each checkpoint's duration at its trigger time; the backlog
 * at each trigger (all of it, and the part in flight between the sources
 * and the operator); and duration over backlog while the input still came.
 */
export function plot(runs: readonly ModeRun[], s: BackpressureOptions): string {
  const done = runs.map((r) => ({ mode: r.mode, cs: r.checkpoints.filter((c) => c.status === "COMPLETED") }));
  const all = done.flatMap((d) => d.cs);
  const tAxis = niceMax(Math.max(...all.map((c) => c.triggerMs)) / 1000);
  const dAxis = niceMax(Math.max(...all.map((c) => c.durationMs)));
  const bAxis = niceMax(Math.max(...all.map((c) => c.backlog.records)));
  const tops = [40, 40 + PANEL_H + GAP, 40 + 2 * (PANEL_H + GAP)];
  const p1 = panel(tops[0], tAxis, dAxis, "checkpoint trigger time (s of virtual time)", "end-to-end ms");
  const p2 = panel(tops[1], tAxis, bAxis, "checkpoint trigger time (s)", "backlog (records)");
  const p3 = panel(tops[2], bAxis, dAxis, "backlog at trigger (records), while input arrives", "end-to-end ms");
  const body = [...p1.parts, ...p2.parts, ...p3.parts];
  for (const p of [p1, p2]) {
    const x0 = p.x(s.overloadFromMs / 1000);
    const x1 = p.x(s.ingestEndMs / 1000);
    const top = p === p1 ? tops[0] : tops[1];
    body.push(`<rect x="${x0}" y="${top}" width="${x1 - x0}" height="${PANEL_H}" fill="#f5a623" fill-opacity="0.08"/>`);
  }
  body.push(`<text x="${p1.x(s.overloadFromMs / 1000) + 4}" y="${tops[0] + 14}" font-size="11" fill="#a66">input above capacity</text>`);
  for (const d of done) {
    const color = COLORS[d.mode];
    body.push(polyline(d.cs.map((c) => [p1.x(c.triggerMs / 1000), p1.y(c.durationMs)]), color));
    for (const c of d.cs) {
      body.push(`<circle cx="${p1.x(c.triggerMs / 1000).toFixed(1)}" cy="${p1.y(c.durationMs).toFixed(1)}" r="2.5" fill="${color}"><title>${d.mode} checkpoint ${c.id}: ${c.durationMs} ms, ${c.persistedBytes} bytes persisted, backlog ${c.backlog.records}</title></circle>`);
      if (c.triggerMs < s.ingestEndMs) body.push(`<circle cx="${p3.x(c.backlog.records).toFixed(1)}" cy="${p3.y(c.durationMs).toFixed(1)}" r="2.5" fill="${color}"><title>${d.mode} checkpoint ${c.id}: ${c.durationMs} ms at backlog ${c.backlog.records}</title></circle>`);
    }
  }
  // The input is the same in every mode: the aligned run's backlog stands for all.
  const ref = done[0].cs;
  body.push(polyline(ref.map((c) => [p2.x(c.triggerMs / 1000), p2.y(c.backlog.records)]), "#555"));
  body.push(polyline(ref.map((c) => [p2.x(c.triggerMs / 1000), p2.y(c.backlog.inFlight)]), "#555", "4 3"));
  body.push(`<text x="${LEFT + 8}" y="${tops[1] + 14}" font-size="11">— not yet processed   - - in flight (read by the sources, in channels and the input gate)</text>`);
  const legendY = tops[2] + PANEL_H + 44;
  done.forEach((d, i) => body.push(`<rect x="${LEFT + i * 190}" y="${legendY}" width="12" height="12" fill="${COLORS[d.mode]}"/><text x="${LEFT + i * 190 + 18}" y="${legendY + 10}" font-size="12">${d.mode}</text>`));
  const height = legendY + 24;
  const title = `Checkpoints under backpressure (simulator, virtual time): ${s.perRecordMs} ms per record, batches of ${s.batchSize}, every ${s.intervalMs} ms`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${title}</text>`,
    ...body,
    `</svg>`,
  ].join("\n");
}
