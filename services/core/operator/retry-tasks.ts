/**
 * Putting dead or cancelled tasks back to work (POST /tasks/:id/retry and the bulk form, the
 * dead-letter redrive). Postgres decides, in one statement: each task changes at most once however
 * many calls race (a second call waits for the row, then finds it queued and leaves it). The task
 * gets a fresh budget of max_retries + 1 attempts (retry_base), its runs are kept, and it is then
 * pushed to Redis; should that push fail, the reconciler queues it from Postgres.
 */
import type { Pool, PoolClient } from 'pg';
import { textArray } from '../db/pg-arrays';
import type { Logger } from '../observability/logger';
import { inTransaction, retryingDeadlocks } from '../db/transaction';
import { LOCKED_PUSH_TIMEOUT_MS, pushUnderShareLocks } from '../db/share-locked-push';
import { withTimeout } from '../process/with-timeout';
import type { EnqueueItem, TaskQueue } from '../queue/queue';
import { queueItemOf, UNFINISHED_COLUMNS, UnfinishedTask } from '../tasks/reconcile-store';
import { stepsQueuedHere } from '../workflows/queued-here';

export type RetryOutcome =
  | { kind: 'retried'; from: 'dead' | 'cancelled' }
  | { kind: 'not_retryable'; status: string }
  /** A dead or cancelled step whose dependencies have not all succeeded: those are retried first (some named). */
  | { kind: 'dependencies_unfinished'; workflowId: string; stepKey: string; dependencies: { key: string; status: string }[] }
  /** A step of a workflow of which fewer than all steps are stored (see INCOMPLETE_WORKFLOWS). */
  | { kind: 'incomplete_workflow'; workflowId: string; stored: number; steps: number }
  /** A step of a workflow whose cancel is recorded and still under way (CANCELLING): the cancel wins. */
  | { kind: 'workflow_cancelling'; workflowId: string }
  | { kind: 'missing' };

const RETRYABLE = "('dead', 'cancelled')";

/**
 * The workflows of the tasks $1 (of tenant $2) not stored whole. Retention deletes a workflow whole
 * since migration 0022; before, it deleted steps one status at a time, and a workflow could be left
 * without some (or its row deleted by hand). Resuming one would run steps without the results of
 * dependencies whose rows, and edges, are gone: the dependency check cannot see them. One count of
 * a workflow's steps per workflow retried, not per step.
 */
const INCOMPLETE_WORKFLOWS = `SELECT x.id FROM (SELECT DISTINCT workflow_id AS id FROM tasks WHERE id = ANY($1::uuid[]) AND tenant = $2 AND workflow_id IS NOT NULL) x
   WHERE NOT EXISTS (SELECT 1 FROM workflows w WHERE w.id = x.id AND w.steps = (SELECT count(*) FROM tasks s WHERE s.workflow_id = x.id))`;

/**
 * A bulk call's statuses ($3, null: any retryable one), checked on the row `t` it changes: a task
 * its page read as cancelled may be dead by now (retried by another call, and failed again).
 */
const IN_FILTER = (t: string) => `($3::text[] IS NULL OR ${t}.status::text = ANY($3::text[]))`;

/**
 * A workflow (`w`) whose cancel is recorded but has not ended: POST /workflows/:id/cancel is still
 * cancelling its steps past waiting, in batches after the statement that recorded it. A retry then
 * would reopen steps that cancel no longer looks at (and clear its record), so it is refused until
 * the workflow has ended; a retry of a step of a cancelled workflow resumes it, as before.
 */
const CANCELLING = (w: string) => `${w}.cancel_requested_at IS NOT NULL AND ${w}.finished_at IS NULL`;

/**
 * Which of the tasks $1 (of tenant $2) a retry would change now: dead or cancelled (and in $3's
 * statuses), and a workflow step only when its dependencies have all succeeded and its workflow is
 * stored whole and not being cancelled. `tasks` is the row checked. A read, not a lock: the retry
 * checks the workflow's cancel again under the workflow's lock.
 */
