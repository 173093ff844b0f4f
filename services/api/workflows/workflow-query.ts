/**
 * GET /workflows's query: status (one or more, comma-separated or repeated), name, created_after,
 * created_before, limit and cursor. Every parameter known and, but for status, given once;
 * anything else is a 400 naming it. Names and bounds come from schemas/workflows.ts.
 */
import { BAD_CURSOR, decodeCursor } from '../../core/tasks/task-cursor';
import { microsecondTime, parseTime } from '../../core/tasks/task-fields';
import type { WorkflowListQuery } from '../../core/workflows/workflow-store';
import { WORKFLOW_STATUSES, WorkflowStatus } from '../../core/workflows/workflow';
import { badRequest, FieldError } from '../problem';
import { WorkflowListQuerySchema } from '../schemas/workflows';

const QUERY = WorkflowListQuerySchema.properties;
const PARAMS = new Set([...Object.keys(QUERY), 'tenant']);
const LIMIT = { min: QUERY.limit.minimum!, max: QUERY.limit.maximum!, default: QUERY.limit.default as number };
const NAME = new RegExp(QUERY.name.pattern!);
const TIME_MESSAGE = 'must be an RFC 3339 time with a zone, e.g. 2026-12-05T10:00:00Z';

export function parseWorkflowQuery(query: Record<string, unknown>): WorkflowListQuery {
  const errors: FieldError[] = [];
  const q: WorkflowListQuery = { limit: LIMIT.default };
  for (const [k, v] of Object.entries(query)) {
    if (!PARAMS.has(k)) errors.push({ field: k, message: 'is not a known parameter' });
    else if (Array.isArray(v) && k !== 'status') errors.push({ field: k, message: 'must be given once' });
  }
  const one = (k: string): unknown => (Array.isArray(query[k]) ? undefined : query[k]);

  if (query.status !== undefined) {
    const items = (Array.isArray(query.status) ? query.status : [query.status]).flatMap((x) => (typeof x === 'string' ? x.split(',') : [''])).map((x) => x.trim());
    const bad = items.filter((s) => !(WORKFLOW_STATUSES as readonly string[]).includes(s));
    if (bad.length) errors.push({ field: 'status', message: `unknown status ${bad.map((b) => JSON.stringify(b)).join(', ')}; one of ${WORKFLOW_STATUSES.join(', ')}` });
    else q.statuses = [...new Set(items)] as WorkflowStatus[];
  }
  const name = one('name');
  if (name !== undefined) {
    if (typeof name !== 'string' || !NAME.test(name)) errors.push({ field: 'name', message: 'must be a workflow name: 1-200 letters, digits, . _ : - starting with a letter or digit' });
    else q.name = name;
  }
  for (const [f, key] of [['created_after', 'createdAfter'], ['created_before', 'createdBefore']] as const) {
    const v = one(f);
    if (v === undefined) continue;
    const d = typeof v === 'string' ? parseTime(v) : null;
    if (!d) errors.push({ field: f, message: TIME_MESSAGE });
    else q[key] = microsecondTime(v as string, key === 'createdAfter' ? 'down' : 'up');
  }
  const limit = one('limit');
  if (limit !== undefined) {
    const n = typeof limit === 'string' && /^\d{1,9}$/.test(limit) ? Number(limit) : NaN;
    if (n >= LIMIT.min && n <= LIMIT.max) q.limit = n;
    else errors.push({ field: 'limit', message: `must be an integer between ${LIMIT.min} and ${LIMIT.max}` });
  }
  const cursor = one('cursor');
  if (cursor !== undefined) {
    const c = typeof cursor === 'string' ? decodeCursor(cursor) : null;
    if (c) q.cursor = c;
    else errors.push({ field: 'cursor', message: BAD_CURSOR });
  }
  if (errors.length) throw badRequest(errors.map((e) => `${e.field} ${e.message}`).join('; '), errors);
  return q;
}
