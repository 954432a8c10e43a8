/**
 * The dashboard's HTML shell, served at `/`. It carries no data and no
 * inline script or style (the Content-Security-Policy allows neither): the
 * script fills it in after sign-in, with data from the authenticated API.
 */

/** The page. The login form has no action: the script handles it, and the CSP forbids form submission. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>floe</title>
<link rel="icon" href="data:,">
<meta name="floe-base" content="__FLOE_BASE__">
<link rel="stylesheet" href="__FLOE_BASE__/dashboard/app.css">
<script type="module" src="__FLOE_BASE__/dashboard/app.js"></script>
</head>
<body>
<header class="top">
  <span class="brand">floe</span>
  <span class="subtitle">stream processing dashboard</span>
  <span id="connection" class="connection" role="status"></span>
  <button id="signout" type="button" class="secondary" hidden>Sign out</button>
</header>

<main>
  <section id="login" class="login" hidden>
    <form id="login-form" method="post" autocomplete="off">
      <h1>Sign in</h1>
      <p>Paste the admin token (the Worker secret <code>FLOE_ADMIN_TOKEN</code>; with <code>npm start</code> it is in <code>.dev.vars</code>).
        It stays in this tab's session storage and is sent only in the <code>Authorization</code> header.</p>
      <label for="token">Admin token</label>
      <input id="token" name="token" type="password" required autocomplete="off" spellcheck="false">
      <button id="login-submit" type="submit">Sign in</button>
      <p id="login-error" class="error" role="alert" hidden></p>
    </form>
  </section>

  <div id="app" class="layout" hidden>
    <nav class="jobs" aria-label="Jobs">
      <h2>Jobs</h2>
      <div id="jobs"></div>
      <p id="no-jobs" class="empty" hidden>This Worker has no jobs.</p>
    </nav>

    <section id="job" class="job" hidden>
      <div class="job-head">
        <div>
          <h1><span id="job-name"></span> <span id="job-status"></span></h1>
          <p id="job-meta" class="meta"></p>
        </div>
        <div class="actions">
          <button type="button" data-action="start" hidden>Start</button>
          <button type="button" data-action="checkpoint" hidden>Trigger checkpoint</button>
          <button type="button" data-action="savepoint" hidden>Savepoint</button>
          <button type="button" data-action="stop" class="danger" hidden>Stop with savepoint</button>
          <button type="button" data-action="cancel" class="danger" hidden>Cancel</button>
        </div>
      </div>
      <p id="job-error" class="alert" hidden></p>
      <p id="action-message" class="notice" role="status" hidden></p>

      <div id="tiles" class="tiles"></div>

      <section class="panel">
        <h2>Operators</h2>
        <div id="graph" class="graph"></div>
        <p class="muted small">Click a vertex for its subtasks: watermarks, timers, open windows.</p>
        <div id="vertex-detail" class="vertex-detail" hidden></div>
      </section>

      <section class="panel">
        <h2>Checkpoints</h2>
        <div class="charts">
          <figure id="chart-duration" class="chart-box"></figure>
          <figure id="chart-size" class="chart-box"></figure>
        </div>
        <div class="split">
          <div>
            <h3>History</h3>
            <div id="history" class="scroll"></div>
          </div>
          <div>
            <h3 id="detail-title">Per-subtask detail</h3>
            <div id="detail"></div>
          </div>
        </div>
      </section>

      <section class="panel">
        <h2>Failed checkpoints</h2>
        <div id="failed"></div>
      </section>

      <section class="panel">
        <h2>Savepoints</h2>
        <div id="savepoints"></div>
        <p class="muted small">Savepoints taken in the newest 100 checkpoints, and those seen in this tab.</p>
      </section>

      <section class="panel">
        <h2>Streams</h2>
        <div id="streams"></div>
      </section>

      <section class="panel">
        <details>
          <summary>Subtasks</summary>
          <div id="subtasks" class="scroll"></div>
        </details>
      </section>
    </section>
  </div>
</main>

<dialog id="confirm" aria-labelledby="confirm-title">
  <h2 id="confirm-title"></h2>
  <p id="confirm-text"></p>
  <div id="confirm-extra"></div>
  <div class="dialog-buttons">
    <button id="confirm-cancel" type="button" class="secondary">Back</button>
    <button id="confirm-ok" type="button">Confirm</button>
  </div>
</dialog>

<noscript><p class="error">The floe dashboard needs JavaScript.</p></noscript>
</body>
</html>
`;

/**
 * The page for floe mounted at `basePath` ("" at the root, else "/floe"
 * and the like, already checked to be plain path segments): its files are
 * under `<base>/dashboard/`, and the script reads the base from the
 * `floe-base` meta tag to call `<base>/v1`.
 */
export function dashboardHtml(basePath: string): string {
  return DASHBOARD_HTML.replaceAll("__FLOE_BASE__", basePath);
}
