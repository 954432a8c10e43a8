/**
 * The hook that makes schema failures answer in the contract's error shape.
 */
import type { Context, MiddlewareHandler } from "hono";
import { FloeError } from "../errors.js";
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

/**
 * A body must say it is JSON: Hono's JSON validator reads any other body as
 * `{}`, which would start a job with defaults instead of refusing its config.
 */
export const requireJsonBody: MiddlewareHandler = async (c, next) => {
  const length = Number(c.req.header("content-length") ?? "0");
  const hasBody = length > 0 || c.req.header("transfer-encoding") !== undefined;
  const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (hasBody && type !== "application/json" && !type.endsWith("+json")) {
    throw new FloeError("unsupported_media_type", "the body must be JSON, sent with Content-Type: application/json", 415);
  }
  await next();
};
