// @ts-check
/**
 * The dashboard's pure helpers, served at `/dashboard/helpers.js`:
 * throughput from successive metrics polls, chart scales and ticks, number
 * formatting, and the savepoint list. They touch no DOM, so
 * `helpers.test.ts` imports this very file in Node and tests what the
 * browser runs.
 */

/** @typedef {import("./types.js").CheckpointOverview} CheckpointOverview */
/** @typedef {import("./types.js").HistoryEntry} HistoryEntry */
/** @typedef {import("./types.js").VertexMetrics} VertexMetrics */

/** @typedef {Pick<VertexMetrics, "id" | "parallelism" | "records_in" | "records_out" | "backpressured_ms">} RateVertex */

/**
 * One poll of the metrics: when it was taken, and its vertices.
 * @typedef {object} MetricsSample
 * @property {number} atMs
 * @property {number | null} attempt
 * @property {RateVertex[]} vertices
 */

/**
 * A vertex's rates over the last interval; null when they cannot be known.
 * @typedef {object} VertexRate
 * @property {number | null} in_per_s
 * @property {number | null} out_per_s
 * @property {number | null} backpressured_ratio
 */

/**
 * Records in/out per second and the share of time spent backpressured, per
 * vertex, from two successive samples of GET /v1/jobs/:job/metrics. A rate
 * is null when it cannot be known: the first sample, a new attempt, or
 * counters that went backwards (a restart).
 * @param {MetricsSample | null} prev
 * @param {MetricsSample} next
 * @returns {Record<string, VertexRate>}
 */
export function vertexRates(prev, next) {
  /** @type {Record<string, VertexRate>} */
  const rates = {};
  const dtS = prev ? (next.atMs - prev.atMs) / 1000 : 0;
  const comparable = !!prev && prev.attempt === next.attempt && dtS > 0;
  next.vertices.forEach((v) => {
    const p = prev && comparable ? prev.vertices.find((x) => x.id === v.id) : undefined;
    if (!p || v.records_in < p.records_in || v.records_out < p.records_out) {
      rates[v.id] = { in_per_s: null, out_per_s: null, backpressured_ratio: null };
      return;
    }
    const bpMs = v.backpressured_ms - p.backpressured_ms;
    const slots = dtS * 1000 * Math.max(1, v.parallelism);
    rates[v.id] = {
      in_per_s: (v.records_in - p.records_in) / dtS,
      out_per_s: (v.records_out - p.records_out) / dtS,
      backpressured_ratio: bpMs < 0 ? null : Math.min(1, bpMs / slots),
    };
  });
  return rates;
}

/**
 * Whether a vertex is backpressured: it spent at least 10% of the last
 * interval waiting for downstream credits, or some of its subtasks have full
 * input queues (they hold their senders back). `why` says which, for people.
 * @param {Pick<VertexMetrics, "parallelism" | "backpressured_subtasks"> | undefined} vertex
 * @param {Pick<VertexRate, "backpressured_ratio"> | undefined} rate
 * @returns {{ backpressured: boolean, why: string }}
 */
export function backpressureOf(vertex, rate) {
  const ratio = rate ? rate.backpressured_ratio : null;
  const waiting = ratio !== null && ratio >= 0.1;
  const full = vertex ? vertex.backpressured_subtasks || 0 : 0;
  const why = [];
  if (waiting) why.push("waits for downstream " + Math.round(ratio * 100) + "% of the time");
  if (vertex && full > 0) why.push(full + " of " + vertex.parallelism + " subtasks have full inputs");
  return { backpressured: waiting || full > 0, why: why.join("; ") };
}

/**
 * About `count` round tick values (1, 2 or 5 times a power of ten) covering [min, max].
 * @param {number} min
 * @param {number} max
 * @param {number} count
 * @returns {number[]}
 */
export function niceTicks(min, max, count) {
  if (!isFinite(min) || !isFinite(max)) return [];
  if (max < min) [min, max] = [max, min];
  if (max === min) {
    if (max === 0) max = 1;
    else {
      min = min > 0 ? 0 : min * 2;
      max = max > 0 ? max * 2 : 0;
    }
  }
  const raw = (max - min) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / mag;
  const step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  const lo = Math.floor(min / step + 1e-9) * step;
  const hi = Math.ceil(max / step - 1e-9) * step;
  const ticks = [];
  for (let i = 0; lo + i * step <= hi + step * 1e-9; i++) ticks.push(Number((lo + i * step).toPrecision(12)));
  return ticks;
}

const TIME_STEPS_MS = [1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 216e5, 432e5, 864e5];

/**
 * Tick times (epoch ms) on round seconds/minutes/hours inside [minMs, maxMs], at most about `count`.
 * @param {number} minMs
 * @param {number} maxMs
 * @param {number} count
 * @returns {number[]}
 */
