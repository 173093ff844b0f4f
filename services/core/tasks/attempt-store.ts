/**
 * Postgres writes on behalf of attempts. Each statement takes a batch and is fenced: a write
 * changes the task only if its attempt is the task's current one.
 *
 * Starts are recorded lazily. A worker runs a handler as soon as Redis leases it; an attempt that
 * finishes within START_RECORD_DELAY_MS (most do) is written once, start and outcome in one
 * statement, and only slower ones are first marked `running`. So an attempt is *current* for a task
 * when either Postgres runs the task under the attempt's token, or the attempt is newer than every
 * attempt Postgres has counted (`attempts < attempt`) and the task is not final. A stale write (an
 * attempt already counted as expired, superseded by a newer lease, or for a final task) changes
 * nothing. Redis counts an attempt when it leases it, so a worker that dies before anything reached
 * Postgres still used the attempt: the reaper records it as expired, and a task that crashes its
 * worker every time ends dead instead of looping.
 *
 * A task_runs row is written once per attempt, when its outcome is known (succeeded, failed,
 * expired, released); an outcome that arrives after its lease was lost is kept as `discarded`,
 * so a duplicate execution stays visible.
 */
import type { Pool, PoolClient } from 'pg';
import { inTransaction } from '../db/transaction';
import { boolArray, numberArray, textArray } from '../db/pg-arrays';
import type { EnqueueItem } from '../queue/queue';
import { INLINE_PARENTS_BYTES, QueuedStep, queuedStepItem, releasedSteps } from '../workflows/queued-here';
import type { FINAL_STATUSES, TaskStatus } from './priority';

/** Lease tokens start with the leasing worker's id and `~`, so any process can name the worker. */
export const WORKER_OF_TOKEN = "split_part(i.token, '~', 1)";

/**
 * The task's status as text, for conditions of statements that join tasks to their input by id.
 * Compared as the enum, the status matches the partial index of unfinished tasks, and a generic
 * (prepared) plan then bitmap-scans every unfinished task and joins it to the input: the planner's
 * statistics for a queue table are nearly always stale (they say "few unfinished" between
 * bursts). That made each outcome write cost 1 ms for 4 rows and grow with the backlog; as text,
 * the only path to a task is its primary key.
 */
const STATUS = 't.status::text';

/** The fence every attempt write shares: `t` is the task row, `i` the attempt (token, attempt). */
const CURRENT_ATTEMPT = `((${STATUS} = 'running' AND t.lease_token = i.token)
         OR (${STATUS} IN ('scheduled', 'queued', 'retrying', 'running') AND t.attempts < i.attempt))`;

/**
 * A task `running` under an older token whose loss was never recorded (its worker died after the
 * start was recorded and the reaper or reconciler has not caught up): when a newer attempt applies,
 * that older attempt gets its `expired` run. Used as CTEs named `superseded` and `lost`, the latter
 * joined to the statement's `applied` CTE so it only counts when the newer attempt took over.
 * Callers pass at most one attempt per task in a batch: an UPDATE applies one input row per task.
 */
const SUPERSEDED = `superseded AS (
       SELECT t.id, t.lease_token AS token, t.attempts AS attempt, t.updated_at FROM tasks t JOIN input i ON t.id = i.id
        WHERE ${STATUS} = 'running' AND t.lease_token <> i.token AND t.attempts < i.attempt
     )`;
const LOST = `lost AS (
       INSERT INTO task_runs (task_id, attempt, worker_id, lease_token, started_at, finished_at, outcome, error)
       SELECT i.id, i.attempt, ${WORKER_OF_TOKEN}, i.token, i.updated_at, now(), 'expired', 'lease lost: the task was leased again'
         -- Only those the newer attempt took over: a hashed set lookup (a join of two CTEs can be
         -- planned as a nested loop reading one per row of the other; see recordOutcomes' runs).
         FROM (SELECT s.*, s.id IN (SELECT id FROM applied) AS took FROM superseded s) i
        WHERE i.took
        -- An attempt also in this batch gets its row from the batch (two inserts of one key would fail).
          AND i.token NOT IN (SELECT token FROM input)
       ON CONFLICT (task_id, lease_token) DO NOTHING
     )`;

export interface StartedAttempt {
  id: string;
  token: string;
  attempt: number;
  /** When the handler started (worker clock, ms since epoch); defaults to now. */
  startedAtMs?: number;
}

