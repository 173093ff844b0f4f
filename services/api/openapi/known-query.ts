/**
 * Query parameters a route does not know are refused (400), not ignored: `GET /queues?priority=high`
 * must not answer as if filtered. The names come from the routes' OpenAPI entries (their `query`
 * schema, and `tenant` for a route with a scope), so the document and the check cannot disagree.
 * Routes with a `query` schema validate it themselves; this covers those without one.
 */
import type { Request } from 'express';
import { badRequest } from '../problem';
import { apiRoutes } from './routes';

/** `GET /tasks/{id}` → the parameters it knows, for the scoped routes with no query schema of their own. */
const ONLY_TENANT = new Set(apiRoutes().filter((r) => r.scope && !r.query).map((r) => `${r.method.toUpperCase()} ${r.path}`));

/** Throws 400 naming each query parameter the route matched by `req` does not know. */
export function refuseUnknownQuery(req: Request): void {
  const path = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof path !== 'string') return;
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  if (!ONLY_TENANT.has(`${method} ${path.replace(/:(\w+)/g, '{$1}')}`)) return;
  const unknown = Object.keys(req.query).filter((k) => k !== 'tenant');
  if (unknown.length === 0) return;
  throw badRequest(
    unknown.map((k) => `${k} is not a known parameter`).join('; '),
    unknown.slice(0, 20).map((k) => ({ field: k, message: 'is not a known parameter' })),
  );
}
