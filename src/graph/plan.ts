/**
 * From a declared job to an execution plan: validation, parallelism, and
 * chaining of operators into vertices (Flink's operator chains). A vertex
 * runs as `parallelism` Subtask objects; records cross between vertices in
 * batches over RPC, and stay in memory along a chain.
 *
 * The plan is plain JSON: it is stored by the Coordinator and sent to every
 * Subtask, which finds its operators' code again by node id in the job
 * definition compiled into the Worker.
 */
import type { JobDefinition, LogicalNode, PartitionerKind } from "../api/job.js";
import { JobDefinitionError } from "../errors.js";
import { checkStateTtl } from "../api/state.js";
import { MAX_PARALLELISM_LIMIT } from "./key-groups.js";

/** How a vertex receives from one upstream vertex. */
export interface PlanInput {
  readonly vertex: string;
  readonly parallelism: number;
  readonly partitioner: PartitionerKind;
  /** Index of this input among the head node's inputs (0 for most operators). */
  readonly inputIndex: number;
  /** Set on the second and later inputs from one upstream vertex: their channels are lanes of their own (`channelId`). */
  readonly lane?: number;
}

/** Where a vertex's tail sends records. */
export interface PlanOutput {
  readonly vertex: string;
  readonly parallelism: number;
  readonly partitioner: PartitionerKind;
  /** The consuming node and its input index, whose key selector routes hash edges. */
  readonly toNode: number;
  readonly inputIndex: number;
  /** Set when the edge carries the tail's side output with this tag id rather than its main output. */
  readonly tag?: string;
  /** The receiving input's lane (see {@link PlanInput.lane}). */
  readonly lane?: number;
}

/** A chain of operators run by each of `parallelism` subtasks. */
export interface PlanVertex {
  readonly id: string;
  readonly name: string;
  /** Logical node ids, head first. */
  readonly nodes: readonly number[];
  readonly parallelism: number;
  readonly inputs: readonly PlanInput[];
  readonly outputs: readonly PlanOutput[];
  /** The head consumes a keyed stream: the vertex owns key-group ranges. */
  readonly keyed: boolean;
  readonly isSource: boolean;
  /** uids of the vertex's operators, head first. */
  readonly uids: readonly string[];
}

/** What the Coordinator deploys. */
export interface ExecutionPlan {
  readonly job: string;
  readonly maxParallelism: number;
  readonly batchSize: number;
  /** Vertices in topological order (sources first). */
  readonly vertices: readonly PlanVertex[];
}

/** Parallelism chosen at start: one number for every operator, or per uid. */
export type ParallelismOverride = number | Readonly<Record<string, number>>;

const UID = /^[A-Za-z0-9_.-]{1,64}$/;

/** Whether a node keeps state that a snapshot must carry. */
export function isStateful(node: LogicalNode): boolean {
  // An async I/O operator keeps the records whose requests are in flight.
  if (node.kind === "source" || node.kind === "sink" || node.kind === "async") return true;
  if (node.kind === "process") return isKeyedInput(node) || (node.process?.state?.length ?? 0) > 0 || node.broadcastState !== undefined;
  return false;
}

function isKeyedInput(node: LogicalNode): boolean {
  return node.inputs.some((e) => e.keySelector !== undefined);
}

/** Display name of a node in messages: its name, uid, or kind and position. */
export function nodeLabel(node: LogicalNode): string {
  return node.options.name ?? node.options.uid ?? `${node.kind}#${node.id}`;
}

/**
 * Validates a job and builds its plan. Throws {@link JobDefinitionError}
 * naming the operator at fault.
 */
/**
 * The vertices whose input records carry where they were read (batch
 * `origins`): every vertex an async operator heads, whose failures and
 * dead letters name the source offset (its records always come over a
 * network edge), and every vertex that feeds one, directly or not, so
 * that the offset gets there. Other edges carry none.
 */
export function verticesCarryingOrigins(plan: ExecutionPlan, nodes: readonly LogicalNode[]): ReadonlySet<string> {
  const out = new Set<string>();
  // Sinks first: a vertex carries origins when it is async or sends to one that carries them.
  for (let i = plan.vertices.length - 1; i >= 0; i--) {
    const v = plan.vertices[i];
    if (nodes[v.nodes[0]].kind === "async" || v.outputs.some((o) => out.has(o.vertex))) out.add(v.id);
  }
  for (const v of plan.vertices) if (v.isSource) out.delete(v.id);
  return out;
}

