/** Short names of objects for the trace: `sum/1`, `coordinator`, `table:log/0`. */
export function shortName(name: string): string {
  const sub = /^job:[^/]+\/vertex:(.+)\/subtask:(\d+)$/.exec(name);
  if (sub) return `${sub[1]}/${sub[2]}`;
  if (/^job:[^/]+$/.test(name)) return "coordinator";
  const part = /^(table|stream):(.+)\/partition:(\d+)$/.exec(name);
  if (part) return `${part[1]}:${part[2]}/${part[3]}`;
  return name;
}
