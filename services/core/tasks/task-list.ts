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
import type { TaskCursor } from './task-cursor';
import type { TaskFilter } from './task-filter';
import { scanQuery, ScanRowMarks } from './task-scan';

/** A page's cursor: the keyset position of task-cursor.ts. */
export type ListCursor = TaskCursor;
export { decodeCursor, encodeCursor } from './task-cursor';

/**
 * A page's rows leave the payload and the result out (GET /tasks/:id has them): payloads may be up to
 * MAX_BODY_BYTES each, and a page of them would make what one request costs depend on what
 * clients stored. Without it a row is a few hundred bytes (last_error is bounded too).
 */
const LIST_COLUMNS = TASK_COLUMNS.replace(/\bpayload\b/, 'NULL::jsonb AS payload').replace(/\bresult\b/, 'NULL::jsonb AS result');

/**
 * The page's statement; exported for the plan tests. It reads at most `scanRows` rows (task-scan.ts)
 * and returns up to limit + 1 matches (one more says there is a next page), and the last row the
 * read may take (number `scanRows`) if it gets that far: the next page starts after it.
 */
export function listQuery(tenant: string, filter: TaskFilter, limit: number, after: ListCursor | null, scanRows = DEFAULT_SCAN_ROWS): { text: string; values: unknown[] } {
  return scanQuery(LIST_COLUMNS, tenant, filter, after, limit + 1, scanRows);
}

/** LIST_SCAN_ROWS' default: rows one page reads at most. */
export const DEFAULT_SCAN_ROWS = 10_000;

/**
 * One page: up to `limit` tasks and the cursor after them, or null at the end. A page may hold fewer
 * than `limit` tasks (none, even) and still have a cursor: its read stopped at `scanRows` rows.
 */
export async function listTasks(pool: Pool, tenant: string, filter: TaskFilter, limit: number, after: ListCursor | null, scanRows = DEFAULT_SCAN_ROWS): Promise<{ tasks: TaskRow[]; next: ListCursor | null }> {
  const { rows } = await pool.query<TaskRow & ScanRowMarks>(listQuery(tenant, filter, limit, after, scanRows));
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
