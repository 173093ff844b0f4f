/**
 * Postgres side of retention: deleting final tasks, with their runs, some time after they finished
 * (docs/retention.md). Each call is one statement, so one short transaction: it reads the next
 * `limit` tasks of a status's due range through tasks_final_finished_idx (status, finished_at),
 * oldest first, after a cursor, locks those not kept with SKIP LOCKED, and deletes those still
 * final and old enough. A row another transaction holds
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
/** OLD for a row reached by id: the status as text, so the planner cannot read the partial index's whole range instead. */
const OLD_BY_ID = (status: FinalStatus) => `t.status::text = ${statusLiteral(status)} AND t.finished_at < now() - $1 * interval '1 millisecond'`;

/** How far a walk through a status's due range has got: the last task it looked at. */
export interface RangeCursor {
  /** Its finished_at in ISO 8601, UTC, to the microsecond (a Date would lose those), whatever the session's DateStyle. */
  finishedAt: string;
  id: string;
}

/** Where a walk starts: before every task. */
const START: RangeCursor = { finishedAt: '-infinity', id: '00000000-0000-0000-0000-000000000000' };

/**
 * The delete statement of one batch: the next `$2` tasks of the status's due range after the
 * cursor ($3, $4), oldest first, of which it deletes those not kept. A batch reads that window and
 * no more: picked among all due tasks, `LIMIT` counted only deletable ones, so every batch read again
 * every task kept ahead of them (steps of workflows not due, keyed tasks), and a pass as many
 * times as it had batches. The status is a literal (the planner proves the partial index usable
 * from literals only); the age, the limit and the cursor are parameters.
 */
export function deleteBatchSql(status: FinalStatus): string {
  return windowSql(
    status,
    `DELETE FROM tasks t
        -- By primary key, and checked again on the locked row: a task redriven since the snapshot is
        -- not final any more.
        WHERE t.id = ANY (ARRAY(SELECT id FROM picked)) AND ${OLD_BY_ID(status)}
       RETURNING t.id, t.tenant`,
  );
}

/**
 * deleteBatchSql without the delete: the window's deletable tasks are locked (and answered with
 * their tenants), for a caller that deletes them (deleteLockedSql) once Redis has forgotten them,
 * in the same transaction: those Redis could not be asked about stay, untouched.
 */
export function lockBatchSql(status: FinalStatus): string {
  return windowSql(status, 'SELECT id, tenant FROM picked');
}

/** Deletes tasks ($2) of the status that this transaction locked (lockBatchSql), checked again. */
export function deleteLockedSql(status: FinalStatus): string {
  return `DELETE FROM tasks t WHERE t.id = ANY ($2::uuid[]) AND ${OLD_BY_ID(status)} RETURNING t.id, t.tenant`;
}

/** The window's statement, `gone` being the tasks it answers with (deleted, or only locked). */
function windowSql(status: FinalStatus, gone: string): string {
  return `WITH head AS MATERIALIZED (
       -- The window's last finish time: read in the index's order, which stops after $2 entries
       -- whatever the planner thinks of the range (a sort by (finished_at, id) over the whole range
       -- would read all of it).
       SELECT t.finished_at FROM tasks t
        WHERE ${OLD(status)} AND t.finished_at >= $3::timestamptz AND (t.finished_at, t.id) > ($3::timestamptz, $4::uuid)
        ORDER BY t.finished_at
        LIMIT $2
     ), seen AS MATERIALIZED (
       -- The window: the range after the cursor up to that time, the ties there ordered by id.
       SELECT t.id, t.finished_at FROM tasks t
        WHERE ${OLD(status)} AND t.finished_at >= $3::timestamptz AND t.finished_at <= (SELECT max(finished_at) FROM head)
          AND (t.finished_at, t.id) > ($3::timestamptz, $4::uuid)
        ORDER BY t.finished_at, t.id
        LIMIT $2
     ), picked AS (
       SELECT t.id, t.tenant FROM tasks t
        WHERE t.id = ANY (ARRAY(SELECT id FROM seen)) AND ${OLD_BY_ID(status)}
          AND NOT (${KEEP_CONDITIONS.map((c) => `(${c})`).join(' OR ')})
        FOR UPDATE SKIP LOCKED
     ), gone AS (
       ${gone}
     ), last AS (SELECT finished_at, id FROM seen ORDER BY finished_at DESC, id DESC LIMIT 1)
     SELECT COALESCE((SELECT json_agg(json_build_object('id', id, 'tenant', tenant)) FROM gone), '[]'::json) AS tasks,
            (SELECT count(*) FROM seen)::int AS seen, (SELECT to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') FROM last) AS last_at, (SELECT id FROM last) AS last_id`;
}

