// @ts-check
/**
 * The dashboard's rendering, served at `/dashboard/render.js`: small DOM
 * builders (nothing parses HTML: every API string lands in a text node) and one
 * function per part of the page, each filling its container from the
 * page's state. `app.js` owns the state and passes it in, with the
 * handlers that clicks call back.
 */
import { backpressureOf, chartModel, formatBytes, formatClock, formatCount, formatMs, formatRate, formatWatermark, formatWatermarkLag, savepointIdOf, savepointList } from "./helpers.js";

/** @typedef {import("./types.js").PageState} PageState */
/** @typedef {import("./types.js").JobStatus} JobStatus */
/** @typedef {import("./types.js").JobMetrics} JobMetrics */
/** @typedef {import("./types.js").VertexMetrics} VertexMetrics */
/** @typedef {import("./types.js").SubtaskMetrics} SubtaskMetrics */
/** @typedef {import("./types.js").CheckpointOverview} CheckpointOverview */
/** @typedef {import("./types.js").HistoryEntry} HistoryEntry */
/** @typedef {import("./helpers.js").VertexRate} VertexRate */
/** @typedef {import("./helpers.js").ChartPoint} ChartPoint */
/** @typedef {import("./helpers.js").SavepointEntry} SavepointEntry */

/**
 * What a click on the page asks of `app.js`.
 * @typedef {object} RenderHandlers
 * @property {(checkpointId: number) => void} pinCheckpoint show this checkpoint's detail
 * @property {() => void} followLatest let the detail follow the latest checkpoint again
 * @property {(vertexId: string | null) => void} selectVertex show this vertex's subtasks (null: close them)
 */

/**
 * The state with the selected job's answers loaded: what the job's parts draw.
 * @typedef {object} JobView
 * @property {PageState} state
 * @property {JobStatus} job
 * @property {JobMetrics} metrics
 * @property {CheckpointOverview} overview
 * @property {RenderHandlers} handlers
 */

/** Statuses in which the job may be running: the page offers no Start for them. */
const LIVE = ["RUNNING", "RESTARTING", "FAILING"];
const SVG_NS = "http://www.w3.org/2000/svg";
const CHART = { width: 560, height: 220, margin: { left: 70, right: 18, top: 14, bottom: 44 } };
/** @type {VertexRate} */
const NO_RATE = { in_per_s: null, out_per_s: null, backpressured_ratio: null };

// ---- DOM helpers -------------------------------------------------------

/** @typedef {import("./types.js").Child} Child */

/**
 * Attributes; `on<event>` ones are listeners. null, undefined and false set nothing, true sets an empty value.
 * @typedef {Record<string, string | number | boolean | null | undefined | ((ev: Event) => void)>} Attrs
 */

/**
 * The page's element with this id; a missing one is a bug in the page.
 * @param {string} id
 * @returns {HTMLElement}
 */
export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error("the page has no #" + id);
  return el;
}

/**
 * The page's element with this id, checked to be of the given kind: `$as("token", HTMLInputElement)`.
 * @template {HTMLElement} T
 * @param {string} id
 * @param {{ new (): T, prototype: T }} kind
 * @returns {T}
 */
export function $as(id, kind) {
  const el = $(id);
  if (!(el instanceof kind)) throw new Error("#" + id + " is not a " + kind.name);
  return el;
}

/**
 * @param {Element} el
 * @param {Attrs | undefined} attrs
 */
function setAttrs(el, attrs) {
  Object.entries(attrs || {}).forEach(([k, v]) => {
    if (v === null || v === undefined || v === false) return;
    if (typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  });
}

/**
 * Appends children to an element, strings and numbers as text nodes.
 * @template {Element} E
 * @param {E} el
 * @param {Child[]} children
 * @returns {E}
 */
function append(el, children) {
  children.forEach((c) => {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  });
  return el;
}

/**
 * An HTML element: `h("td", { class: "num" }, "12")`.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs} [attrs]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  return append(el, children);
}

/**
 * An SVG element.
 * @template {keyof SVGElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs} [attrs]
 * @param {...Child} children
 * @returns {SVGElementTagNameMap[K]}
 */
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  return append(el, children);
}

