/**
 * Submission-time configuration (Flink's `-D` options): the `config` of
 * `POST /v1/jobs/:job/start`, in snake_case as the HTTP contract names it,
 * layered over what the job declares.
 */
import { type CheckpointConfig, type CheckpointOptions, resolveCheckpointConfig } from "../api/checkpoint-options.js";
import type { JobDefinition } from "../api/job.js";
import { DEFAULT_RESTART_STRATEGY, type RestartStrategyOptions, validateRestartStrategy } from "../checkpoint/restart-strategy.js";
import { FloeError } from "../errors.js";

/** The effective configuration of a run. */
export interface RunConfig {
  readonly checkpoint: CheckpointConfig;
  readonly restartStrategy: RestartStrategyOptions;
}

const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

function camelKeys(o: unknown, where: string): Record<string, unknown> {
  if (o === undefined) return {};
  if (o === null || typeof o !== "object" || Array.isArray(o)) throw new FloeError("invalid_config", `${where} must be an object`);
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [camel(k), v]));
}

const CHECKPOINT_KEYS = new Set([
  "intervalMs", "mode", "timeoutMs", "minPauseMs", "maxConcurrent", "tolerableFailures", "retained", "externalized",
  "incremental", "fullEvery", "unaligned", "alignedCheckpointTimeoutMs", "storagePrefix", "localRecovery",
]);

/**
 * Checks that the Worker has the variables every sink of `job` needs;
 * throws FloeError("sink_not_configured", 409) naming the first missing.
 */
export function checkSinkVars(job: JobDefinition, vars: Readonly<Record<string, unknown>>): void {
  for (const node of job.nodes) {
    const problem = node.sink?.checkVars?.(vars, node.options.uid ?? `sink ${node.id}`);
    if (problem) throw new FloeError("sink_not_configured", problem, 409);
  }
}

/** Resolves and validates the configuration of a run; throws FloeError("invalid_config") naming the option. */
export function resolveRunConfig(job: JobDefinition, config: Record<string, unknown> | undefined): RunConfig {
  const top = camelKeys(config, "config");
  for (const k of Object.keys(top)) {
    if (k !== "checkpoint" && k !== "restartStrategy") throw new FloeError("invalid_config", `unknown config section "${k}" (known: checkpoint, restart_strategy)`);
  }
  const checkpointOverrides = camelKeys(top.checkpoint, "config.checkpoint");
  for (const k of Object.keys(checkpointOverrides)) {
    if (!CHECKPOINT_KEYS.has(k)) {
      throw new FloeError("invalid_config", `unknown checkpoint option "${snake(k)}" (known: ${[...CHECKPOINT_KEYS].map(snake).join(", ")})`);
    }
  }
  const checkpoint = resolveCheckpointConfig(job.options.checkpoint, checkpointOverrides as CheckpointOptions);
  for (const node of job.nodes) {
    const problem = node.sink?.checkConfig?.(checkpoint, node.options.uid ?? `sink ${node.id}`);
    if (problem) throw new FloeError("invalid_config", problem);
  }
  const restart = top.restartStrategy === undefined ? (job.options.restartStrategy ?? DEFAULT_RESTART_STRATEGY) : (camelKeys(top.restartStrategy, "config.restart_strategy") as RestartStrategyOptions);
  return { checkpoint, restartStrategy: validateRestartStrategy(restart) };
}
