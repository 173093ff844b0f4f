/**
 * A tenant's tasks, newest first, a page at a time (GET /tasks). The cursor is the last row's
 * (created_at, id), kept at Postgres's microsecond precision: a page starts strictly after it, so
 * paging while tasks are added returns every task that existed when paging began exactly once
 * (new ones are newer than any cursor). Pages are read through tasks_tenant_created_idx, or
 * tasks_tenant_failed_idx when only dead and cancelled tasks are asked for (migration 0008).
 */
import type { Pool } from 'pg';
import { TASK_COLUMNS, TaskRow } from './task';
import { filterSql, TaskFilter } from './task-filter';

export interface ListCursor {
  /** created_at as Postgres prints it (microseconds). */
  createdAt: string;
  id: string;
}

const FAILED_ONLY = new Set(['dead', 'cancelled']);
/**
 * A page's rows leave the payload and the result out (GET /tasks/:id has them): payloads may be up to
 * MAX_BODY_BYTES each, and a page of them would make what one request costs depend on what
 * clients stored. Without it a row is a few hundred bytes (last_error is bounded too).
 */
const LIST_COLUMNS = TASK_COLUMNS.replace(/\bpayload\b/, 'NULL::jsonb AS payload').replace(/\bresult\b/, 'NULL::jsonb AS result');

/** The page's statement (limit + 1 rows: one more says there is a next page); exported for the plan tests. */
export function listQuery(tenant: string, filter: TaskFilter, limit: number, after: ListCursor | null): { text: string; values: unknown[] } {
  const where = filterSql(filter, 2);
  const n = where.values.length + 2;
  // Spelled out so the planner can prove the partial index's predicate without looking at values.
  const failedOnly = filter.statuses !== undefined && filter.statuses.every((s) => FAILED_ONLY.has(s)) ? "AND status IN ('dead', 'cancelled')" : '';
  // The cursor condition only when there is one: `$n IS NULL OR …` would keep it from bounding the index scan.
  const cursor = after ? `AND (created_at, id) < ($${n}::timestamptz, $${n + 1}::uuid)` : '';
  return {
    text: `SELECT ${LIST_COLUMNS}, created_at::text AS created_at_text FROM tasks
      WHERE tenant = $1 AND ${where.sql} ${failedOnly} ${cursor}
      ORDER BY created_at DESC, id DESC
      LIMIT ${limit + 1}`,
    values: [tenant, ...where.values, ...(after ? [after.createdAt, after.id] : [])],
  };
}

export async function listTasks(pool: Pool, tenant: string, filter: TaskFilter, limit: number, after: ListCursor | null): Promise<{ tasks: TaskRow[]; next: ListCursor | null }> {
  const { rows } = await pool.query<TaskRow & { created_at_text: string }>(listQuery(tenant, filter, limit, after));
  const more = rows.length > limit;
  const page = more ? rows.slice(0, limit) : rows;
  const last = page[page.length - 1];
  return {
    tasks: page.map(({ created_at_text: _t, ...task }) => task as TaskRow),
    next: more && last ? { createdAt: last.created_at_text, id: last.id } : null,
  };
}

/** The cursor as an opaque token (base64url of JSON). */
export function encodeCursor(c: ListCursor): string {
  return Buffer.from(JSON.stringify([c.createdAt, c.id])).toString('base64url');
}

const CURSOR_TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:\d{2})?$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The cursor a token holds, or null when it is not one this service made. */
export function decodeCursor(token: string): ListCursor | null {
  if (token.length > 200 || !/^[A-Za-z0-9_-]+$/.test(token)) return null;
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown;
    if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'string' || typeof v[1] !== 'string') return null;
    if (!CURSOR_TIME.test(v[0]) || !UUID.test(v[1])) return null;
    return { createdAt: v[0], id: v[1] };
  } catch {
    return null;
  }
}
