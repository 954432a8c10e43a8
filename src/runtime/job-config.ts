/**
 * Submission-time configuration (Flink's `-D` options): the `config` of
 * `POST /v1/jobs/:job/start`, in snake_case as the HTTP contract names it,
 * layered over what the job declares.
 */
import { z } from "zod";
import { type CheckpointConfig, checkpointOptionKeys, resolveCheckpointConfig } from "../api/checkpoint-options.js";
import { objectError, parseConfig } from "../api/config-schema.js";
import { resolveStateConfig, type StateConfig } from "../api/state-options.js";
import type { JobDefinition } from "../api/job.js";
import { DEFAULT_RESTART_STRATEGY, type RestartStrategyOptions, restartStrategyKeys, validateRestartStrategy } from "../checkpoint/restart-strategy.js";
import { FloeError } from "../errors.js";

/** The effective configuration of a run. */
export interface RunConfig {
  readonly checkpoint: CheckpointConfig;
  readonly state: StateConfig;
  readonly restartStrategy: RestartStrategyOptions;
}

/**
 * The `config` of a start request: its sections and their keys, in
 * snake_case. The values are validated by the checkpoint and restart
 * schemas, after the checkpoint options are layered over the job's.
 */
export const runConfigOverridesSchema = z.strictObject(
  {
    checkpoint: checkpointOptionKeys("snake_case", "config.checkpoint").optional(),
    restart_strategy: restartStrategyKeys("snake_case", "config.restart_strategy").optional(),
  },
  { error: objectError("config", "config section", ["checkpoint", "restart_strategy"]) },
);

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

/**
 * Resolves and validates the configuration of a run: floe's defaults, then
 * the job's options, then the start request's `config`. Throws
 * FloeError("invalid_config") naming the option and its value.
 */
export function resolveRunConfig(job: JobDefinition, config: Record<string, unknown> | undefined): RunConfig {
  const overrides = parseConfig(runConfigOverridesSchema, config ?? {});
  const checkpoint = resolveCheckpointConfig(job.options.checkpoint, overrides.checkpoint);
  for (const node of job.nodes) {
    const problem = node.sink?.checkConfig?.(checkpoint, node.options.uid ?? `sink ${node.id}`);
    if (problem) throw new FloeError("invalid_config", problem);
  }
  // A strategy from the config replaces the job's whole, not option by option.
  const restart = (overrides.restart_strategy as RestartStrategyOptions | undefined) ?? job.options.restartStrategy ?? DEFAULT_RESTART_STRATEGY;
  return { checkpoint, state: resolveStateConfig(job.options.state, checkpoint.localRecovery), restartStrategy: validateRestartStrategy(restart) };
}