export function buildPlan(job: JobDefinition, override?: ParallelismOverride): ExecutionPlan {
  const maxParallelism = job.options.maxParallelism ?? 128;
  if (!Number.isInteger(maxParallelism) || maxParallelism < 1 || maxParallelism > MAX_PARALLELISM_LIMIT) {
    throw new JobDefinitionError(`job "${job.name}": maxParallelism must be an integer in 1..${MAX_PARALLELISM_LIMIT}, got ${maxParallelism}`);
  }
  const batchSize = job.options.batchSize ?? 1000;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100_000) {
    throw new JobDefinitionError(`job "${job.name}": batchSize must be an integer in 1..100000, got ${batchSize}`);
  }
  if (job.problems.length > 0) throw new JobDefinitionError(`job "${job.name}": ${job.problems.join("; ")}`);
  const nodes = job.nodes;
  if (!nodes.some((n) => n.kind === "source")) throw new JobDefinitionError(`job "${job.name}" has no source`);

  checkUids(job);
  const uids = new Set(nodes.map((n) => n.options.uid).filter((u): u is string => u !== undefined));
  if (override !== undefined && typeof override === "object") {
    const unknown = Object.keys(override).filter((u) => !uids.has(u));
    if (unknown.length > 0) {
      throw new JobDefinitionError(`parallelism names unknown uids: ${unknown.join(", ")}`);
    }
  }

  const consumers = nodes.map(() => [] as number[]);
  for (const n of nodes) {
    for (const [i, e] of n.inputs.entries()) {
      if (e.from < 0 || e.from >= n.id) throw new JobDefinitionError(`operator "${nodeLabel(n)}" reads a stream of another job`);
      // Two inputs from one operator are two lanes (a.connect(a), a stream and its side output); one stream read twice into one input is a mistake.
      if (n.inputs.slice(0, i).some((x) => x.from === e.from && x.tag === e.tag && x.coInput === e.coInput)) {
        throw new JobDefinitionError(`operator "${nodeLabel(n)}" reads the same stream twice`);
      }
      if (!consumers[e.from].includes(n.id)) consumers[e.from].push(n.id);
    }
    // A broadcast edge reaches every subtask: it neither is keyed nor makes the operator's other inputs unkeyed.
    const keyedEdges = n.inputs.filter((e) => e.keySelector).length;
    if (keyedEdges > 0 && keyedEdges < n.inputs.filter((e) => !e.broadcast).length) {
      throw new JobDefinitionError(`operator "${nodeLabel(n)}" mixes keyed and non-keyed inputs: keyBy every input`);
    }
    // A bad state TTL is refused at start, naming the operator (a descriptor made by valueState() was checked already).
    if (n.kind === "process") for (const d of n.process?.state ?? []) checkStateTtl(d, nodeLabel(n));
    if (n.kind === "process" && keyedEdges === 0 && (n.process?.state?.length ?? 0) > 0) {
      throw new JobDefinitionError(
        `operator "${nodeLabel(n)}" declares keyed state but its input is not keyed: call keyBy() before process()`,
      );
    }
  }

  checkEventTime(nodes);
  checkDeadLetters(nodes, consumers);

  const parallelism = nodes.map(() => 0);
  for (const n of nodes) {
    let p: number | undefined;
    if (typeof override === "number") p = override;
    else if (override && n.options.uid && override[n.options.uid] !== undefined) p = override[n.options.uid];
    p ??= n.options.parallelism;
    if (p === undefined && n.kind === "source") p = n.source?.defaultParallelism ?? job.options.parallelism;
    p ??= n.inputs.length > 0 ? Math.max(...n.inputs.map((e) => parallelism[e.from])) : undefined;
    p ??= job.options.parallelism ?? 1;
    if (!Number.isInteger(p) || p < 1 || p > maxParallelism) {
      throw new JobDefinitionError(
        `operator "${nodeLabel(n)}": parallelism must be an integer in 1..maxParallelism (${maxParallelism}), got ${p}`,
      );
    }
    parallelism[n.id] = p;
  }

  // Chain B onto A when records can stay in memory: one forward input from
  // an operator that feeds nothing else, at the same parallelism. A side
  // output's consumer is never chained, and counts as a consumer: so an
  // operator with side outputs is always the tail of its vertex, whose
  // record writer routes by tag.
  const chainedTo = nodes.map(() => -1);
  for (const n of nodes) {
    if (n.inputs.length !== 1) continue;
    const e = n.inputs[0];
    if (e.keySelector || e.tag !== undefined || e.broadcast) continue;
    if (consumers[e.from].length !== 1) continue;
    if (parallelism[e.from] !== parallelism[n.id]) continue;
    // An async I/O operator has a vertex of its own: the task feeds it and emits its results (runtime/subtask/async-stage.ts).
    if (n.kind === "async" || nodes[e.from].kind === "async") continue;
    chainedTo[n.id] = e.from;
  }

  const vertexOf = nodes.map(() => "");
  const chains: number[][] = [];
  for (const n of nodes) {
    if (chainedTo[n.id] >= 0) continue;
    const chain = [n.id];
    for (let tail = n.id; ; ) {
      const next = consumers[tail].find((c) => chainedTo[c] === tail);
      if (next === undefined) break;
      chain.push(next);
      tail = next;
    }
    chains.push(chain);
  }
  const ids = new Set<string>();
  for (const chain of chains) {
    const head = nodes[chain[0]];
    let id = head.options.uid ?? `${head.kind}-${head.id}`;
    while (ids.has(id)) id = `${id}-${head.id}`;
    ids.add(id);
    for (const nodeId of chain) vertexOf[nodeId] = id;
  }

  const partitionerOf = (from: number, to: LogicalNode, inputIndex: number): PartitionerKind => {
    if (to.inputs[inputIndex].broadcast) return "broadcast";
    if (to.inputs[inputIndex].keySelector) return "hash";
    return parallelism[from] === parallelism[to.id] ? "forward" : "rebalance";
  };

  // The n-th input (n ≥ 1) of a head from one upstream vertex is lane n: its channels are told apart from the first's.
  const lane = (to: LogicalNode, inputIndex: number): { lane?: number } => {
    const from = vertexOf[to.inputs[inputIndex].from];
    const n = to.inputs.slice(0, inputIndex).filter((e) => vertexOf[e.from] === from).length;
    return n === 0 ? {} : { lane: n };
  };

  const vertices: PlanVertex[] = chains.map((chain) => {
    const head = nodes[chain[0]];
    const tail = nodes[chain[chain.length - 1]];
    return {
      id: vertexOf[head.id],
      name: chain.map((id) => nodeLabel(nodes[id])).join(" → "),
      nodes: chain,
      parallelism: parallelism[head.id],
      inputs: head.inputs.map((e, inputIndex) => ({
        vertex: vertexOf[e.from],
        parallelism: parallelism[e.from],
        partitioner: partitionerOf(e.from, head, inputIndex),
        inputIndex,
        ...lane(head, inputIndex),
      })),
      outputs: consumers[tail.id].flatMap((c) => {
        const to = nodes[c];
        return to.inputs.flatMap((e, inputIndex) => {
          if (e.from !== tail.id) return [];
          return [
            {
              vertex: vertexOf[c],
              parallelism: parallelism[c],
              partitioner: partitionerOf(tail.id, to, inputIndex),
              toNode: c,
              inputIndex,
              ...(e.tag === undefined ? {} : { tag: e.tag }),
              ...lane(to, inputIndex),
            },
          ];
        });
      }),
      keyed: isKeyedInput(head),
      isSource: head.kind === "source",
      uids: chain.map((id) => nodes[id].options.uid).filter((u): u is string => u !== undefined),
    };
  });
  return { job: job.name, maxParallelism, batchSize, vertices };
}

