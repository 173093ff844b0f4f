/** The API's paths and their methods: a known path asked with another method gets 405 and `Allow`. */
import type { NextFunction, Request, Response } from 'express';
import { ProblemError } from './problem';

const ROUTES: { pattern: RegExp; methods: string[] }[] = [
  { pattern: /^\/tasks\/?$/, methods: ['POST'] },
  { pattern: /^\/tasks\/batch\/?$/, methods: ['POST'] },
  { pattern: /^\/tasks\/[^/]+\/?$/, methods: ['GET', 'HEAD'] },
  { pattern: /^\/healthz\/?$/, methods: ['GET', 'HEAD'] },
  { pattern: /^\/readyz\/?$/, methods: ['GET', 'HEAD'] },
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
