/**
 * The hook that makes schema failures answer in the contract's error shape.
 */
import type { Context } from "hono";
import { errorResponse } from "./errors.js";

interface HookResult {
  success: boolean;
  error?: { issues: readonly { path: readonly PropertyKey[]; message: string }[] };
}

/** zValidator hook: a 400 `invalid_request` naming the first bad field. */
export function validationHook(result: HookResult, c: Context): Response | undefined {
  if (result.success) return undefined;
  const issue = result.error?.issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.map(String).join(".")}: ` : "";
  return errorResponse(c, 400, "invalid_request", `${where}${issue?.message ?? "invalid request body"}`);
}
