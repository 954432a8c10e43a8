/**
 * The dashboard's rendering, as browser JavaScript text: small DOM builders
 * (no innerHTML: every API string lands in a text node) and one function per
 * part of the page, each filling its container from `state`. It runs
 * inside the page script's closure (`app-js.ts`), which supplies `state`,
 * the constants and the actions.
 */

/** Browser JavaScript: function declarations for the page script's closure. */
export const DASHBOARD_RENDER_JS = String.raw`
  var SVG_NS = "http://www.w3.org/2000/svg";
  var CHART = { width: 560, height: 220, margin: { left: 70, right: 18, top: 14, bottom: 44 } };

  // ---- DOM helpers -------------------------------------------------------

  function $(id) { return document.getElementById(id); }

  function setAttrs(el, attrs) {
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    });
  }

  function append(el, children) {
    children.forEach(function (c) {
      if (c === null || c === undefined || c === false) return;
      if (Array.isArray(c)) append(el, c);
      else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    });
    return el;
  }

  /** An HTML element: h("td", { class: "num" }, "12"). */
  function h(tag, attrs) {
    var el = document.createElement(tag);
    setAttrs(el, attrs);
    return append(el, Array.prototype.slice.call(arguments, 2));
  }

  /** An SVG element. */
  function s(tag, attrs) {
    var el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    return append(el, Array.prototype.slice.call(arguments, 2));
  }

  function fill(id) {
    var el = $(id);
    el.replaceChildren();
    return append(el, Array.prototype.slice.call(arguments, 1));
  }

  function show(id, visible) { $(id).hidden = !visible; }

  function badge(status) { return h("span", { class: "badge status-" + String(status).toLowerCase() }, status); }

  function table(cls, headers, rows) {
    return h("table", { class: cls },
      h("thead", {}, h("tr", {}, headers.map(function (x) { return h("th", { class: x.num ? "num" : null }, x.label); }))),
      h("tbody", {}, rows));
  }

  // ---- rendering ---------------------------------------------------------

  function render() {
    renderJobs();
    show("job", !!state.job);
    show("no-jobs", state.jobs.length === 0);
    if (!state.job) return;
    document.title = "floe · " + state.job.name + " " + state.job.status;
    renderHeader();
    renderTiles();
    renderGraph();
    renderCharts();
    renderHistory();
    renderDetail();
    renderFailed();
    renderSavepoints();
    renderSubtasks();
  }

  function renderJobs() {
    fill("jobs", table("jobs-table", [{ label: "Job" }, { label: "Status" }, { label: "Restarts", num: true }],
      state.jobs.map(function (j) {
        return h("tr", { class: j.name === state.jobName ? "selected" : null },
          h("td", {}, h("a", { href: "#/jobs/" + encodeURIComponent(j.name) }, j.name)),
          h("td", {}, badge(j.status)),
          h("td", { class: "num" }, formatCount(j.restarts)));
      })));
  }

  function renderHeader() {
    var j = state.job;
    $("job-name").textContent = j.name;
    fill("job-status", badge(j.status));
    var since = j.start_time ? (j.end_time ? "ran " + formatMs(j.end_time - j.start_time) + ", ended " + formatClock(j.end_time)
      : "up " + formatMs(Date.now() - j.start_time) + " (since " + formatClock(j.start_time) + ")") : "never started";
    $("job-meta").textContent = "attempt " + j.attempt + " · " + formatCount(j.restarts) + " restart" + (j.restarts === 1 ? "" : "s") + " · " + since;
    $("job-error").textContent = j.last_error ? "Last error: " + j.last_error : "";
    show("job-error", !!j.last_error);
    var live = LIVE.indexOf(j.status) >= 0;
    var running = j.status === "RUNNING";
    var visible = { checkpoint: running, savepoint: running, stop: running, cancel: j.status === "RUNNING" || j.status === "RESTARTING", start: !live };
    Object.keys(visible).forEach(function (a) {
      var b = document.querySelector('button[data-action="' + a + '"]');
      b.hidden = !visible[a];
      b.disabled = !!state.busy;
    });
  }

  function tile(id, label, value, sub) {
    return h("div", { class: "tile", id: id }, h("div", { class: "tile-label" }, label), h("div", { class: "tile-value" }, value), h("div", { class: "tile-sub" }, sub || " "));
  }

  function renderTiles() {
    var o = state.overview;
    var c = o.counts;
    var latest = o.latest.completed;
    var restored = o.latest.restored;
    var sources = (state.metrics.vertices || []).filter(function (v) { return v.source_lag !== null; });
    var lag = sources.length ? sources.reduce(function (a, v) { return a + v.source_lag; }, 0) : null;
    var inRate = sources.reduce(function (a, v) { var r = state.rates[v.id]; return r && r.in_per_s !== null ? (a || 0) + r.in_per_s : a; }, null);
    fill("tiles",
      tile("stat-completed", "Completed checkpoints", formatCount(c.completed), c.in_progress ? c.in_progress + " in progress" : "none in progress"),
      tile("stat-failed", "Failed checkpoints", formatCount(c.failed), o.latest.failed ? "latest: #" + o.latest.failed.id + " at " + formatClock(o.latest.failed.failure_timestamp) : "none"),
      tile("stat-latest", "Latest checkpoint", latest ? "#" + latest.id : "—", latest ? formatMs(latest.end_to_end_duration) + " · " + formatBytes(latest.checkpointed_size) + " at " + formatClock(latest.latest_ack_timestamp) : "none yet"),
      tile("stat-restored", "Restored", restored ? (restored.is_savepoint ? savepointIdOf(restored.id) : "#" + restored.id) : "—", restored ? formatCount(c.restored) + " restore" + (c.restored === 1 ? "" : "s") + ", latest at " + formatClock(restored.restore_timestamp) : "never"),
      tile("stat-lag", "Source lag", lag === null ? "—" : formatCount(lag) + " records", "not read yet by the sources"),
      tile("stat-throughput", "Source throughput", inRate === null ? "—" : formatRate(inRate) + "/s", "records read per second"));
  }

  function renderGraph() {
    var byId = {};
    (state.metrics.vertices || []).forEach(function (v) { byId[v.id] = v; });
    var vertices = state.job.vertices.length ? state.job.vertices : (state.metrics.vertices || []).map(function (v) { return { id: v.id, name: v.id, parallelism: v.parallelism }; });
    if (vertices.length === 0) { fill("graph", h("p", { class: "empty" }, "The job has no execution plan yet: start it.")); return; }
    var nodes = [];
    vertices.forEach(function (v, i) {
      var m = byId[v.id];
      var r = state.rates[v.id] || {};
      var ratio = r.backpressured_ratio;
      var full = m ? m.backpressured_subtasks : 0;
      var bp = backpressureOf(m, r);
      var pressured = bp.backpressured;
      if (i > 0) nodes.push(s("svg", { class: "edge", viewBox: "0 0 40 20", "aria-hidden": "true" }, s("line", { x1: 2, y1: 10, x2: 32, y2: 10 }), s("path", { d: "M30 4 L38 10 L30 16 Z" })));
      nodes.push(h("div", { class: "vertex" + (pressured ? " backpressured" : "") + (m && m.source_lag !== null ? " source" : ""), "data-vertex": v.id },
        h("div", { class: "vertex-name", title: v.name }, v.name),
        h("div", { class: "vertex-par" }, "parallelism " + v.parallelism, pressured ? h("span", { class: "badge bp", title: bp.why }, "backpressured") : null),
        h("dl", {},
          h("dt", {}, "in/s"), h("dd", { class: "rate-in" }, formatRate(r.in_per_s)),
          h("dt", {}, "out/s"), h("dd", { class: "rate-out" }, formatRate(r.out_per_s)),
          h("dt", {}, "records in"), h("dd", {}, m ? formatCount(m.records_in) : "—"),
          h("dt", {}, "records out"), h("dd", {}, m ? formatCount(m.records_out) : "—"),
          m && m.source_lag !== null ? [h("dt", {}, "source lag"), h("dd", {}, formatCount(m.source_lag))] : null,
          m && m.state_keys ? [h("dt", {}, "state keys"), h("dd", {}, formatCount(m.state_keys))] : null,
          h("dt", {}, "backpressure"), h("dd", {}, ratio === null || ratio === undefined ? "—" : Math.round(ratio * 100) + "% of time"),
          full ? [h("dt", {}, "inputs full"), h("dd", {}, full + " of " + v.parallelism + " subtasks")] : null)));
    });
    fill("graph", nodes);
  }

  function completedCheckpoints() {
    return state.overview.history
      .filter(function (e) { return e.status === "COMPLETED" && !e.is_savepoint; })
      .sort(function (a, b) { return a.trigger_timestamp - b.trigger_timestamp; });
  }

  function lineChart(title, yLabel, cls, points, formatY) {
    if (points.length === 0) return [h("figcaption", {}, title), h("p", { class: "empty" }, "No completed checkpoints yet.")];
    var m = chartModel(points, { width: CHART.width, height: CHART.height, margin: CHART.margin, formatX: formatClock, formatY: formatY });
    var a = m.area;
    var svg = s("svg", { class: "chart", viewBox: "0 0 " + m.width + " " + m.height, role: "img", "aria-label": title + " over time" },
      m.yTicks.map(function (t) {
        return [s("line", { class: "grid", x1: a.left, x2: a.right, y1: t.pos, y2: t.pos }),
          s("text", { class: "tick", x: a.left - 6, y: t.pos + 4, "text-anchor": "end" }, t.label)];
      }),
      m.xTicks.map(function (t) {
        return [s("line", { class: "axis", x1: t.pos, x2: t.pos, y1: a.bottom, y2: a.bottom + 4 }),
          s("text", { class: "tick", x: t.pos, y: a.bottom + 17, "text-anchor": "middle" }, t.label)];
      }),
      s("line", { class: "axis", x1: a.left, x2: a.right, y1: a.bottom, y2: a.bottom }),
      s("line", { class: "axis", x1: a.left, x2: a.left, y1: a.top, y2: a.bottom }),
      s("text", { class: "axis-label", x: (a.left + a.right) / 2, y: m.height - 6, "text-anchor": "middle" }, "trigger time"),
      s("text", { class: "axis-label", x: -(a.top + a.bottom) / 2, y: 14, transform: "rotate(-90)", "text-anchor": "middle" }, yLabel),
      s("path", { class: "line " + cls, d: m.path }),
      m.dots.map(function (d) {
        return s("circle", { class: "dot " + cls, cx: d.x, cy: d.y, r: 3 }, s("title", {}, "checkpoint " + d.point.id + ": " + formatY(d.point.y)));
      }));
    return [h("figcaption", {}, title, h("span", { class: "muted" }, " · last " + points.length + " completed checkpoints")), svg];
  }

  function renderCharts() {
    var cps = completedCheckpoints();
    fill("chart-duration", lineChart("End-to-end duration", "duration", "duration",
      cps.map(function (e) { return { x: e.trigger_timestamp, y: e.end_to_end_duration, id: e.id }; }), formatMs));
    fill("chart-size", lineChart("Checkpointed size", "size", "size",
      cps.map(function (e) { return { x: e.trigger_timestamp, y: e.checkpointed_size, id: e.id }; }), formatBytes));
  }

  function renderHistory() {
    var selected = state.detail ? state.detail.id : null;
    fill("history", table("history-table", [
      { label: "ID", num: true }, { label: "Status" }, { label: "Type" }, { label: "Triggered" }, { label: "End to end", num: true },
      { label: "Checkpointed", num: true }, { label: "State size", num: true }, { label: "Alignment", num: true }, { label: "Start delay", num: true }, { label: "Acks", num: true },
    ], state.overview.history.slice(0, 50).map(function (e) {
      var open = function () { pinCheckpoint(e.id); };
      return h("tr", { class: "clickable" + (e.id === selected ? " selected" : ""), tabindex: 0, title: e.failure_message || "show per-subtask detail", onclick: open,
        onkeydown: function (ev) { if (ev.key === "Enter") open(); } },
        h("td", { class: "num" }, e.id), h("td", {}, badge(e.status)), h("td", {}, e.checkpoint_type.toLowerCase().replace(/_/g, " ")),
        h("td", {}, formatClock(e.trigger_timestamp)), h("td", { class: "num" }, formatMs(e.end_to_end_duration)),
        h("td", { class: "num" }, formatBytes(e.checkpointed_size)), h("td", { class: "num" }, formatBytes(e.state_size)),
        h("td", { class: "num" }, formatMs(e.alignment_duration)), h("td", { class: "num" }, formatMs(e.start_delay)),
        h("td", { class: "num" }, e.num_acknowledged_subtasks + "/" + e.num_subtasks));
    })));
    if (state.overview.history.length === 0) append($("history"), [h("p", { class: "empty" }, "No checkpoints yet.")]);
  }

  function bar(value, max, cls) {
    var w = max > 0 ? Math.max(value > 0 ? 1 : 0, Math.round((value / max) * 80)) : 0;
    return s("svg", { class: "bar", viewBox: "0 0 80 8", width: 80, height: 8, "aria-hidden": "true" }, s("rect", { class: "bar-bg", x: 0, y: 0, width: 80, height: 8 }), s("rect", { class: cls, x: 0, y: 0, width: w, height: 8 }));
  }

  function renderDetail() {
    var d = state.detail;
    if (!d) { fill("detail-title", "Per-subtask detail"); fill("detail", h("p", { class: "empty" }, "No checkpoint yet.")); return; }
    fill("detail-title", "Checkpoint " + d.id + " ", badge(d.status), " ",
      state.detailPinned ? h("button", { type: "button", class: "link", onclick: function () { state.detailPinned = false; state.detail = null; schedule(0); } }, "follow latest")
        : h("span", { class: "muted" }, state.overview.latest.completed && state.overview.latest.completed.id === d.id ? "latest completed" : "latest"));
    var max = d.subtasks.reduce(function (a, x) { return Math.max(a, x.alignment_duration, x.start_delay); }, 0);
    fill("detail",
      d.failure_message ? h("p", { class: "alert" }, d.failure_message) : null,
      table("detail-table", [
        { label: "Subtask" }, { label: "Acked after", num: true }, { label: "Sync", num: true }, { label: "Async", num: true },
        { label: "Alignment" }, { label: "Start delay" }, { label: "Checkpointed", num: true },
      ], d.subtasks.map(function (x) {
        return h("tr", {},
          h("td", {}, x.subtask), h("td", { class: "num" }, formatMs(x.end_to_end_duration)), h("td", { class: "num" }, formatMs(x.sync_duration)),
          h("td", { class: "num" }, formatMs(x.async_duration)),
          h("td", {}, h("span", { class: "barcell" }, bar(x.alignment_duration, max, "bar-align"), formatMs(x.alignment_duration))),
          h("td", {}, h("span", { class: "barcell" }, bar(x.start_delay, max, "bar-delay"), formatMs(x.start_delay))),
          h("td", { class: "num" }, formatBytes(x.checkpointed_size)));
      })),
      d.subtasks.length < d.num_subtasks ? h("p", { class: "muted" }, (d.num_subtasks - d.subtasks.length) + " of " + d.num_subtasks + " subtasks have not acknowledged.") : null);
  }

  function renderFailed() {
    var failed = state.overview.history.filter(function (e) { return e.status === "FAILED"; });
    var latest = state.overview.latest.failed;
    if (latest && !failed.some(function (e) { return e.id === latest.id; })) failed.unshift(latest);
    if (failed.length === 0) {
      var n = state.overview.history.length;
      fill("failed", h("p", { class: "empty" }, n ? "No failed checkpoints among the newest " + n + "." : "No failed checkpoints."));
      return;
    }
    fill("failed", table("failed-table", [{ label: "ID", num: true }, { label: "Type" }, { label: "Triggered" }, { label: "Failed after", num: true }, { label: "Cause" }],
      failed.map(function (e) {
        return h("tr", {}, h("td", { class: "num" }, e.id), h("td", {}, e.checkpoint_type.toLowerCase().replace(/_/g, " ")), h("td", {}, formatClock(e.trigger_timestamp)),
          h("td", { class: "num" }, formatMs(e.end_to_end_duration)), h("td", { class: "cause" }, e.failure_message || "—"));
      })));
  }

  function knownSavepoints() {
    var name = state.jobName;
    if (!state.savepoints[name]) state.savepoints[name] = new Map();
    return state.savepoints[name];
  }

  function renderSavepoints() {
    var list = savepointList(state.overview, knownSavepoints());
    if (list.length === 0) { fill("savepoints", h("p", { class: "empty" }, "No savepoints seen yet.")); return; }
    fill("savepoints", table("savepoints-table", [{ label: "Savepoint" }, { label: "Status" }, { label: "Triggered" }, { label: "Took", num: true }, { label: "State size", num: true }, { label: "Location or cause" }],
      list.map(function (x) {
        return h("tr", { "data-savepoint": x.id }, h("td", {}, x.id), h("td", {}, badge(x.status)), h("td", {}, formatClock(x.trigger_timestamp)),
          h("td", { class: "num" }, formatMs(x.end_to_end_duration)), h("td", { class: "num" }, formatBytes(x.state_size)),
          h("td", { class: x.failure_message ? "cause" : "mono" }, x.failure_message || x.location || "—"));
      })));
  }

  function renderSubtasks() {
    var subtasks = (state.metrics.subtasks || []).slice().sort(function (a, b) { return a.vertex === b.vertex ? a.index - b.index : 0; });
    fill("subtasks", table("subtasks-table", [
      { label: "Subtask" }, { label: "Status" }, { label: "Records in", num: true }, { label: "Records out", num: true }, { label: "Queued batches", num: true },
      { label: "Backpressured", num: true }, { label: "Source lag", num: true }, { label: "State keys", num: true }, { label: "Unpublished sink output", num: true }, { label: "Last checkpoint", num: true },
    ], subtasks.map(function (x) {
      return h("tr", {}, h("td", {}, x.vertex + "/" + x.index), h("td", {}, x.status), h("td", { class: "num" }, formatCount(x.records_in)),
        h("td", { class: "num" }, formatCount(x.records_out)), h("td", { class: "num" }, formatCount(x.queued_batches)),
        h("td", { class: "num" }, formatMs(x.backpressured_ms)), h("td", { class: "num" }, x.source_lag === null ? "—" : formatCount(x.source_lag)),
        h("td", { class: "num" }, formatCount(x.state_keys)), h("td", { class: "num" }, formatBytes(x.pending_sink_bytes)), h("td", { class: "num" }, x.last_checkpoint_id || "—"));
    })));
  }

`;
