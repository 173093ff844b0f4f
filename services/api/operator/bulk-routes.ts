/**
 * POST /tasks/cancel and POST /tasks/retry: `{"filter": {...}, "limit": N, "dry_run": false,
 * "cursor": C}` → `{"matched", "changed", "has_more", "next_cursor", "dry_run"}`. The filter is GET
 * /tasks's; a status outside what the action applies to is refused (400) rather than silently
 * matching nothing. `limit` is bounded by BULK_MAX_LIMIT and the rows read by BULK_SCAN_ROWS (so is
 * the work of one request); a caller carries on from `next_cursor` while `has_more` is true.
 *
 * A retry (not a dry run) makes tasks unfinished again, so it is admitted under the tenant's limits
 * as a batch submission is, whole or refused whole (429, nothing changed): it first reads what it
 * matches (as a dry run would), admits those tasks and the steps downstream their retry would
 * reopen, retries exactly those, and gives back the places of what it did not change. An operator
 * whose call is refused asks for fewer (`limit`) or waits: a partial retry would leave the answer's
 * cursor meaning less than it says.
 */
import type { ApiMetrics } from '../../core/observability/metrics';
import { BulkAction, bulkAction, BulkDeps, BulkDetail, retryMatched } from '../../core/operator/bulk-actions';
import { retryCost } from '../../core/operator/retry-tasks';
import type { TaskStatus } from '../../core/tasks/priority';
import { BAD_CURSOR, decodeCursor, encodeCursor, TaskCursor } from '../../core/tasks/task-cursor';
import { FILTER_FIELDS, parseFilter, TaskFilter } from '../../core/tasks/task-filter';
import type { UnderLimits } from '../limits/request-admission';
import { badRequest, FieldError, ProblemError, toProblem } from '../problem';
import { ACTION_STATUSES, bulkBodySchema } from '../schemas/bulk';

// What the body may hold and limit's lower bound come from the schema (schemas/bulk.ts); the upper
// bound is the maxLimit passed in, which the schema is made with too.
const BODY = bulkBodySchema('cancel').properties;
const KNOWN = new Set(Object.keys(BODY));
const LIMIT_MIN = BODY.limit.minimum!;
const KNOWN_FILTERS = new Set<string>(FILTER_FIELDS);

export interface BulkBody {
  action: BulkAction;
  /** The caller's filter, its statuses those of the action when it named none. */
  filter: TaskFilter & { statuses: TaskStatus[] };
  limit: number;
  dryRun: boolean;
  after: TaskCursor | null;
}

/** Validates a bulk body; every problem is a 400 naming its field. */
export function parseBulkBody(action: BulkAction, body: unknown, maxLimit: number): BulkBody {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest('the body must be {"filter": {...}, "limit": N, "dry_run": false}', [{ field: '(body)', message: 'must be a JSON object' }]);
  }
  const b = body as Record<string, unknown>;
  const errors: FieldError[] = [];
  for (const k of Object.keys(b)) if (!KNOWN.has(k)) errors.push({ field: k, message: 'is not a known field' });
  let filterInput: Record<string, unknown> = {};
  if (b.filter !== undefined) {
    if (b.filter === null || typeof b.filter !== 'object' || Array.isArray(b.filter)) errors.push({ field: 'filter', message: 'must be an object' });
    else filterInput = b.filter as Record<string, unknown>;
  }
  for (const k of Object.keys(filterInput)) if (!KNOWN_FILTERS.has(k)) errors.push({ field: `filter.${k}`, message: 'is not a known filter' });
  const { filter, problems } = parseFilter(filterInput, 'filter.');
  errors.push(...problems);
  const allowed = ACTION_STATUSES[action];
  const outside = filter.statuses?.filter((s) => !allowed.includes(s)) ?? [];
  if (outside.length) errors.push({ field: 'filter.status', message: `${action} applies to ${allowed.join(', ')} tasks, not ${outside.join(', ')}` });
  let limit = maxLimit;
  if (b.limit !== undefined) {
    if (typeof b.limit !== 'number' || !Number.isInteger(b.limit) || b.limit < LIMIT_MIN || b.limit > maxLimit) errors.push({ field: 'limit', message: `must be an integer between ${LIMIT_MIN} and ${maxLimit}` });
    else limit = b.limit;
  }
  if (b.dry_run !== undefined && typeof b.dry_run !== 'boolean') errors.push({ field: 'dry_run', message: 'must be true or false' });
  let after: TaskCursor | null = null;
  if (b.cursor !== undefined) {
    after = typeof b.cursor === 'string' ? decodeCursor(b.cursor) : null;
    if (!after) errors.push({ field: 'cursor', message: typeof b.cursor === 'string' ? BAD_CURSOR : 'must be a string (next_cursor as it came)' });
  }
  if (errors.length) throw badRequest(errors.map((e) => `${e.field} ${e.message}`).join('; '), errors);
  return {
    action,
    filter: { ...filter, statuses: filter.statuses ?? [...allowed] },
    limit,
    dryRun: b.dry_run === true,
    after,
  };
}

