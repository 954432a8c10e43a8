/**
 * The dashboard's browser script, served at `/dashboard/app.js`: sign-in,
 * polling of the control API, and the job actions, around the rendering
 * (`render-js.ts`) and the pure helpers (`helpers-js.ts`). Plain DOM, no
 * framework, no build step.
 *
 * The admin token lives in `sessionStorage` and only ever travels in an
 * `Authorization: Bearer` header; a 401 drops it and shows the sign-in form.
 */
import { DASHBOARD_HELPERS_JS } from "./helpers-js.js";
import { DASHBOARD_RENDER_JS } from "./render-js.js";

/** State, API calls, sign-in and polling. */
const DASHBOARD_CORE_JS = String.raw`
  var TOKEN_KEY = "floe.adminToken";
  var POLL_MS = 2000;
  /** Statuses in which the job may be running: the page offers no Start for them. */
  var LIVE = ["RUNNING", "RESTARTING", "FAILING"];

  var state = {
    generation: 0,
    timer: null,
    jobs: [],
    jobName: null,
    job: null,
    metrics: null,
    sample: null,
    rates: {},
    overview: null,
    detail: null,
    detailPinned: false,
    savepoints: {},
    busy: null,
    polling: false,
    pollAgain: false,
  };

  // ---- the API -----------------------------------------------------------

  function ApiError(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }

  /** Calls the control API with the session's token; a 401 signs out. */
  async function api(method, path, body) {
    var token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) throw new ApiError(401, "unauthorized", "not signed in");
    var headers = { authorization: "Bearer " + token, accept: "application/json" };
    var init = { method: method, headers: headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    var res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "unreachable", "the engine did not answer (" + (e && e.message ? e.message : e) + ")");
    }
    var text = await res.text();
    var data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    var err = data && data.error ? data.error : null;
    if (res.status === 401) {
      signOut("The token was refused (401 " + (err ? err.code + ": " + err.message : "unauthorized") + ").");
      throw new ApiError(401, "unauthorized", err ? err.message : "unauthorized");
    }
    if (!res.ok) throw new ApiError(res.status, err ? err.code : "http_" + res.status, err ? err.message : text.slice(0, 200) || res.statusText);
    return { status: res.status, data: data };
  }

  function jobPath(name, rest) { return "/v1/jobs/" + encodeURIComponent(name) + (rest || ""); }

  // ---- sign-in -----------------------------------------------------------

  function signedIn() { return !!sessionStorage.getItem(TOKEN_KEY); }

  function showLoginError(message) {
    $("login-error").textContent = message || "";
    show("login-error", !!message);
  }

  function signOut(reason) {
    state.generation++;
    clearTimeout(state.timer);
    sessionStorage.removeItem(TOKEN_KEY);
    show("app", false);
    show("signout", false);
    show("login", true);
    setConnection(null);
    showLoginError(reason || null);
    $("token").focus();
  }

  async function signIn(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    showLoginError(null);
    $("login-submit").disabled = true;
    try {
      await api("GET", "/v1/jobs");
    } catch (e) {
      if (e.status !== 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        showLoginError("Cannot sign in: " + e.code + ": " + e.message);
      }
      return;
    } finally {
      $("login-submit").disabled = false;
    }
    $("token").value = "";
    enterApp();
  }

  function enterApp() {
    show("login", false);
    show("signout", true);
    show("app", true);
    state.generation++;
    schedule(0);
  }

  // ---- polling -----------------------------------------------------------

  function setConnection(error) {
    var el = $("connection");
    if (error === null) { el.textContent = ""; el.className = "connection"; return; }
    el.className = "connection " + (error ? "bad" : "ok");
    el.textContent = error ? "Engine: " + error : "Updated " + formatClock(Date.now());
  }

  function schedule(delayMs) {
    clearTimeout(state.timer);
    state.timer = setTimeout(poll, delayMs);
  }

  /** One refresh at a time: a poll asked for while one runs follows it at once. */
  async function poll() {
    if (!signedIn()) return;
    if (state.polling) { state.pollAgain = true; return; }
    if (document.hidden) { schedule(POLL_MS); return; }
    var generation = state.generation;
    state.polling = true;
    try {
      await refresh(generation);
      if (generation === state.generation) setConnection("");
    } catch (e) {
      if (generation === state.generation && e.status !== 401) setConnection(e.code + ": " + e.message);
    } finally {
      state.polling = false;
    }
    var again = state.pollAgain;
    state.pollAgain = false;
    if (signedIn() && (again || generation === state.generation)) schedule(again ? 0 : POLL_MS);
  }

  function selectedName(jobs) {
    var m = /^#\/jobs\/(.+)$/.exec(location.hash);
    var wanted = m ? decodeURIComponent(m[1]) : null;
    if (wanted && jobs.some(function (j) { return j.name === wanted; })) return wanted;
    return jobs.length ? jobs[0].name : null;
  }

  async function refresh(generation) {
    var jobs = (await api("GET", "/v1/jobs")).data.jobs;
    if (generation !== state.generation) return;
    state.jobs = jobs;
    var name = selectedName(jobs);
    if (name !== state.jobName) {
      state.jobName = name;
      state.sample = null;
      state.rates = {};
      state.detail = null;
      state.detailPinned = false;
      state.metrics = null;
      state.overview = null;
    }
    if (name === null) { render(); return; }
    var results = await Promise.all([
      api("GET", jobPath(name)),
      api("GET", jobPath(name, "/metrics")).then(function (r) { r.atMs = Date.now(); return r; }),
      api("GET", jobPath(name, "/checkpoints")),
    ]);
    if (generation !== state.generation || name !== state.jobName) return;
    state.job = results[0].data;
    state.metrics = results[1].data;
    state.overview = results[2].data;
    var sample = { atMs: results[1].atMs, attempt: state.metrics.attempt, vertices: state.metrics.vertices };
    // A poll right after an action comes early: keep the rates of the last full interval.
    if (!state.sample || sample.attempt !== state.sample.attempt || sample.atMs - state.sample.atMs >= POLL_MS / 2) {
      state.rates = vertexRates(state.sample, sample);
      state.sample = sample;
    }
    await refreshDetail(generation, name);
    render();
  }

  /** Per-subtask detail of the pinned checkpoint, or of the latest completed one. */
  async function refreshDetail(generation, name) {
    var o = state.overview;
    var id = state.detailPinned && state.detail ? state.detail.id
      : o.latest.completed ? o.latest.completed.id : o.history.length ? o.history[0].id : null;
    if (id === null) { state.detail = null; return; }
    var current = state.detail && state.detail.id === id ? state.detail : null;
    if (current && current.status !== "IN_PROGRESS") return;
    try {
      var detail = (await api("GET", jobPath(name, "/checkpoints/" + id))).data;
      if (generation === state.generation && name === state.jobName) state.detail = detail;
    } catch (e) {
      if (e.status !== 404) throw e;
      state.detail = null;
      state.detailPinned = false;
    }
  }

  async function pinCheckpoint(id) {
    var name = state.jobName;
    try {
      var detail = (await api("GET", jobPath(name, "/checkpoints/" + id))).data;
      if (name !== state.jobName) return;
      state.detail = detail;
      state.detailPinned = true;
      render();
    } catch (e) {
      if (e.status !== 401) say("Checkpoint " + id + ": " + e.message, true);
    }
  }

`;

