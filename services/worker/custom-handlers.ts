/**
 * Your own task types go here: add `type: async ({ id, payload, attempt, signal }) => { … }`.
 * Throw to fail the attempt (it is retried with backoff); honour `signal` so a lost lease,
 * a timeout or a shutdown stops the work. Handlers run at least once per task, sometimes more
 * (a lost lease re-runs a task), so make their side effects idempotent, keyed by `id`.
 */
import type { Handler } from './handlers';

export const customHandlers: Record<string, Handler> = {};
