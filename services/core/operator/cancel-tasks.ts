/**
 * Cancelling tasks (POST /tasks/:id/cancel and the bulk form). One Postgres transaction per call
 * holds the tasks' rows while Redis is told (lua/cancel.lua), so no outcome, reap or retry of
 * them lands in between: a task waiting in Redis is removed there and ends `cancelled` at once;
 * one a worker holds is asked to stop (its attempt ends `cancelled`, unless it succeeds first).
 * Redis tombstones every id, so a reconciler that read a task as waiting just before cannot queue
 * it again. Should the transaction fail after Redis removed a task, Postgres still shows it
 * waiting and the reconciler indexes it again (after the tombstone lapses): nothing is lost.
 */
import type { Pool } from 'pg';
import { LOCKED_PUSH_TIMEOUT_MS } from '../db/share-locked-push';
import { inTransaction, retryingDeadlocks } from '../db/transaction';
import { withTimeout } from '../process/with-timeout';
import type { TaskQueue } from '../queue/queue';
import { stopAfterFailedSteps } from '../workflows/stop-on-failure';

/** Per task: cancelled now, cancelling (its attempt was asked to stop), already final (its status), or not found. */
export type CancelOutcome =
  | { kind: 'cancelled' }
  | { kind: 'cancelling' }
  | { kind: 'final'; status: 'succeeded' | 'dead' | 'cancelled' }
  /** Unfinished, but in a status the caller's `statuses` leave out (it changed since the caller read it): left alone. */
  | { kind: 'unmatched'; status: string }
  | { kind: 'missing' };

export const CANCEL_REASON = 'cancelled by an operator';

/** Statuses a cancel applies to: waiting (a workflow step's waiting, scheduled, queued, retrying) ones end now, running ones are asked to stop. */
const WAITING_OR_RUNNING = new Set(['waiting', 'scheduled', 'queued', 'retrying', 'running']);

/** Cancels tasks of `tenant`; per id (in order) what happened. Ids should be few (a bulk call sends batches). */
/**
 * `withWorkflow`: the steps' workflow is being cancelled (POST /workflows/:id/cancel). They are
 * marked (cancelled_with_workflow, migration 0025): the user's cancel is no failure that stops a
 * workflow a retry resumes later, and that retry reopens the marked steps downstream of it.
 */
/**
 * `statuses`: cancel only tasks in these (a bulk call's filter), checked on the locked rows: a task
 * its page read as queued may have started running, or a scheduled one been queued, since.
 */
export async function cancelTasks(deps: { pool: Pool; queue: TaskQueue }, tenant: string, ids: string[], opts: { withWorkflow?: boolean; statuses?: readonly string[] } = {}): Promise<CancelOutcome[]> {
  const mark = opts.withWorkflow === true;
  const wanted = (status: string) => WAITING_OR_RUNNING.has(status) && (opts.statuses === undefined || opts.statuses.includes(status));
  if (ids.length === 0) return [];
  // A workflow step's cancel cascades under its workflow's lock (migration 0019), which a worker's
  // or an operator's write holding other steps' rows may be waiting for: after a deadlock the call
  // runs again (Redis's cancel too, which repeats: a task it removed is then one it does not hold).
  const outcomes = await retryingDeadlocks(() => inTransaction(deps.pool, async (client) => {
    // Rows locked in id order, so two overlapping calls cannot deadlock.
    const { rows } = await client.query<{ id: string; status: string; cancel_requested_at: Date | null }>(
      `SELECT id, status::text AS status, cancel_requested_at FROM tasks
        WHERE id = ANY($1::uuid[]) AND tenant = $2 ORDER BY id FOR UPDATE`,
      [ids, tenant],
    );
    const found = new Map(rows.map((r) => [r.id, r]));
    const waiting = rows.filter((r) => wanted(r.status));
    // Bounded: a stalled master must not hold these rows (and a workflow's lock) from workers'
    // outcome writes. Past it the transaction rolls back; a cancel landing later is one that failed
    // after Redis (see above), and the caller is answered 503 to send it again.
    const states = await withTimeout(deps.queue.cancel(waiting.map((r) => ({ id: r.id, tenant }))), LOCKED_PUSH_TIMEOUT_MS, 'cancelling in Redis: no answer');
    const now: string[] = [];
    const asked: string[] = [];
    waiting.forEach((r, i) => (states[i] === 'leased' ? asked : now).push(r.id));
    if (now.length > 0) {
      await client.query(
        `UPDATE tasks SET status = 'cancelled', cancel_requested_at = COALESCE(cancel_requested_at, now()), finished_at = now(),
                lease_token = NULL, run_after = NULL, last_error = $2, updated_at = now(),
                cancelled_with_workflow = CASE WHEN $3 THEN true ELSE cancelled_with_workflow END
          WHERE id = ANY($1::uuid[])`,
        [now, CANCEL_REASON, mark],
      );
    }
    if (asked.length > 0) {
      await client.query(
        `UPDATE tasks SET cancel_requested_at = COALESCE(cancel_requested_at, now()), updated_at = now(),
                cancelled_with_workflow = CASE WHEN $2 THEN true ELSE cancelled_with_workflow END
          WHERE id = ANY($1::uuid[])`,
        [asked, mark],
      );
    }
    const cancelledNow = new Set(now);
    return ids.map((id): CancelOutcome => {
      const r = found.get(id);
      if (!r) return { kind: 'missing' };
      if (cancelledNow.has(id)) return { kind: 'cancelled' };
      if (wanted(r.status)) return { kind: 'cancelling' };
      if (WAITING_OR_RUNNING.has(r.status)) return { kind: 'unmatched', status: r.status };
      return { kind: 'final', status: r.status as 'succeeded' | 'dead' | 'cancelled' };
    });
  }));
  // A workflow step cancelled now stops its workflow where the policy says so (the workers' sweep
  // repairs a miss); ids that are no steps cost one indexed lookup.
  const now = ids.filter((_, i) => outcomes[i]!.kind === 'cancelled');
  if (now.length > 0) await stopAfterFailedSteps(deps, now).catch(() => undefined);
  return outcomes;
}
