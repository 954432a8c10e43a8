/**
 * The dashboard's stylesheet, served at `/dashboard/app.css`. Light, dense
 * and readable; charts are styled here so the SVG carries no inline style.
 */

/** The stylesheet text. */
export const DASHBOARD_CSS = `
:root {
  --bg: #f5f6f8; --panel: #fff; --ink: #1c2330; --muted: #667085; --line: #e3e6ec;
  --accent: #2563eb; --accent-ink: #fff; --ok: #15803d; --warn: #b45309; --bad: #b91c1c;
  --ok-bg: #dcfce7; --warn-bg: #fef3c7; --bad-bg: #fee2e2; --idle-bg: #eef0f4;
  --chart-duration: #2563eb; --chart-size: #7c3aed;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--ink); background: var(--bg);
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; }
h1, h2, h3 { margin: 0; font-weight: 600; }
h1 { font-size: 22px; }
h2 { font-size: 16px; margin-bottom: 10px; }
h3 { font-size: 14px; margin: 14px 0 8px; display: flex; align-items: center; gap: 6px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.muted { color: var(--muted); font-weight: normal; }
.small { font-size: 12px; margin: 8px 0 0; }
.empty { color: var(--muted); margin: 6px 0; }

button {
  font: inherit; border: 1px solid var(--accent); background: var(--accent); color: var(--accent-ink);
  border-radius: 6px; padding: 6px 12px; cursor: pointer;
}
button:hover { filter: brightness(1.08); }
button:disabled { opacity: .5; cursor: default; filter: none; }
button.secondary { background: var(--panel); color: var(--ink); border-color: var(--line); }
button.danger { background: var(--bad); border-color: var(--bad); }
button.link { background: none; border: none; color: var(--accent); padding: 0; font-size: 12px; font-weight: normal; }
button:focus-visible, a:focus-visible, tr:focus-visible, input:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }

.top {
  display: flex; align-items: center; gap: 12px; padding: 10px 20px;
  background: #111827; color: #e5e7eb;
}
.brand { font-weight: 700; font-size: 18px; letter-spacing: .5px; color: #fff; }
.subtitle { color: #9ca3af; }
.connection { margin-left: auto; font-size: 12px; color: #9ca3af; }
.connection.bad { color: #fca5a5; }
.top button.secondary { background: transparent; color: #e5e7eb; border-color: #374151; }

main { padding: 20px; }
.login { display: flex; justify-content: center; padding-top: 8vh; }
.login form {
  width: min(440px, 100%); background: var(--panel); border: 1px solid var(--line); border-radius: 10px;
  padding: 24px; display: flex; flex-direction: column; gap: 10px;
}
.login p { margin: 0; color: var(--muted); }
.login label { font-weight: 600; margin-top: 6px; }
.login input { font: inherit; padding: 8px 10px; border: 1px solid var(--line); border-radius: 6px; }
.error { color: var(--bad); margin: 0; }
.login .error { background: var(--bad-bg); padding: 8px 10px; border-radius: 6px; }

.layout { display: grid; grid-template-columns: 240px minmax(0, 1fr); gap: 20px; align-items: start; }
.jobs { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 14px; }
.jobs a { color: var(--accent); text-decoration: none; font-weight: 600; }
.jobs tr.selected td { background: #eff4ff; }
.jobs th, .jobs td { padding: 5px 4px; }

.job-head { display: flex; justify-content: space-between; align-items: flex-start; gap: 16px; flex-wrap: wrap; }
.job-head h1 { display: flex; align-items: center; gap: 10px; }
.meta { margin: 4px 0 0; color: var(--muted); }
.actions { display: flex; gap: 8px; flex-wrap: wrap; }
.alert { background: var(--bad-bg); color: var(--bad); padding: 8px 12px; border-radius: 6px; margin: 12px 0 0; }
.notice { background: #e0ecff; color: #1e3a8a; padding: 8px 12px; border-radius: 6px; margin: 12px 0 0; overflow-wrap: anywhere; }
.notice.error { background: var(--bad-bg); color: var(--bad); }

.badge {
  display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 11.5px; font-weight: 600;
  letter-spacing: .3px; background: var(--idle-bg); color: #374151; vertical-align: middle;
}
.status-running, .status-completed { background: var(--ok-bg); color: var(--ok); }
.status-restarting, .status-failing, .status-in_progress { background: var(--warn-bg); color: var(--warn); }
.status-failed { background: var(--bad-bg); color: var(--bad); }
.badge.bp { background: var(--bad-bg); color: var(--bad); margin-left: 6px; }

.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; margin: 16px 0; }
.tile { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; }
.tile-label { color: var(--muted); font-size: 12px; }
.tile-value { font-size: 22px; font-weight: 600; margin: 2px 0; font-variant-numeric: tabular-nums; }
.tile-sub { color: var(--muted); font-size: 12px; min-height: 1em; }

.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; margin-bottom: 16px; }
.panel summary { font-weight: 600; cursor: pointer; }

.graph { display: flex; align-items: center; gap: 6px; overflow-x: auto; padding: 4px 2px 8px; }
.vertex {
  flex: 0 0 auto; min-width: 210px; border: 1px solid var(--line); border-left: 4px solid var(--accent);
  border-radius: 8px; padding: 10px 12px; background: #fbfcfe;
}
.vertex.source { border-left-color: var(--ok); }
.vertex.backpressured { border-color: var(--bad); border-left-color: var(--bad); background: #fff7f7; }
.vertex[role="button"] { cursor: pointer; }
.vertex.selected { box-shadow: 0 0 0 2px var(--accent); }
.vertex-detail { margin-top: 10px; overflow-x: auto; }
.vertex-detail h3 { margin: 0 0 4px; }
.vertex-name { font-weight: 600; white-space: nowrap; }
.vertex-par { color: var(--muted); font-size: 12px; margin-bottom: 6px; }
.vertex dl { display: grid; grid-template-columns: auto auto; gap: 1px 14px; margin: 0; font-size: 12.5px; }
.vertex dt { color: var(--muted); }
.vertex dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
.edge { flex: 0 0 40px; width: 40px; height: 20px; }
.edge line { stroke: #94a3b8; stroke-width: 2; }
.edge path { fill: #94a3b8; }

.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; }
.chart-box { margin: 0; }
.chart-box figcaption { font-weight: 600; margin-bottom: 4px; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart .grid { stroke: #eef0f4; }
svg.chart .axis { stroke: #98a2b3; }
svg.chart .tick { fill: var(--muted); font-size: 11px; }
svg.chart .axis-label { fill: var(--muted); font-size: 11px; }
svg.chart .line { fill: none; stroke-width: 2; stroke-linejoin: round; }
svg.chart .line.duration { stroke: var(--chart-duration); }
svg.chart .line.size { stroke: var(--chart-size); }
svg.chart .dot { stroke: #fff; stroke-width: 1; }
svg.chart .dot.duration { fill: var(--chart-duration); }
svg.chart .dot.size { fill: var(--chart-size); }

.split { display: grid; grid-template-columns: minmax(0, 1fr); gap: 4px; }
.scroll { max-height: 340px; overflow: auto; }
#detail, #failed, #savepoints { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 600; font-size: 12px; position: sticky; top: 0; background: var(--panel); }
td.num, th.num { text-align: right; }
td.cause { white-space: normal; color: var(--bad); min-width: 240px; }
td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
tr.clickable { cursor: pointer; }
tr.clickable:hover td { background: #f8fafc; }
tr.selected td { background: #eff4ff; }
.barcell { display: inline-flex; align-items: center; gap: 6px; }
svg.bar .bar-bg { fill: #eef0f4; }
svg.bar .bar-align { fill: #f59e0b; }
svg.bar .bar-delay { fill: #0ea5e9; }

dialog { border: 1px solid var(--line); border-radius: 10px; padding: 20px 22px; width: min(460px, 92vw); color: var(--ink); }
dialog::backdrop { background: rgba(17, 24, 39, .45); }
dialog p { color: var(--muted); }
.dialog-buttons { display: flex; justify-content: flex-end; gap: 8px; margin-top: 16px; }
.field { display: flex; gap: 8px; align-items: center; }
.field select { font: inherit; padding: 4px 6px; }

@media (max-width: 900px) {
  .layout { grid-template-columns: minmax(0, 1fr); }
}
`;