/**
 * Replaces the children of the element with this id.
 * @param {string} id
 * @param {...Child} children
 */
export function fill(id, ...children) {
  const el = $(id);
  el.replaceChildren();
  return append(el, children);
}

/**
 * @param {string} id
 * @param {boolean} visible
 */
export function show(id, visible) {
  $(id).hidden = !visible;
}

/** @param {string} status */
function badge(status) {
  return h("span", { class: "badge status-" + String(status).toLowerCase() }, status);
}

/**
 * @param {string} cls
 * @param {{ label: string, num?: boolean }[]} headers
 * @param {Child[]} rows
 */
function table(cls, headers, rows) {
  return h("table", { class: cls },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { class: x.num ? "num" : null }, x.label)))),
    h("tbody", {}, rows));
}

/** @param {string} type a checkpoint type, SAVEPOINT or UNALIGNED_CHECKPOINT */
function typeLabel(type) {
  return type.toLowerCase().replace(/_/g, " ");
}

// ---- rendering ---------------------------------------------------------

/**
 * Draws the whole page from `state`.
 * @param {PageState} state
 * @param {RenderHandlers} handlers
 */
export function render(state, handlers) {
  renderJobs(state);
  /** @type {JobView | null} */
  const view = state.job && state.metrics && state.overview ? { state, job: state.job, metrics: state.metrics, overview: state.overview, handlers } : null;
  show("job", !!view);
  show("no-jobs", state.jobs.length === 0);
  if (!view) return;
  document.title = "floe · " + view.job.name + " " + view.job.status;
  renderHeader(view);
  renderTiles(view);
  renderGraph(view);
  renderVertexDetail(view);
  renderCharts(view);
  renderHistory(view);
  renderDetail(view);
  renderFailed(view);
  renderSavepoints(view);
  renderSubtasks(view);
  renderStreams(view);
}

/** @param {PageState} state */
function renderJobs(state) {
  fill("jobs", table("jobs-table", [{ label: "Job" }, { label: "Status" }, { label: "Restarts", num: true }],
    state.jobs.map((j) =>
      h("tr", { class: j.name === state.jobName ? "selected" : null },
        h("td", {}, h("a", { href: "#/jobs/" + encodeURIComponent(j.name) }, j.name)),
        h("td", {}, badge(j.status)),
        h("td", { class: "num" }, formatCount(j.restarts))))));
}

/** @param {JobView} view */
function renderHeader({ state, job: j }) {
  $("job-name").textContent = j.name;
  fill("job-status", badge(j.status));
  const since = j.start_time
    ? j.end_time
      ? "ran " + formatMs(j.end_time - j.start_time) + ", ended " + formatClock(j.end_time)
      : "up " + formatMs(Date.now() - j.start_time) + " (since " + formatClock(j.start_time) + ")"
    : "never started";
  $("job-meta").textContent = "attempt " + j.attempt + " · " + formatCount(j.restarts) + " restart" + (j.restarts === 1 ? "" : "s") + " · " + since;
  $("job-error").textContent = j.last_error ? "Last error: " + j.last_error : "";
  show("job-error", !!j.last_error);
  const running = j.status === "RUNNING";
  /** @type {Record<string, boolean>} */
  const visible = { checkpoint: running, savepoint: running, stop: running, cancel: running || j.status === "RESTARTING", start: !LIVE.includes(j.status) };
  Object.entries(visible).forEach(([action, shown]) => {
    const b = document.querySelector('button[data-action="' + action + '"]');
    if (!(b instanceof HTMLButtonElement)) throw new Error("the page has no " + action + " button");
    b.hidden = !shown;
    b.disabled = !!state.busy;
  });
}

/**
 * @param {string} id
 * @param {string} label
 * @param {string} value
 * @param {string} [sub]
 */
function tile(id, label, value, sub) {
  return h("div", { class: "tile", id }, h("div", { class: "tile-label" }, label), h("div", { class: "tile-value" }, value), h("div", { class: "tile-sub" }, sub || " "));
}

