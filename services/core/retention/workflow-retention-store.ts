/**
 * Postgres side of retention for workflows (docs/retention.md): a finished workflow goes whole, its
 * row, every step, their runs and edges, in one statement, or not at all. Deleted step by step, in
 * each status's own batch, a workflow could be left half deleted between two batches, and a retry
 * of its dead step then resumed it without the steps already gone.
 *
 * A retry that reopens a workflow locks the retried step's row first and updates the workflow's row
 * in the same transaction (the trigger of migration 0016), so the statement serializes with it on
 * those locks without waiting for them: it locks the workflow's row, checks again on that row's
 * newest version that the workflow is finished and due, then locks every step, skipping rows
 * others hold.
 * A workflow whose row or any step is held (a retry under way) is left whole for a later batch; a
 * retry that comes after the statement locked it waits for it and finds the step gone (404).
 */
import type { Pool, PoolClient } from 'pg';
import { textArray } from '../db/pg-arrays';
import type { TaskRef } from '../queue/queue';
import type { FinalStatus, RetentionPolicy } from './retention-store';

export const WORKFLOW_FINAL_STATUSES = ['succeeded', 'failed', 'cancelled'] as const;
export type WorkflowFinalStatus = (typeof WORKFLOW_FINAL_STATUSES)[number];

/**
 * How long a finished workflow of each status is kept, in milliseconds (0: forever). It goes whole,
 * so no step may go before its own status's retention: a succeeded workflow's steps all succeeded;
 * a failed or cancelled one's may have ended in any final status (its row does not tell which), so
 * it is kept for the longest of the three, and forever if any of them is 0.
 */
export function workflowAges(policy: RetentionPolicy): Record<WorkflowFinalStatus, number> {
  const all = [policy.succeeded, policy.dead, policy.cancelled];
  const longest = all.every((ms) => ms > 0) ? Math.max(...all) : 0;
  return { succeeded: policy.succeeded > 0 ? policy.succeeded : 0, failed: longest, cancelled: longest };
}

/**
 * A workflow submitted with an Idempotency-Key stays while the key is live (migration 0025), as a
 * task does: a repeat of the POST within the key's life answers with it instead of running it again.
 * One keyed but without the key's expiry (written before migration 0025, or by the previous release
 * during the upgrade: the api that took it knew its life, IDEMPOTENCY_TTL_MS) stays for the longest
 * life a key may have, 31 days (the setting's bound, config.ts); taken as expired, it went by its
 * status's age alone, and a repeat within the key's life ran the workflow again. `w` names the row.
 */
const keyExpired = (w: string): string =>
  `(${w}idempotency_key IS NULL OR COALESCE(${w}idempotency_expires_at, ${w}created_at + interval '31 days') <= now())`;

const AGE_PARAM: Record<WorkflowFinalStatus, string> = { succeeded: '$1', failed: '$2', cancelled: '$3' };

/**
 * The statement deleting the oldest due workflows of `statuses`, whole, up to $4 steps (at least
 * one workflow, however big: it cannot go in parts), passing over the workflows $5. The statuses
 * are literals, so each range is read from workflows_final_finished_idx (status, finished_at),
 * oldest first; ages are $1-$3.
 */
export function deleteWorkflowsSql(statuses: readonly WorkflowFinalStatus[]): string {
  return workflowsSql(
    statuses,
    // Every step of those is held by this statement. Their runs and edges go with them (the
    // delete triggers of migrations 0003 and 0022).
    `gone AS (
       DELETE FROM tasks t WHERE t.workflow_id = ANY (ARRAY(SELECT id FROM whole))
       RETURNING t.id, t.tenant, t.status::text AS status
     ),
     dropped AS (DELETE FROM workflows w WHERE w.id = ANY (ARRAY(SELECT id FROM whole)) RETURNING w.id)
     SELECT (SELECT count(*) FROM dropped)::int AS workflows,
            COALESCE((SELECT json_agg(json_build_object('id', id, 'tenant', tenant, 'status', status)) FROM gone), '[]'::json) AS tasks,`,
  );
}

