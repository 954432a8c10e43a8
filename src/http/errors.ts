/**
 * Turns every failure into the contract's error body,
 * `{ "error": { "code", "message" } }`, with a 4xx/5xx status.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { FloeError } from "../errors.js";

/** The JSON error response for `code` and `message`. */
export function errorResponse(c: Context, status: number, code: string, message: string): Response {
  return c.json({ error: { code, message } }, status as ContentfulStatusCode);
}

/** Hono's onError handler. */
export function onError(err: Error, c: Context): Response {
  if (err instanceof FloeError) return errorResponse(c, err.status, err.code, err.message);
  if (err instanceof HTTPException) {
    const status = err.status;
    const code = status === 413 ? "body_too_large" : status === 401 ? "unauthorized" : "bad_request";
    return errorResponse(c, status, code, err.message || "bad request");
  }
  console.error("unhandled error", err);
  return errorResponse(c, 500, "internal", err.message || "internal error");
}