/**
 * Records that attempts are running (those still running after START_RECORD_DELAY_MS): the task
 * becomes `running` under the attempt's token. Attempts that are no longer current (the task is
 * final, or the attempt was already counted as lost) are not started; their handlers should stop.
 */
export async function markRunning(pool: Pool, items: StartedAttempt[]): Promise<{ started: Set<string> }> {
  if (items.length === 0) return { started: new Set() };
  const { rows } = await pool.query<{ id: string }>({
    name: 'mark-running',
    text: `WITH input AS (
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::float8[]) AS i(id, token, attempt, started_ms)
     ), ${SUPERSEDED}, applied AS (
       UPDATE tasks t SET status = 'running', attempts = GREATEST(t.attempts, i.attempt), lease_token = i.token,
              run_after = NULL, first_started_at = COALESCE(t.first_started_at, to_timestamp(i.started_ms / 1000.0)), updated_at = now()
         FROM input i
        WHERE t.id = i.id AND ${CURRENT_ATTEMPT}
       RETURNING t.id
     ), ${LOST}
     SELECT id FROM applied`,
    values: [textArray(items.map((i) => i.id)), textArray(items.map((i) => i.token)), numberArray(items.map((i) => i.attempt)), numberArray(items.map((i) => i.startedAtMs ?? Date.now()))],
  });
  return { started: new Set(rows.map((r) => r.id)) };
}

/** A late outcome's run error: what the attempt had come to. */
const LATE_ERROR = `'lease lost before the outcome (' || COALESCE(i.error, 'success') || ') was recorded'`;

/** The run of one of these leases was inserted meanwhile by someone else (the reaper). */
function isRunKeyRace(err: unknown): boolean {
  const e = err as { code?: string; constraint?: string };
  return e.code === '23505' && e.constraint === 'task_runs_pkey';
}

export interface Outcome {
  id: string;
  token: string;
  attempt: number;
  workerId: string;
  startedAtMs: number;
  durationMs: number;
  /** null on success. */
  error: string | null;
  /** For failures: true when no attempt is left (or the type is unknown). */
  dead: boolean;
  /** For retries: the backoff before the next attempt. */
  delayMs: number;
  /**
   * The worker learned that its lease is gone (Redis no longer has it): whoever took the task over
   * decides its fate, so this outcome is only kept as a discarded run. Without it, an attempt Postgres
   * never heard of could still look current there after Redis lost its lease.
   */
  leaseLost?: boolean;
  /** A success's result as JSON text (at most 64 KiB, checked by the worker); null when the handler returned nothing. */
  result?: string | null;
  /** A failure's error name or code, and its stack (bounded). */
  errorType?: string | null;
  errorStack?: string | null;
  /** The task is a workflow step: its success may queue the steps that depend on it. */
  step?: boolean;
}

type FinalStatus = (typeof FINAL_STATUSES)[number];

export interface OutcomeWrite {
  /** Outcomes written to the task (their attempt was current). */
  applied: Set<string>;
  /** Not applied because the task was already final, with its status: Redis should end the lease the same way. */
  final: Map<string, FinalStatus>;
  /** Applied, and the task ended `cancelled` (an operator asked while it ran): Redis forgets it. */
  cancelled: Set<string>;
  /** Workflow steps these successes queued (their last dependency succeeded): Redis needs them. */
  released: EnqueueItem[];
}

/**
 * Writes attempt outcomes (and, for attempts whose start was never recorded, the start with them).
 * Outcomes not applied are kept as `discarded` runs; their tasks either lost the lease to another
 * attempt (Redis holds the newer lease: leave it alone) or are final already (`final`). Given a
 * client rather than the pool, it writes in that client's transaction.
 */
export async function recordOutcomes(db: Pool | PoolClient, outcomes: Outcome[]): Promise<OutcomeWrite> {
  if (outcomes.length === 0) return { applied: new Set(), final: new Map(), cancelled: new Set(), released: [] };
  const parents = outcomes.flatMap((o) => (o.step && o.error === null ? [o.id] : []));
  const failing = outcomes.flatMap((o) => (o.step && o.error !== null ? [o.id] : []));
  // Plain tasks' outcomes stay one statement; a step's success also reads what it queued.
  const write = (db: Pool | PoolClient) => (parents.length === 0 ? writeOutcomes(db, outcomes) : writeReleasing(db, outcomes, parents));
  for (let attempt = 1; ; attempt++) {
    try {
      if (failing.length === 0) return await write(db);
      // A step's failure takes its workflow's lock (its trigger, at the statement's end) after the
      // statement has locked rows (released steps, the workflow's row), where every other writer of
      // a failure takes that lock first: taken first here too, in id order, the two cannot deadlock.
      const locked = async (client: PoolClient) => {
        await client.query(LOCK_FAILING_WORKFLOWS, [textArray(failing)]);
        return write(client);
      };
      return await (isClient(db) ? locked(db) : inTransaction(db, locked));
    } catch (err) {
      // The reaper recorded one of these attempts as expired between this statement's check and
      // its insert: run it again, and it sees that run. (Twice in a row would take another reap
      // of the same leases; more than that is something else.)
      if (!isRunKeyRace(err) || attempt === 3) throw err;
    }
  }
}