export function timeTicks(minMs, maxMs, count) {
  if (!isFinite(minMs) || !isFinite(maxMs) || maxMs < minMs) return [];
  const span = Math.max(1, maxMs - minMs);
  const step = TIME_STEPS_MS.find((s) => span / s <= count) ?? TIME_STEPS_MS[TIME_STEPS_MS.length - 1];
  const ticks = [];
  for (let t = Math.ceil(minMs / step) * step; t <= maxMs; t += step) ticks.push(t);
  return ticks;
}

/**
 * Maps [d0, d1] linearly onto [r0, r1]; a zero-width domain maps to the middle of the range.
 * @param {number} d0
 * @param {number} d1
 * @param {number} r0
 * @param {number} r1
 * @returns {(v: number) => number}
 */
export function linearScale(d0, d1, r0, r1) {
  return (v) => {
    if (d1 === d0) return (r0 + r1) / 2;
    return r0 + ((v - d0) / (d1 - d0)) * (r1 - r0);
  };
}

/**
 * A point of a line chart: x in epoch ms.
 * @typedef {{ x: number, y: number, id?: number }} ChartPoint
 */

/**
 * @typedef {object} ChartOptions
 * @property {number} width
 * @property {number} height
 * @property {{ left: number, right: number, top: number, bottom: number }} margin
 * @property {(ms: number) => string} formatX
 * @property {(v: number) => string} formatY
 * @property {number} [xTickCount]
 */

/** @typedef {{ value: number, pos: number, label: string }} ChartTick */

/**
 * The geometry of a line chart.
 * @template {ChartPoint} P
 * @typedef {object} ChartModel
 * @property {number} width
 * @property {number} height
 * @property {{ left: number, right: number, top: number, bottom: number }} area the plotting area
 * @property {ChartTick[]} xTicks
 * @property {ChartTick[]} yTicks
 * @property {string} path the line's `d`
 * @property {{ x: number, y: number, point: P }[]} dots
 */

/**
 * Geometry of a line chart of points: the plotting area, ticks with
 * positions and labels, the path's `d` and the dots. The y axis starts at
 * 0, so that small changes do not look large.
 * @template {ChartPoint} P
 * @param {P[]} points
 * @param {ChartOptions} opts
 * @returns {ChartModel<P>}
 */
export function chartModel(points, opts) {
  const { width, height, margin: m } = opts;
  const left = m.left, right = width - m.right, top = m.top, bottom = height - m.bottom;
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  let x0 = xs.length ? Math.min(...xs) : 0;
  let x1 = xs.length ? Math.max(...xs) : 1;
  if (x1 === x0) {
    x0 -= 1000;
    x1 += 1000;
  }
  const yTickValues = niceTicks(0, ys.length ? Math.max(...ys) : 1, 4);
  const y1 = yTickValues[yTickValues.length - 1];
  const sx = linearScale(x0, x1, left, right);
  const sy = linearScale(0, y1, bottom, top);
  const dots = points.map((p) => ({ x: round2(sx(p.x)), y: round2(sy(p.y)), point: p }));
  return {
    width,
    height,
    area: { left, right, top, bottom },
    xTicks: timeTicks(x0, x1, opts.xTickCount || 5).map((t) => ({ value: t, pos: round2(sx(t)), label: opts.formatX(t) })),
    yTicks: yTickValues.map((t) => ({ value: t, pos: round2(sy(t)), label: opts.formatY(t) })),
    path: dots.map((d, i) => (i === 0 ? "M" : "L") + d.x + " " + d.y).join(" "),
    dots,
  };
}

/** @param {number} v */
function round2(v) {
  return Math.round(v * 100) / 100;
}

/**
 * 1536 -> "1.5 kB": decimal units, so that round chart ticks get round labels.
 * @param {number | null | undefined} n
 */
export function formatBytes(n) {
  if (n === null || n === undefined || !isFinite(n)) return "—";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return (i === 0 ? String(Math.round(n)) : n.toFixed(Math.abs(n) < 10 ? 1 : 0)) + " " + units[i];
}

/**
 * 850 -> "850 ms", 1500 -> "1.5 s", 125000 -> "2m 5s", 7500000 -> "2h 5m".
 * @param {number | null | undefined} ms
 */
export function formatMs(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return "—";
  if (Math.abs(ms) < 1000) return Math.round(ms) + " ms";
  if (Math.abs(ms) < 60000) {
    const s = ms / 1000;
    return (s < 10 ? s.toFixed(1) : String(Math.round(s))) + " s";
  }
  const totalS = Math.round(ms / 1000);
  if (totalS < 3600) return Math.floor(totalS / 60) + "m " + (totalS % 60) + "s";
  const totalM = Math.round(totalS / 60);
  if (totalM < 1440) return Math.floor(totalM / 60) + "h " + (totalM % 60) + "m";
  return Math.floor(totalM / 1440) + "d " + Math.floor((totalM % 1440) / 60) + "h";
}

