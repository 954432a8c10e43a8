/**
 * The one error class of floe. Every failure a client can cause carries a
 * stable `code` and an HTTP `status`; the HTTP layer turns it into
 * `{ error: { code, message } }`. Errors that cross a Durable Object RPC
 * boundary lose custom properties, so objects return {@link ErrorBody}
 * values for expected failures and the caller rethrows them with
 * {@link FloeError.from}.
 */
export class FloeError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number = 400,
  ) {
    super(message);
    this.name = "FloeError";
  }

  /** The JSON body clients see. */
  toBody(): ErrorBody {
    return { code: this.code, message: this.message, status: this.status };
  }

  /** Rebuilds an error from a value returned across RPC. */
  static from(body: ErrorBody): FloeError {
    return new FloeError(body.code, body.message, body.status);
  }
}

/** An error as a value, safe to return across RPC. */
export interface ErrorBody {
  code: string;
  message: string;
  status: number;
}

/** A result that is either a value or an expected failure. */
export type Result<T> = { ok: true; value: T } | { ok: false; error: ErrorBody };

/** Unwraps a {@link Result}, throwing its error. */
export function unwrap<T>(result: Result<T>): T {
  if (result.ok) return result.value;
  throw FloeError.from(result.error);
}

/** Runs `fn`, turning a thrown {@link FloeError} into a failed {@link Result}. */
export async function attempt<T>(fn: () => T | Promise<T>): Promise<Result<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    if (e instanceof FloeError) return { ok: false, error: e.toBody() };
    throw e;
  }
}

/** A job definition that cannot run, named by the operator at fault. */
export class JobDefinitionError extends FloeError {
  constructor(message: string) {
    super("invalid_job", message, 400);
    this.name = "JobDefinitionError";
  }
}
