/**
 * POST /tasks/cancel and POST /tasks/retry: `{"filter": {...}, "limit": N, "dry_run": false}` →
 * `{"matched", "changed", "has_more"}`. The filter is GET /tasks's; a status outside what the
 * action applies to is refused (400) rather than silently matching nothing. `limit` is bounded by
 * BULK_MAX_LIMIT (so is the work of one request); a caller carries on with another call while
 * `has_more` is true.
 */
import type { ApiMetrics } from '../../core/observability/metrics';
import { BulkAction, bulkAction, BulkDeps } from '../../core/operator/bulk-actions';
import type { TaskStatus } from '../../core/tasks/priority';
import { FILTER_FIELDS, filterSql, parseFilter } from '../../core/tasks/task-filter';
import { badRequest, FieldError } from '../problem';
import { ACTION_STATUSES, bulkBodySchema } from '../schemas/bulk';

// What the body may hold and limit's lower bound come from the schema (schemas/bulk.ts); the upper
// bound is the maxLimit passed in, which the schema is made with too.
const BODY = bulkBodySchema('cancel').properties;
const KNOWN = new Set(Object.keys(BODY));
const LIMIT_MIN = BODY.limit.minimum!;
const KNOWN_FILTERS = new Set<string>(FILTER_FIELDS);

export interface BulkBody {
  action: BulkAction;
  statuses: TaskStatus[];
  where: { sql: string; values: unknown[] };
  limit: number;
  dryRun: boolean;
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
  if (errors.length) throw badRequest(errors.map((e) => `${e.field} ${e.message}`).join('; '), errors);
  return {
    action,
    statuses: filter.statuses ?? [...allowed],
    where: filterSql({ ...filter, statuses: undefined }),
    limit,
    dryRun: b.dry_run === true,
  };
}

/** Runs a parsed bulk call for `tenant`, counting what changed. */
export async function runBulk(deps: BulkDeps & { metrics: ApiMetrics }, tenant: string, req: BulkBody): Promise<{ matched: number; changed: number; has_more: boolean; dry_run: boolean }> {
  const { byKind, ...result } = await bulkAction(deps, req.action, tenant, { where: req.where, statuses: req.statuses, limit: req.limit, dryRun: req.dryRun });
  for (const [kind, n] of Object.entries(byKind)) {
    if (req.action === 'cancel') deps.metrics.cancelled.inc({ how: kind }, n);
    else deps.metrics.redriven.inc({ from: kind }, n);
  }
  if (result.changed > 0) deps.log.info({ tenant, action: req.action, matched: result.matched, changed: result.changed }, 'bulk action');
  return { ...result, dry_run: req.dryRun };
}