export interface WindowBatch {
  /** The tasks deleted (lockFinishedWindow: locked, to delete). */
  tasks: TaskRef[];
  /** How many tasks of the range it looked at: fewer than the limit, it reached the range's end. */
  seen: number;
  /** The last task it looked at (the cursor's next position); null when it looked at none. */
  last: RangeCursor | null;
}

/**
 * Deletes the tasks of `status` that finished more than `policy[status]` ago (and are not kept:
 * KEEP_CONDITIONS), with their runs, among the next `limit` of them after `after` (null: from the
 * oldest), in one statement. Given a client, it deletes in that client's transaction.
 */
export async function deleteFinishedWindow(db: Pool | PoolClient, status: FinalStatus, policy: RetentionPolicy, limit: number, after: RangeCursor | null): Promise<WindowBatch> {
  return runWindow(db, deleteBatchSql(status), status, policy, limit, after);
}

/**
 * deleteFinishedWindow's next window, its deletable tasks locked in `client`'s transaction but not
 * deleted (`tasks`): deleteLocked deletes those the caller chooses, before that transaction ends.
 */
export async function lockFinishedWindow(client: PoolClient, status: FinalStatus, policy: RetentionPolicy, limit: number, after: RangeCursor | null): Promise<WindowBatch> {
  return runWindow(client, lockBatchSql(status), status, policy, limit, after);
}

/** Deletes `tasks` of `status` that lockFinishedWindow locked in `client`'s transaction; the tasks deleted. */
export async function deleteLocked(client: PoolClient, status: FinalStatus, policy: RetentionPolicy, tasks: TaskRef[]): Promise<TaskRef[]> {
  if (tasks.length === 0) return [];
  const { rows } = await client.query<TaskRef>(deleteLockedSql(status), [policy[status], tasks.map((t) => t.id)]);
  return rows;
}

async function runWindow(db: Pool | PoolClient, sql: string, status: FinalStatus, policy: RetentionPolicy, limit: number, after: RangeCursor | null): Promise<WindowBatch> {
  const ageMs = policy[status];
  if (!(ageMs > 0)) throw new RangeError(`ageMs must be positive, got ${ageMs}`);
  const from = after ?? START;
  // Unnamed, so planned for each cursor: a generic plan, estimating the range after "some" cursor
  // as small, read all of it and sorted it to find the window's end.
  const { rows } = await db.query<{ tasks: TaskRef[]; seen: number; last_at: string | null; last_id: string | null }>(sql, [ageMs, limit, from.finishedAt, from.id]);
  const r = rows[0]!;
  return { tasks: r.tasks, seen: r.seen, last: r.last_at === null ? null : { finishedAt: r.last_at, id: r.last_id! } };
}

/**
 * Deletes at most `limit` tasks of `status` due (see deleteFinishedWindow) among the oldest
 * `limit`, from the start of the range; returns the tasks deleted (id and tenant).
 */
export async function deleteFinishedBatch(db: Pool | PoolClient, status: FinalStatus, policy: RetentionPolicy, limit: number): Promise<TaskRef[]> {
  return (await deleteFinishedWindow(db, status, policy, limit, null)).tasks;
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
