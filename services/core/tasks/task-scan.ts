/**
 * The bounded read behind GET /tasks's pages and the bulk calls' batches: a tenant's tasks newest
 * first after a keyset position, read in order through the partial indexes on (tenant, created_at,
 * id) (status-indexes.ts), at most `scanRows` rows. Only the creation window bounds the index scan;
 * the filter's other conditions (type, priority, the statuses) are checked on the rows read, so a
 * filter that matches little costs a bounded read, not the tenant's whole history.
 */
import { newestFirst } from './status-indexes';
import type { TaskCursor } from './task-cursor';
import { filterSql, TaskFilter } from './task-filter';

/** What a scan returns besides the caller's columns. */
export interface ScanRowMarks {
  /** created_at at full precision, for the cursor. */
  created_at_text: string;
  /** The row matches the filter. */
  hit: boolean;
  /** Its number in the read, from 1 (a bigint, so a string). */
  read: string;
}

/**
 * The statement: up to `hits` matching rows (`hit` true), and the last row the read may take
 * (`read` = `scanRows`) if it gets that far, matching or not: a caller that found fewer matches
 * than it asked for carries on after that row. `columns` is the select list of `tasks`, with id and
 * created_at (the order is on them).
 */
export function scanQuery(columns: string, tenant: string, filter: TaskFilter, after: TaskCursor | null, hits: number, scanRows: number): { text: string; values: unknown[] } {
  const { createdAfter, createdBefore, schedule, ...checked } = filter;
  // The window (and a schedule: tasks_tenant_schedule_idx) bounds the index scan; the rest is checked on what it reads.
  const scan = filterSql({ createdAfter, createdBefore, schedule }, 2);
  const hit = filterSql(checked, 2 + scan.values.length);
  const n = 2 + scan.values.length + hit.values.length;
  // The cursor condition only when there is one: `$n IS NULL OR …` would keep it from bounding the index scan.
  const cursor = after ? `AND (created_at, id) < ($${n}::timestamptz, $${n + 1}::uuid)` : '';
  const indexRead = (p: string) => `SELECT ${columns}, created_at::text AS created_at_text, ${hit.sql} AS hit FROM tasks
      WHERE tenant = $1 AND ${scan.sql} AND ${p} ${cursor}
      ORDER BY created_at DESC, id DESC LIMIT ${scanRows}`;
  // A schedule's tasks are read from its own index (tasks_tenant_schedule_idx), whatever their
  // status (checked on the rows): no status predicate could steer the planner to another index.
  const read = schedule === undefined ? newestFirst(filter.statuses, indexRead, scanRows) : indexRead('TRUE');
  // The outer LIMIT reaches the inner read (the planner plans it for a few rows, in index order), and
  // the read stops as soon as enough match: row_number() needs no row after the current one.
  return {
    text: `SELECT * FROM (
        SELECT *, row_number() OVER (ORDER BY created_at DESC, id DESC) AS read FROM (${read}) s
        ORDER BY created_at DESC, id DESC
        LIMIT ${scanRows}) r
      WHERE hit OR read = ${scanRows}
      LIMIT ${hits}`,
    values: [tenant, ...scan.values, ...hit.values, ...(after ? [after.createdAt, after.id] : [])],
  };
}
