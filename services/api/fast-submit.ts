/**
 * POST /tasks without express: the one request every client sends per task. Express's per-request
 * work (router, prototype swaps on req/res, body-parser, response helpers) cost ~65 µs of CPU per
 * request on the benchmark machine, against ~20 µs for node:http itself, and the API shares its
 * cores with Postgres, Redis and the workers. Validation, idempotency, coalescing, metrics, request
 * ids and problem bodies are the same code express's route uses.
 *
 * Only the plain case is taken here: exactly `POST /tasks`, `Content-Type: application/json`
 * (UTF-8), no Content-Encoding, and a declared length within the limit. Anything else (compressed
 * or oddly encoded bodies, query strings, other charsets) goes to express unchanged, which
 * answers it as before.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../core/observability/logger';
import type { ApiMetrics } from '../core/observability/metrics';
import { TaskRow, taskToJson } from '../core/tasks/task';
import { logRequestFailure, ProblemError, toProblem } from './problem';
import { BodyBudget, busy } from './input/body-budget';
import { afterBody } from './input/read-body';
import { requestIdFor } from './request-id';
import type { Principal } from './auth/principal';

export interface Accepted {
  status: 200 | 201;
  task: TaskRow;
  /** Sent with the answer (the tenant's RateLimit headers). */
  headers?: Record<string, string>;
}

export interface FastSubmitDeps {
  log: Logger;
  metrics: ApiMetrics;
  maxBodyBytes: number;
  /** The principal of the request, with the scope tasks:write (shared with the express routes). */
  authorize(req: IncomingMessage): Principal | Promise<Principal>;
  /** Validates, submits and counts one parsed body (shared with the express route). */
  accept(principal: Principal, body: unknown, idempotencyKey: string | undefined): Promise<Accepted>;
  /** The body bytes in flight, shared with the express routes. */
  budget: BodyBudget;
  /** Reads a body (see input/read-json.ts). */
  parse(raw: Buffer): unknown;
}

const ROUTE = '/tasks';
const JSON_TYPE = 'application/json; charset=utf-8';
const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

/** Returns a handler that answers the request and returns true, or returns false and touches nothing. */
export function fastSubmit(deps: FastSubmitDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  // Labelled children, built once: no label object is built per request.
  const duration = deps.metrics.httpDuration.labels({ route: ROUTE, method: 'POST' });
  const byStatus = new Map<number, { inc(): void }>();
  const count = (status: number) => {
    let c = byStatus.get(status);
    if (!c) byStatus.set(status, (c = deps.metrics.httpRequests.labels({ route: ROUTE, method: 'POST', status: String(status) })));
    c.inc();
  };

  return (req, res) => {
    if (req.method !== 'POST' || req.url !== ROUTE || !plainJson(req, deps.maxBodyBytes)) return false;
    const t0 = performance.now();
    const requestId = requestIdFor(req.headers['x-request-id']);
    const finish = (status: number, headers: Record<string, string | number>, body: string) => {
      if (res.headersSent || res.destroyed) return;
      res.writeHead(status, { ...headers, 'Content-Length': Buffer.byteLength(body), 'X-Request-Id': requestId });
      res.end(body);
      duration.observe((performance.now() - t0) / 1000);
      count(status);
      if (deps.log.isLevelEnabled('debug')) deps.log.debug({ requestId, method: 'POST', path: ROUTE, status }, 'request');
    };
    const fail = (err: unknown) => {
      const problem = toProblem(err);
      logRequestFailure(deps.log, problem, { err, requestId, path: ROUTE });
      // A body left unread (too large) would otherwise be parsed as the next request.
      const headers: Record<string, string> = { ...problem.headers, 'Content-Type': PROBLEM_TYPE };
      if (problem.status === 413) headers.Connection = 'close';
      finish(problem.status, headers, JSON.stringify(problem.body(ROUTE)));
    };

    req.on('error', () => undefined); // the client went away; there is no one to answer
    // The key is checked before the body is admitted, as on the express routes: a request refused
    // for its key takes no body budget and no memory, so clients without a valid key trickling
    // bodies cannot make real submissions 503. An uncached key's body waits unread for its lookup.
    let principal: Principal | Promise<Principal>;
    try {
      principal = deps.authorize(req);
    } catch (err) {
      afterBody(req, () => fail(err));
      return true;
    }
    if (principal instanceof Promise) principal.then(receive, (err: unknown) => afterBody(req, () => fail(err)));
    else receive(principal);
    return true;

    function receive(p: Principal): void {
      if (!deps.budget.admit(req, res, deps.maxBodyBytes)) {
        // The body is read and dropped (it holds no memory), so the answer is not lost to a reset.
        afterBody(req, () => fail(busy()));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      let tooLarge = false;
      req.on('data', (chunk: Buffer) => {
        if (tooLarge) return;
        size += chunk.length;
        if (size <= deps.maxBodyBytes) {
          chunks.push(chunk);
          return;
        }
        // Only a body without a declared length can get here (a longer declared one went to express).
        tooLarge = true;
        fail(new ProblemError(413, 'Payload too large', 'request entity too large'));
      });
      req.on('end', () => {
        if (tooLarge) return;
        let accepted: Promise<Accepted>;
        try {
          const key = req.headers['idempotency-key'];
          accepted = deps.accept(p, deps.parse(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)), Array.isArray(key) ? key.join(', ') : key);
        } catch (err) {
          accepted = Promise.reject(err);
        }
        accepted.then(
          (a) => finish(a.status, { ...a.headers, 'Content-Type': JSON_TYPE, Location: `/tasks/${a.task.id}` }, JSON.stringify(taskToJson(a.task))),
          fail,
        );
      });
    }
  };
}

/** A JSON body in UTF-8, not compressed, not declared longer than the limit. */
function plainJson(req: IncomingMessage, limit: number): boolean {
  const h = req.headers;
  const encoding = h['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') return false;
  const type = h['content-type'];
  if (type === undefined) return false;
  const [media, ...params] = type.split(';');
  if (media!.trim().toLowerCase() !== 'application/json') return false;
  for (const p of params) {
    const [name, value] = p.split('=');
    if (name!.trim().toLowerCase() === 'charset' && value?.trim().replace(/"/g, '').toLowerCase() !== 'utf-8') return false;
  }
  const length = h['content-length'];
  return length === undefined || Number(length) <= limit;
}
