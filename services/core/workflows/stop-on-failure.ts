/**
 * Under on_failure `cancel_dependents`, a workflow stops when a step fails: no new step starts. The
 * trigger (migration 0016) cancels the steps that wait in Postgres; steps already queued in Redis
 * (or due there for a retry) are out of its reach, so whoever wrote the failure (a worker, the
 * reaper, an operator's cancel), and a periodic sweep behind them, cancel those here. Steps a
 * worker holds run on, and their outcomes count; one of them that fails with retries left, loses
 * its lease or is handed back at a shutdown is stopped by whoever writes that (a worker does so
 * while it still holds the lease, before Redis can hand the step out again).
 */
import type { Pool } from 'pg';
import { LOCKED_PUSH_TIMEOUT_MS } from '../db/share-locked-push';
import { inTransaction, retryingDeadlocks } from '../db/transaction';
import { withTimeout } from '../process/with-timeout';
import type { Logger } from '../observability/logger';
import type { TaskQueue } from '../queue/queue';

type Deps = { pool: Pool; queue: TaskQueue };
type Target = { id: string; tenant: string };

/** Steps a stop cancels: not running in Postgres's view (Redis says whether a worker holds one). */
const STOPPABLE = "('queued', 'retrying', 'scheduled')";
/**
 * A step (of `tasks` named `t`) whose failure stops its workflow: it ended dead or cancelled itself,
 * not in a cascade, and not by its workflow's cancel (migration 0025).
 */
const STANDING_FAILURE = (t: string) =>
  `${t}.status IN ('dead', 'cancelled') AND ${t}.cancelled_by IS NULL AND ${t}.cancelled_with_workflow IS NOT TRUE`;
/** Steps cancelled per transaction. */
const BATCH = 500;
/**
 * A stoppable step (of `tasks`, its workflow `$1`) that no operator asked for after the workflow's
 * latest failure: due for a retry, or never reopened by a retry since that failure (reopened_at,
 * migration 0023, is taken under the workflow's lock, so after any failure committed before it).
 */
const NOT_ASKED_FOR = `(status::text = 'retrying' OR reopened_at IS NULL OR reopened_at <= (
  SELECT max(finished_at) FROM tasks f WHERE f.workflow_id = $1 AND ${STANDING_FAILURE('f')}))`;

/**
 * Stops the workflows these steps (which just failed: ended dead or cancelled, or wait for a retry)
 * belong to, where the policy says so and a step has ended failed; steps cancelled.
 */
export async function stopAfterFailedSteps(deps: Deps, stepIds: string[]): Promise<number> {
  return (await stopSteps(deps, stepIds, new Map())).cancelled;
}

/**
 * As stopAfterFailedSteps, for a writer that still holds the leases of `held` (id → token: its
 * steps due to be retried or handed back, not yet given to Redis, so no other worker can start them
 * meanwhile): those are stopped too, although Redis shows them leased. Returns the ones stopped,
 * which the writer then forgets in Redis instead; or null when the stop failed: their leases are
 * then cut to run out in `reclaimAfterMs` (not the visibility timeout), and the writer neither
 * retries nor hands them back, so the reaper soon holds them and runs the stop again. (A heartbeat
 * already on its way can restore the full lease: the cost before the cut, nothing worse.)
 */
export async function stopHoldingLeases(
  deps: Deps & { log: Logger },
  stepIds: string[],
  held: ReadonlyMap<string, string>,
  reclaimAfterMs: number,
): Promise<Set<string> | null> {
  try {
    return (await stopSteps(deps, stepIds, held)).held;
  } catch (err) {
    deps.log.warn({ err, taskIds: stepIds.slice(0, 10) }, 'stopping workflows after failed steps failed; the sweep will stop them, and the reaper the steps held');
    const leases = [...held].map(([id, token]) => ({ id, token }));
    if (leases.length > 0) {
      await deps.queue.extend(leases, reclaimAfterMs).catch((e: unknown) =>
        deps.log.warn({ err: e, taskIds: leases.slice(0, 10).map((l) => l.id) }, 'could not shorten the leases of steps whose stop failed; they run out with the visibility timeout'),
      );
    }
    return null;
  }
}

type Stopped = { cancelled: number; held: Set<string> };

async function stopSteps(deps: Deps, stepIds: string[], held: ReadonlyMap<string, string>): Promise<Stopped> {
  if (stepIds.length === 0) return { cancelled: 0, held: new Set() };
  const { rows } = await deps.pool.query<Target>(
    `SELECT w.id, w.tenant FROM workflows w
      WHERE w.id IN (SELECT workflow_id FROM tasks WHERE id = ANY($1::uuid[]) AND workflow_id IS NOT NULL)
        AND w.on_failure = 'cancel_dependents' AND w.finished_at IS NULL AND w.failed > 0 AND w.cancel_requested_at IS NULL`,
    [stepIds],
  );
  return stopAll(deps, rows, stepIds, held);
}