/**
 * deleteWorkflowsSql without the deletes: the due workflows are locked whole and answered with
 * their steps, for a caller that deletes them (deleteLockedWorkflowsSql) once Redis has forgotten
 * their steps, in the same transaction: those Redis could not be asked about stay, untouched.
 */
export function lockWorkflowsSql(statuses: readonly WorkflowFinalStatus[]): string {
  return workflowsSql(
    statuses,
    `gone AS (SELECT h.id, h.tenant, h.status, h.workflow_id FROM held h WHERE h.workflow_id = ANY (ARRAY(SELECT id FROM whole)))
     SELECT COALESCE((SELECT json_agg(json_build_object('id', w.id, 'tenant', w.tenant)) FROM workflows w WHERE w.id = ANY (ARRAY(SELECT id FROM whole))), '[]'::json) AS workflows,
            COALESCE((SELECT json_agg(json_build_object('id', id, 'tenant', tenant, 'status', status, 'workflow_id', workflow_id)) FROM gone), '[]'::json) AS tasks,`,
  );
}

/** Deletes the workflows $1 that this transaction locked whole (lockWorkflowsSql), with their steps. */
export const DELETE_LOCKED_WORKFLOWS_SQL = `WITH gone AS (
       DELETE FROM tasks t WHERE t.workflow_id = ANY ($1::uuid[]) RETURNING t.id, t.tenant, t.status::text AS status
     ),
     dropped AS (DELETE FROM workflows w WHERE w.id = ANY ($1::uuid[]) RETURNING w.id)
     SELECT (SELECT count(*) FROM dropped)::int AS workflows,
            COALESCE((SELECT json_agg(json_build_object('id', id, 'tenant', tenant, 'status', status)) FROM gone), '[]'::json) AS tasks`;

/** The workflows' statement, `answer` its end: CTEs after `whole`, and the select's columns but `more`. */
function workflowsSql(statuses: readonly WorkflowFinalStatus[], answer: string): string {
  if (statuses.length === 0 || statuses.some((s) => !WORKFLOW_FINAL_STATUSES.includes(s))) throw new Error(`not workflow final statuses: ${statuses.join(', ')}`);
  const ranges = statuses.map(
    (s) => `(SELECT id, steps, finished_at FROM workflows
              WHERE status = '${s}' AND finished_at < now() - ${AGE_PARAM[s]} * interval '1 millisecond' AND ${keyExpired('')}
                AND id <> ALL ($5::uuid[])
              ORDER BY finished_at LIMIT $4)`,
  );
  return `WITH due AS (
       SELECT d.id, d.steps, sum(d.steps) OVER (ORDER BY d.finished_at, d.id) AS upto
         FROM (SELECT * FROM (${ranges.join(' UNION ALL ')}) r ORDER BY finished_at, id LIMIT $4) d
     ),
     budgeted AS (SELECT id FROM due WHERE upto <= $4 OR upto = steps),
     -- Locked, and checked again on the locked row's newest version: a workflow that a retry
     -- reopened since this statement's snapshot is running now, or ended again only just.
     picked AS (
       SELECT w.id FROM workflows w
        WHERE w.id = ANY (ARRAY(SELECT id FROM budgeted))
          AND ${keyExpired('w.')}
          AND w.finished_at < now() - NULLIF(CASE w.status WHEN 'succeeded' THEN $1::bigint WHEN 'failed' THEN $2::bigint WHEN 'cancelled' THEN $3::bigint END, 0) * interval '1 millisecond'
        ORDER BY w.id
        FOR UPDATE SKIP LOCKED
     ),
     -- Every step, and those this statement could lock (final ones; a step held by a retry is not).
     -- The status as text: steps reached by workflow, not through the partial index of final tasks.
     seen AS (SELECT workflow_id, count(*) AS n FROM tasks WHERE workflow_id = ANY (ARRAY(SELECT id FROM picked)) GROUP BY workflow_id),
     held AS (
       SELECT t.id, t.workflow_id, t.tenant, t.status::text AS status FROM tasks t
        WHERE t.workflow_id = ANY (ARRAY(SELECT id FROM picked)) AND t.status::text IN ('succeeded', 'dead', 'cancelled')
        ORDER BY t.id
        FOR UPDATE SKIP LOCKED
     ),
     whole AS (
       SELECT p.id FROM picked p
         LEFT JOIN seen s ON s.workflow_id = p.id
         LEFT JOIN (SELECT workflow_id, count(*) AS n FROM held GROUP BY workflow_id) h ON h.workflow_id = p.id
        WHERE COALESCE(s.n, 0) = COALESCE(h.n, 0)
     ),
     ${answer}
            (SELECT count(*) FROM due) > (SELECT count(*) FROM budgeted) OR (SELECT count(*) FROM due) >= $4 AS more`;
}

