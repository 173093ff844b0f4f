/**
 * A tenant's tasks, newest first, a page at a time (GET /tasks). The cursor is the last row's
 * (created_at, id), kept at Postgres's microsecond precision: a page starts strictly after it, so
 * paging while tasks are added returns every task that existed when paging began exactly once
 * (new ones are newer than any cursor). Pages are read through the partial indexes on (tenant,
 * created_at, id) of unfinished, final, or dead and cancelled tasks (status-indexes.ts), and read
 * at most LIST_SCAN_ROWS rows each.
 */
import type { Pool } from 'pg';
import { TASK_COLUMNS, TaskRow } from './task';
import { newestFirst } from './status-indexes';
import { filterSql, TaskFilter } from './task-filter';

export interface ListCursor {
  /** created_at as Postgres prints it (microseconds). */
  createdAt: string;
  id: string;
}

/**
 * A page's rows leave the payload and the result out (GET /tasks/:id has them): payloads may be up to
 * MAX_BODY_BYTES each, and a page of them would make what one request costs depend on what
 * clients stored. Without it a row is a few hundred bytes (last_error is bounded too).
 */
const LIST_COLUMNS = TASK_COLUMNS.replace(/\bpayload\b/, 'NULL::jsonb AS payload').replace(/\bresult\b/, 'NULL::jsonb AS result');

/**
 * The page's statement; exported for the plan tests. Rows are read in order through the indexes,
 * at most `scanRows` of them: the filter's other conditions (type, priority, the statuses) are
 * checked on the rows read, so a filter that matches little costs a bounded read, not the tenant's
 * whole history. It returns up to limit + 1 matches (one more says there is a next page), and the
 * last row the read may take (number `scanRows`) if it gets that far: the next page starts after it.
 */
export function listQuery(tenant: string, filter: TaskFilter, limit: number, after: ListCursor | null, scanRows = DEFAULT_SCAN_ROWS): { text: string; values: unknown[] } {
  const { createdAfter, createdBefore, ...checked } = filter;
  // The window bounds the index scan; the rest is checked on what it reads.
  const scan = filterSql({ createdAfter, createdBefore }, 2);
  const hit = filterSql(checked, 2 + scan.values.length);
  const n = 2 + scan.values.length + hit.values.length;
  // The cursor condition only when there is one: `$n IS NULL OR …` would keep it from bounding the index scan.
  const cursor = after ? `AND (created_at, id) < ($${n}::timestamptz, $${n + 1}::uuid)` : '';
  const read = newestFirst(
    filter.statuses,
    (p) => `SELECT ${LIST_COLUMNS}, created_at::text AS created_at_text, ${hit.sql} AS hit FROM tasks
      WHERE tenant = $1 AND ${scan.sql} AND ${p} ${cursor}
      ORDER BY created_at DESC, id DESC LIMIT ${scanRows}`,
    scanRows,
  );
  // The outer LIMIT reaches the inner read (the planner plans it for a few rows, in index order), and
  // the read stops as soon as the page is full: row_number() needs no row after the current one.
  return {
    text: `SELECT * FROM (
        SELECT *, row_number() OVER (ORDER BY created_at DESC, id DESC) AS read FROM (${read}) s
        ORDER BY created_at DESC, id DESC
        LIMIT ${scanRows}) r
      WHERE hit OR read = ${scanRows}
      LIMIT ${limit + 1}`,
    values: [tenant, ...scan.values, ...hit.values, ...(after ? [after.createdAt, after.id] : [])],
  };
}

/** LIST_SCAN_ROWS' default: rows one page reads at most. */
export const DEFAULT_SCAN_ROWS = 10_000;

/**
 * One page: up to `limit` tasks and the cursor after them, or null at the end. A page may hold fewer
 * than `limit` tasks (none, even) and still have a cursor: its read stopped at `scanRows` rows.
 */
export async function listTasks(pool: Pool, tenant: string, filter: TaskFilter, limit: number, after: ListCursor | null, scanRows = DEFAULT_SCAN_ROWS): Promise<{ tasks: TaskRow[]; next: ListCursor | null }> {
  const { rows } = await pool.query<TaskRow & { created_at_text: string; hit: boolean; read: string }>(listQuery(tenant, filter, limit, after, scanRows));
  const hits = rows.filter((r) => r.hit);
  const more = hits.length > limit;
  const page = more ? hits.slice(0, limit) : hits;
  // Fewer matches than a page: the read ended, at the table's end or at its bound (then the next
  // page starts after the last row it read).
  const last = more ? page[page.length - 1] : rows.find((r) => Number(r.read) === scanRows);
  return {
    tasks: page.map(({ created_at_text: _t, hit: _h, read: _r, ...task }) => task as TaskRow),
    next: last ? { createdAt: last.created_at_text, id: last.id } : null,
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
