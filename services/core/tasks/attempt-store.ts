/**
 * Postgres writes on behalf of attempts. Each statement takes a batch and is fenced by the lease
 * token: a write whose token is no longer the task's current one changes the task not at all.
 *
 * A task_runs row is written once per attempt, when its outcome is known (succeeded, failed,
 * expired, released); an outcome that arrives after its lease was lost is kept as `discarded`,
 * so a duplicate execution stays visible. Writing the row once, instead of inserting it at the
 * start and updating it at the end, takes a third of the per-task Postgres work off the hot path;
 * a running attempt is visible as the task's `running` status and its lease token.
 */
import type { Pool } from 'pg';

/** Lease tokens start with the leasing worker's id and `~`, so any process can name the worker. */
export const WORKER_OF_TOKEN = "split_part(i.token, '~', 1)";

export interface StartedAttempt {
  id: string;
  token: string;
  attempt: number;
}

/**
 * Records that attempts started: the task becomes `running` under the new token. Tasks already
 * final (or unknown) are not started. A task still `running` under an older token lost that lease
 * without the loss being recorded (a reaper or reconciler crashed half-way): that attempt gets its
 * `expired` run here.
 */
export async function markRunning(pool: Pool, items: StartedAttempt[]): Promise<{ started: Set<string> }> {
  if (items.length === 0) return { started: new Set() };
  const { rows } = await pool.query<{ id: string }>({
    name: 'mark-running',
    text: `WITH input AS (
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[]) AS i(id, token, attempt)
     ), superseded AS (
       SELECT t.id, t.lease_token AS token, t.attempts AS attempt, t.updated_at FROM tasks t JOIN input i ON t.id = i.id
        WHERE t.status = 'running' AND t.lease_token <> i.token
     ), lost AS (
       INSERT INTO task_runs (task_id, attempt, worker_id, lease_token, started_at, finished_at, outcome, error)
       SELECT i.id, i.attempt, ${WORKER_OF_TOKEN}, i.token, i.updated_at, now(), 'expired', 'lease lost: the task was leased again'
         FROM superseded i
       ON CONFLICT (lease_token) DO NOTHING
     )
     UPDATE tasks t SET status = 'running', attempts = GREATEST(t.attempts, i.attempt), lease_token = i.token,
            run_after = NULL, first_started_at = COALESCE(t.first_started_at, now()), updated_at = now()
       FROM input i
      WHERE t.id = i.id AND t.status IN ('queued', 'retrying', 'running')
     RETURNING t.id`,
    values: [items.map((i) => i.id), items.map((i) => i.token), items.map((i) => i.attempt)],
  });
  return { started: new Set(rows.map((r) => r.id)) };
}

export interface Outcome {
  id: string;
  token: string;
  attempt: number;
  workerId: string;
  startedAtMs: number;
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
  const { rows } = await pool.query<{ id: string }>({
    name: 'record-outcomes',
    text: `WITH input AS (
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::text[], $5::bool[], $6::int[], $7::int[], $8::text[], $9::float8[])
         AS i(id, token, duration_ms, error, dead, delay_ms, attempt, worker_id, started_ms)
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
       INSERT INTO task_runs (task_id, attempt, worker_id, lease_token, started_at, finished_at, outcome, error, duration_ms)
       SELECT i.id, i.attempt, i.worker_id, i.token, to_timestamp(i.started_ms / 1000.0), now(),
              CASE WHEN a.id IS NULL THEN 'discarded' WHEN i.error IS NULL THEN 'succeeded' ELSE 'failed' END,
              CASE WHEN a.id IS NULL THEN 'lease lost before the outcome (' || COALESCE(i.error, 'success') || ') was recorded'
                   ELSE i.error END,
              i.duration_ms
         FROM input i LEFT JOIN applied a ON a.id = i.id
       -- The reaper may have recorded this attempt as expired already: the late outcome is discarded.
       ON CONFLICT (lease_token) DO UPDATE
         SET outcome = 'discarded', error = EXCLUDED.error, finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms
         WHERE task_runs.outcome = 'expired'
     )
     SELECT id FROM applied`,
    values: [
      outcomes.map((o) => o.id),
      outcomes.map((o) => o.token),
      outcomes.map((o) => o.durationMs),
      outcomes.map((o) => o.error),
      outcomes.map((o) => o.dead),
      outcomes.map((o) => Math.round(o.delayMs)),
      outcomes.map((o) => o.attempt),
      outcomes.map((o) => o.workerId),
      outcomes.map((o) => o.startedAtMs),
    ],
  });
  return new Set(rows.map((r) => r.id));
}