export interface WorkflowBatch {
  /** Workflows deleted. */
  workflows: number;
  /** Their steps, deleted with them. */
  tasks: (TaskRef & { status: FinalStatus })[];
  /** Due workflows were left for another batch (the step budget, or the batch's bound). */
  more: boolean;
}

/**
 * Deletes the oldest finished workflows due by `policy` (workflowAges), whole, up to about `limit`
 * steps (the oldest always, however many steps it has), in one statement. A workflow that another
 * transaction holds (its row, or any step) is skipped, never waited for. Given a client, it deletes
 * in that client's transaction.
 */
export async function deleteFinishedWorkflows(pool: Pool | PoolClient, policy: RetentionPolicy, limit: number): Promise<WorkflowBatch> {
  const ages = workflowAges(policy);
  const statuses = WORKFLOW_FINAL_STATUSES.filter((s) => ages[s] > 0);
  if (statuses.length === 0) return { workflows: 0, tasks: [], more: false };
  const { rows } = await pool.query<WorkflowBatch>({
    name: `retention-delete-workflows-${statuses.join('-')}`,
    text: deleteWorkflowsSql(statuses),
    values: [ages.succeeded, ages.failed, ages.cancelled, limit, '{}'],
  });
  return rows[0]!;
}

export interface LockedWorkflows {
  /** Workflows locked whole (their row and every step), to delete. */
  workflows: { id: string; tenant: string }[];
  /** Their steps. */
  tasks: (TaskRef & { status: FinalStatus; workflow_id: string })[];
  /** Due workflows were left for another batch (the step budget, or the batch's bound). */
  more: boolean;
}

/**
 * deleteFinishedWorkflows's next batch, locked whole in `client`'s transaction but not deleted,
 * passing over the workflows `passedOver`: deleteLockedWorkflows deletes those the caller chooses,
 * before that transaction ends.
 */
export async function lockFinishedWorkflows(client: PoolClient, policy: RetentionPolicy, limit: number, passedOver: readonly string[] = []): Promise<LockedWorkflows> {
  const ages = workflowAges(policy);
  const statuses = WORKFLOW_FINAL_STATUSES.filter((s) => ages[s] > 0);
  if (statuses.length === 0) return { workflows: [], tasks: [], more: false };
  const { rows } = await client.query<LockedWorkflows>({
    name: `retention-lock-workflows-${statuses.join('-')}`,
    text: lockWorkflowsSql(statuses),
    values: [ages.succeeded, ages.failed, ages.cancelled, limit, textArray(passedOver)],
  });
  return rows[0]!;
}

/** Deletes the workflows `ids` that lockFinishedWorkflows locked in `client`'s transaction, whole. */
export async function deleteLockedWorkflows(client: PoolClient, ids: string[]): Promise<Omit<WorkflowBatch, 'more'>> {
  if (ids.length === 0) return { workflows: 0, tasks: [] };
  const { rows } = await client.query<Omit<WorkflowBatch, 'more'>>(DELETE_LOCKED_WORKFLOWS_SQL, [textArray(ids)]);
  return rows[0]!;
}
