// @ts-check
/**
 * The dashboard's page script, served at `/dashboard/app.js` and loaded as
 * a module: the page's state, sign-in, and polling of the control API. It
 * wires the API calls (`api.js`), the rendering (`render.js`), the job
 * actions (`actions.js`) and the pure helpers (`helpers.js`). Plain DOM, no
 * framework, no build step.
 */
import { runAction, say } from "./actions.js";
import { api, apiError, forgetToken, jobPath, keepToken, signedIn, whenUnauthorized } from "./api.js";
import { formatClock, vertexRates } from "./helpers.js";
import { $, $as, render, show } from "./render.js";

/** @typedef {import("./types.js").PageState} PageState */
/** @typedef {import("./types.js").JobStatus} JobStatus */
/** @typedef {import("./types.js").JobMetrics} JobMetrics */
/** @typedef {import("./types.js").CheckpointOverview} CheckpointOverview */
/** @typedef {import("./types.js").CheckpointDetail} CheckpointDetail */
/** @typedef {import("./types.js").StreamSummary} StreamSummary */
/** @typedef {import("./helpers.js").MetricsSample} MetricsSample */

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
  vertex: null,
  savepoints: {},
  streams: [],
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
  selectVertex: (id) => {
    state.vertex = id;
    draw();
  },
};

function draw() {
  render(state, handlers);
}

/** What the actions need of the page. */
const actionPage = { state, draw, refreshSoon: () => schedule(0) };

// ---- sign-in -----------------------------------------------------------

/** @param {string | null} message */
function showLoginError(message) {
  $("login-error").textContent = message || "";
  show("login-error", !!message);
}

/** @param {string | null} reason */
function signOut(reason) {
  state.generation++;
  clearTimeout(state.timer);
  forgetToken();
  show("app", false);
  show("signout", false);
  show("login", true);
  setConnection(null);
  showLoginError(reason);
  $("token").focus();
}

/** @param {string} token */
async function signIn(token) {
  keepToken(token);
  showLoginError(null);
  const submit = $as("login-submit", HTMLButtonElement);
  submit.disabled = true;
  try {
    await api("GET", "/v1/jobs");
  } catch (caught) {
    const e = apiError(caught);
    if (e.status !== 401) {
      forgetToken();
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
    state.vertex = null;
    state.metrics = null;
    state.overview = null;
  }
  if (name === null) {
    draw();
    return;
  }
  /** @type {Promise<{ data: JobMetrics }>} */
  const metricsAnswer = api("GET", jobPath(name, "/metrics"));
  /** @type {[{ data: JobStatus }, { data: JobMetrics, atMs: number }, { data: CheckpointOverview }, StreamSummary[]]} */
  const [job, metrics, overview, streams] = await Promise.all([
    api("GET", jobPath(name)),
    // Stamped when it arrives: the rates divide by the time between two of these.
    metricsAnswer.then((r) => ({ data: r.data, atMs: Date.now() })),
    api("GET", jobPath(name, "/checkpoints")),
    // The streams panel keeps what it had when this one call fails: the job's own figures still show.
    api("GET", "/v1/streams").then((r) => /** @type {{ streams: StreamSummary[] }} */ (r.data).streams, () => state.streams),
  ]);
  if (generation !== state.generation || name !== state.jobName) return;
  state.job = job.data;
  state.metrics = metrics.data;
  state.overview = overview.data;
  state.streams = streams;
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

// ---- start-up ----------------------------------------------------------

function init() {
  whenUnauthorized(signOut);
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $as("token", HTMLInputElement).value.trim();
    if (token) void signIn(token);
  });
  $("signout").addEventListener("click", () => signOut(null));
  document.querySelectorAll("button[data-action]").forEach((b) => {
    b.addEventListener("click", () => void runAction(b.getAttribute("data-action") ?? "", actionPage));
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
