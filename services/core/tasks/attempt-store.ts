/**
 * Postgres writes on behalf of attempts. Each statement takes a batch and is fenced by the lease
 * token: a write whose token is no longer the task's current one changes the task not at all,
 * and its run row is marked `discarded` so a duplicate execution stays visible.
 */
import type { Pool } from 'pg';

export interface StartedAttempt {
  id: string;
  token: string;
  attempt: number;
}

/**
 * Records that attempts started: the task becomes `running` under the new token and gains a run
 * row. Tasks already final (or unknown) are not started; their ids are returned as `rejected`.
 */
export async function markRunning(pool: Pool, workerId: string, items: StartedAttempt[]): Promise<{ started: Set<string> }> {
  if (items.length === 0) return { started: new Set() };
  const { rows } = await pool.query<{ id: string }>(
    `WITH input AS (
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[]) AS i(id, token, attempt)
     ), started AS (
       UPDATE tasks t SET status = 'running', attempts = GREATEST(t.attempts, i.attempt), lease_token = i.token,
              run_after = NULL, first_started_at = COALESCE(t.first_started_at, now()), updated_at = now()
         FROM input i
        WHERE t.id = i.id AND t.status IN ('queued', 'retrying', 'running')
       RETURNING t.id, i.token, i.attempt
     ), superseded AS (
       -- A run still 'running' under an older token lost its lease without being reaped in Postgres.
       UPDATE task_runs r SET outcome = 'expired', finished_at = now(),
              error = COALESCE(r.error, 'lease lost: the task was leased again')
         FROM started s WHERE r.task_id = s.id AND r.outcome = 'running'
     ), runs AS (
       INSERT INTO task_runs (task_id, attempt, worker_id, lease_token)
       SELECT id, attempt, $4, token FROM started
     )
     SELECT id FROM started`,
    [items.map((i) => i.id), items.map((i) => i.token), items.map((i) => i.attempt), workerId],
  );
  return { started: new Set(rows.map((r) => r.id)) };
}

export interface Outcome {
  id: string;
  token: string;
  durationMs: number;
  /** null on success. */
  error: string | null;
  /** For failures: true when no attempt is left (or the type is unknown). */
  dead: boolean;
  /** For retries: the backoff before the next attempt. */
  delayMs: number;
}

/**
 * Writes attempt outcomes. Returns the ids whose write was applied (token still current);
 * the rest lost their lease and must not touch the queue either.
 */
export async function recordOutcomes(pool: Pool, outcomes: Outcome[]): Promise<Set<string>> {
  if (outcomes.length === 0) return new Set();
  const { rows } = await pool.query<{ id: string }>(
    `WITH input AS (
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::text[], $5::bool[], $6::int[])
         AS i(id, token, duration_ms, error, dead, delay_ms)
     ), applied AS (
       UPDATE tasks t SET
              status = CASE WHEN i.error IS NULL THEN 'succeeded'::task_status
                            WHEN i.dead THEN 'dead'::task_status ELSE 'retrying'::task_status END,
              last_error = COALESCE(i.error, t.last_error),
              run_after = CASE WHEN i.error IS NOT NULL AND NOT i.dead
                               THEN now() + i.delay_ms * interval '1 millisecond' END,
              finished_at = CASE WHEN i.error IS NULL OR i.dead THEN now() END,
              lease_token = NULL, updated_at = now()
         FROM input i
        WHERE t.id = i.id AND t.lease_token = i.token AND t.status = 'running'
       RETURNING t.id
     ), runs AS (
       UPDATE task_runs r SET finished_at = now(), duration_ms = i.duration_ms,
              outcome = CASE WHEN a.id IS NULL THEN 'discarded' WHEN i.error IS NULL THEN 'succeeded' ELSE 'failed' END,
              error = CASE WHEN a.id IS NULL
                           THEN 'lease lost before the outcome (' || COALESCE(i.error, 'success') || ') was recorded'
                           ELSE i.error END
         FROM input i LEFT JOIN applied a ON a.id = i.id
        WHERE r.lease_token = i.token AND r.outcome IN ('running', 'expired')
     )
     SELECT id FROM applied`,
    [
      outcomes.map((o) => o.id),
      outcomes.map((o) => o.token),
      outcomes.map((o) => o.durationMs),
      outcomes.map((o) => o.error),
      outcomes.map((o) => o.dead),
      outcomes.map((o) => Math.round(o.delayMs)),
    ],
  );
  return new Set(rows.map((r) => r.id));
}

export interface ReapedAttempt {
  id: string;
  token: string;
  attempt: number;
  dead: boolean;
}

/** Records leases that expired: the attempt counts, its run is `expired`, the task waits again or is dead. */
export async function recordExpired(pool: Pool, items: ReapedAttempt[]): Promise<Set<string>> {
  if (items.length === 0) return new Set();
  const { rows } = await pool.query<{ id: string }>(
    `WITH input AS (
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bool[]) AS i(id, token, attempt, dead)
     ), applied AS (
       UPDATE tasks t SET status = CASE WHEN i.dead THEN 'dead'::task_status ELSE 'queued'::task_status END,
              last_error = 'lease expired during attempt ' || i.attempt || ' (worker stopped or too slow)',
              finished_at = CASE WHEN i.dead THEN now() END, lease_token = NULL, updated_at = now()
         FROM input i
        WHERE t.id = i.id AND t.lease_token = i.token AND t.status = 'running'
       RETURNING t.id
     ), runs AS (
       UPDATE task_runs r SET outcome = 'expired', finished_at = now(), error = 'lease expired'
         FROM input i WHERE r.lease_token = i.token AND r.outcome = 'running'
     )
     SELECT id FROM applied`,
    [items.map((i) => i.id), items.map((i) => i.token), items.map((i) => i.attempt), items.map((i) => i.dead)],
  );
  return new Set(rows.map((r) => r.id));
}

/** Records attempts handed back unfinished (shutdown): they do not count. */
export async function recordReleased(pool: Pool, items: { id: string; token: string }[]): Promise<Set<string>> {
  if (items.length === 0) return new Set();
  const { rows } = await pool.query<{ id: string }>(
    `WITH input AS (
       SELECT * FROM unnest($1::uuid[], $2::text[]) AS i(id, token)
     ), applied AS (
       UPDATE tasks t SET status = 'queued', attempts = GREATEST(t.attempts - 1, 0), lease_token = NULL, updated_at = now()
         FROM input i
        WHERE t.id = i.id AND t.lease_token = i.token AND t.status = 'running'
       RETURNING t.id
     ), runs AS (
       UPDATE task_runs r SET outcome = 'released', finished_at = now(), error = 'handed back at shutdown'
         FROM input i WHERE r.lease_token = i.token AND r.outcome = 'running'
     )
     SELECT id FROM applied`,
    [items.map((i) => i.id), items.map((i) => i.token)],
  );
  return new Set(rows.map((r) => r.id));
}