/** The sweep behind the writers (one that died between its commit and its stop): up to `limit` workflows that should have stopped. */
export async function stopFailedWorkflows(deps: Deps, limit = 100): Promise<number> {
  const { rows } = await deps.pool.query<Target>(
    // Each workflow's steps probed by its id (LATERAL with LIMIT, which is not turned into a join):
    // as a semi join, a plan could read every queued task of a large backlog instead.
    // Only workflows with a failure that stops them and a step the stop would take: any other would
    // be picked again every pass, ahead of those that need it (one whose stoppable steps an operator
    // asked for; one its user cancelled and a retry resumed, its failed count being that cancel's).
    `SELECT w.id, w.tenant FROM workflows w
       CROSS JOIN LATERAL (SELECT 1 FROM tasks WHERE workflow_id = w.id AND status IN ${STOPPABLE} AND ${NOT_ASKED_FOR.replace(/\$1/g, 'w.id')} LIMIT 1) q
      WHERE w.finished_at IS NULL AND w.on_failure = 'cancel_dependents' AND w.failed > 0 AND w.cancel_requested_at IS NULL
        AND EXISTS (SELECT 1 FROM tasks f WHERE f.workflow_id = w.id AND ${STANDING_FAILURE('f')})
      LIMIT $1`,
    [limit],
  );
  return (await stopAll(deps, rows, [], new Map())).cancelled;
}

async function stopAll(deps: Deps, workflows: Target[], stepIds: string[], held: ReadonlyMap<string, string>): Promise<Stopped> {
  const out: Stopped = { cancelled: 0, held: new Set() };
  for (const w of workflows) {
    for (;;) {
      const batch = await retryingDeadlocks(() => stopBatch(deps, w, stepIds, held));
      out.cancelled += batch.cancelled;
      for (const id of batch.held) out.held.add(id);
      if (!batch.more) break;
    }
  }
  return out;
}

/**
 * One transaction: under the workflow's lock (migration 0019: a retry resuming the workflow runs
 * before or after it, never beside it), the failure that stops it is read, its stoppable steps are
 * locked (those a writer holds are skipped: it is writing their outcomes, so they ran), then every
 * other row it changes (steps still waiting, the workflow's row, tasks before their workflow as
 * everywhere), so that nothing after Redis's part waits for a lock (a deadlock there would roll
 * back a cancel Redis has made). Redis removes the steps no worker holds and tombstones them (a
 * push of a step released just now is then refused), and Postgres cancels them, as caused by that
 * failure: a retry of it reopens them.
 * Which steps: those no operator's retry reopened after the workflow's latest failure, those due
 * for a retry, and `stepIds` (the writer's own, queued again after a lost attempt or a hand-back).
 * A step an operator retried after the failure runs: the retry asked for it (migration 0016 lets
 * it, under any policy).
 */
async function stopBatch(deps: Deps, w: Target, stepIds: string[], held: ReadonlyMap<string, string>): Promise<Stopped & { more: boolean }> {
  return inTransaction(deps.pool, async (client) => {
    await client.query('SELECT workflow_lock($1)', [w.id]);
    const failure = await client.query<{ id: string; step_key: string; status: string }>(
      `SELECT id, step_key, status::text AS status FROM tasks
        WHERE workflow_id = $1 AND ${STANDING_FAILURE('tasks')}
          AND EXISTS (SELECT 1 FROM workflows WHERE id = $1 AND finished_at IS NULL AND cancel_requested_at IS NULL)
        ORDER BY finished_at, id LIMIT 1`,
      [w.id],
    );
    const f = failure.rows[0];
    // Resumed since (the failure was retried), ended, or being cancelled by an operator.
    if (!f) return { cancelled: 0, held: new Set(), more: false };
    const { rows } = await client.query<{ id: string }>(
      `SELECT id FROM tasks
        WHERE workflow_id = $1 AND status IN ${STOPPABLE} AND (${NOT_ASKED_FOR} OR id = ANY($2::uuid[]))
        ORDER BY id LIMIT ${BATCH} FOR UPDATE SKIP LOCKED`,
      [w.id, stepIds],
    );
    if (rows.length === 0) return { cancelled: 0, held: new Set(), more: false };
    const reason = `not run: step ${f.step_key} ended ${f.status} and the workflow stops (on_failure cancel_dependents)`;
    // Steps still waiting: the failure's trigger cancelled them already, but a retry may have
    // reopened some since (its own trigger cancels them again only if it sees this failure).
    const waited = await client.query<{ n: number }>('SELECT workflow_stop_waiting($1, $2, $3) AS n', [w.id, f.id, reason]);
    await client.query('SELECT 1 FROM workflows WHERE id = $1 FOR UPDATE', [w.id]);
    // Bounded: a stalled master must not hold the workflow's lock and these rows from outcome
    // writes. Past it the stop rolls back; steps a late cancel took out of Redis still wait in
    // Postgres, and the workers' sweep stops them (their cancel then finds them absent).
    const states = await withTimeout(
      deps.queue.cancel(
        rows.map((r) => ({ id: r.id, tenant: w.tenant })),
        { abortLeased: false },
      ),
      LOCKED_PUSH_TIMEOUT_MS,
      'stopping workflow steps in Redis: no answer',
    );
    // Leased: a worker runs it, and its outcome counts; unless the lease is the writer's own.
    const gone = rows.filter((r, i) => states[i] !== 'leased' || held.has(r.id)).map((r) => r.id);
    // Counted here, once (workflow_quiet: the trigger leaves these rows alone).
    await client.query('SELECT workflow_quiet(true)');
    const res = await client.query(
      `UPDATE tasks SET status = 'cancelled', cancelled_by = $2, finished_at = now(), lease_token = NULL, run_after = NULL, last_error = $3, updated_at = now()
        WHERE id = ANY($1::uuid[])`,
      [gone, f.id, reason],
    );
    await client.query('SELECT workflow_quiet(false)');
    const n = (res.rowCount ?? 0) + waited.rows[0]!.n;
    if (n > 0) await client.query('SELECT workflow_counted($1, $2, $3)', [w.id, -n, n]);
    return { cancelled: n, held: new Set(gone.filter((id) => held.has(id))), more: rows.length === BATCH && gone.length > 0 };
  });
}
