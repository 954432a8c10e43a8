// @ts-check
/**
 * The dashboard's job actions, served at `/dashboard/actions.js`: start,
 * trigger a checkpoint, take a savepoint, stop with a savepoint, cancel.
 * Each asks in an in-page dialog first, and every request is a `POST` with
 * a JSON body.
 */
import { ApiError, api, apiError, jobPath, signedIn } from "./api.js";
import { formatClock, savepointList } from "./helpers.js";
import { $, $as, fill, h, knownSavepoints } from "./render.js";

/** @typedef {import("./types.js").PageState} PageState */
/** @typedef {import("./types.js").JobStatus} JobStatus */
/** @typedef {import("./types.js").SavepointStatus} SavepointStatus */

/**
 * Shows a message under the job header (null clears it).
 * @param {string | null} message
 * @param {boolean} [isError]
 */
export function say(message, isError) {
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
 * Lists a savepoint taken from this tab, even once it leaves the history.
 * @param {PageState} state
 * @param {string | undefined} triggerId the checkpoint id of the savepoint
 * @param {string | null} id
 * @param {string | null} location
 */
function rememberSavepoint(state, triggerId, id, location) {
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
 * @property {(state: PageState) => Node} [extra] more of the dialog: a choice the request takes
 * @property {(job: string, state: PageState) => Promise<string>} run the request; resolves to what to tell the user
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
    run: async (n, state) => {
      const r = await savepointResult(n, await api("POST", jobPath(n, "/savepoints"), {}));
      rememberSavepoint(state, r.trigger_id, r.id, r.location);
      return "Savepoint " + r.id + " completed: " + r.location;
    },
  },
  stop: {
    title: "Stop with a savepoint?", ok: "Stop job", busy: "Stopping with a savepoint…", danger: true,
    text: (n) => "floe takes a final savepoint of " + n + ", commits the sinks, and stops the job (FINISHED). Start it from that savepoint to carry on.",
    run: async (n, state) => {
      const r = await savepointResult(n, await api("POST", jobPath(n, "/stop"), { savepoint: true }));
      rememberSavepoint(state, r.trigger_id || (r.id || "").replace("savepoint-", ""), r.id, r.location);
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
    extra: (state) => {
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

/**
 * What an action needs of the page.
 * @typedef {object} ActionPage
 * @property {PageState} state
 * @property {() => void} draw redraws the page from the state
 * @property {() => void} refreshSoon polls now
 */

/**
 * Runs a button's action once the dialog confirms it: one at a time, with
 * the outcome (or the API's error) told under the job header.
 * @param {string} action
 * @param {ActionPage} page
 */
export async function runAction(action, { state, draw, refreshSoon }) {
  const a = ACTIONS[action];
  const name = state.jobName;
  if (!a || !name || state.busy) return;
  const ok = await confirmDialog(a.title, a.text(name), a.ok, !!a.danger, a.extra ? a.extra(state) : null);
  if (!ok) return;
  state.busy = action;
  say(a.busy, false);
  draw();
  try {
    say(await a.run(name, state), false);
  } catch (caught) {
    const e = apiError(caught);
    if (e.status !== 401) say(a.ok + " failed: " + e.code + ": " + e.message, true);
  } finally {
    state.busy = null;
    fill("confirm-extra");
    if (signedIn()) {
      if (state.job) draw();
      refreshSoon();
    }
  }
}