/**
 * Records per second: null -> "—", 2.25 -> "2.3", 12345.6 -> "12,346", 2.5e6 -> "2.5 M".
 * @param {number | null | undefined} v
 */
export function formatRate(v) {
  if (v === null || v === undefined || !isFinite(v)) return "—";
  if (v >= 1e6) return (v / 1e6).toFixed(1) + " M";
  if (v < 10 && v !== 0) return v.toFixed(1);
  return formatCount(Math.round(v));
}

/**
 * 1234567 -> "1,234,567" (independent of the browser's locale).
 * @param {number | null | undefined} n
 */
export function formatCount(n) {
  if (n === null || n === undefined || !isFinite(n)) return "—";
  let s = String(Math.round(Math.abs(n)));
  let out = "";
  while (s.length > 3) {
    out = "," + s.slice(-3) + out;
    s = s.slice(0, -3);
  }
  return (n < 0 ? "-" : "") + s + out;
}

/**
 * Epoch ms -> "HH:MM:SS" in the browser's time zone.
 * @param {number | null | undefined} ms
 */
export function formatClock(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return "—";
  const d = new Date(ms);
  /** @param {number} v */
  const pad = (v) => (v < 10 ? "0" : "") + v;
  return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}

/**
 * An event-time watermark: its ISO 8601 UTC time with milliseconds (as the
 * page-views job writes window starts), "end of time" once a bounded input
 * ended (Number.MAX_SAFE_INTEGER), "no watermark" before the first one or
 * where the source has no watermark strategy.
 * @param {number | null | undefined} ms
 */
export function formatWatermark(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return "no watermark";
  if (ms >= Number.MAX_SAFE_INTEGER) return "end of time";
  const d = new Date(ms);
  return isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

/**
 * How far event time trails the clock, from the API's `watermark_lag_ms`:
 * 12000 -> "12 s behind", -3000 -> "3.0 s ahead" (event times from the
 * future), null -> "" (no watermark, or the end of time).
 * @param {number | null | undefined} lagMs
 */
export function formatWatermarkLag(lagMs) {
  if (lagMs === null || lagMs === undefined || !isFinite(lagMs)) return "";
  return lagMs < 0 ? formatMs(-lagMs) + " ahead" : formatMs(lagMs) + " behind";
}

/**
 * The savepoint id (`savepoint-<checkpoint id>`) a start request takes.
 * @param {number} checkpointId
 */
export function savepointIdOf(checkpointId) {
  return "savepoint-" + checkpointId;
}

/**
 * A savepoint as the page lists it.
 * @typedef {object} SavepointEntry
 * @property {number} checkpoint_id
 * @property {string} id
 * @property {string} status
 * @property {number | null} trigger_timestamp
 * @property {number | null} end_to_end_duration
 * @property {number | null} state_size
 * @property {string | null} location
 * @property {string | null} failure_message
 */

/** @typedef {Pick<HistoryEntry, "id" | "status" | "is_savepoint" | "trigger_timestamp" | "end_to_end_duration" | "state_size" | "external_path" | "failure_message">} SavepointSource */

/**
 * Savepoints, newest first: those in the checkpoint history (and the
 * overview's latest one), merged with `known`, a Map from checkpoint id to
 * entries seen earlier in this session. The API has no savepoint list, and
 * the history holds only the newest 100 checkpoints, so `known` keeps those
 * that scrolled out. Returns the merged entries; `known` is updated.
 * @param {{ history: SavepointSource[], latest: { savepoint: SavepointSource | null } } | null} overview
 * @param {Map<number, SavepointEntry>} known
 * @returns {SavepointEntry[]}
 */
export function savepointList(overview, known) {
  const entries = overview ? overview.history.slice() : [];
  if (overview && overview.latest.savepoint) entries.push(overview.latest.savepoint);
  entries.forEach((e) => {
    if (!e.is_savepoint) return;
    const before = known.get(e.id);
    known.set(e.id, {
      checkpoint_id: e.id,
      id: savepointIdOf(e.id),
      status: e.status,
      trigger_timestamp: e.trigger_timestamp,
      end_to_end_duration: e.end_to_end_duration,
      state_size: e.state_size,
      location: e.status === "COMPLETED" ? e.external_path || (before && before.location) || null : null,
      failure_message: e.failure_message,
    });
  });
  return Array.from(known.values()).sort((a, b) => b.checkpoint_id - a.checkpoint_id);
}