/** @param {JobView} view */
function renderTiles({ state, metrics, overview: o }) {
  const c = o.counts;
  const latest = o.latest.completed;
  const restored = o.latest.restored;
  const failed = o.latest.failed;
  /** @type {number | null} */
  let lag = null;
  /** @type {number | null} */
  let inRate = null;
  for (const v of metrics.vertices) {
    if (v.source_lag === null) continue;
    lag = (lag ?? 0) + v.source_lag;
    const r = state.rates[v.id];
    if (r && r.in_per_s !== null) inRate = (inRate ?? 0) + r.in_per_s;
  }
  fill("tiles",
    tile("stat-completed", "Completed checkpoints", formatCount(c.completed), c.in_progress ? c.in_progress + " in progress" : "none in progress"),
    tile("stat-failed", "Failed checkpoints", formatCount(c.failed), failed ? "latest: #" + failed.id + " at " + formatClock(failed.failure_timestamp) : "none"),
    tile("stat-latest", "Latest checkpoint", latest ? "#" + latest.id : "—", latest ? formatMs(latest.end_to_end_duration) + " · " + formatBytes(latest.checkpointed_size) + " at " + formatClock(latest.latest_ack_timestamp) : "none yet"),
    tile("stat-restored", "Restored", restored ? (restored.is_savepoint ? savepointIdOf(restored.id) : "#" + restored.id) : "—", restored ? formatCount(c.restored) + " restore" + (c.restored === 1 ? "" : "s") + ", latest at " + formatClock(restored.restore_timestamp) : "never"),
    tile("stat-lag", "Source lag", lag === null ? "—" : formatCount(lag) + " records", "not read yet by the sources"),
    tile("stat-throughput", "Source throughput", inRate === null ? "—" : formatRate(inRate) + "/s", "records read per second"));
}

/** @param {JobView} view */
function renderGraph({ state, job, metrics, handlers }) {
  /** @type {Map<string, VertexMetrics>} */
  const byId = new Map(metrics.vertices.map((v) => [v.id, v]));
  const vertices = job.vertices.length ? job.vertices : metrics.vertices.map((v) => ({ id: v.id, name: v.id, parallelism: v.parallelism }));
  if (vertices.length === 0) {
    fill("graph", h("p", { class: "empty" }, "The job has no execution plan yet: start it."));
    return;
  }
  /** @type {Child[]} */
  const nodes = [];
  vertices.forEach((v, i) => {
    const m = byId.get(v.id);
    const r = state.rates[v.id] ?? NO_RATE;
    const ratio = r.backpressured_ratio;
    const full = m ? m.backpressured_subtasks : 0;
    const bp = backpressureOf(m, r);
    const pressured = bp.backpressured;
    if (i > 0) nodes.push(s("svg", { class: "edge", viewBox: "0 0 40 20", "aria-hidden": "true" }, s("line", { x1: 2, y1: 10, x2: 32, y2: 10 }), s("path", { d: "M30 4 L38 10 L30 16 Z" })));
    const selected = state.vertex === v.id;
    const toggle = () => handlers.selectVertex(selected ? null : v.id);
    nodes.push(h("div", {
      class: "vertex" + (pressured ? " backpressured" : "") + (m && m.source_lag !== null ? " source" : "") + (selected ? " selected" : ""), "data-vertex": v.id,
      role: "button", tabindex: 0, "aria-pressed": String(selected), title: selected ? "hide its subtasks" : "show its subtasks",
      onclick: toggle, onkeydown: (ev) => { if (ev instanceof KeyboardEvent && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); toggle(); } },
    },
      h("div", { class: "vertex-name", title: v.name }, v.name),
      h("div", { class: "vertex-par" }, "parallelism " + v.parallelism, pressured ? h("span", { class: "badge bp", title: bp.why }, "backpressured") : null),
      h("dl", {},
        h("dt", {}, "in/s"), h("dd", { class: "rate-in" }, formatRate(r.in_per_s)),
        h("dt", {}, "out/s"), h("dd", { class: "rate-out" }, formatRate(r.out_per_s)),
        h("dt", {}, "records in"), h("dd", {}, m ? formatCount(m.records_in) : "—"),
        h("dt", {}, "records out"), h("dd", {}, m ? formatCount(m.records_out) : "—"),
        m && m.source_lag !== null ? [h("dt", {}, "source lag"), h("dd", {}, formatCount(m.source_lag))] : null,
        m && m.state_keys ? [h("dt", {}, "state keys"), h("dd", {}, formatCount(m.state_keys))] : null,
        m ? [h("dt", {}, "watermark"), h("dd", { class: "watermark" }, formatWatermark(m.watermark_ms))] : null,
        m && m.watermark_lag_ms !== null ? [h("dt", {}, "watermark lag"), h("dd", { class: "watermark-lag" }, formatWatermarkLag(m.watermark_lag_ms))] : null,
        m && m.timers_pending ? [h("dt", {}, "timers pending"), h("dd", {}, formatCount(m.timers_pending))] : null,
        m && m.open_windows !== null ? [h("dt", {}, "open windows"), h("dd", { class: "open-windows" }, formatCount(m.open_windows))] : null,
        m && m.dead_letters ? [h("dt", {}, "dead letters"), h("dd", { class: "dead-letters" }, formatCount(m.dead_letters))] : null,
        h("dt", {}, "backpressure"), h("dd", {}, ratio === null ? "—" : Math.round(ratio * 100) + "% of time"),
        full ? [h("dt", {}, "inputs full"), h("dd", {}, full + " of " + v.parallelism + " subtasks")] : null)));
  });
  fill("graph", nodes);
}

