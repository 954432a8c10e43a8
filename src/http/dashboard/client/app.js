// @ts-check
/**
 * The dashboard's page script, served at `/dashboard/app.js` and loaded as
 * a module: sign-in, polling of the control API, and the job actions,
 * around the rendering (`render.js`) and the pure helpers (`helpers.js`).
 * Plain DOM, no framework, no build step.
 *
 * The admin token lives in `sessionStorage` and only ever travels in an
 * `Authorization: Bearer` header; a 401 drops it and shows the sign-in form.
 */
import { formatClock, savepointList, vertexRates } from "./helpers.js";
import { $, $as, fill, h, knownSavepoints, render, show } from "./render.js";

/** @typedef {import("./types.js").PageState} PageState */
/** @typedef {import("./types.js").JobStatus} JobStatus */
/** @typedef {import("./types.js").JobMetrics} JobMetrics */
/** @typedef {import("./types.js").CheckpointOverview} CheckpointOverview */
/** @typedef {import("./types.js").CheckpointDetail} CheckpointDetail */
/** @typedef {import("./types.js").SavepointStatus} SavepointStatus */
/** @typedef {import("./helpers.js").MetricsSample} MetricsSample */

const TOKEN_KEY = "floe.adminToken";
const POLL_MS = 2000;

/** @type {PageState} */
const state = {
  generation: 0,
  timer: undefined,
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

/** @type {import("./render.js").RenderHandlers} */
const handlers = {
  pinCheckpoint: (id) => void pinCheckpoint(id),
  followLatest: () => {
    state.detailPinned = false;
    state.detail = null;
    schedule(0);
  },
};

function draw() {
  render(state, handlers);
}

// ---- the API -----------------------------------------------------------

/** A failed API call: the HTTP status (0 when the engine did not answer) and the API's error code. */
class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * What a `catch` caught, as an ApiError.
 * @param {unknown} e
 * @returns {ApiError}
 */
function apiError(e) {
  return e instanceof ApiError ? e : new ApiError(0, "script_error", e instanceof Error ? e.message : String(e));
}

/**
 * Calls the control API with the session's token; a 401 signs out. The
 * answer's shape is the caller's to name: it is what the route returns.
 * @template T
 * @param {"GET" | "POST"} method
 * @param {string} path
 * @param {object} [body]
 * @returns {Promise<{ status: number, data: T }>}
 */
async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw new ApiError(401, "unauthorized", "not signed in");
  /** @type {Record<string, string>} */
  const headers = { authorization: "Bearer " + token, accept: "application/json" };
  /** @type {RequestInit} */
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "unreachable", "the engine did not answer (" + (e instanceof Error ? e.message : String(e)) + ")");
  }
  const text = await res.text();
  /** @type {unknown} */
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  const err = errorOf(data);
  if (res.status === 401) {
    signOut("The token was refused (401 " + (err ? err.code + ": " + err.message : "unauthorized") + ").");
    throw new ApiError(401, "unauthorized", err ? err.message : "unauthorized");
  }
  if (!res.ok) throw new ApiError(res.status, err ? err.code : "http_" + res.status, err ? err.message : text.slice(0, 200) || res.statusText);
  // The route's answer, as the caller names it: the API's own types describe what each route returns.
  return { status: res.status, data: /** @type {T} */ (data) };
}

/**
 * The API's `{ error: { code, message } }`, if that is what an answer holds.
 * @param {unknown} data
 * @returns {{ code: string, message: string } | null}
 */
function errorOf(data) {
  if (typeof data !== "object" || data === null || !("error" in data)) return null;
  const e = data.error;
  if (typeof e !== "object" || e === null || !("code" in e) || !("message" in e)) return null;
  return { code: String(e.code), message: String(e.message) };
}

/**
 * @param {string} name
 * @param {string} [rest]
 */
function jobPath(name, rest) {
  return "/v1/jobs/" + encodeURIComponent(name) + (rest || "");
}

// ---- sign-in -----------------------------------------------------------

function signedIn() {
  return !!sessionStorage.getItem(TOKEN_KEY);
}

/** @param {string | null} message */
function showLoginError(message) {
  $("login-error").textContent = message || "";
  show("login-error", !!message);
}

/** @param {string | null} reason */
function signOut(reason) {
  state.generation++;
  clearTimeout(state.timer);
  sessionStorage.removeItem(TOKEN_KEY);
  show("app", false);
  show("signout", false);
  show("login", true);
  setConnection(null);
  showLoginError(reason);
  $("token").focus();
}

