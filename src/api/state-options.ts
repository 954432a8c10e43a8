/**
 * Keyed-state options of a job (`job(name, { state: { memoryBudgetBytes } })`),
 * as a zod schema like the checkpoint options: validated when the job is
 * started, with a clear `invalid_config` error naming the option.
 */
import { z } from "zod";
import { DEFAULT_MEMORY_BUDGET_BYTES, MIN_MEMORY_BUDGET_BYTES } from "../state/memory-budget.js";
import { integer, objectError, optionLabel, parseConfig } from "./config-schema.js";

const label = (name: string) => optionLabel("state.", name);

const shape = {
  /**
   * Bytes of keyed state each subtask holds in memory at most (estimated,
   * see docs/state-backend.md); colder clean entries are evicted to the
   * subtask's SQLite image and read back on access. Needs local recovery
   * (`checkpoint.localRecovery`, on by default): the image is the copy
   * evictions rely on.
   */
  memoryBudgetBytes: integer(label("memoryBudgetBytes"), MIN_MEMORY_BUDGET_BYTES).optional(),
};

const stateSchema = z.strictObject(shape, { error: objectError("state options", "state option", Object.keys(shape)) });

/** Keyed-state options as a job declares them. */
export type StateOptions = z.input<typeof stateSchema>;

/** The resolved keyed-state options of a run. */
export interface StateConfig {
  /** The budget per subtask in bytes; undefined: none (local recovery is off, nothing to evict to). */
  readonly memoryBudgetBytes: number | undefined;
}

/**
 * Validates a job's state options against its effective checkpoint options;
 * throws `FloeError("invalid_config")`. Without local recovery a budget is
 * refused when set, and none applies by default: evicted entries would have
 * no image to be read back from.
 */
export function resolveStateConfig(options: StateOptions | undefined, localRecovery: boolean): StateConfig {
  const parsed = parseConfig(stateSchema, options ?? {});
  if (!localRecovery) {
    if (parsed.memoryBudgetBytes !== undefined) {
      parseConfig(
        z.never({
          error: () =>
            `${label("memoryBudgetBytes")} needs checkpoint.localRecovery: evicted keyed state is read back from the subtask's local image, which is written only with local recovery on; remove the budget (all keyed state then stays in memory) or turn local recovery on`,
        }),
        parsed.memoryBudgetBytes,
      );
    }
    return { memoryBudgetBytes: undefined };
  }
  return { memoryBudgetBytes: parsed.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET_BYTES };
}