export interface BulkAnswer {
  body: { matched: number; changed: number; has_more: boolean; next_cursor: string | null; dry_run: boolean };
  /** A retry's RateLimit headers (request-admission.ts). */
  headers: Record<string, string>;
}

/** Runs a parsed bulk call for `tenant`, counting what changed. */
export async function runBulk(deps: BulkDeps & { metrics: ApiMetrics; underLimits: UnderLimits }, tenant: string, req: BulkBody): Promise<BulkAnswer> {
  const request = { filter: req.filter, limit: req.limit, dryRun: req.dryRun, after: req.after };
  // Kept up to date page by page: what the pages committed before a failure changed counts too.
  const changes: BulkDetail = { byKind: {}, reopened: 0, ids: [] };
  let r;
  try {
    r = req.action === 'retry' && !req.dryRun ? await admittedRetry(deps, tenant, request, changes) : { ...(await bulkAction(deps, req.action, tenant, request, changes)), headers: {} };
  } catch (err) {
    throw stoppedPartWay(err, req, changes);
  } finally {
    for (const [kind, n] of Object.entries(changes.byKind)) {
      if (req.action === 'cancel') deps.metrics.cancelled.inc({ how: kind }, n);
      else deps.metrics.redriven.inc({ from: kind }, n);
    }
  }
  if (r.changed > 0) deps.log.info({ tenant, action: req.action, matched: r.matched, changed: r.changed }, 'bulk action');
  return { body: { matched: r.matched, changed: r.changed, has_more: r.has_more, next_cursor: r.next ? encodeCursor(r.next) : null, dry_run: req.dryRun }, headers: r.headers };
}

/**
 * The problem of a call that failed (a statement cancelled at its statement_timeout, Postgres or
 * Redis away) after some of its batches committed: how many tasks they changed and where to carry
 * on (the failing batch, and those after it, changed nothing), not "nothing was written".
 */
function stoppedPartWay(err: unknown, req: BulkBody, changes: BulkDetail): unknown {
  const problem = toProblem(err);
  if (problem.status < 500 || req.dryRun) return err;
  const changed = Object.values(changes.byKind).reduce((n, k) => n + k, 0);
  const from = changes.through ?? req.after;
  const cause = problem.message.split(';')[0];
  const detail = `${cause}. The batches committed before it changed ${changed} task(s), those after it none: send the call again with next_cursor as cursor to carry on`;
  // The cause stays with it for the request's log line.
  return Object.assign(new ProblemError(problem.status, problem.title, detail, [], problem.headers, { changed, next_cursor: from ? encodeCursor(from) : null }), { cause: err });
}

/** A bulk retry admitted under the tenant's limits (see the file comment). */
async function admittedRetry(deps: BulkDeps & { underLimits: UnderLimits }, tenant: string, request: Parameters<typeof bulkAction>[3], changes: Pick<BulkDetail, 'byKind' | 'reopened' | 'through'>) {
  const scan = await bulkAction(deps, 'retry', tenant, { ...request, dryRun: true }, { byKind: {}, reopened: 0, ids: [], places: [] });
  const cost = await retryCost(deps.pool, tenant, scan.ids, request.filter.statuses ?? null);
  const done = Object.assign(changes, { changed: 0 });
  const retry = () => retryMatched(deps, tenant, scan.ids, done, request.filter.statuses, scan.places);
  // What the pages committed before a failure changed keeps its places; the rest are given back.
  const used = () => done.changed + done.reopened;
  let headers: Record<string, string> = {};
  // One task (and the steps it reopens) cannot be sent apart with a smaller `limit`.
  if (cost > 0) ({ headers } = await deps.underLimits(tenant, cost, retry, used, used, scan.ids.length === 1));
  else await retry();
  return { ...scan, ...done, headers };
}
