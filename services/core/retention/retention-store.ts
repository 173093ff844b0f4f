/**
 * Postgres side of retention: deleting final tasks, with their runs, some time after they finished
 * (docs/retention.md). Each call is one statement, so one short transaction: it picks at most
 * `limit` tasks through tasks_final_finished_idx (status, finished_at), oldest first, locking them
 * with SKIP LOCKED, and deletes those still final and old enough. A row another transaction holds
 * (an operator's retry or cancel, an outcome being written) is skipped, never waited for, and a
 * task redriven meanwhile (queued again, finished_at cleared) fails the check made again on the
 * locked row and stays. The runs go with their tasks in the same statement (the trigger of
 * migration 0003, through the primary key (task_id, lease_token) since migration 0012).
 */
import type { Pool, PoolClient } from 'pg';
import { FINAL_STATUSES } from '../tasks/priority';
import type { TaskRef } from '../queue/queue';

export type FinalStatus = (typeof FINAL_STATUSES)[number];

/** How long tasks of each final status are kept after they finished, in milliseconds; 0 keeps them forever. */
export type RetentionPolicy = Record<FinalStatus, number>;

/**
 * Why an old final task stays, each a condition on the task `t` (true: keep it). A task whose
 * idempotency key is still live stays until the key expires, so a replay within the key's TTL
 * still answers with the task instead of creating another. A step of a stored workflow is never
 * deleted here: its workflow goes whole, with every step, once it is due
 * (workflow-retention-store.ts); one step at a time, a pass left workflows half deleted between
 * its batches. Each is read in the statement's snapshot, so a condition that can turn true again
 * for a task already final must be set by a writer that locks the task's row (the sweep skips
 * locked rows).
 */
export const KEEP_CONDITIONS: readonly string[] = [
  // A scalar subquery, so a probe of the key's primary key per task that has a key: as EXISTS the
  // planner may join it instead, against every live key.
  `t.idempotency_key IS NOT NULL AND COALESCE((SELECT k.expires_at > now() FROM idempotency_keys k
     WHERE k.tenant = t.tenant AND k.key = t.idempotency_key AND k.task_id = t.id), false)`,
  // A probe of the workflow's primary key (a scalar subquery, as above). A workflow's row is deleted
  // only with all its steps, in one transaction: a step whose workflow is not in the snapshot has
  // none (its row deleted by hand), and goes like any task.
  `t.workflow_id IS NOT NULL AND COALESCE((SELECT true FROM workflows w WHERE w.id = t.workflow_id), false)`,
];

const statusLiteral = (status: FinalStatus): string => {
  if (!(FINAL_STATUSES as readonly string[]).includes(status)) throw new Error(`not a final status: ${status}`);
  return `'${status}'`;
};

const OLD = (status: FinalStatus) => `t.status = ${statusLiteral(status)} AND t.finished_at < now() - $1 * interval '1 millisecond'`;

/**
 * The delete statement of one batch. The status is a literal (the planner proves the partial index
 * usable from literals only), the age and the limit are parameters.
 */
export function deleteBatchSql(status: FinalStatus): string {
  return `WITH picked AS (
       SELECT t.id FROM tasks t
        WHERE ${OLD(status)}
          AND NOT (${KEEP_CONDITIONS.map((c) => `(${c})`).join(' OR ')})
        ORDER BY t.finished_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
     )
     DELETE FROM tasks t
      -- By primary key (an array, so the planner cannot read the old rows by the index instead), and
      -- checked again on the locked row: a task redriven since the snapshot is not final any more.
      WHERE t.id = ANY (ARRAY(SELECT id FROM picked)) AND ${OLD(status)}
     RETURNING t.id, t.tenant`;
}

/**
 * Deletes at most `limit` tasks of `status` that finished more than `policy[status]` ago (and are
 * not kept: KEEP_CONDITIONS), and their runs, in one statement; returns the tasks deleted (id and
 * tenant). Fewer than `limit` means none are left to delete now (or those left are held by other
 * transactions, or kept). Given a client, it deletes in that client's transaction.
 */
export async function deleteFinishedBatch(pool: Pool | PoolClient, status: FinalStatus, policy: RetentionPolicy, limit: number): Promise<TaskRef[]> {
  const ageMs = policy[status];
  if (!(ageMs > 0)) throw new RangeError(`ageMs must be positive, got ${ageMs}`);
  const { rows } = await pool.query<TaskRef>({
    name: `retention-delete-${status}`,
    text: deleteBatchSql(status),
    values: [ageMs, limit],
  });
  return rows;
}

/**
 * How long ago the oldest task of each final status still stored finished, in seconds (null: none
 * is stored), by Postgres's clock, read from tasks_final_finished_idx: whether retention keeps up.
 */
export async function oldestFinishedAges(pool: Pool): Promise<Record<FinalStatus, number | null>> {
  const { rows } = await pool.query<Record<FinalStatus, number | null>>(
    `SELECT ${FINAL_STATUSES.map((s) => `extract(epoch FROM now() - (SELECT min(finished_at) FROM tasks WHERE status = ${statusLiteral(s)}))::float8 AS ${s}`).join(', ')}`,
  );
  return rows[0]!;
}