/**
 * The selected vertex's subtasks, as Flink's vertex detail and its
 * Watermarks tab: each one's event time (a source's own watermark, any
 * other's input watermark, as the vertex's is their minimum), what it sent
 * on, idleness, timers pending and, for window operators, open windows.
 * @param {JobView} view
 */
function renderVertexDetail({ state, job, metrics, handlers }) {
  const id = state.vertex;
  const m = id === null ? undefined : metrics.vertices.find((v) => v.id === id);
  show("vertex-detail", !!m);
  if (!m) return;
  const name = (job.vertices.find((v) => v.id === m.id) || { name: m.id }).name;
  const windows = m.open_windows !== null;
  const subtasks = metrics.subtasks.filter((x) => x.vertex === m.id).sort((a, b) => a.index - b.index);
  fill("vertex-detail",
    h("h3", {}, "Subtasks of " + name + " ", h("button", { type: "button", class: "link", onclick: () => handlers.selectVertex(null) }, "close")),
    h("p", { class: "muted small" }, "Vertex watermark: " + formatWatermark(m.watermark_ms) + (m.watermark_lag_ms !== null ? " (" + formatWatermarkLag(m.watermark_lag_ms) + ")" : "") + ", the minimum over its subtasks that are not idle."),
    table("vertex-subtasks-table", [
      { label: "Subtask" }, { label: "Status" }, { label: "Watermark" }, { label: "Output watermark" }, { label: "Idle" },
      { label: "Timers pending", num: true }, ...(windows ? [{ label: "Open windows", num: true }] : []),
      { label: "Records in", num: true }, { label: "Records out", num: true }, { label: "State keys", num: true }, { label: "Dead letters", num: true },
    ], subtasks.map((x) =>
      h("tr", { "data-subtask": x.index },
        h("td", {}, x.vertex + "/" + x.index), h("td", {}, x.status),
        h("td", { class: "mono watermark" }, formatWatermark(x.watermark_ms)), h("td", { class: "mono" }, formatWatermark(x.output_watermark_ms)),
        h("td", {}, x.watermark_idle ? "idle" : "—"),
        h("td", { class: "num" }, formatCount(x.timers_pending)),
        windows ? h("td", { class: "num open-windows" }, x.open_windows === null ? "—" : formatCount(x.open_windows)) : null,
        h("td", { class: "num" }, formatCount(x.records_in)), h("td", { class: "num" }, formatCount(x.records_out)),
        h("td", { class: "num" }, formatCount(x.state_keys)), h("td", { class: "num dead-letters" }, formatCount(x.dead_letters || 0))))));
}