/** A client (in its caller's transaction, if any), not the pool. */
const isClient = (db: Pool | PoolClient): db is PoolClient => typeof (db as PoolClient).release === 'function';

/** The advisory locks (workflow_lock, migration 0019) of the workflows of steps `$1`, in id order. */
const LOCK_FAILING_WORKFLOWS = `SELECT workflow_lock(w) FROM (SELECT DISTINCT workflow_id FROM tasks WHERE id = ANY($1::uuid[]) AND workflow_id IS NOT NULL ORDER BY 1) x(w)`;

/**
 * The outcomes, the successes' effect on their workflows, and the steps that queued, in one
 * statement (so one transaction, and no round trips for BEGIN and COMMIT: it is on a chain's
 * critical path, and a fan-in's row stays locked only while the statement runs). The trigger leaves
 * the successes to this statement (task_scheduler.batch_successes, read when the trigger fires at
 * the statement's end), which applies them together: a fan-in's count and its workflow's counters
 * change once per batch, not once per parent. `workflow_steps_released` runs after `applied` has
 * (the ARRAY reads it), and sees its rows: a function's statements take snapshots of their own
 * (this statement's query does not: see releasedSteps).
 */
async function writeReleasing(pool: Pool | PoolClient, outcomes: Outcome[], parents: string[]): Promise<OutcomeWrite> {
  const steps = releasedSteps('$15');
  const { rows } = await pool.query<{ outcome_id: string | null; final: FinalStatus | null; cancelled: boolean } & QueuedStep>({
    name: 'record-outcomes-releasing',
    text: `${OUTCOME_CTES}, released AS (
       -- The steps' successes this statement applied (not those it applied as cancelled), released together.
       SELECT r.* FROM (SELECT set_config('task_scheduler.batch_successes', 'on', true)) batch,
              workflow_steps_released(ARRAY(SELECT a.id FROM applied a WHERE NOT a.cancelled AND a.id = ANY($14::uuid[]))) r
     ), ${steps.cte}
     SELECT o.id AS outcome_id, o.final, o.cancelled, s.*
       FROM (${UNAPPLIED}) o FULL JOIN (${steps.select}) s ON s.id = o.id`,
    values: [...outcomeValues(outcomes), textArray(parents), INLINE_PARENTS_BYTES],
  });
  const write = outcomeWrite(
    outcomes,
    rows.flatMap((r) => (r.outcome_id === null ? [] : [{ id: r.outcome_id, final: r.final, cancelled: r.cancelled }])),
  );
  write.released = rows.flatMap((r) => (r.outcome_id === null ? [queuedStepItem(r)] : []));
  return write;
}