const RETRYABLE_NOW = `tasks.id = ANY($1::uuid[]) AND tasks.tenant = $2 AND tasks.status::text IN ${RETRYABLE} AND ${IN_FILTER('tasks')}
   AND (tasks.workflow_id IS NULL OR (NOT EXISTS (SELECT 1 FROM workflow_edges e JOIN tasks p ON p.id = e.parent WHERE e.child = tasks.id AND p.status <> 'succeeded')
                                      AND tasks.workflow_id NOT IN (${INCOMPLETE_WORKFLOWS})
                                      AND NOT EXISTS (SELECT 1 FROM workflows w WHERE w.id = tasks.workflow_id AND ${CANCELLING('w')})))`;

/**
 * How many tasks retrying `ids` would make unfinished, for admission under the tenant's limits:
 * those retryable now, and the cancelled steps downstream that their retry reopens (waiting, and
 * unfinished as a workflow's waiting steps are): workflow_step_reopen_candidates (migration
 * 0023), which the reopening itself reads. An upper bound: the retry cancels again a reopened step that still
 * depends on another dead or cancelled step.
 */
export async function retryCost(pool: Pool, tenant: string, ids: string[], statuses: readonly string[] | null = null): Promise<number> {
  if (ids.length === 0) return 0;
  const { rows } = await pool.query<{ n: number }>(
    `WITH retried AS (SELECT tasks.id, tasks.workflow_id FROM tasks WHERE ${RETRYABLE_NOW})
     SELECT count(*)::int AS n FROM (
       SELECT id FROM retried
       UNION
       SELECT c FROM retried r, workflow_step_reopen_candidates(r.workflow_id, r.id) c WHERE r.workflow_id IS NOT NULL
     ) x`,
    [ids, tenant, statuses],
  );
  return rows[0]!.n;
}

/** Retries tasks of `tenant`; per id (in order) what happened. */
export async function retryTasks(deps: { pool: Pool; queue: TaskQueue; log: Logger }, tenant: string, ids: string[]): Promise<RetryOutcome[]> {
  return (await retryTasksCounted(deps, tenant, ids)).outcomes;
}

/**
 * Retries tasks of `tenant`: per id (in order) what happened, and how many steps downstream their
 * retry reopened (waiting or queued again; the retried tasks themselves not counted), which take
 * places under the tenant's unfinished cap as the retried tasks do. `statuses` (a bulk call's
 * filter) limits it to tasks still in those; one that left them is not_retryable.
 */