/** @param {string} token */
async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  showLoginError(null);
  const submit = $as("login-submit", HTMLButtonElement);
  submit.disabled = true;
  try {
    await api("GET", "/v1/jobs");
  } catch (caught) {
    const e = apiError(caught);
    if (e.status !== 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLoginError("Cannot sign in: " + e.code + ": " + e.message);
    }
    return;
  } finally {
    submit.disabled = false;
  }
  $as("token", HTMLInputElement).value = "";
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

/** @param {string | null} error null: signed out; "": the last poll worked */
function setConnection(error) {
  const el = $("connection");
  if (error === null) {
    el.textContent = "";
    el.className = "connection";
    return;
  }
  el.className = "connection " + (error ? "bad" : "ok");
  el.textContent = error ? "Engine: " + error : "Updated " + formatClock(Date.now());
}

/** @param {number} delayMs */
function schedule(delayMs) {
  clearTimeout(state.timer);
  state.timer = setTimeout(poll, delayMs);
}

/** One refresh at a time: a poll asked for while one runs follows it at once. */
async function poll() {
  if (!signedIn()) return;
  if (state.polling) {
    state.pollAgain = true;
    return;
  }
  if (document.hidden) {
    schedule(POLL_MS);
    return;
  }
  const generation = state.generation;
  state.polling = true;
  try {
    await refresh(generation);
    if (generation === state.generation) setConnection("");
  } catch (caught) {
    const e = apiError(caught);
    if (generation === state.generation && e.status !== 401) setConnection(e.code + ": " + e.message);
  } finally {
    state.polling = false;
  }
  const again = state.pollAgain;
  state.pollAgain = false;
  if (signedIn() && (again || generation === state.generation)) schedule(again ? 0 : POLL_MS);
}

/**
 * The job named in the URL fragment, else the first.
 * @param {JobStatus[]} jobs
 */
function selectedName(jobs) {
  const m = /^#\/jobs\/(.+)$/.exec(location.hash);
  const wanted = m ? decodeURIComponent(m[1]) : null;
  if (wanted && jobs.some((j) => j.name === wanted)) return wanted;
  return jobs.length ? jobs[0].name : null;
}

/** @param {number} generation */
async function refresh(generation) {
  /** @type {{ data: { jobs: JobStatus[] } }} */
  const { data } = await api("GET", "/v1/jobs");
  if (generation !== state.generation) return;
  state.jobs = data.jobs;
  const name = selectedName(data.jobs);
  if (name !== state.jobName) {
    state.jobName = name;
    state.sample = null;
    state.rates = {};
    state.detail = null;
    state.detailPinned = false;
    state.metrics = null;
    state.overview = null;
  }
  if (name === null) {
    draw();
    return;
  }
  /** @type {[{ data: JobStatus }, { data: JobMetrics, atMs: number }, { data: CheckpointOverview }]} */
  const [job, metrics, overview] = await Promise.all([
    api("GET", jobPath(name)),
    api("GET", jobPath(name, "/metrics")).then((r) => ({ data: /** @type {JobMetrics} */ (r.data), atMs: Date.now() })),
    api("GET", jobPath(name, "/checkpoints")),
  ]);
  if (generation !== state.generation || name !== state.jobName) return;
  state.job = job.data;
  state.metrics = metrics.data;
  state.overview = overview.data;
  /** @type {MetricsSample} */
  const sample = { atMs: metrics.atMs, attempt: metrics.data.attempt, vertices: metrics.data.vertices };
  // A poll right after an action comes early: keep the rates of the last full interval.
  if (!state.sample || sample.attempt !== state.sample.attempt || sample.atMs - state.sample.atMs >= POLL_MS / 2) {
    state.rates = vertexRates(state.sample, sample);
    state.sample = sample;
  }
  await refreshDetail(generation, name, overview.data);
  draw();
}

/**
 * Per-subtask detail of the pinned checkpoint, or of the latest completed one.
 * @param {number} generation
 * @param {string} name
 * @param {CheckpointOverview} o
 */
async function refreshDetail(generation, name, o) {
  const id = state.detailPinned && state.detail ? state.detail.id : o.latest.completed ? o.latest.completed.id : o.history.length ? o.history[0].id : null;
  if (id === null) {
    state.detail = null;
    return;
  }
  const current = state.detail && state.detail.id === id ? state.detail : null;
  if (current && current.status !== "IN_PROGRESS") return;
  try {
    /** @type {{ data: CheckpointDetail }} */
    const { data } = await api("GET", jobPath(name, "/checkpoints/" + id));
    if (generation === state.generation && name === state.jobName) state.detail = data;
  } catch (caught) {
    const e = apiError(caught);
    if (e.status !== 404) throw e;
    state.detail = null;
    state.detailPinned = false;
  }
}

