/** Workflow steps a transaction queued, which Redis needs once it commits. */
import type { PoolClient } from 'pg';
import { textArray } from '../db/pg-arrays';
import type { EnqueueItem } from '../queue/queue';
import { queueItemOf, UNFINISHED_COLUMNS, UnfinishedTask } from '../tasks/reconcile-store';

/**
 * Steps this transaction queued among the steps of `workflows` (an operator's retry did, through the
 * trigger): Redis needs them once the transaction commits. Rows this transaction wrote carry its id
 * as xmin, so concurrent writers never push each other's steps (two would push a step twice; a late
 * push could run it again).
 */
export async function stepsQueuedHere(client: PoolClient, workflows: string[]): Promise<EnqueueItem[]> {
  if (workflows.length === 0) return [];
  const { rows } = await client.query<QueuedStep>(
    `SELECT ${STEP_COLUMNS} FROM tasks
      WHERE workflow_id = ANY($1::uuid[]) AND status::text = 'queued' AND xmin::text::bigint = pg_current_xact_id()::text::bigint % 4294967296`,
    [textArray(workflows), INLINE_PARENTS_BYTES],
  );
  return rows.map(queuedStepItem);
}

export type QueuedStep = UnfinishedTask & { payload_json: string; parents_json: string | null };

export function queuedStepItem(r: QueuedStep): EnqueueItem {
  const item = queueItemOf(r, r.payload_json);
  if (r.parents_json !== null) item.parentsJson = r.parents_json;
  return item;
}

/**
 * Dependencies' results small enough to travel in the step's Redis message, so its worker need not
 * read them from Postgres before it starts the step (a round trip on every step of a chain or a
 * fan-out). Larger ones are read by the worker (services/worker/parent-results.ts).
 */
export const INLINE_PARENTS_BYTES = 4096;
// Each parent is reached by id, whatever the statistics say: as a join, a new database's plan (no
// statistics yet) hashed a sequential scan of every task once per released step (a fan-out's
// release took 250 ms instead of 25). A LATERAL subquery with LIMIT is not flattened into a join.
const INLINE_PARENTS = `(SELECT CASE WHEN octet_length(o::text) <= $2 THEN o::text END
    FROM (SELECT COALESCE(jsonb_object_agg(p.step_key, p.result), '{}'::jsonb) AS o
            FROM workflow_edges e CROSS JOIN LATERAL (SELECT step_key, result FROM tasks WHERE id = e.parent LIMIT 1) p
           WHERE e.child = tasks.id) a)`;
/** A queued step as Redis needs it, from a row (or function result) named `tasks`. */
const STEP_COLUMNS = `${UNFINISHED_COLUMNS}, payload::text AS payload_json, ${INLINE_PARENTS} AS parents_json`;

/**
 * The steps a worker's outcome statement released (its CTE `released`, rows of
 * `workflow_steps_released`), as Redis needs them: a CTE to add after `released`, and the select.
 * Their inline parent results come from `workflow_released_parents` (migration 0018), whose query
 * has a snapshot of its own: the statement's, taken before it waited for a fan-in's row lock, misses
 * parents whose successes other batches committed meanwhile. `bytes`: the parameter holding
 * INLINE_PARENTS_BYTES.
 */
export function releasedSteps(bytes: string): { cte: string; select: string } {
  return {
    cte: `released_parents AS (SELECT * FROM workflow_released_parents(ARRAY(SELECT id FROM released), ${bytes}))`,
    select: `SELECT ${UNFINISHED_COLUMNS}, payload::text AS payload_json, rp.parents_json
       FROM released AS tasks LEFT JOIN released_parents rp ON rp.child = tasks.id`,
  };
}