export async function retryTasksCounted(deps: { pool: Pool; queue: TaskQueue; log: Logger }, tenant: string, ids: string[], statuses: readonly string[] | null = null, explain = true): Promise<{ outcomes: RetryOutcome[]; reopened: number }> {
  if (ids.length === 0) return { outcomes: [], reopened: 0 };
  const cols = UNFINISHED_COLUMNS.split(', ').map((c) => (c.includes(' AS ') ? c.replace(/^(\w+)/, 't.$1') : `t.${c}`)).join(', ');
  type Retried = UnfinishedTask & { payload_json: string; was: 'dead' | 'cancelled'; workflow_id: string | null };
  // A retried step's trigger locks its workflow's row, then (for the next retried step of that
  // workflow) the dependencies of the steps that wait again: a worker writing one of those
  // dependencies' outcomes, which locks the workflow's row after it, can deadlock with it.
  const { rows, released, reopened, refused } = await retryingDeadlocks(() => inTransaction(deps.pool, async (client) => {
    // The status as text: reached by id, not through the partial index of final tasks. A workflow
    // step runs only after its dependencies: one that has not succeeded is retried first; and only
    // in a workflow stored whole. A call that waited for another's retry finds the task queued.
    const picked = await client.query<{ id: string; was: 'dead' | 'cancelled'; workflow_id: string | null }>(
      `SELECT id, status::text AS was, workflow_id FROM tasks WHERE ${RETRYABLE_NOW} ORDER BY id FOR UPDATE`,
      [ids, tenant, statuses],
    );
    // Under the workflows' locks (after the steps' rows, as the trigger takes them; in id order),
    // a workflow's cancel has either committed, and refuses the retry, or comes after it and
    // cancels what it reopens: never between the cancel's statements.
    const refused = await workflowsCancelling(client, picked.rows);
    const kept = picked.rows.filter((r) => !refused.has(r.id));
    const was = new Map(kept.map((r) => [r.id, r.was]));
    const { rows } = kept.length === 0 ? { rows: [] as Retried[] } : await client.query<Retried>(
      // A delayed task cancelled before its run_at and retried before it waits for it again: it
      // starts no earlier (run_at is the owner's word), as it would have without the cancel.
      `UPDATE tasks t SET status = CASE WHEN t.run_at > now() THEN 'scheduled'::task_status ELSE 'queued'::task_status END, retry_base = t.attempts, cancel_requested_at = NULL, finished_at = NULL,
              run_after = NULL, lease_token = NULL, cancelled_by = NULL, cancelled_with_workflow = NULL, updated_at = now()
        WHERE t.id = ANY($1::uuid[]) AND t.status IN ${RETRYABLE}
       RETURNING ${cols}, t.payload::text AS payload_json, t.workflow_id`,
      [textArray(kept.map((r) => r.id))],
    );
    for (const r of rows) r.was = was.get(r.id)!;
    // Asked for now: a stop after an earlier failure leaves a retried step be (stop-on-failure.ts).
    // Taken once the trigger holds its workflow's lock (as for the steps it reopens), so after any
    // failure that committed before this retry: taken in the UPDATE, before that lock, it could
    // precede such a failure's end, and that failure's stop took back the step asked for.
    const steps = rows.flatMap((r) => (r.workflow_id ? [r.id] : []));
    if (steps.length > 0) await client.query(`UPDATE tasks SET reopened_at = clock_timestamp() WHERE id = ANY($1::uuid[])`, [textArray(steps)]);
    // A retried step's dependents that its failure had cancelled wait again (the trigger); those
    // whose dependencies have all succeeded are queued and go to Redis with it.
    const workflows = [...new Set(rows.flatMap((r) => (r.workflow_id ? [r.workflow_id] : [])))];
    const retriedIds = new Set(rows.map((r) => r.id));
    const released: EnqueueItem[] = workflows.length > 0 ? (await stepsQueuedHere(client, workflows)).filter((i) => !retriedIds.has(i.id)) : [];
    // Their tombstones go while these rows are held: a cancel that locks one after this commits
    // tombstones it again, and the push below then leaves it out (it would run a cancelled task).
    // Bounded, as the rows (and workflows' locks) held here stop workers' outcome writes: past it
    // the retry rolls back (503). A lift landing later leaves tombstones off tasks still final in
    // Postgres, which every push checks under share locks before it indexes a task.
    await withTimeout(deps.queue.liftTombstones([...rows, ...released]), LOCKED_PUSH_TIMEOUT_MS, 'lifting tombstones in Redis: no answer');
    return { rows, released, refused, reopened: workflows.length > 0 ? await stepsReopenedHere(client, workflows, [...retriedIds]) : 0 };
  }));
  if (rows.length > 0) {
    try {
      await pushRetried(deps.pool, deps.queue, [...rows.map((r) => queueItemOf(r, r.payload_json)), ...released]);
    } catch (err) {
      deps.log.warn({ err, count: rows.length, taskIds: rows.slice(0, 10).map((r) => r.id) }, 'retried tasks not pushed to Redis; the reconciler will queue them');
    }
  }
  const retried = new Map(rows.map((r) => [r.id, r.was]));
  const others = ids.filter((id) => !retried.has(id) && !refused.has(id));
  type Other = {
    id: string; status: string; workflow_id: string | null; step_key: string | null; incomplete: boolean; cancelling: boolean | null; stored: number; steps: number | null;
    blocking: { key: string; status: string }[] | null;
  };
  const found = new Map<string, Other>();
  // Why the others were not retried (a single task's 404 or 409). A bulk call counts only what it
  // retried, and reads nothing after its commit: a read failing there would hide what it changed.
  if (others.length > 0 && explain) {
    const res = await deps.pool.query<Other>(
      `SELECT t.id, t.status::text AS status, t.workflow_id, t.workflow_id IN (${INCOMPLETE_WORKFLOWS}) AS incomplete,
              CASE WHEN t.workflow_id IS NOT NULL THEN (SELECT count(*)::int FROM tasks s WHERE s.workflow_id = t.workflow_id) END AS stored,
              (SELECT w.steps FROM workflows w WHERE w.id = t.workflow_id) AS steps, t.step_key,
              (SELECT ${CANCELLING('w')} FROM workflows w WHERE w.id = t.workflow_id) AS cancelling,
              -- A few of the dependencies that have not succeeded, to name in the answer.
              (SELECT json_agg(json_build_object('key', p.step_key, 'status', p.status) ORDER BY p.step_key)
                 FROM (SELECT p.step_key, p.status::text AS status FROM workflow_edges e JOIN tasks p ON p.id = e.parent
                        WHERE e.child = t.id AND p.status <> 'succeeded' ORDER BY p.step_key LIMIT 5) p) AS blocking
         FROM tasks t WHERE t.id = ANY($1::uuid[]) AND t.tenant = $2`,
      [others, tenant],
    );
    for (const r of res.rows) found.set(r.id, r);
  }
  const outcomes = ids.map((id): RetryOutcome => {
    const was = retried.get(id);
    if (was) return { kind: 'retried', from: was };
    const cancelling = refused.get(id);
    if (cancelling) return { kind: 'workflow_cancelling', workflowId: cancelling };
    const t = found.get(id);
    if (t === undefined) return { kind: 'missing' };
    const final = ['dead', 'cancelled'].includes(t.status);
    if (t.incomplete && final) return { kind: 'incomplete_workflow', workflowId: t.workflow_id!, stored: t.stored, steps: t.steps ?? 0 };
    if (t.cancelling && final) return { kind: 'workflow_cancelling', workflowId: t.workflow_id! };
    if (t.blocking && final) return { kind: 'dependencies_unfinished', workflowId: t.workflow_id!, stepKey: t.step_key!, dependencies: t.blocking };
    return { kind: 'not_retryable', status: t.status };
  });
  return { outcomes, reopened };
}