/** @param {number} id */
async function pinCheckpoint(id) {
  const name = state.jobName;
  if (name === null) return;
  try {
    /** @type {{ data: CheckpointDetail }} */
    const { data } = await api("GET", jobPath(name, "/checkpoints/" + id));
    if (name !== state.jobName) return;
    state.detail = data;
    state.detailPinned = true;
    draw();
  } catch (caught) {
    const e = apiError(caught);
    if (e.status !== 401) say("Checkpoint " + id + ": " + e.message, true);
  }
}

// ---- actions -----------------------------------------------------------

/**
 * @param {string | null} message
 * @param {boolean} [isError]
 */
function say(message, isError) {
  const el = $("action-message");
  el.textContent = message || "";
  el.className = isError ? "notice error" : "notice";
  el.hidden = !message;
}

/**
 * Shows the in-page confirmation dialog; resolves true when confirmed.
 * @param {string} title
 * @param {string} text
 * @param {string} okLabel
 * @param {boolean} danger
 * @param {Node | null} extra
 * @returns {Promise<boolean>}
 */
function confirmDialog(title, text, okLabel, danger, extra) {
  const dialog = $as("confirm", HTMLDialogElement);
  const ok = $("confirm-ok");
  const back = $("confirm-cancel");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  fill("confirm-extra", extra);
  ok.textContent = okLabel;
  ok.className = danger ? "danger" : "";
  return new Promise((resolve) => {
    /** @param {boolean} confirmed */
    function done(confirmed) {
      ok.removeEventListener("click", yes);
      back.removeEventListener("click", no);
      dialog.removeEventListener("cancel", no);
      if (dialog.open) dialog.close();
      resolve(confirmed);
    }
    function yes() {
      done(true);
    }
    /** @param {Event} ev */
    function no(ev) {
      ev.preventDefault();
      done(false);
    }
    ok.addEventListener("click", yes);
    back.addEventListener("click", no);
    dialog.addEventListener("cancel", no);
    dialog.showModal();
    back.focus();
  });
}

/**
 * Waits for a savepoint that answered 202 with a trigger id.
 * @param {string} name
 * @param {string} triggerId
 * @returns {Promise<SavepointStatus>}
 */