/** The outcome write's CTEs (input … late), shared by writeOutcomes and writeReleasing; $1–$13 are outcomeValues(). */
const OUTCOME_CTES = `WITH input AS (
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::text[], $5::bool[], $6::int[], $7::int[], $8::text[], $9::float8[], $10::bool[], $11::jsonb[], $12::text[], $13::text[])
         AS i(id, token, duration_ms, error, dead, delay_ms, attempt, worker_id, started_ms, lease_lost, result, error_type, error_stack)
     ), cur AS (
       -- Each task as the statement finds it, read once (by primary key) for both of these:
       SELECT t.id, t.status, t.lease_token, t.attempts, t.updated_at, i.token AS in_token, i.attempt AS in_attempt
         FROM tasks t JOIN input i ON t.id = i.id
     ), superseded AS (
       -- As SUPERSEDED, from what was read.
       SELECT id, lease_token AS token, attempts AS attempt, updated_at FROM cur
        WHERE status::text = 'running' AND lease_token <> in_token AND attempts < in_attempt
     ), final AS (
       SELECT id, status::text AS status FROM cur WHERE status IN ('succeeded', 'dead', 'cancelled')
     ), applied AS (
       UPDATE tasks t SET
              -- An operator's cancel wins over a retry or a death, not over a success (both are final).
              status = CASE WHEN i.error IS NULL THEN 'succeeded'::task_status
                            WHEN t.cancel_requested_at IS NOT NULL THEN 'cancelled'::task_status
                            WHEN i.dead THEN 'dead'::task_status ELSE 'retrying'::task_status END,
              attempts = GREATEST(t.attempts, i.attempt),
              last_error = COALESCE(i.error, t.last_error),
              result = CASE WHEN i.error IS NULL THEN i.result ELSE t.result END,
              run_after = CASE WHEN i.error IS NOT NULL AND NOT i.dead AND t.cancel_requested_at IS NULL
                               THEN now() + i.delay_ms * interval '1 millisecond' END,
              first_started_at = COALESCE(t.first_started_at, to_timestamp(i.started_ms / 1000.0)),
              finished_at = CASE WHEN i.error IS NULL OR i.dead OR t.cancel_requested_at IS NOT NULL THEN now() END,
              lease_token = NULL, updated_at = now()
         FROM input i
        WHERE t.id = i.id AND NOT i.lease_lost AND ${CURRENT_ATTEMPT}
       -- The status as written (RETURNING sees the row this statement wrote, also when it waited
       -- for a cancel to commit), so the run's outcome agrees with the task's status.
       RETURNING t.id, t.status::text = 'cancelled' AS cancelled
     ), ${LOST}, existing AS (
       -- Runs of these leases already written: by the reaper (expired), or by an earlier try of
       -- this write whose answer was lost. Looked up once and used twice.
       -- One primary-key probe per outcome, whatever the statistics say: as a join, the generic
       -- plan made while task_runs was small (a new database, until the stats refresher's first
       -- ANALYZE) hashed the input and seq-scanned every run, each batch, a cost that grew with
       -- the table (12 of a 31 ms statement at 20k runs). A LATERAL subquery with LIMIT is not
       -- flattened into a join, and the index is the only cheap way to answer it.
       SELECT r.lease_token, r.outcome FROM input i
         CROSS JOIN LATERAL (SELECT lease_token, outcome FROM task_runs WHERE task_id = i.id AND lease_token = i.token LIMIT 1) r
     ), runs AS (
       INSERT INTO task_runs (task_id, attempt, worker_id, lease_token, started_at, finished_at, outcome, error, duration_ms, error_type, error_stack)
       -- The run finished when its handler did (the worker's clock, like started_at); the outcome
       -- may have waited a few ms for its batch to be written.
       SELECT i.id, i.attempt, i.worker_id, i.token, to_timestamp(i.started_ms / 1000.0), to_timestamp((i.started_ms + i.duration_ms) / 1000.0),
              CASE WHEN NOT i.applied THEN 'discarded' WHEN i.error IS NULL THEN 'succeeded'
                   WHEN i.id IN (SELECT id FROM applied WHERE cancelled) THEN 'cancelled' ELSE 'failed' END,
              CASE WHEN NOT i.applied THEN ${LATE_ERROR} ELSE i.error END,
              i.duration_ms, i.error_type, i.error_stack
         -- A set lookup, not a join: the generic plan expects one applied row and ten input rows,
         -- and joined them in a nested loop that read all of \`applied\` once per input row
         -- (500 outcomes: 250,000 rows, a 32 ms statement instead of 9 ms).
         FROM (SELECT *, id IN (SELECT id FROM applied) AS applied FROM input) i
       -- Not ON CONFLICT: its speculative insertion cost Postgres half as much again per row
       -- (16.8 against 11.3 µs). A run the reaper inserts meanwhile makes this statement fail on
       -- the unique key instead, and recordOutcomes runs it again.
        WHERE i.token NOT IN (SELECT lease_token FROM existing)
     ), late AS (
       -- The reaper recorded this attempt as expired already: the late outcome is discarded. (It
       -- cannot have been applied: the reaper fenced the task first.)
       UPDATE task_runs r SET outcome = 'discarded', error = ${LATE_ERROR},
              finished_at = to_timestamp((i.started_ms + i.duration_ms) / 1000.0), duration_ms = i.duration_ms
         FROM input i, existing e
        WHERE e.lease_token = i.token AND e.outcome = 'expired' AND r.task_id = i.id AND r.lease_token = i.token
     )`;

