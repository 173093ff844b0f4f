/** The API's paths and their methods: a known path asked with another method gets 405 and `Allow`. */
import type { NextFunction, Request, Response } from 'express';
import { ProblemError } from './problem';

// Case-insensitive and with an optional trailing slash, as express matches the routes themselves.
// /tasks/batch, /tasks/cancel and /tasks/retry come before /tasks/:id, which would otherwise match them.
export const ROUTES: { pattern: RegExp; methods: string[] }[] = [
  { pattern: /^\/tasks\/?$/i, methods: ['GET', 'HEAD', 'POST'] },
  { pattern: /^\/tasks\/batch\/?$/i, methods: ['POST'] },
  { pattern: /^\/tasks\/(cancel|retry)\/?$/i, methods: ['POST'] },
  { pattern: /^\/tasks\/[^/]+\/(cancel|retry)\/?$/i, methods: ['POST'] },
  { pattern: /^\/tasks\/[^/]+\/?$/i, methods: ['GET', 'HEAD'] },
  { pattern: /^\/queues\/?$/i, methods: ['GET', 'HEAD'] },
  { pattern: /^\/schedules\/?$/i, methods: ['GET', 'HEAD', 'POST'] },
  { pattern: /^\/schedules\/[^/]+\/trigger\/?$/i, methods: ['POST'] },
  { pattern: /^\/schedules\/[^/]+\/?$/i, methods: ['GET', 'HEAD', 'PATCH', 'DELETE'] },
  { pattern: /^\/workflows\/?$/i, methods: ['GET', 'HEAD', 'POST'] },
  { pattern: /^\/workflows\/[^/]+\/cancel\/?$/i, methods: ['POST'] },
  { pattern: /^\/workflows\/[^/]+\/?$/i, methods: ['GET', 'HEAD'] },
  { pattern: /^\/admin\/tenants\/?$/i, methods: ['GET', 'HEAD'] },
  { pattern: /^\/admin\/keys\/?$/i, methods: ['GET', 'HEAD', 'POST'] },
  { pattern: /^\/admin\/keys\/[^/]+\/revoke\/?$/i, methods: ['POST'] },
  { pattern: /^\/healthz\/?$/i, methods: ['GET', 'HEAD'] },
  { pattern: /^\/readyz\/?$/i, methods: ['GET', 'HEAD'] },
  { pattern: /^\/openapi\.json\/?$/i, methods: ['GET', 'HEAD'] },
];

/** Placed after the routes: a request that reached it matched no route with its method. */
export function methodNotAllowed(req: Request, res: Response, next: NextFunction): void {
  const route = ROUTES.find((r) => r.pattern.test(req.path));
  if (!route || route.methods.includes(req.method)) {
    next();
    return;
  }
  const allow = route.methods.join(', ');
  res.set('Allow', allow);
  next(new ProblemError(405, 'Method not allowed', `${req.method} is not allowed on ${req.path}; use ${allow}`, [], { Allow: allow }));
}
