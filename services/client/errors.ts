/** What the client throws: the API's refusal (with its problem body) or a failed connection. */
import type { Problem } from './types';

/** The API answered with an error status; `problem` is its problem+json body. */
export class ApiError extends Error {
  override name = 'ApiError';

  constructor(
    readonly status: number,
    readonly problem: Problem,
    /** The request, e.g. `POST /tasks`, for messages and logs. */
    readonly request: string,
    /** How many times the request was sent. */
    readonly attempts: number,
    /** The answer's headers (Retry-After, RateLimit-Policy, …). */
    readonly headers: Headers = new Headers(),
  ) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`);
  }

  /** A submission's Idempotency-Key (the caller's or generated): a 5xx may come after the API acted, and a send with it again is safe. */
  idempotencyKey?: string;
  /** submitBatch: each item's idempotency_key, in order. */
  idempotencyKeys?: string[];
}

/** No answer: refused, reset or timed out connection (after any retries the call allowed). */
export class ConnectionError extends Error {
  override name = 'ConnectionError';

  constructor(
    message: string,
    readonly request: string,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /**
   * A submission's Idempotency-Key (the caller's or generated): the API may have created it, so
   * send it again with this key (`idempotency_key`, or submitWorkflow's `idempotencyKey`), not without.
   */
  idempotencyKey?: string;
  /** submitBatch: each item's idempotency_key, in order. */
  idempotencyKeys?: string[];
}

/** The API answered 2xx with a body that is not what the contract says. */
export class ResponseError extends Error {
  override name = 'ResponseError';

  constructor(
    message: string,
    readonly status: number,
    readonly request: string,
  ) {
    super(message);
  }
}