/**
 * @param {string} title
 * @param {string} yLabel
 * @param {string} cls
 * @param {ChartPoint[]} points
 * @param {(v: number) => string} formatY
 * @returns {Child[]}
 */
function lineChart(title, yLabel, cls, points, formatY) {
  if (points.length === 0) return [h("figcaption", {}, title), h("p", { class: "empty" }, "No completed checkpoints yet.")];
  const m = chartModel(points, { width: CHART.width, height: CHART.height, margin: CHART.margin, formatX: formatClock, formatY });
  const a = m.area;
  const svg = s("svg", { class: "chart", viewBox: "0 0 " + m.width + " " + m.height, role: "img", "aria-label": title + " over time" },
    m.yTicks.map((t) => [
      s("line", { class: "grid", x1: a.left, x2: a.right, y1: t.pos, y2: t.pos }),
      s("text", { class: "tick", x: a.left - 6, y: t.pos + 4, "text-anchor": "end" }, t.label),
    ]),
    m.xTicks.map((t) => [
      s("line", { class: "axis", x1: t.pos, x2: t.pos, y1: a.bottom, y2: a.bottom + 4 }),
      s("text", { class: "tick", x: t.pos, y: a.bottom + 17, "text-anchor": "middle" }, t.label),
    ]),
    s("line", { class: "axis", x1: a.left, x2: a.right, y1: a.bottom, y2: a.bottom }),
    s("line", { class: "axis", x1: a.left, x2: a.left, y1: a.top, y2: a.bottom }),
    s("text", { class: "axis-label", x: (a.left + a.right) / 2, y: m.height - 6, "text-anchor": "middle" }, "trigger time"),
    s("text", { class: "axis-label", x: -(a.top + a.bottom) / 2, y: 14, transform: "rotate(-90)", "text-anchor": "middle" }, yLabel),
    s("path", { class: "line " + cls, d: m.path }),
    m.dots.map((d) => s("circle", { class: "dot " + cls, cx: d.x, cy: d.y, r: 3 }, s("title", {}, "checkpoint " + d.point.id + ": " + formatY(d.point.y)))));
  return [h("figcaption", {}, title, h("span", { class: "muted" }, " · last " + points.length + " completed checkpoints")), svg];
}

/** @param {JobView} view */
function renderCharts({ overview }) {
  const cps = overview.history
    .filter((e) => e.status === "COMPLETED" && !e.is_savepoint)
    .sort((a, b) => a.trigger_timestamp - b.trigger_timestamp);
  fill("chart-duration", lineChart("End-to-end duration", "duration", "duration", cps.map((e) => ({ x: e.trigger_timestamp, y: e.end_to_end_duration, id: e.id })), formatMs));
  fill("chart-size", lineChart("Checkpointed size", "size", "size", cps.map((e) => ({ x: e.trigger_timestamp, y: e.checkpointed_size, id: e.id })), formatBytes));
}

/** @param {JobView} view */
function renderHistory({ state, overview, handlers }) {
  const selected = state.detail ? state.detail.id : null;
  fill("history", table("history-table", [
    { label: "ID", num: true }, { label: "Status" }, { label: "Type" }, { label: "Triggered" }, { label: "End to end", num: true },
    { label: "Checkpointed", num: true }, { label: "State size", num: true }, { label: "Alignment", num: true }, { label: "Start delay", num: true }, { label: "Acks", num: true },
  ], overview.history.slice(0, 50).map((e) => {
    const open = () => handlers.pinCheckpoint(e.id);
    return h("tr", {
      class: "clickable" + (e.id === selected ? " selected" : ""), tabindex: 0, title: e.failure_message || "show per-subtask detail", onclick: open,
      onkeydown: (ev) => { if (ev instanceof KeyboardEvent && ev.key === "Enter") open(); },
    },
      h("td", { class: "num" }, e.id), h("td", {}, badge(e.status)), h("td", {}, typeLabel(e.checkpoint_type)),
      h("td", {}, formatClock(e.trigger_timestamp)), h("td", { class: "num" }, formatMs(e.end_to_end_duration)),
      h("td", { class: "num" }, formatBytes(e.checkpointed_size)), h("td", { class: "num" }, formatBytes(e.state_size)),
      h("td", { class: "num" }, formatMs(e.alignment_duration)), h("td", { class: "num" }, formatMs(e.start_delay)),
      h("td", { class: "num" }, e.num_acknowledged_subtasks + "/" + e.num_subtasks));
  })));
  if (overview.history.length === 0) append($("history"), [h("p", { class: "empty" }, "No checkpoints yet.")]);
}

