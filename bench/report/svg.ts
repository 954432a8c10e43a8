/**
 * The plot of workload 2 (keyed count with checkpoints): per-second
 * throughput over time (top) and each checkpoint's end-to-end duration at
 * its trigger time (bottom), floe against Flink. Plain SVG, no dependency.
 */
import type { BenchResult } from "../workloads/common.js";

interface Series {
  label: string;
  color: string;
  perSecond: number[];
  checkpoints: { t_s: number; duration_ms: number }[];
}

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];
const W = 760;
const PANEL_H = 200;
const LEFT = 70;
const RIGHT = 20;
const TOP = 40;
const GAP = 60;

/** Round axis maximum: 1, 2 or 5 times a power of ten, at or above `x`. */
function niceMax(x: number): number {
  if (x <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

const fmt = (x: number) => (x >= 1e6 ? `${x / 1e6}M` : x >= 1e3 ? `${x / 1e3}k` : String(x));
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

/** One SVG with both panels for the given runs (same workload variant, different engines). */
export function keyedCountPlot(runs: readonly BenchResult[], title: string): string {
  const series: Series[] = runs.map((r, i) => ({
    label: r.engine === "flink" ? `Flink (${String(r.state_backend)})` : r.local_recovery === false ? "floe, local recovery off" : "floe",
    color: COLORS[i % COLORS.length],
    perSecond: (r.series_events_per_s as number[] | undefined) ?? [],
    checkpoints: (r.series_checkpoints as { t_s: number; duration_ms: number }[] | undefined) ?? [],
  }));
  const tMax = niceMax(Math.max(1, ...series.map((s) => s.perSecond.length), ...series.flatMap((s) => s.checkpoints.map((c) => c.t_s + 1))));
  const rateMax = niceMax(Math.max(1, ...series.flatMap((s) => s.perSecond)));
  const cpMax = niceMax(Math.max(1, ...series.flatMap((s) => s.checkpoints.map((c) => c.duration_ms))));
  const plotW = W - LEFT - RIGHT;
  const x = (t: number) => LEFT + (t / tMax) * plotW;
  const panel = (top: number, yMax: number, yLabel: string) => {
    const y = (v: number) => top + PANEL_H - (v / yMax) * PANEL_H;
    const parts = [`<rect x="${LEFT}" y="${top}" width="${plotW}" height="${PANEL_H}" fill="none" stroke="#999"/>`];
    for (let i = 0; i <= 4; i++) {
      const v = (yMax * i) / 4;
      parts.push(`<line x1="${LEFT}" x2="${LEFT + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`);
      parts.push(`<text x="${LEFT - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11">${fmt(v)}</text>`);
    }
    for (let i = 0; i <= 10; i++) {
      const t = (tMax * i) / 10;
      parts.push(`<text x="${x(t)}" y="${top + PANEL_H + 14}" text-anchor="middle" font-size="11">${Math.round(t * 10) / 10}</text>`);
    }
    parts.push(`<text x="16" y="${top + PANEL_H / 2}" font-size="12" transform="rotate(-90 16 ${top + PANEL_H / 2})" text-anchor="middle">${esc(yLabel)}</text>`);
    return { parts, y };
  };
  const top1 = TOP;
  const top2 = TOP + PANEL_H + GAP;
  const p1 = panel(top1, rateMax, "events/s");
  const p2 = panel(top2, cpMax, "checkpoint ms");
  const body: string[] = [...p1.parts, ...p2.parts];
  for (const s of series) {
    if (s.perSecond.length > 0) {
      const pts = s.perSecond.map((v, i) => `${x(i + 0.5).toFixed(1)},${p1.y(v).toFixed(1)}`).join(" ");
      body.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    }
    for (const c of s.checkpoints) {
      body.push(`<circle cx="${x(Math.max(0, c.t_s)).toFixed(1)}" cy="${p2.y(c.duration_ms).toFixed(1)}" r="3" fill="${s.color}"><title>${esc(s.label)}: ${c.duration_ms} ms at ${c.t_s} s</title></circle>`);
    }
  }
  const legend = series.map((s, i) => `<rect x="${LEFT + i * 170}" y="${top2 + PANEL_H + 30}" width="12" height="12" fill="${s.color}"/><text x="${LEFT + i * 170 + 18}" y="${top2 + PANEL_H + 40}" font-size="12">${esc(s.label)}</text>`);
  const height = top2 + PANEL_H + 56;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${esc(title)}</text>`,
    `<text x="${LEFT + plotW / 2}" y="${top1 + PANEL_H + 30}" text-anchor="middle" font-size="11">seconds since the first record</text>`,
    ...body,
    ...legend,
    `</svg>`,
  ].join("\n");
}
