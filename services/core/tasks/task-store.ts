/** Postgres queries that create and read tasks (the API's side). */
import type { Pool, PoolClient } from 'pg';
import { NewTask, RunRow, TASK_COLUMNS, TaskRow } from './task';

export type CreateOutcome =
  | { kind: 'created'; task: TaskRow }
  | { kind: 'replayed'; task: TaskRow }
  | { kind: 'conflict'; taskId: string };

/**
 * Inserts a task, and its idempotency key when one is given, in one transaction. A key that is
 * live and was used with the same request hash replays the original task; with a different hash
 * it is a conflict. Concurrent first uses of one key are serialized by the key's primary-key
 * index: the loser waits for the winner's commit, then replays or conflicts.
 */
export async function createTask(pool: Pool, t: NewTask, requestHash: string | null, idempotencyTtlMs: number): Promise<CreateOutcome> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    if (t.idempotencyKey !== null && requestHash !== null) {
      const claimed = await client.query(
        `INSERT INTO idempotency_keys (key, task_id, request_hash, expires_at)
         VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')
         ON CONFLICT (key) DO UPDATE
           SET task_id = EXCLUDED.task_id, request_hash = EXCLUDED.request_hash,
               created_at = now(), expires_at = EXCLUDED.expires_at
           WHERE idempotency_keys.expires_at <= now()
         RETURNING key`,
        [t.idempotencyKey, t.id, requestHash, idempotencyTtlMs],
      );
      if (claimed.rowCount === 0) {
        await client.query('ROLLBACK');
        return await existingForKey(client, t.idempotencyKey, requestHash);
      }
    }
    const { rows } = await client.query<TaskRow>(
      `INSERT INTO tasks (id, type, priority, payload, max_retries, idempotency_key)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${TASK_COLUMNS}`,
      [t.id, t.type, t.priority, JSON.stringify(t.payload), t.maxRetries, t.idempotencyKey],
    );
    await client.query('COMMIT');
    return { kind: 'created', task: rows[0]! };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

async function existingForKey(client: PoolClient, key: string, requestHash: string): Promise<CreateOutcome> {
  const { rows } = await client.query<TaskRow & { request_hash: string }>(
    `SELECT k.request_hash, ${TASK_COLUMNS.split(', ').map((c) => `t.${c}`).join(', ')}
       FROM idempotency_keys k JOIN tasks t ON t.id = k.task_id WHERE k.key = $1`,
    [key],
  );
  const row = rows[0];
  if (!row) throw new Error(`idempotency key ${key} vanished while being read`);
  if (row.request_hash !== requestHash) return { kind: 'conflict', taskId: row.id };
  const { request_hash: _omit, ...task } = row;
  return { kind: 'replayed', task };
}

export async function getTask(pool: Pool, id: string): Promise<{ task: TaskRow; runs: RunRow[] } | null> {
  const [t, r] = await Promise.all([
    pool.query<TaskRow>(`SELECT ${TASK_COLUMNS} FROM tasks WHERE id = $1`, [id]),
    pool.query<RunRow>(
      `SELECT attempt, worker_id, started_at, finished_at, outcome, error, duration_ms
         FROM task_runs WHERE task_id = $1 ORDER BY id`,
      [id],
    ),
  ]);
  const task = t.rows[0];
  return task ? { task, runs: r.rows } : null;
}

/** Deletes expired idempotency keys in bounded batches; returns how many went. */
export async function pruneIdempotencyKeys(pool: Pool, limit: number): Promise<number> {
  const res = await pool.query(
    `DELETE FROM idempotency_keys WHERE key IN (
       SELECT key FROM idempotency_keys WHERE expires_at <= now() ORDER BY expires_at LIMIT $1)`,
    [limit],
  );
  return res.rowCount ?? 0;
}
