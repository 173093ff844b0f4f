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
  const steps = withParents('queued_here', '$2');
  const { rows } = await client.query<QueuedStep>(
    `WITH queued_here AS (
       SELECT * FROM tasks
        WHERE workflow_id = ANY($1::uuid[]) AND status::text = 'queued' AND xmin::text::bigint = pg_current_xact_id()::text::bigint % 4294967296
     ), ${steps.cte}
     ${steps.select}`,
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

/**
 * Steps (the rows of the CTE named `source`) as Redis needs them: a CTE to add after `source`, and
 * the select. Their inline parent results come from `workflow_released_parents` (migrations 0018
 * and 0021), whose query has a snapshot of its own: a statement's, taken before it waited for a
 * fan-in's row lock, misses parents whose successes other batches committed meanwhile. It stops
 * reading a step's parents once they pass the limit, so a wide fan-in costs about the limit here,
 * not the sum of its parents' results. `bytes`: the parameter holding INLINE_PARENTS_BYTES.
 */
function withParents(source: string, bytes: string): { cte: string; select: string } {
  return {
    cte: `${source}_parents AS (SELECT * FROM workflow_released_parents(ARRAY(SELECT id FROM ${source}), ${bytes}))`,
    select: `SELECT ${UNFINISHED_COLUMNS}, payload::text AS payload_json, rp.parents_json
       FROM ${source} AS tasks LEFT JOIN ${source}_parents rp ON rp.child = tasks.id`,
  };
}

/** The steps a worker's outcome statement released (its CTE `released`, rows of `workflow_steps_released`). */
export const releasedSteps = (bytes: string) => withParents('released', bytes);