export interface LostAttempt {
  id: string;
  token: string;
  attempt: number;
  dead: boolean;
}

/**
 * Records attempts whose lease was lost (expired and reaped, or vanished with Redis data): the
 * attempt counts, its run is `expired`, the task waits again or is dead.
 */
export async function recordExpired(pool: Pool, items: LostAttempt[], reason = 'lease expired'): Promise<Set<string>> {
  if (items.length === 0) return new Set();
  const { rows } = await pool.query<{ id: string }>(
    `WITH input AS (
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bool[]) AS i(id, token, attempt, dead)
     ), held AS (
       SELECT t.id, t.updated_at FROM tasks t JOIN input i ON t.id = i.id AND t.lease_token = i.token AND t.status = 'running'
     ), applied AS (
       UPDATE tasks t SET status = CASE WHEN i.dead THEN 'dead'::task_status ELSE 'queued'::task_status END,
              last_error = $5 || ' during attempt ' || i.attempt || ' (worker stopped, too slow, or Redis lost it)',
              finished_at = CASE WHEN i.dead THEN now() END, lease_token = NULL, updated_at = now()
         FROM input i
        WHERE t.id = i.id AND t.lease_token = i.token AND t.status = 'running'
       RETURNING t.id
     ), runs AS (
       INSERT INTO task_runs (task_id, attempt, worker_id, lease_token, started_at, finished_at, outcome, error)
       SELECT i.id, i.attempt, ${WORKER_OF_TOKEN}, i.token, COALESCE(h.updated_at, now()), now(), 'expired', $5
         FROM input i LEFT JOIN held h ON h.id = i.id
       ON CONFLICT (lease_token) DO NOTHING
     )
     SELECT id FROM applied`,
    [items.map((i) => i.id), items.map((i) => i.token), items.map((i) => i.attempt), items.map((i) => i.dead), reason],
  );
  return new Set(rows.map((r) => r.id));
}

/** Records attempts handed back unfinished (shutdown, or Postgres failed at their start): they do not count. */
export async function recordReleased(pool: Pool, items: { id: string; token: string; attempt: number; startedAtMs: number }[]): Promise<Set<string>> {
  if (items.length === 0) return new Set();
  const { rows } = await pool.query<{ id: string }>(
    `WITH input AS (
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::float8[]) AS i(id, token, attempt, started_ms)
     ), applied AS (
       UPDATE tasks t SET status = 'queued', attempts = GREATEST(t.attempts - 1, 0), lease_token = NULL, updated_at = now()
         FROM input i
        WHERE t.id = i.id AND t.lease_token = i.token AND t.status = 'running'
       RETURNING t.id
     ), runs AS (
       INSERT INTO task_runs (task_id, attempt, worker_id, lease_token, started_at, finished_at, outcome, error)
       SELECT a.id, i.attempt, ${WORKER_OF_TOKEN}, i.token, to_timestamp(i.started_ms / 1000.0), now(), 'released', 'handed back at shutdown'
         FROM applied a JOIN input i ON i.id = a.id
       ON CONFLICT (lease_token) DO NOTHING
     )
     SELECT id FROM applied`,
    [items.map((i) => i.id), items.map((i) => i.token), items.map((i) => i.attempt), items.map((i) => i.startedAtMs)],
  );
  return new Set(rows.map((r) => r.id));
}

/** Attempts counted in Postgres for those of `ids` whose task is not final yet. */
export async function unfinishedAttempts(pool: Pool, ids: string[]): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ id: string; attempts: number }>(
    `SELECT id, attempts FROM tasks WHERE id = ANY($1::uuid[]) AND status IN ('queued', 'retrying', 'running')`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r.attempts]));
}
