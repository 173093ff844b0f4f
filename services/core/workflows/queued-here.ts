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
function inlineParents(parent: string, bytes: string): string {
  return `(SELECT CASE WHEN octet_length(o::text) <= ${bytes} THEN o::text END
    FROM (SELECT COALESCE(jsonb_object_agg(p.step_key, p.result), '{}'::jsonb) AS o
            FROM workflow_edges e CROSS JOIN LATERAL ${parent} p
           WHERE e.child = tasks.id) a)`;
}

/** A queued step as Redis needs it, from a row (or function result) named `tasks`. */
const STEP_COLUMNS = `${UNFINISHED_COLUMNS}, payload::text AS payload_json, ${inlineParents('(SELECT step_key, result FROM tasks WHERE id = e.parent LIMIT 1)', '$2')} AS parents_json`;

/**
 * STEP_COLUMNS for the steps released by the outcome statement that wrote their parents' successes
 * (its CTEs `input` and `applied`): that statement reads the parents' rows as it found them, so a
 * result it is writing comes from its input.
 */
export function releasedStepColumns(bytes: string): string {
  const parent = `(SELECT t.step_key, CASE WHEN t.id IN (SELECT id FROM applied) THEN (SELECT i.result FROM input i WHERE i.id = t.id) ELSE t.result END AS result
      FROM tasks t WHERE t.id = e.parent LIMIT 1)`;
  return `${UNFINISHED_COLUMNS}, payload::text AS payload_json, ${inlineParents(parent, bytes)} AS parents_json`;
}
