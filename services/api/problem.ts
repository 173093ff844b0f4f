/** RFC 9457 problem details: every error response of the API is one of these. */
import type { Logger } from '../core/observability/logger';
import { throttleFor } from '../core/observability/log-throttle';
import { DependencyTimeoutError } from '../core/process/with-timeout';
export interface FieldError {
  field: string;
  message: string;
}

export class ProblemError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    detail: string,
    readonly errors: FieldError[] = [],
    readonly headers: Record<string, string> = {},
    /** Members of the body beyond RFC 9457's (ProblemSchema lists them). */
    readonly members: Record<string, unknown> = {},
  ) {
    super(detail);
    this.name = 'ProblemError';
  }

  body(instance?: string): Record<string, unknown> {
    const slug = this.title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
    const out: Record<string, unknown> = { type: `urn:task-scheduler:problem:${slug}`, title: this.title, status: this.status, detail: this.message };
    if (instance) out.instance = instance;
    if (this.errors.length) out.errors = this.errors;
    return { ...out, ...this.members };
  }
}

/** Field problems one answer lists at most; one with more says how many it had. */
export const MAX_FIELD_ERRORS = 20;

export const badRequest = (detail: string, errors: FieldError[] = []): ProblemError => {
  if (errors.length <= MAX_FIELD_ERRORS) return new ProblemError(400, 'Invalid request', detail, errors);
  // Listed in full, a body of 100,000 unknown fields got an answer of 9 MB (and 40 such requests
  // at once killed an api with a 96 MB heap); the detail is that of the shortened list.
  const shown = [...errors.slice(0, MAX_FIELD_ERRORS - 1), { field: '(body)', message: `and ${errors.length - MAX_FIELD_ERRORS + 1} more problems` }];
  return new ProblemError(400, 'Invalid request', shown.map((e) => `${e.field} ${e.message}`).join('; '), shown);
};
export const notFound = (detail: string) => new ProblemError(404, 'Not found', detail);
export const conflict = (detail: string, errors: FieldError[] = []) => new ProblemError(409, 'Idempotency key conflict', detail, errors);
/** The task's status does not allow the action (cancel a final task, retry one that is not dead or cancelled). */
export const wrongState = (detail: string, errors: FieldError[] = []) => new ProblemError(409, 'Conflict with the task status', detail, errors);
export const unavailable = (detail: string, retryAfterS = 1) =>
  new ProblemError(503, 'Service unavailable', detail, [], { 'Retry-After': String(retryAfterS) });

/** Maps every error to a problem: body-parser's errors to 4xx, dependency outages to 503, the rest to 500. */
export function toProblem(err: unknown): ProblemError {
  if (err instanceof ProblemError) return err;
  const e = err as { type?: string; status?: number; message?: string; code?: string };
  if (e.type === 'entity.too.large') return new ProblemError(413, 'Payload too large', e.message ?? 'request body too large');
  if (e.type === 'entity.parse.failed') return badRequest(`malformed JSON: ${e.message}`, [{ field: '(body)', message: 'is not valid JSON' }]);
  if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') return new ProblemError(415, 'Unsupported media type', e.message ?? 'unsupported encoding');
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) return new ProblemError(e.status, 'Bad request', e.message ?? 'bad request');
  if (isDependencyOutage(e)) return unavailable('a dependency (Postgres or Redis) is unavailable; retry shortly', 2);
  // Postgres cancelled the statement at its statement_timeout (a lock held long elsewhere, an
  // overloaded server): its transaction wrote nothing, so the request may be sent again.
  if (e.code === '57014') return unavailable('Postgres cancelled the statement at its statement_timeout; nothing was written; retry shortly', 1);
  return new ProblemError(500, 'Internal error', 'an unexpected error occurred; it has been logged');
}

/**
 * A Redis reply a failover or a cluster in motion gives (slots unserved, a master being elected, a
 * replica loading or not yet promoted): the same command answers once it is over.
 */
const TRANSIENT_REPLY = /^(CLUSTERDOWN|TRYAGAIN|MASTERDOWN|LOADING|READONLY)\b/;
/** ioredis's own errors for a server or cluster it cannot reach or that does not answer. */
const CLIENT_GAVE_UP =
  /Connection terminated|timeout exceeded when trying to connect|Stream isn't writeable|Connection is closed|Command timed out|Too many Cluster redirections|Failed to refresh slots cache|None of startup nodes is available|Cluster isn't ready|Cluster is disconnected|Node is disconnected|Command aborted due to connection close|Socket timeout/i;
const OUTAGE_NAMES = ['DependencyTimeoutError', 'MaxRetriesPerRequestError', 'ClusterAllFailedError'];

/**
 * Failures of pg or ioredis that pass (connections, failovers, a dependency that did not answer
 * within a bound the code sets), as opposed to bugs (CROSSSLOT, a script error, bad SQL).
 */
export function isDependencyOutage(err: unknown): boolean {
  const e = (err ?? {}) as { code?: string; message?: string; name?: string };
  const codes = ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', '57P01', '57P02', '57P03', '53300', '08000', '08003', '08006'];
  if (e.code && codes.includes(e.code)) return true;
  if (err instanceof DependencyTimeoutError || (e.name && OUTAGE_NAMES.includes(e.name))) return true;
  const message = typeof e.message === 'string' ? e.message : '';
  return TRANSIENT_REPLY.test(message) || CLIENT_GAVE_UP.test(message);
}

/**
 * Logs a request answered 5xx. A 500 is a fault: every one is logged. A 503 (a dependency away,
 * load shed) is met by every request while it lasts, so it is logged at once and then at most
 * every 10 s, saying how many were held back: a line per request would flood the logs, and spend
 * CPU, exactly when the API is overloaded or Postgres is down.
 */
export function logRequestFailure(log: Logger, problem: ProblemError, fields: { err: unknown; requestId: unknown; path: string }): void {
  if (problem.status < 500) return;
  const held = problem.status === 503 ? throttleFor(log, 'request-unavailable').take() : {};
  if (held) log.error({ ...fields, ...held }, 'request failed');
}