/**
 * @param {number} value
 * @param {number} max
 * @param {string} cls
 */
function bar(value, max, cls) {
  const w = max > 0 ? Math.max(value > 0 ? 1 : 0, Math.round((value / max) * 80)) : 0;
  return s("svg", { class: "bar", viewBox: "0 0 80 8", width: 80, height: 8, "aria-hidden": "true" }, s("rect", { class: "bar-bg", x: 0, y: 0, width: 80, height: 8 }), s("rect", { class: cls, x: 0, y: 0, width: w, height: 8 }));
}

/** @param {JobView} view */
function renderDetail({ state, overview, handlers }) {
  const d = state.detail;
  if (!d) {
    fill("detail-title", "Per-subtask detail");
    fill("detail", h("p", { class: "empty" }, "No checkpoint yet."));
    return;
  }
  fill("detail-title", "Checkpoint " + d.id + " ", badge(d.status), " ",
    state.detailPinned
      ? h("button", { type: "button", class: "link", onclick: () => handlers.followLatest() }, "follow latest")
      : h("span", { class: "muted" }, overview.latest.completed && overview.latest.completed.id === d.id ? "latest completed" : "latest"));
  const max = d.subtasks.reduce((a, x) => Math.max(a, x.alignment_duration, x.start_delay), 0);
  fill("detail",
    d.failure_message ? h("p", { class: "alert" }, d.failure_message) : null,
    table("detail-table", [
      { label: "Subtask" }, { label: "Acked after", num: true }, { label: "Sync", num: true }, { label: "Async", num: true },
      { label: "Alignment" }, { label: "Start delay" }, { label: "Checkpointed", num: true },
    ], d.subtasks.map((x) =>
      h("tr", {},
        h("td", {}, x.subtask), h("td", { class: "num" }, formatMs(x.end_to_end_duration)), h("td", { class: "num" }, formatMs(x.sync_duration)),
        h("td", { class: "num" }, formatMs(x.async_duration)),
        h("td", {}, h("span", { class: "barcell" }, bar(x.alignment_duration, max, "bar-align"), formatMs(x.alignment_duration))),
        h("td", {}, h("span", { class: "barcell" }, bar(x.start_delay, max, "bar-delay"), formatMs(x.start_delay))),
        h("td", { class: "num" }, formatBytes(x.checkpointed_size))))),
    d.subtasks.length < d.num_subtasks ? h("p", { class: "muted" }, (d.num_subtasks - d.subtasks.length) + " of " + d.num_subtasks + " subtasks have not acknowledged.") : null);
}

/** @param {JobView} view */
function renderFailed({ overview }) {
  const failed = overview.history.filter((e) => e.status === "FAILED");
  const latest = overview.latest.failed;
  if (latest && !failed.some((e) => e.id === latest.id)) failed.unshift(latest);
  if (failed.length === 0) {
    const n = overview.history.length;
    fill("failed", h("p", { class: "empty" }, n ? "No failed checkpoints among the newest " + n + "." : "No failed checkpoints."));
    return;
  }
  fill("failed", table("failed-table", [{ label: "ID", num: true }, { label: "Type" }, { label: "Triggered" }, { label: "Failed after", num: true }, { label: "Cause" }],
    failed.map((e) =>
      h("tr", {}, h("td", { class: "num" }, e.id), h("td", {}, typeLabel(e.checkpoint_type)), h("td", {}, formatClock(e.trigger_timestamp)),
        h("td", { class: "num" }, formatMs(e.end_to_end_duration)), h("td", { class: "cause" }, e.failure_message || "—")))));
}