async function awaitSavepoint(name, triggerId) {
  for (;;) {
    /** @type {{ data: SavepointStatus }} */
    const { data: st } = await api("GET", jobPath(name, "/savepoints/" + encodeURIComponent(triggerId)));
    if (st.status === "COMPLETED") return st;
    if (st.status === "FAILED") throw new ApiError(500, "savepoint_failed", st.failure_message || "the savepoint failed");
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * @param {string | undefined} triggerId the checkpoint id of the savepoint
 * @param {string | null} id
 * @param {string | null} location
 */
function rememberSavepoint(triggerId, id, location) {
  const cp = Number(triggerId);
  if (!isFinite(cp) || id === null) return;
  const known = knownSavepoints(state);
  const before = known.get(cp);
  known.set(cp, {
    checkpoint_id: cp,
    status: "COMPLETED",
    trigger_timestamp: null,
    end_to_end_duration: null,
    state_size: null,
    failure_message: null,
    ...before,
    id,
    location,
  });
}

/**
 * What a savepoint, stop or cancel request answers once the savepoint is done.
 * @typedef {{ trigger_id?: string, id: string | null, location: string | null, status?: unknown }} SavepointDone
 */

/**
 * The savepoint's outcome, polled for if the request answered 202 with a trigger id.
 * @param {string} name
 * @param {{ status: number, data: SavepointDone }} r
 * @returns {Promise<SavepointDone>}
 */
async function savepointResult(name, r) {
  if (r.status === 202 && r.data.trigger_id !== undefined) return awaitSavepoint(name, r.data.trigger_id);
  return r.data;
}

/**
 * A button's action: what the dialog says, and the request.
 * @typedef {object} Action
 * @property {string} title
 * @property {string} ok the confirm button's label
 * @property {string} busy what the page says while it runs
 * @property {boolean} [danger]
 * @property {(job: string) => string} text
 * @property {() => Node} [extra] more of the dialog: a choice the request takes
 * @property {(job: string) => Promise<string>} run the request; resolves to what to tell the user
 */

/** @type {Record<string, Action>} */
const ACTIONS = {
  checkpoint: {
    title: "Trigger a checkpoint?", ok: "Trigger checkpoint", busy: "Triggering a checkpoint…",
    text: (n) => "floe takes a checkpoint of " + n + " now, besides the periodic ones.",
    run: async (n) => {
      /** @type {{ data: { id: number } }} */
      const r = await api("POST", jobPath(n, "/checkpoints"), {});
      return "Checkpoint " + r.data.id + " triggered.";
    },
  },
  savepoint: {
    title: "Take a savepoint?", ok: "Take savepoint", busy: "Taking a savepoint…",
    text: (n) => "floe writes a savepoint of " + n + " (its whole state, in the portable format); the job keeps running. The engine never deletes savepoints.",
    run: async (n) => {
      const r = await savepointResult(n, await api("POST", jobPath(n, "/savepoints"), {}));
      rememberSavepoint(r.trigger_id, r.id, r.location);
      return "Savepoint " + r.id + " completed: " + r.location;
    },
  },
  stop: {
    title: "Stop with a savepoint?", ok: "Stop job", busy: "Stopping with a savepoint…", danger: true,
    text: (n) => "floe takes a final savepoint of " + n + ", commits the sinks, and stops the job (FINISHED). Start it from that savepoint to carry on.",
    run: async (n) => {
      const r = await savepointResult(n, await api("POST", jobPath(n, "/stop"), { savepoint: true }));
      rememberSavepoint(r.trigger_id || (r.id || "").replace("savepoint-", ""), r.id, r.location);
      return "Stopped " + n + " with savepoint " + r.id + ".";
    },
  },
  cancel: {
    title: "Cancel the job?", ok: "Cancel job", busy: "Canceling…", danger: true,
    text: (n) => "Every subtask of " + n + " stops now, without a savepoint. Checkpoints in progress fail; completed ones are kept or deleted as the job is configured.",
    run: async (n) => {
      /** @type {{ data: JobStatus }} */
      const r = await api("POST", jobPath(n, "/cancel"), {});
      return n + " is " + r.data.status + ".";
    },
  },
  start: {
    title: "Start the job?", ok: "Start job", busy: "Starting…",
    text: (n) => "floe deploys " + n + " and starts it, with empty state or from a savepoint.",
    extra: () => {
      const completed = savepointList(state.overview, knownSavepoints(state)).filter((x) => x.status === "COMPLETED");
      const select = h("select", { id: "start-from" }, h("option", { value: "" }, "empty state"),
        completed.map((x) => h("option", { value: x.id }, x.id + " (" + formatClock(x.trigger_timestamp) + ")")));
      return h("label", { class: "field" }, "Start from ", select);
    },
    run: async (n) => {
      const select = document.getElementById("start-from");
      const from = select instanceof HTMLSelectElement ? select.value : "";
      /** @type {{ data: JobStatus }} */
      const r = await api("POST", jobPath(n, "/start"), from ? { fromSavepoint: from } : {});
      return n + " is " + r.data.status + (from ? ", restored from " + from : "") + ".";
    },
  },
};

/** @param {string} action */
async function runAction(action) {
  const a = ACTIONS[action];
  const name = state.jobName;
  if (!a || !name || state.busy) return;
  const ok = await confirmDialog(a.title, a.text(name), a.ok, !!a.danger, a.extra ? a.extra() : null);
  if (!ok) return;
  state.busy = action;
  say(a.busy, false);
  draw();
  try {
    say(await a.run(name), false);
  } catch (caught) {
    const e = apiError(caught);
    if (e.status !== 401) say(a.ok + " failed: " + e.code + ": " + e.message, true);
  } finally {
    state.busy = null;
    fill("confirm-extra");
    if (signedIn()) {
      if (state.job) draw();
      schedule(0);
    }
  }
}

// ---- start-up ----------------------------------------------------------

function init() {
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $as("token", HTMLInputElement).value.trim();
    if (token) void signIn(token);
  });
  $("signout").addEventListener("click", () => signOut(null));
  document.querySelectorAll("button[data-action]").forEach((b) => {
    b.addEventListener("click", () => void runAction(b.getAttribute("data-action") ?? ""));
  });
  window.addEventListener("hashchange", () => {
    say(null);
    state.generation++;
    schedule(0);
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && signedIn()) schedule(0);
  });
  if (signedIn()) enterApp();
  else signOut(null);
}

// A module script runs after the document is parsed; the check keeps it right if it is ever loaded otherwise.
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