/**
 * Only the outcomes that did not apply come back (usually none): a row per outcome was a visible
 * share of what the worker parsed and allocated per attempt. Cancelled ones come back too (their
 * Redis lease ends as final, not as a retry). A final task's status by set lookups, not a
 * subquery per row: that read all of `final` once per row (a stale batch of 500: 30 ms, not 1).
 */
const UNAPPLIED = `SELECT id,
              CASE WHEN id IN (SELECT id FROM final WHERE status = 'dead') THEN 'dead'
                   WHEN id IN (SELECT id FROM final WHERE status = 'cancelled') THEN 'cancelled'
                   WHEN id IN (SELECT id FROM final) THEN 'succeeded' END AS final,
              id IN (SELECT id FROM applied WHERE cancelled) AS cancelled
       FROM input WHERE id NOT IN (SELECT id FROM applied WHERE NOT cancelled)`;

function outcomeValues(outcomes: Outcome[]): unknown[] {
  return [
    textArray(outcomes.map((o) => o.id)),
    textArray(outcomes.map((o) => o.token)),
    numberArray(outcomes.map((o) => o.durationMs)),
    textArray(outcomes.map((o) => o.error)),
    boolArray(outcomes.map((o) => o.dead)),
    numberArray(outcomes.map((o) => Math.round(o.delayMs))),
    numberArray(outcomes.map((o) => o.attempt)),
    textArray(outcomes.map((o) => o.workerId)),
    numberArray(outcomes.map((o) => o.startedAtMs)),
    boolArray(outcomes.map((o) => o.leaseLost === true)),
    textArray(outcomes.map((o) => o.result ?? null)),
    textArray(outcomes.map((o) => o.errorType ?? null)),
    textArray(outcomes.map((o) => o.errorStack ?? null)),
  ];
}

/** What the statement's UNAPPLIED rows say about the batch. */
function outcomeWrite(outcomes: Outcome[], rows: { id: string; final: FinalStatus | null; cancelled: boolean }[]): OutcomeWrite {
  const write: OutcomeWrite = { applied: new Set(outcomes.map((o) => o.id)), final: new Map(), cancelled: new Set(), released: [] };
  for (const r of rows) {
    if (r.cancelled) {
      write.cancelled.add(r.id);
      continue;
    }
    write.applied.delete(r.id);
    if (r.final) write.final.set(r.id, r.final);
  }
  return write;
}

async function writeOutcomes(pool: Pool | PoolClient, outcomes: Outcome[]): Promise<OutcomeWrite> {
  const { rows } = await pool.query<{ id: string; final: FinalStatus | null; cancelled: boolean }>({
    name: 'record-outcomes',
    text: `${OUTCOME_CTES}
     ${UNAPPLIED}`,
    values: outcomeValues(outcomes),
  });
  return outcomeWrite(outcomes, rows);
}

export interface LostAttempt {
  id: string;
  token: string;
  attempt: number;
  dead: boolean;
}

/** What recordExpired made of a task: waiting again, dead, or cancelled (an operator had asked). */
export type ExpiredStatus = 'queued' | 'dead' | 'cancelled';

/**
 * Records attempts whose lease was lost (expired and reaped, or vanished with Redis data): the
 * attempt counts, its run is `expired`, the task waits again or is dead (cancelled, if an operator
 * asked while it ran). This includes attempts whose start Postgres never saw (the worker died
 * before anything was written): Redis counted them when it leased them, and they may have run.
 * Returns the tasks it applied to, with the status each got.
 */
export async function recordExpired(pool: Pool, items: LostAttempt[], reason = 'lease expired'): Promise<Map<string, ExpiredStatus>> {
  if (items.length === 0) return new Map();
  const { rows } = await pool.query<{ id: string; status: ExpiredStatus }>(
    `WITH input AS (
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bool[]) AS i(id, token, attempt, dead)
     ), ${SUPERSEDED}, held AS (
       SELECT t.id, t.updated_at FROM tasks t JOIN input i ON t.id = i.id AND t.lease_token = i.token AND ${STATUS} = 'running'
     ), applied AS (
       UPDATE tasks t SET status = CASE WHEN t.cancel_requested_at IS NOT NULL THEN 'cancelled'::task_status
                                        WHEN i.dead THEN 'dead'::task_status ELSE 'queued'::task_status END,
              attempts = GREATEST(t.attempts, i.attempt),
              last_error = $5 || ' during attempt ' || i.attempt || ' (worker stopped, too slow, or Redis lost it)',
              finished_at = CASE WHEN i.dead OR t.cancel_requested_at IS NOT NULL THEN now() END, run_after = NULL, lease_token = NULL, updated_at = now()
         FROM input i
        WHERE t.id = i.id AND ${CURRENT_ATTEMPT}
       RETURNING t.id, t.status::text AS status
     ), ${LOST}, runs AS (
       INSERT INTO task_runs (task_id, attempt, worker_id, lease_token, started_at, finished_at, outcome, error)
       SELECT i.id, i.attempt, ${WORKER_OF_TOKEN}, i.token, COALESCE(h.updated_at, now()), now(), 'expired', $5
         FROM input i LEFT JOIN held h ON h.id = i.id
       ON CONFLICT (task_id, lease_token) DO NOTHING
     )
     SELECT id, status FROM applied`,
    [items.map((i) => i.id), items.map((i) => i.token), items.map((i) => i.attempt), items.map((i) => i.dead), reason],
  );
  return new Map(rows.map((r) => [r.id, r.status]));
}