/**
 * The savepoints of the selected job seen in this tab, by checkpoint id.
 * @param {PageState} state
 * @returns {Map<number, SavepointEntry>}
 */
export function knownSavepoints(state) {
  const name = state.jobName ?? "";
  let known = state.savepoints[name];
  if (!known) state.savepoints[name] = known = new Map();
  return known;
}

/** @param {JobView} view */
function renderSavepoints({ state, overview }) {
  const list = savepointList(overview, knownSavepoints(state));
  if (list.length === 0) {
    fill("savepoints", h("p", { class: "empty" }, "No savepoints seen yet."));
    return;
  }
  fill("savepoints", table("savepoints-table", [{ label: "Savepoint" }, { label: "Status" }, { label: "Triggered" }, { label: "Took", num: true }, { label: "State size", num: true }, { label: "Location or cause" }],
    list.map((x) =>
      h("tr", { "data-savepoint": x.id }, h("td", {}, x.id), h("td", {}, badge(x.status)), h("td", {}, formatClock(x.trigger_timestamp)),
        h("td", { class: "num" }, formatMs(x.end_to_end_duration)), h("td", { class: "num" }, formatBytes(x.state_size)),
        h("td", { class: x.failure_message ? "cause" : "mono" }, x.failure_message || x.location || "—")))));
}

/** @param {JobView} view */
function renderSubtasks({ metrics }) {
  const subtasks = metrics.subtasks.slice().sort((a, b) => (a.vertex === b.vertex ? a.index - b.index : 0));
  fill("subtasks", table("subtasks-table", [
    { label: "Subtask" }, { label: "Status" }, { label: "Records in", num: true }, { label: "Records out", num: true }, { label: "Queued batches", num: true },
    { label: "Backpressured", num: true }, { label: "Source lag", num: true }, { label: "State keys", num: true }, { label: "Unpublished sink output", num: true }, { label: "Last checkpoint", num: true },
  ], subtasks.map((x) =>
    h("tr", {}, h("td", {}, x.vertex + "/" + x.index), h("td", {}, x.status), h("td", { class: "num" }, formatCount(x.records_in)),
      h("td", { class: "num" }, formatCount(x.records_out)), h("td", { class: "num" }, formatCount(x.queued_batches)),
      h("td", { class: "num" }, formatMs(x.backpressured_ms)), h("td", { class: "num" }, x.source_lag === null ? "—" : formatCount(x.source_lag)),
      h("td", { class: "num" }, formatCount(x.state_keys)), h("td", { class: "num" }, formatBytes(x.pending_sink_bytes)), h("td", { class: "num" }, x.last_checkpoint_id || "—")))));
}

/**
 * The ingestion streams: size, retention, and how far behind the selected
 * job is (records after its latest completed checkpoint).
 * @param {JobView} view
 */
function renderStreams({ state }) {
  if (state.streams.length === 0) {
    fill("streams", h("p", { class: "empty" }, "This Worker has no ingestion streams."));
    return;
  }
  const job = state.jobName ?? "";
  fill("streams", table("streams-table", [
    { label: "Stream" }, { label: "Partitions", num: true }, { label: "Records", num: true }, { label: "Size", num: true },
    { label: "Size limit", num: true }, { label: "Retention", num: true }, { label: "Lag of " + job, num: true },
  ], state.streams.map((x) =>
    h("tr", { "data-stream": x.stream }, h("td", {}, x.stream), h("td", { class: "num" }, x.partition_count), h("td", { class: "num" }, formatCount(x.records)),
      h("td", { class: "num" }, formatBytes(x.bytes)), h("td", { class: "num" }, formatBytes(x.max_bytes)), h("td", { class: "num" }, formatMs(x.retention_ms)),
      h("td", { class: "num" }, x.lag[job] === undefined ? "—" : formatCount(x.lag[job]))))));
}