/** The confirmed actions and start-up. */
const DASHBOARD_ACTIONS_JS = String.raw`
  // ---- actions -----------------------------------------------------------

  function say(message, isError) {
    var el = $("action-message");
    el.textContent = message || "";
    el.className = isError ? "notice error" : "notice";
    el.hidden = !message;
  }

  /** Shows the in-page confirmation dialog; resolves true when confirmed. */
  function confirmDialog(title, text, okLabel, danger, extra) {
    var dialog = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    fill("confirm-extra", extra || null);
    $("confirm-ok").textContent = okLabel;
    $("confirm-ok").className = danger ? "danger" : "";
    return new Promise(function (resolve) {
      function done(ok) {
        $("confirm-ok").removeEventListener("click", yes);
        $("confirm-cancel").removeEventListener("click", no);
        dialog.removeEventListener("cancel", no);
        if (dialog.open) dialog.close();
        resolve(ok);
      }
      function yes() { done(true); }
      function no(ev) { if (ev) ev.preventDefault(); done(false); }
      $("confirm-ok").addEventListener("click", yes);
      $("confirm-cancel").addEventListener("click", no);
      dialog.addEventListener("cancel", no);
      dialog.showModal();
      $("confirm-cancel").focus();
    });
  }

  /** Waits for a savepoint that answered 202 with a trigger id. */
  async function awaitSavepoint(name, triggerId) {
    for (;;) {
      var st = (await api("GET", jobPath(name, "/savepoints/" + encodeURIComponent(triggerId)))).data;
      if (st.status === "COMPLETED") return st;
      if (st.status === "FAILED") throw new ApiError(500, "savepoint_failed", st.failure_message || "the savepoint failed");
      await new Promise(function (r) { setTimeout(r, 1000); });
    }
  }

  function rememberSavepoint(name, triggerId, id, location) {
    var cp = Number(triggerId);
    if (!isFinite(cp)) return;
    var known = knownSavepoints();
    var before = known.get(cp) || {};
    known.set(cp, Object.assign({ checkpoint_id: cp, status: "COMPLETED", trigger_timestamp: null, end_to_end_duration: null, state_size: null, failure_message: null }, before, { id: id, location: location }));
  }

  async function savepointResult(name, r) {
    if (r.status === 202) return Object.assign({ trigger_id: r.data.trigger_id }, await awaitSavepoint(name, r.data.trigger_id));
    return r.data;
  }

  var ACTIONS = {
    checkpoint: {
      title: "Trigger a checkpoint?", ok: "Trigger checkpoint", busy: "Triggering a checkpoint…",
      text: function (n) { return "floe takes a checkpoint of " + n + " now, besides the periodic ones."; },
      run: async function (n) { var r = await api("POST", jobPath(n, "/checkpoints"), {}); return "Checkpoint " + r.data.id + " triggered."; },
    },
    savepoint: {
      title: "Take a savepoint?", ok: "Take savepoint", busy: "Taking a savepoint…",
      text: function (n) { return "floe writes a savepoint of " + n + " (its whole state, in the portable format); the job keeps running. The engine never deletes savepoints."; },
      run: async function (n) {
        var r = await savepointResult(n, await api("POST", jobPath(n, "/savepoints"), {}));
        rememberSavepoint(n, r.trigger_id, r.id, r.location);
        return "Savepoint " + r.id + " completed: " + r.location;
      },
    },
    stop: {
      title: "Stop with a savepoint?", ok: "Stop job", busy: "Stopping with a savepoint…", danger: true,
      text: function (n) { return "floe takes a final savepoint of " + n + ", commits the sinks, and stops the job (FINISHED). Start it from that savepoint to carry on."; },
      run: async function (n) {
        var r = await savepointResult(n, await api("POST", jobPath(n, "/stop"), { savepoint: true }));
        rememberSavepoint(n, r.trigger_id || (r.id || "").replace("savepoint-", ""), r.id, r.location);
        return "Stopped " + n + " with savepoint " + r.id + ".";
      },
    },
    cancel: {
      title: "Cancel the job?", ok: "Cancel job", busy: "Canceling…", danger: true,
      text: function (n) { return "Every subtask of " + n + " stops now, without a savepoint. Checkpoints in progress fail; completed ones are kept or deleted as the job is configured."; },
      run: async function (n) { var r = await api("POST", jobPath(n, "/cancel"), {}); return n + " is " + r.data.status + "."; },
    },
    start: {
      title: "Start the job?", ok: "Start job", busy: "Starting…",
      text: function (n) { return "floe deploys " + n + " and starts it, with empty state or from a savepoint."; },
      extra: function () {
        var select = h("select", { id: "start-from" }, h("option", { value: "" }, "empty state"),
          savepointList(state.overview, knownSavepoints()).filter(function (x) { return x.status === "COMPLETED"; })
            .map(function (x) { return h("option", { value: x.id }, x.id + " (" + formatClock(x.trigger_timestamp) + ")"); }));
        return h("label", { class: "field" }, "Start from ", select);
      },
      run: async function (n) {
        var from = $("start-from") ? $("start-from").value : "";
        var r = await api("POST", jobPath(n, "/start"), from ? { fromSavepoint: from } : {});
        return n + " is " + r.data.status + (from ? ", restored from " + from : "") + ".";
      },
    },
  };

  async function runAction(action) {
    var a = ACTIONS[action];
    var name = state.jobName;
    if (!a || !name || state.busy) return;
    var ok = await confirmDialog(a.title, a.text(name), a.ok, !!a.danger, a.extra ? a.extra() : null);
    if (!ok) return;
    state.busy = action;
    say(a.busy, false);
    render();
    try {
      say(await a.run(name), false);
    } catch (e) {
      if (e.status !== 401) say(a.ok + " failed: " + e.code + ": " + e.message, true);
    } finally {
      state.busy = null;
      fill("confirm-extra");
      if (signedIn()) { if (state.job) render(); schedule(0); }
    }
  }

  // ---- start-up ----------------------------------------------------------

  function init() {
    $("login-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var token = $("token").value.trim();
      if (token) signIn(token);
    });
    $("signout").addEventListener("click", function () { signOut(null); });
    document.querySelectorAll("button[data-action]").forEach(function (b) {
      b.addEventListener("click", function () { runAction(b.getAttribute("data-action")); });
    });
    window.addEventListener("hashchange", function () { say(null); state.generation++; schedule(0); });
    document.addEventListener("visibilitychange", function () { if (!document.hidden && signedIn()) schedule(0); });
    if (signedIn()) enterApp();
    else signOut(null);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
`;

/** The whole script: one closure (nothing leaks into the page's globals) holding helpers and page logic. */
export const DASHBOARD_JS = [
  "(function () {",
  '  "use strict";',
  DASHBOARD_HELPERS_JS,
  DASHBOARD_CORE_JS,
  DASHBOARD_RENDER_JS,
  DASHBOARD_ACTIONS_JS,
  "})();",
  "",
].join("\n");