/**
 * Takes the workflows' locks of the `picked` steps (locked already) and answers which of them are
 * steps of a workflow being cancelled (task id → workflow id), which the retry leaves alone.
 */
async function workflowsCancelling(client: PoolClient, picked: { id: string; workflow_id: string | null }[]): Promise<Map<string, string>> {
  const workflows = [...new Set(picked.flatMap((r) => (r.workflow_id ? [r.workflow_id] : [])))];
  if (workflows.length === 0) return new Map();
  // Sorted inside the subquery (OFFSET 0 keeps it apart), so the locks are taken in that order.
  await client.query(`SELECT workflow_lock(id) FROM (SELECT id FROM unnest($1::uuid[]) AS x(id) ORDER BY id OFFSET 0) s`, [textArray(workflows)]);
  const { rows } = await client.query<{ id: string }>(`SELECT id FROM workflows w WHERE id = ANY($1::uuid[]) AND ${CANCELLING('w')}`, [textArray(workflows)]);
  const cancelling = new Set(rows.map((r) => r.id));
  return new Map(picked.flatMap((r) => (r.workflow_id && cancelling.has(r.workflow_id) ? [[r.id, r.workflow_id] as const] : [])));
}

/**
 * Once the retry committed, another push may index a task (an idempotent replay's), and a worker
 * run and end it before this push lands: the push holds share locks on the tasks still waiting
 * (pushUnderShareLocks).
 */
async function pushRetried(pool: Pool, queue: TaskQueue, items: EnqueueItem[]): Promise<void> {
  await pushUnderShareLocks(pool, 'pushing retried tasks', async (tx) => {
    const still = await tx.lockStill(
      items.map((it) => it.id),
      `status IN ('queued', 'scheduled')`,
    );
    const push = items.filter((it) => still.has(it.id));
    if (push.length > 0) await tx.bounded(queue.requeue(push));
  });
}

/**
 * Steps of `workflows` this transaction made unfinished besides `retried`: those the trigger
 * reopened and left waiting or queued (rows it wrote carry its id as xmin, as in queued-here.ts).
 */
async function stepsReopenedHere(client: PoolClient, workflows: string[], retried: string[]): Promise<number> {
  const { rows } = await client.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM tasks
      WHERE workflow_id = ANY($1::uuid[]) AND status::text IN ('waiting', 'queued') AND id <> ALL($2::uuid[])
        AND xmin::text::bigint = pg_current_xact_id()::text::bigint % 4294967296`,
    [textArray(workflows), retried],
  );
  return rows[0]!.n;
}
