/**
 * The dashboard's pure helpers, as browser JavaScript text: throughput from
 * successive metrics polls, chart scales and ticks, number formatting, and
 * the savepoint list. They touch no DOM, so `helpers-js.test.ts` evaluates
 * this very text in Node and tests what the browser runs.
 *
 * Plain JS in a string (no build step, no loader config): the Worker bundle
 * and the Miniflare test bundles embed it as is. Written without template
 * literals, inside `String.raw` so that backslashes stay as written.
 */

/** The names the helpers text defines, in the order `helpers-js.test.ts` reads them. */
export const DASHBOARD_HELPER_NAMES = [
  "vertexRates",
  "backpressureOf",
  "niceTicks",
  "timeTicks",
  "linearScale",
  "chartModel",
  "formatBytes",
  "formatMs",
  "formatRate",
  "formatCount",
  "formatClock",
  "savepointList",
  "savepointIdOf",
] as const;

/** Browser JavaScript: function declarations only, no side effects. */
export const DASHBOARD_HELPERS_JS = String.raw`
/**
 * Records in/out per second and the share of time spent backpressured, per
 * vertex, from two successive samples { atMs, attempt, vertices } of
 * GET /v1/jobs/:job/metrics. A rate is null when it cannot be known: the
 * first sample, a new attempt, or counters that went backwards (a restart).
 */
function vertexRates(prev, next) {
  var rates = {};
  var dtS = prev ? (next.atMs - prev.atMs) / 1000 : 0;
  var comparable = !!prev && prev.attempt === next.attempt && dtS > 0;
  next.vertices.forEach(function (v) {
    var p = comparable ? prev.vertices.find(function (x) { return x.id === v.id; }) : undefined;
    if (!p || v.records_in < p.records_in || v.records_out < p.records_out) {
      rates[v.id] = { in_per_s: null, out_per_s: null, backpressured_ratio: null };
      return;
    }
    var bpMs = v.backpressured_ms - p.backpressured_ms;
    var slots = dtS * 1000 * Math.max(1, v.parallelism);
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
 * input queues (they hold their senders back). 'why' says which, for people.
 */
function backpressureOf(vertex, rate) {
  var ratio = rate ? rate.backpressured_ratio : null;
  var waiting = ratio !== null && ratio !== undefined && ratio >= 0.1;
  var full = vertex ? vertex.backpressured_subtasks || 0 : 0;
  var why = [];
  if (waiting) why.push("waits for downstream " + Math.round(ratio * 100) + "% of the time");
  if (full > 0) why.push(full + " of " + vertex.parallelism + " subtasks have full inputs");
  return { backpressured: waiting || full > 0, why: why.join("; ") };
}

/** About 'count' round tick values (1, 2 or 5 times a power of ten) covering [min, max]. */
function niceTicks(min, max, count) {
  if (!isFinite(min) || !isFinite(max)) return [];
  if (max < min) { var t = min; min = max; max = t; }
  if (max === min) {
    if (max === 0) max = 1;
    else { min = min > 0 ? 0 : min * 2; max = max > 0 ? max * 2 : 0; }
  }
  var raw = (max - min) / Math.max(1, count);
  var mag = Math.pow(10, Math.floor(Math.log10(raw)));
  var f = raw / mag;
  var step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  var lo = Math.floor(min / step + 1e-9) * step;
  var hi = Math.ceil(max / step - 1e-9) * step;
  var ticks = [];
  for (var i = 0; lo + i * step <= hi + step * 1e-9; i++) ticks.push(Number((lo + i * step).toPrecision(12)));
  return ticks;
}

var TIME_STEPS_MS = [1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 216e5, 432e5, 864e5];

/** Tick times (epoch ms) on round seconds/minutes/hours inside [minMs, maxMs], at most about 'count'. */
function timeTicks(minMs, maxMs, count) {
  if (!isFinite(minMs) || !isFinite(maxMs) || maxMs < minMs) return [];
  var span = Math.max(1, maxMs - minMs);
  var step = TIME_STEPS_MS.find(function (s) { return span / s <= count; }) || TIME_STEPS_MS[TIME_STEPS_MS.length - 1];
  var ticks = [];
  for (var t = Math.ceil(minMs / step) * step; t <= maxMs; t += step) ticks.push(t);
  return ticks;
}

/** Maps [d0, d1] linearly onto [r0, r1]; a zero-width domain maps to the middle of the range. */
function linearScale(d0, d1, r0, r1) {
  return function (v) {
    if (d1 === d0) return (r0 + r1) / 2;
    return r0 + ((v - d0) / (d1 - d0)) * (r1 - r0);
  };
}

/**
 * Geometry of a line chart of points [{ x, y }] (x in epoch ms): the
 * plotting area, ticks with positions and labels, the path's 'd' and the
 * dots. The y axis starts at 0, so that small changes do not look large.
 */
function chartModel(points, opts) {
  var width = opts.width, height = opts.height, m = opts.margin;
  var left = m.left, right = width - m.right, top = m.top, bottom = height - m.bottom;
  var xs = points.map(function (p) { return p.x; });
  var ys = points.map(function (p) { return p.y; });
  var x0 = xs.length ? Math.min.apply(null, xs) : 0;
  var x1 = xs.length ? Math.max.apply(null, xs) : 1;
  if (x1 === x0) { x0 -= 1000; x1 += 1000; }
  var yTickValues = niceTicks(0, ys.length ? Math.max.apply(null, ys) : 1, 4);
  var y1 = yTickValues[yTickValues.length - 1];
  var sx = linearScale(x0, x1, left, right);
  var sy = linearScale(0, y1, bottom, top);
  var dots = points.map(function (p) { return { x: round2(sx(p.x)), y: round2(sy(p.y)), point: p }; });
  return {
    width: width, height: height,
    area: { left: left, right: right, top: top, bottom: bottom },
    xTicks: timeTicks(x0, x1, opts.xTickCount || 5).map(function (t) { return { value: t, pos: round2(sx(t)), label: opts.formatX(t) }; }),
    yTicks: yTickValues.map(function (t) { return { value: t, pos: round2(sy(t)), label: opts.formatY(t) }; }),
    path: dots.map(function (d, i) { return (i === 0 ? "M" : "L") + d.x + " " + d.y; }).join(" "),
    dots: dots,
  };
}

function round2(v) { return Math.round(v * 100) / 100; }

/** 1536 -> "1.5 kB": decimal units, so that round chart ticks get round labels. */
function formatBytes(n) {
  if (n === null || n === undefined || !isFinite(n)) return "—";
  var units = ["B", "kB", "MB", "GB", "TB"];
  var i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i === 0 ? String(Math.round(n)) : n.toFixed(Math.abs(n) < 10 ? 1 : 0)) + " " + units[i];
}

/** 850 -> "850 ms", 1500 -> "1.5 s", 125000 -> "2m 5s", 7500000 -> "2h 5m". */
function formatMs(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return "—";
  if (Math.abs(ms) < 1000) return Math.round(ms) + " ms";
  if (Math.abs(ms) < 60000) { var s = ms / 1000; return (s < 10 ? s.toFixed(1) : String(Math.round(s))) + " s"; }
  var totalS = Math.round(ms / 1000);
  if (totalS < 3600) return Math.floor(totalS / 60) + "m " + (totalS % 60) + "s";
  var totalM = Math.round(totalS / 60);
  if (totalM < 1440) return Math.floor(totalM / 60) + "h " + (totalM % 60) + "m";
  return Math.floor(totalM / 1440) + "d " + Math.floor((totalM % 1440) / 60) + "h";
}

/** Records per second: null -> "—", 2.25 -> "2.3", 12345.6 -> "12,346", 2.5e6 -> "2.5 M". */
function formatRate(v) {
  if (v === null || v === undefined || !isFinite(v)) return "—";
  if (v >= 1e6) return (v / 1e6).toFixed(1) + " M";
  if (v < 10 && v !== 0) return v.toFixed(1);
  return formatCount(Math.round(v));
}

/** 1234567 -> "1,234,567" (independent of the browser's locale). */
function formatCount(n) {
  if (n === null || n === undefined || !isFinite(n)) return "—";
  var s = String(Math.round(Math.abs(n)));
  var out = "";
  while (s.length > 3) { out = "," + s.slice(-3) + out; s = s.slice(0, -3); }
  return (n < 0 ? "-" : "") + s + out;
}

/** Epoch ms -> "HH:MM:SS" in the browser's time zone. */
function formatClock(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return "—";
  var d = new Date(ms);
  var pad = function (v) { return (v < 10 ? "0" : "") + v; };
  return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}

/** The savepoint id ('savepoint-<checkpoint id>') a start request takes. */
function savepointIdOf(checkpointId) { return "savepoint-" + checkpointId; }

/**
 * Savepoints, newest first: those in the checkpoint history (and the
 * overview's latest one), merged with 'known', a Map from checkpoint id to
 * entries seen earlier in this session. The API has no savepoint list, and
 * the history holds only the newest 100 checkpoints, so 'known' keeps those
 * that scrolled out. Returns the merged entries; 'known' is updated.
 */
function savepointList(overview, known) {
  var entries = (overview && overview.history ? overview.history : []).slice();
  if (overview && overview.latest && overview.latest.savepoint) entries.push(overview.latest.savepoint);
  entries.forEach(function (e) {
    if (!e.is_savepoint) return;
    var before = known.get(e.id) || {};
    known.set(e.id, {
      checkpoint_id: e.id,
      id: savepointIdOf(e.id),
      status: e.status,
      trigger_timestamp: e.trigger_timestamp,
      end_to_end_duration: e.end_to_end_duration,
      state_size: e.state_size,
      location: e.status === "COMPLETED" ? e.external_path || before.location || null : null,
      failure_message: e.failure_message,
    });
  });
  return Array.from(known.values()).sort(function (a, b) { return b.checkpoint_id - a.checkpoint_id; });
}
`;
