/** Postgres side of the reconciler: which unfinished tasks exist, and fencing a vanished lease. */
import type { Pool } from 'pg';
import type { Priority, TaskStatus } from './priority';

export interface UnfinishedTask {
  id: string;
  type: string;
  priority: Priority;
  payload: unknown;
  status: TaskStatus;
  attempts: number;
  max_retries: number;
  lease_token: string | null;
  run_after: Date | null;
  created_at: Date;
  /** updated_at as Postgres prints it: microsecond precision, which a JS Date would truncate. */
  updated_at_text: string;
}

const COLUMNS = 'id, type, priority, payload, status, attempts, max_retries, lease_token, run_after, created_at, updated_at::text AS updated_at_text';

export interface Cursor {
  updatedAt: string;
  id: string;
}

/**
 * Unfinished tasks untouched for `graceMs`, in (updated_at, id) order after `after`: the
 * reconciler walks the whole set page by page, so a large backlog costs one bounded page per pass.
 */
export async function unfinishedTasks(pool: Pool, graceMs: number, limit: number, after: Cursor | null): Promise<UnfinishedTask[]> {
  const { rows } = await pool.query<UnfinishedTask>(
    `SELECT ${COLUMNS}
       FROM tasks
      WHERE status IN ('queued', 'running', 'retrying')
        AND updated_at < now() - $1 * interval '1 millisecond'
        AND ($2::timestamptz IS NULL OR (updated_at, id) > ($2::timestamptz, $3::uuid))
      ORDER BY updated_at, id
      LIMIT $4`,
    [graceMs, after?.updatedAt ?? null, after?.id ?? null, limit],
  );
  return rows;
}

/** Those of `ids` that are unfinished, whenever they were last touched. */
export async function unfinishedByIds(pool: Pool, ids: string[]): Promise<UnfinishedTask[]> {
  if (ids.length === 0) return [];
  const { rows } = await pool.query<UnfinishedTask>(
    `SELECT ${COLUMNS} FROM tasks WHERE id = ANY($1::uuid[]) AND status IN ('queued', 'running', 'retrying')`,
    [ids],
  );
  return rows;
}
