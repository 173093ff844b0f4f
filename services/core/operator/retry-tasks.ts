/**
 * Putting dead or cancelled tasks back to work (POST /tasks/:id/retry and the bulk form, the
 * dead-letter redrive). Postgres decides, in one statement: each task changes at most once however
 * many calls race (a second call waits for the row, then finds it queued and leaves it). The task
 * gets a fresh budget of max_retries + 1 attempts (retry_base), its runs are kept, and it is then
 * pushed to Redis; should that push fail, the reconciler queues it from Postgres.
 */
import type { Pool } from 'pg';
import type { Logger } from '../observability/logger';
import { inTransaction, retryingDeadlocks } from '../db/transaction';
import type { EnqueueItem, TaskQueue } from '../queue/queue';
import { queueItemOf, UNFINISHED_COLUMNS, UnfinishedTask } from '../tasks/reconcile-store';
import { stepsQueuedHere } from '../workflows/queued-here';

export type RetryOutcome = { kind: 'retried'; from: 'dead' | 'cancelled' } | { kind: 'not_retryable'; status: string } | { kind: 'missing' };

const RETRYABLE = "('dead', 'cancelled')";

/** Retries tasks of `tenant`; per id (in order) what happened. */
export async function retryTasks(deps: { pool: Pool; queue: TaskQueue; log: Logger }, tenant: string, ids: string[]): Promise<RetryOutcome[]> {
  if (ids.length === 0) return [];
  const cols = UNFINISHED_COLUMNS.split(', ').map((c) => (c.includes(' AS ') ? c.replace(/^(\w+)/, 't.$1') : `t.${c}`)).join(', ');
  type Retried = UnfinishedTask & { payload_json: string; was: 'dead' | 'cancelled'; workflow_id: string | null };
  // A retried step's trigger locks its workflow's row, then (for the next retried step of that
  // workflow) the dependencies of the steps that wait again: a worker writing one of those
  // dependencies' outcomes, which locks the workflow's row after it, can deadlock with it.
  const { rows, released } = await retryingDeadlocks(() => inTransaction(deps.pool, async (client) => {
    const { rows } = await client.query<Retried>(
      `WITH picked AS (
         SELECT id, status::text AS was FROM tasks
          -- The status as text: reached by id, not through the partial index of final tasks.
          WHERE id = ANY($1::uuid[]) AND tenant = $2 AND status::text IN ${RETRYABLE}
            -- A workflow step runs only after its dependencies: one that has not succeeded is retried first.
            AND (workflow_id IS NULL OR NOT EXISTS (SELECT 1 FROM workflow_edges e JOIN tasks p ON p.id = e.parent WHERE e.child = tasks.id AND p.status <> 'succeeded'))
          ORDER BY id FOR UPDATE
       )
       UPDATE tasks t SET status = 'queued', retry_base = t.attempts, cancel_requested_at = NULL, finished_at = NULL,
              run_after = NULL, lease_token = NULL, cancelled_by = NULL, updated_at = now(),
              -- Asked for now: a stop after an earlier failure leaves it be (stop-on-failure.ts).
              reopened_at = CASE WHEN t.workflow_id IS NOT NULL THEN clock_timestamp() END
         FROM picked p
        -- Checked again on the locked row: a call that waited for another's retry finds it queued.
        WHERE t.id = p.id AND t.status IN ${RETRYABLE}
       RETURNING ${cols}, t.payload::text AS payload_json, p.was, t.workflow_id`,
      [ids, tenant],
    );
    // A retried step's dependents that its failure had cancelled wait again (the trigger); those
    // whose dependencies have all succeeded are queued and go to Redis with it.
    const workflows = [...new Set(rows.flatMap((r) => (r.workflow_id ? [r.workflow_id] : [])))];
    const retriedIds = new Set(rows.map((r) => r.id));
    const released: EnqueueItem[] = workflows.length > 0 ? (await stepsQueuedHere(client, workflows)).filter((i) => !retriedIds.has(i.id)) : [];
    // Their tombstones go while these rows are held: a cancel that locks one after this commits
    // tombstones it again, and the push below then leaves it out (it would run a cancelled task).
    await deps.queue.liftTombstones([...rows, ...released]);
    return { rows, released };
  }));
  if (rows.length > 0) {
    try {
      await deps.queue.requeue([...rows.map((r) => queueItemOf(r, r.payload_json)), ...released]);
    } catch (err) {
      deps.log.warn({ err, count: rows.length, taskIds: rows.slice(0, 10).map((r) => r.id) }, 'retried tasks not pushed to Redis; the reconciler will queue them');
    }
  }
  const retried = new Map(rows.map((r) => [r.id, r.was]));
  const others = ids.filter((id) => !retried.has(id));
  const statuses = new Map<string, string>();
  if (others.length > 0) {
    const res = await deps.pool.query<{ id: string; status: string }>(`SELECT id, status::text AS status FROM tasks WHERE id = ANY($1::uuid[]) AND tenant = $2`, [others, tenant]);
    for (const r of res.rows) statuses.set(r.id, r.status);
  }
  return ids.map((id): RetryOutcome => {
    const was = retried.get(id);
    if (was) return { kind: 'retried', from: was };
    const status = statuses.get(id);
    return status === undefined ? { kind: 'missing' } : { kind: 'not_retryable', status };
  });
}