/**
 * Refuses a dead-letter output that no stream reads (its records would be
 * lost without a trace) and one on a sink (a sink's failures are the
 * sink's: it retries or fails over).
 */
function checkDeadLetters(nodes: readonly LogicalNode[], consumers: readonly number[][]): void {
  for (const n of nodes) {
    const tag = n.options.deadLetters;
    if (tag === undefined) continue;
    if (n.kind === "sink") throw new JobDefinitionError(`sink "${nodeLabel(n)}" has deadLetters: only sources and functions route records to dead letters`);
    const read = consumers[n.id].some((c) => nodes[c].inputs.some((e) => e.from === n.id && e.tag === tag.id));
    if (!read) {
      throw new JobDefinitionError(
        `operator "${nodeLabel(n)}" routes dead letters to "${tag.id}", but no stream reads them: add getSideOutput(tag) with a sink, or they would be lost`,
      );
    }
  }
}

/**
 * Refuses an operator that needs its records' event time (an event-time
 * window) when a source upstream has no watermark strategy: its records
 * would carry none, and the operator would fail at the first one.
 */
function checkEventTime(nodes: readonly LogicalNode[]): void {
  // The first source upstream of each node whose records carry no event time, if any.
  const without = new Map<number, LogicalNode>();
  for (const n of nodes) {
    if (n.kind === "source") {
      if (n.watermarks === undefined) without.set(n.id, n);
      continue;
    }
    const from = n.inputs.map((e) => without.get(e.from)).find((s) => s !== undefined);
    if (from) without.set(n.id, from);
    if (from && n.needsEventTime !== undefined) {
      throw new JobDefinitionError(
        `operator "${nodeLabel(n)}" (${n.needsEventTime}) needs event time, but source "${nodeLabel(from)}" has no watermark strategy: ` +
          `give it one ({ watermarks: WatermarkStrategy.forBoundedOutOfOrderness(…).withTimestampAssigner(…) }) or use processing-time windows`,
      );
    }
  }
}

function checkUids(job: JobDefinition): void {
  const seen = new Map<string, LogicalNode>();
  for (const n of job.nodes) {
    const uid = n.options.uid;
    if (uid === undefined) {
      if (isStateful(n)) {
        throw new JobDefinitionError(
          `${n.kind} operator "${nodeLabel(n)}" of job "${job.name}" keeps state and needs a uid ({ uid: "…" }), ` +
            `so that its state can be found again after an upgrade`,
        );
      }
      continue;
    }
    if (!UID.test(uid)) throw new JobDefinitionError(`uid ${JSON.stringify(uid)} must be 1-64 characters of [A-Za-z0-9_.-]`);
    const other = seen.get(uid);
    if (other) {
      throw new JobDefinitionError(`uid "${uid}" is used by two operators (${other.kind}#${other.id} and ${n.kind}#${n.id}) of job "${job.name}"`);
    }
    seen.set(uid, n);
  }
}
