/**
 * GET /tasks: the caller's tasks (an admin's: `?tenant=`), newest first, filtered, a page at a
 * time. Every query parameter is known and given once (status and priority may repeat or list
 * several values); anything else is a 400 naming it.
 */
import type { Pool } from 'pg';
import { taskToJson } from '../../core/tasks/task';
import { parseFilter } from '../../core/tasks/task-filter';
import { BAD_CURSOR } from '../../core/tasks/task-cursor';
import { decodeCursor, encodeCursor, listTasks } from '../../core/tasks/task-list';
import { badRequest, FieldError } from '../problem';
import { ListQuerySchema } from '../schemas/task-list';

// The parameters, and limit's bounds, are the schema's (schemas/task-list.ts); `tenant` is every
// scoped route's (auth/principal.ts).
const QUERY = ListQuerySchema.properties;
export const LIST_DEFAULT_LIMIT = QUERY.limit.default as number;
export const LIST_MAX_LIMIT = QUERY.limit.maximum!;
const LIST_MIN_LIMIT = QUERY.limit.minimum!;
const PARAMS = new Set([...Object.keys(QUERY), 'tenant']);
const LISTS = new Set(['status', 'priority']);

export async function listRoute(pool: Pool, tenant: string, query: Record<string, unknown>, scanRows?: number): Promise<{ tasks: Record<string, unknown>[]; next_cursor: string | null }> {
  const errors: FieldError[] = [];
  for (const [k, v] of Object.entries(query)) {
    if (!PARAMS.has(k)) errors.push({ field: k, message: 'is not a known parameter' });
    else if (Array.isArray(v) && !LISTS.has(k)) errors.push({ field: k, message: 'must be given once' });
  }
  const { filter, problems } = parseFilter(Object.fromEntries(Object.entries(query).filter(([k]) => k !== 'limit' && k !== 'cursor' && k !== 'tenant')));
  errors.push(...problems);
  let limit = LIST_DEFAULT_LIMIT;
  if (query.limit !== undefined && !Array.isArray(query.limit)) {
    const n = typeof query.limit === 'string' && /^\d{1,9}$/.test(query.limit) ? Number(query.limit) : NaN;
    if (!(n >= LIST_MIN_LIMIT && n <= LIST_MAX_LIMIT)) errors.push({ field: 'limit', message: `must be an integer between ${LIST_MIN_LIMIT} and ${LIST_MAX_LIMIT}` });
    else limit = n;
  }
  let after = null;
  if (query.cursor !== undefined && !Array.isArray(query.cursor)) {
    after = typeof query.cursor === 'string' ? decodeCursor(query.cursor) : null;
    if (!after) errors.push({ field: 'cursor', message: BAD_CURSOR });
  }
  if (errors.length) throw badRequest(errors.map((e) => `${e.field} ${e.message}`).join('; '), errors);
  const page = await listTasks(pool, tenant, filter, limit, after, scanRows);
  // No payload or result in a list (see task-list.ts): GET /tasks/:id has them.
  const tasks = page.tasks.map((t) => {
    const { payload: _payload, result: _result, ...item } = taskToJson(t);
    return item;
  });
  return { tasks, next_cursor: page.next ? encodeCursor(page.next) : null };
}
