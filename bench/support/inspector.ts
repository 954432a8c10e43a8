/**
 * CPU profiles of the workerd isolate that runs floe, through the V8
 * inspector that Miniflare exposes (`inspectorPort`) and the Chrome DevTools
 * protocol's Profiler domain. `node --cpu-prof` would only see the Node
 * harness: every Durable Object runs inside workerd.
 */

/** A V8 CPU profile (the Profiler.stop answer, also DevTools' .cpuprofile format). */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number }; hitCount?: number; children?: number[] }[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** A DevTools protocol session over one WebSocket. */
export class InspectorSession {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(private readonly ws: WebSocket) {
    ws.addEventListener("message", (ev) => {
      const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown; error?: { message: string } };
      if (msg.id === undefined) return;
      const w = this.waiting.get(msg.id);
      if (!w) return;
      this.waiting.delete(msg.id);
      if (msg.error) w.reject(new Error(msg.error.message));
      else w.resolve(msg.result);
    });
  }

  /** Connects to the first Worker listed by the inspector at `port`. */
  static async connect(port: number): Promise<InspectorSession> {
    const targets = await InspectorSession.targets(port);
    if (targets.length === 0) throw new Error(`the inspector on port ${port} lists no Worker`);
    return InspectorSession.open(targets[0].webSocketDebuggerUrl);
  }

  /** Connects to every Worker (isolate) the inspector at `port` lists, with its title. */
  static async connectAll(port: number): Promise<{ title: string; session: InspectorSession }[]> {
    const targets = await InspectorSession.targets(port);
    return Promise.all(targets.map(async (t) => ({ title: t.title, session: await InspectorSession.open(t.webSocketDebuggerUrl) })));
  }

  private static async targets(port: number): Promise<{ title: string; webSocketDebuggerUrl: string }[]> {
    return (await (await fetch(`http://127.0.0.1:${port}/json`)).json()) as { title: string; webSocketDebuggerUrl: string }[];
  }

  private static async open(url: string): Promise<InspectorSession> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error(`cannot open ${url}`)), { once: true });
    });
    return new InspectorSession(ws);
  }

  send<T = unknown>(method: string, params: object = {}): Promise<T> {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ id, method, params }));
    return new Promise<T>((resolve, reject) => this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject }));
  }

  /** Profiles for `ms` milliseconds, sampling every `intervalUs` microseconds. */
  async profile(ms: number, intervalUs = 500): Promise<CpuProfile> {
    return this.profileWhile(() => new Promise((r) => setTimeout(r, ms)), intervalUs);
  }

  /** Profiles while `work` runs, sampling every `intervalUs` microseconds. */
  async profileWhile(work: () => Promise<unknown>, intervalUs = 500): Promise<CpuProfile> {
    await this.send("Profiler.enable");
    await this.send("Profiler.setSamplingInterval", { interval: intervalUs });
    await this.send("Profiler.start");
    const stop = async () => {
      const { profile } = await this.send<{ profile: CpuProfile }>("Profiler.stop");
      await this.send("Profiler.disable");
      return profile;
    };
    try {
      await work();
    } catch (e) {
      await stop();
      throw e;
    }
    return stop();
  }

  close(): void {
    this.ws.close();
  }
}

/** Self time per function, heaviest first, as a share of all samples. */
export interface HotSpot {
  function: string;
  location: string;
  self_ms: number;
  self_share: number;
}

/** Aggregates a profile's self time per function (name + file:line). */
export function hotSpots(p: CpuProfile): { total_ms: number; functions: HotSpot[]; byNode: Map<number, number> } {
  const byNode = selfTimeByNode(p);
  const total = [...byNode.values()].reduce((a, b) => a + b, 0);
  const perFunction = new Map<string, HotSpot>();
  for (const n of p.nodes) {
    const ms = byNode.get(n.id) ?? 0;
    if (ms === 0) continue;
    const f = n.callFrame;
    const location = f.url ? `${f.url.split("/").pop()}:${f.lineNumber + 1}` : "(native)";
    const key = `${f.functionName || "(anonymous)"} ${location}`;
    const h = perFunction.get(key) ?? { function: f.functionName || "(anonymous)", location, self_ms: 0, self_share: 0 };
    h.self_ms += ms;
    perFunction.set(key, h);
  }
  const functions = [...perFunction.values()].sort((a, b) => b.self_ms - a.self_ms);
  for (const h of functions) {
    h.self_share = Math.round((h.self_ms / total) * 1000) / 1000;
    h.self_ms = Math.round(h.self_ms);
  }
  return { total_ms: Math.round(total), functions, byNode };
}

/** Milliseconds of samples per node id. */
function selfTimeByNode(p: CpuProfile): Map<number, number> {
  const out = new Map<number, number>();
  if (p.samples && p.timeDeltas) {
    for (let i = 0; i < p.samples.length; i++) {
      const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
      out.set(p.samples[i], (out.get(p.samples[i]) ?? 0) + dt);
    }
  } else {
    const span = (p.endTime - p.startTime) / 1000;
    const hits = p.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0) || 1;
    for (const n of p.nodes) out.set(n.id, ((n.hitCount ?? 0) / hits) * span);
  }
  return out;
}

/**
 * Inclusive time per category: a sample counts for the first category
 * whose predicate matches a frame on its stack, from the leaf up. The
 * categories are checked in order, so put the specific ones first.
 */
export function categorize(p: CpuProfile, byNode: Map<number, number>, categories: [string, (fn: string, url: string) => boolean][]): Record<string, number> {
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  const out: Record<string, number> = {};
  for (const [id, ms] of byNode) {
    if (ms === 0) continue;
    let label = "other";
    // Leaf first: the innermost matching frame decides.
    search: for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = nodes.get(cur)!.callFrame;
      for (const [name, match] of categories) {
        if (match(f.functionName, f.url)) {
          label = name;
          break search;
        }
      }
    }
    out[label] = (out[label] ?? 0) + ms;
  }
  for (const k of Object.keys(out)) out[k] = Math.round(out[k]);
  return out;
}