/** Records attempts handed back unfinished (at shutdown, or stopped by a cancel Postgres never recorded): they do not count. */
export async function recordReleased(pool: Pool, items: { id: string; token: string; attempt: number; startedAtMs: number }[], why = 'handed back at shutdown'): Promise<Set<string>> {
  if (items.length === 0) return new Set();
  const { rows } = await pool.query<{ id: string }>(
    `WITH input AS (
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::float8[]) AS i(id, token, attempt, started_ms)
     ), applied AS (
       -- Cancelled while it ran: handed back, it ends there (release.lua forgets it too).
       UPDATE tasks t SET status = CASE WHEN t.cancel_requested_at IS NOT NULL THEN 'cancelled'::task_status ELSE 'queued'::task_status END,
              finished_at = CASE WHEN t.cancel_requested_at IS NOT NULL THEN now() END,
              lease_token = NULL, updated_at = now(), run_after = NULL,
              attempts = CASE WHEN t.status = 'running' THEN GREATEST(t.attempts - 1, 0) ELSE t.attempts END
         FROM input i
        -- Running under this token, or never recorded as started (then there is nothing to un-count).
        WHERE t.id = i.id AND ((${STATUS} = 'running' AND t.lease_token = i.token)
                            OR (${STATUS} IN ('scheduled', 'queued', 'retrying') AND t.attempts < i.attempt))
       RETURNING t.id
     ), runs AS (
       INSERT INTO task_runs (task_id, attempt, worker_id, lease_token, started_at, finished_at, outcome, error)
       SELECT a.id, i.attempt, ${WORKER_OF_TOKEN}, i.token, to_timestamp(i.started_ms / 1000.0), now(), 'released', $5
         FROM applied a JOIN input i ON i.id = a.id
       ON CONFLICT (task_id, lease_token) DO NOTHING
     )
     SELECT id FROM applied`,
    [items.map((i) => i.id), items.map((i) => i.token), items.map((i) => i.attempt), items.map((i) => i.startedAtMs), why],
  );
  return new Set(rows.map((r) => r.id));
}

/**
 * Whether Postgres has a cancel of the task on record (true also for a task no longer there). A
 * cancel's transaction tells Redis before it commits: FOR SHARE waits for one still open, so what
 * is read is how it ended. A cancel whose transaction rolled back (Redis answered too late) can
 * still reach Redis, and stop an attempt Postgres was never asked to cancel.
 */
export async function cancelRecorded(pool: Pool, id: string): Promise<boolean> {
  const { rows } = await pool.query<{ asked: boolean }>('SELECT cancel_requested_at IS NOT NULL AS asked FROM tasks WHERE id = $1 FOR SHARE', [id]);
  return rows[0]?.asked ?? true;
}

export interface TaskState {
  status: TaskStatus;
  attempts: number;
  tenant: string;
  /** When a retry (or a delayed task) is due, ms since epoch; null when it waits for nothing. */
  runAfterMs: number | null;
}

/** Status, attempts counted, tenant and due time in Postgres for those of `ids` that exist. */
export async function taskStates(pool: Pool, ids: string[]): Promise<Map<string, TaskState>> {
  const { rows } = await pool.query<{ id: string; status: TaskStatus; attempts: number; tenant: string; run_after_ms: number | null }>(
    `SELECT id, status, attempts, tenant, (extract(epoch FROM run_after) * 1000)::float8 AS run_after_ms FROM tasks WHERE id = ANY($1::uuid[])`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, { status: r.status, attempts: r.attempts, tenant: r.tenant, runAfterMs: r.run_after_ms }]));
}
