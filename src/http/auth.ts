/**
 * Bearer-token auth. Control endpoints need the admin token
 * (`FLOE_ADMIN_TOKEN`, a Wrangler secret or `.dev.vars` locally);
 * ingestion also accepts a stream's own ingest token.
 */
import { FloeError } from "../errors.js";

/** The token of an `Authorization: Bearer …` header, if any. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return m?.[1];
}

/** Compares without leaking where two tokens differ. */
export function sameToken(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** Throws unless `header` carries one of the accepted tokens. */
export function requireToken(header: string | undefined, accepted: (string | undefined)[], what: string): void {
  const tokens = accepted.filter((t): t is string => typeof t === "string" && t.length > 0);
  if (tokens.length === 0) {
    throw new FloeError("not_configured", "FLOE_ADMIN_TOKEN is not set: add it with `wrangler secret put FLOE_ADMIN_TOKEN` or to .dev.vars", 500);
  }
  const given = bearerToken(header);
  if (given === undefined) throw new FloeError("unauthorized", `${what} needs an Authorization: Bearer <token> header`, 401);
  if (!tokens.some((t) => sameToken(t, given))) throw new FloeError("unauthorized", `the bearer token is not valid for ${what}`, 401);
}
