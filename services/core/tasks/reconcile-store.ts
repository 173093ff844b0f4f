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
    `SELECT id, type, priority, payload, status, attempts, max_retries, lease_token, run_after, created_at, updated_at::text AS updated_at_text
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

/**
 * A running task whose lease Redis no longer knows: the attempt counts as lost. Fenced by the
 * token seen when the task was read, so an outcome written meanwhile wins.
 */
export async function expireVanishedLeases(pool: Pool, items: { id: string; token: string; dead: boolean }[]): Promise<Set<string>> {
  if (items.length === 0) return new Set();
  const { rows } = await pool.query<{ id: string }>(
    `WITH input AS (
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::bool[]) AS i(id, token, dead)
     ), applied AS (
       UPDATE tasks t SET status = CASE WHEN i.dead THEN 'dead'::task_status ELSE 'queued'::task_status END,
              last_error = 'lease vanished from Redis during attempt ' || t.attempts,
              finished_at = CASE WHEN i.dead THEN now() END, lease_token = NULL, updated_at = now()
         FROM input i
        WHERE t.id = i.id AND t.lease_token = i.token AND t.status = 'running'
       RETURNING t.id
     ), runs AS (
       UPDATE task_runs r SET outcome = 'expired', finished_at = now(), error = 'lease vanished from Redis'
         FROM input i WHERE r.lease_token = i.token AND r.outcome = 'running'
     )
     SELECT id FROM applied`,
    [items.map((i) => i.id), items.map((i) => i.token), items.map((i) => i.dead)],
  );
  return new Set(rows.map((r) => r.id));
}
