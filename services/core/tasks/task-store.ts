/** Postgres queries that create and read tasks (the API's side). */
import type { Pool, PoolClient } from 'pg';
import { numberArray, textArray } from '../db/pg-arrays';
import { inTransaction, READ_SNAPSHOT } from '../db/transaction';
import { NewTask, RunRow, TASK_COLUMNS, TaskRow } from './task';

export type CreateOutcome =
  | { kind: 'created'; task: TaskRow }
  | { kind: 'replayed'; task: TaskRow }
  | { kind: 'conflict'; taskId: string; task: TaskRow; requestHash: string };

export interface CreateRequest {
  task: NewTask;
  /** sha256 of the canonical request; required with an idempotency key. */
  requestHash: string | null;
  /** The request's hash with another max_retries, when it left max_retries out (see sameRequest). */
  hashWith?: (maxRetries: number) => string;
  /** JSON.stringify(task.payload), when the caller has it already. */
  payloadJson?: string;
}

const payloadText = (r: CreateRequest): string => r.payloadJson ?? JSON.stringify(r.task.payload);
/** The per-task policy columns (NULL for the usual task without one). */
const retryText = (t: NewTask): string | null => (t.retry ? JSON.stringify(t.retry) : null);
const timeoutText = (t: NewTask): string | null => (t.timeoutMs ? String(t.timeoutMs) : null);
/** A delayed task's due time (NULL: queued at once; such a task is `scheduled` until then). */
const runAtText = (t: NewTask): string | null => (t.runAt ? t.runAt.toISOString() : null);
const STATUS_OF_RUN_AT = "CASE WHEN run_at IS NULL THEN 'queued' ELSE 'scheduled' END::task_status";

/**
 * Creates many tasks, all or none: a call that fails has committed nothing, so its callers may
 * retry or split it without creating a task twice. Without idempotency keys that is one statement;
 * with keys, one transaction that claims the keys and inserts the tasks whose key it claimed (one
 * statement), then reads the rows of keys live elsewhere. A key that is live elsewhere replays the original task (same request hash) or is a conflict.
 * Concurrent first uses of one key are serialized by the key's primary-key index (keys are claimed
 * in sorted order, so overlapping batches cannot deadlock); the loser sees the winner's row.
 * Keys must be unique within one call (the caller resolves repeats inside a batch).
 */
export async function createTasks(pool: Pool, reqs: CreateRequest[], idempotencyTtlMs: number): Promise<CreateOutcome[]> {
  try {
    return await createTasksOnce(pool, reqs, idempotencyTtlMs);
  } catch (err) {
    const committed = await committedDespite(pool, reqs).catch(() => null);
    if (committed === null) throw err;
    return committed;
  }
}

/**
 * After a failed create: the outcomes, when the write committed although its answer was lost (the
 * connection ended after Postgres committed), else null. Answering an error then would leave
 * tasks nobody was told about, and a client retrying without a key would make them twice. The ids
 * are new, so any of them stored means the statement (or transaction) committed whole: those are
 * created; the rest are keyed requests that found their key in use, answered as a replay or a
 * conflict would be. Null also when Postgres cannot be asked (the caller answers the error).
 */
async function committedDespite(pool: Pool, reqs: CreateRequest[]): Promise<CreateOutcome[] | null> {
  const { rows } = await pool.query<TaskRow>(`SELECT ${TASK_COLUMNS} FROM tasks WHERE id = ANY($1::uuid[])`, [textArray(reqs.map((r) => r.task.id))]);
  if (rows.length === 0) return null;
  const stored = new Map(rows.map((r) => [r.id, r]));
  const rest = reqs.filter((r) => !stored.has(r.task.id) && r.task.idempotencyKey !== null && r.requestHash !== null);
  const prior = await priorOutcomes(
    pool,
    rest.map((r) => ({ tenant: r.task.tenant, idempotencyKey: r.task.idempotencyKey!, requestHash: r.requestHash!, hashWith: r.hashWith })),
  );
  const byReq = new Map(rest.map((r, i) => [r, prior[i] ?? null]));
  const out: CreateOutcome[] = [];
  for (const r of reqs) {
    const task = stored.get(r.task.id);
    const outcome = task ? ({ kind: 'created', task } as const) : byReq.get(r);
    if (!outcome) return null;
    out.push(outcome);
  }
  return out;
}

async function createTasksOnce(pool: Pool, reqs: CreateRequest[], idempotencyTtlMs: number): Promise<CreateOutcome[]> {
  const out: (CreateOutcome | undefined)[] = new Array(reqs.length);
  if (reqs.every((r) => r.task.idempotencyKey === null)) {
    await createUnkeyed(pool, reqs, out);
    return out as CreateOutcome[];
  }
  // Claims, reads and any second round commit together or not at all: an error leaves nothing behind.
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    let pending = reqs.map((_, i) => i);
    // A key can expire and be pruned between our claim and our read; such items go round again.
    for (let round = 0; pending.length > 0; round++) {
      if (round === 5) throw new Error('idempotency keys kept changing under a batch; giving up');
      pending = await createRound(client, reqs, pending, idempotencyTtlMs, out);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release(err as Error);
    throw err;
  }
  client.release();
  return out as CreateOutcome[];
}

/**
 * A batch without idempotency keys (most are): every task is inserted, so there is no key to
 * claim and no row to read back. created_at defaults to now(), the transaction's start, the same
 * for every row: it comes back once. Against the keyed statement this skips the key CTE and a
 * returned row (and a parsed timestamp) per task, on the path every POST /tasks waits on.
 */
async function createUnkeyed(pool: Pool, reqs: CreateRequest[], out: (CreateOutcome | undefined)[]): Promise<void> {
  const t = reqs.map((r) => r.task);
  const { rows } = await pool.query<{ created_at: Date; n: number }>({
    name: 'create-tasks-unkeyed',
    text: `WITH created AS (
       INSERT INTO tasks (id, type, priority, payload, max_retries, tenant, retry, timeout_ms, run_at, status)
       SELECT *, ${STATUS_OF_RUN_AT}
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::int[], $6::text[], $7::jsonb[], $8::int[], $9::timestamptz[])
           AS i(id, type, priority, payload, max_retries, tenant, retry, timeout_ms, run_at)
       RETURNING 1
     )
     SELECT now() AS created_at, (SELECT count(*)::int FROM created) AS n`,
    values: [textArray(t.map((x) => x.id)), textArray(t.map((x) => x.type)), textArray(t.map((x) => x.priority)), textArray(reqs.map(payloadText)), numberArray(t.map((x) => x.maxRetries)), textArray(t.map((x) => x.tenant)), textArray(t.map(retryText)), textArray(t.map(timeoutText)), textArray(t.map(runAtText))],
  });
  const { created_at: createdAt, n } = rows[0]!;
  if (n !== t.length) throw new Error(`inserted ${n} of ${t.length} tasks`);
  t.forEach((task, i) => (out[i] = { kind: 'created', task: newTaskRow(task, createdAt) }));
}

/**
 * One statement: claim the keys (sorted, so overlapping batches
 * take the key locks in one order and cannot deadlock), then insert the tasks whose key was
 * claimed or who have none. A key's task is inserted by the statement that claims it (there is no
 * foreign key: migration 0011).
 */
async function createRound(pool: PoolClient, reqs: CreateRequest[], indexes: number[], ttlMs: number, out: (CreateOutcome | undefined)[]): Promise<number[]> {
  const t = indexes.map((i) => reqs[i]!.task);
  const { rows } = await pool.query<{ id: string; created_at: Date }>({
    name: 'create-tasks',
    text: `WITH input AS (
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::int[], $6::text[], $7::text[], $9::text[], $10::jsonb[], $11::int[], $12::timestamptz[])
         AS i(id, type, priority, payload, max_retries, key, hash, tenant, retry, timeout_ms, run_at)
     ), claimed AS (
       INSERT INTO idempotency_keys (tenant, key, task_id, request_hash, expires_at)
       SELECT tenant, key, id, hash, now() + $8 * interval '1 millisecond' FROM input WHERE key IS NOT NULL ORDER BY tenant, key
       ON CONFLICT (tenant, key) DO UPDATE
         SET task_id = EXCLUDED.task_id, request_hash = EXCLUDED.request_hash,
             created_at = now(), expires_at = EXCLUDED.expires_at
         WHERE idempotency_keys.expires_at <= now()
       RETURNING tenant, key
     )
     INSERT INTO tasks (id, type, priority, payload, max_retries, idempotency_key, tenant, retry, timeout_ms, run_at, status)
     SELECT id, type, priority, payload, max_retries, key, tenant, retry, timeout_ms, run_at, ${STATUS_OF_RUN_AT} FROM input
      WHERE key IS NULL OR (tenant, key) IN (SELECT tenant, key FROM claimed)
     RETURNING id, created_at`,
    values: [
      textArray(t.map((x) => x.id)),
      textArray(t.map((x) => x.type)),
      textArray(t.map((x) => x.priority)),
      textArray(indexes.map((i) => payloadText(reqs[i]!))),
      numberArray(t.map((x) => x.maxRetries)),
      textArray(t.map((x) => x.idempotencyKey)),
      textArray(indexes.map((i) => reqs[i]!.requestHash)),
      ttlMs,
      textArray(t.map((x) => x.tenant)),
      textArray(t.map(retryText)),
      textArray(t.map(timeoutText)),
      textArray(t.map(runAtText)),
    ],
  });
  const created = new Map(rows.map((r) => [r.id, r.created_at]));
  const unclaimed: number[] = [];
  for (const i of indexes) {
    const createdAt = created.get(reqs[i]!.task.id);
    if (createdAt) out[i] = { kind: 'created', task: newTaskRow(reqs[i]!.task, createdAt) };
    else unclaimed.push(i);
  }
  if (unclaimed.length === 0) return [];
  const { existing, orphans } = await existingForKeys(pool, unclaimed.map((i) => reqs[i]!.task));
  if (orphans.length > 0) await freeOrphanKeys(pool, orphans);
  const retry: number[] = [];
  for (const i of unclaimed) {
    const row = existing.get(scopedKey(reqs[i]!.task));
    if (!row) retry.push(i);
    else if (!sameRequest(reqs[i] as { requestHash: string }, row.request_hash, row.task)) out[i] = { kind: 'conflict', taskId: row.task.id, task: row.task, requestHash: row.request_hash };
    else out[i] = { kind: 'replayed', task: row.task };
  }
  return retry;
}

/**
 * The row Postgres just inserted, built from what was sent rather than read back: parsing every
 * column again (payload JSON, four timestamps) for each task was a visible share of the API's CPU
 * (POST /tasks at 50 connections: 5–12 % more requests per second without it).
 */
function newTaskRow(t: NewTask, createdAt: Date): TaskRow {
  return {
    id: t.id,
    tenant: t.tenant,
    type: t.type,
    priority: t.priority,
    payload: t.payload,
    status: t.runAt ? 'scheduled' : 'queued',
    attempts: 0,
    max_retries: t.maxRetries,
    idempotency_key: t.idempotencyKey,
    last_error: null,
    run_after: null,
    created_at: createdAt,
    // Both default to now(), the transaction's start: equal in the row just inserted.
    updated_at: createdAt,
    first_started_at: null,
    finished_at: null,
    cancel_requested_at: null,
    retry: t.retry ?? null,
    timeout_ms: t.timeoutMs ?? null,
    result: null,
    run_at: t.runAt ?? null,
    schedule: null,
    scheduled_for: null,
    workflow_id: null,
    step_key: null,
  };
}

/**
 * What submitting these keyed requests again would answer without creating anything: a live key's
 * task (`replayed` when the request hash is the one stored with it, else `conflict`), or null for
 * a request whose key is not in use (it would create a task). For answering replays where a
 * creation is refused (a tenant at its limits): a replay takes no place.
 */
/**
 * Whether a request is the one a key was stored with: the same hash, or, for a request that left
 * max_retries out, the same hash with the max_retries the key's task was made with (the default it
 * took may have changed since, or been another API replica's).
 */
export function sameRequest(req: { requestHash: string; hashWith?: (maxRetries: number) => string }, storedHash: string, task: Pick<TaskRow, 'max_retries'>): boolean {
  return req.requestHash === storedHash || (req.hashWith !== undefined && req.hashWith(task.max_retries) === storedHash);
}

export async function priorOutcomes(pool: Pool, reqs: { tenant: string; idempotencyKey: string; requestHash: string; hashWith?: (maxRetries: number) => string }[]): Promise<(CreateOutcome | null)[]> {
  const { rows } = await pool.query<Partial<TaskRow> & { request_hash: string; k_tenant: string; k_key: string }>(
    `SELECT k.request_hash, k.tenant AS k_tenant, k.key AS k_key, ${TASK_COLUMNS.split(', ').map((c) => `t.${c}`).join(', ')}
       FROM unnest($1::text[], $2::text[]) AS w(tenant, key)
       JOIN idempotency_keys k ON k.tenant = w.tenant AND k.key = w.key AND k.expires_at > now()
       JOIN tasks t ON t.id = k.task_id`,
    [reqs.map((r) => r.tenant), reqs.map((r) => r.idempotencyKey)],
  );
  const found = new Map(rows.map(({ request_hash, k_tenant, k_key, ...task }) => [scopedKey({ tenant: k_tenant, idempotencyKey: k_key }), { request_hash, task: task as TaskRow }]));
  return reqs.map((r): CreateOutcome | null => {
    const row = found.get(scopedKey(r));
    if (!row) return null;
    return sameRequest(r, row.request_hash, row.task) ? { kind: 'replayed', task: row.task } : { kind: 'conflict', taskId: row.task.id, task: row.task, requestHash: row.request_hash };
  });
}

/** A key is unique per tenant: `tenant NUL key` names it across tenants. */
export function scopedKey(t: { tenant: string; idempotencyKey: string | null }): string {
  return `${t.tenant}\u0000${t.idempotencyKey}`;
}

/** A live key whose task is gone (deleted by hand; retention keeps the task of a live key). */
interface OrphanKey {
  tenant: string;
  key: string;
  taskId: string;
}

/**
 * The keys of `tasks` with their tasks, read in a snapshot taken after the claim (so a task whose
 * first use of the key committed while the claim waited for it is seen), and the keys whose task is
 * gone.
 */
async function existingForKeys(pool: PoolClient, tasks: NewTask[]): Promise<{ existing: Map<string, { request_hash: string; task: TaskRow }>; orphans: OrphanKey[] }> {
  const { rows } = await pool.query<Partial<TaskRow> & { request_hash: string; k_tenant: string; k_key: string; k_task_id: string }>(
    `SELECT k.request_hash, k.tenant AS k_tenant, k.key AS k_key, k.task_id AS k_task_id, ${TASK_COLUMNS.split(', ').map((c) => `t.${c}`).join(', ')}
       FROM unnest($1::text[], $2::text[]) AS w(tenant, key)
       JOIN idempotency_keys k ON k.tenant = w.tenant AND k.key = w.key
       LEFT JOIN tasks t ON t.id = k.task_id`,
    [tasks.map((t) => t.tenant), tasks.map((t) => t.idempotencyKey)],
  );
  const existing = new Map<string, { request_hash: string; task: TaskRow }>();
  const orphans: OrphanKey[] = [];
  for (const { request_hash, k_tenant, k_key, k_task_id, ...task } of rows) {
    if (task.id == null) orphans.push({ tenant: k_tenant, key: k_key, taskId: k_task_id });
    else existing.set(scopedKey({ tenant: k_tenant, idempotencyKey: k_key }), { request_hash, task: task as TaskRow });
  }
  return { existing, orphans };
}

/**
 * Frees keys whose task is gone, so the next round claims them for a new task: a replay then
 * creates the task again rather than failing. Conditional on the task id the key held, so a key
 * claimed again meanwhile stays its new owner's. (Not done in the claim itself: a condition there
 * on the task's existence would be read in the claim's snapshot, which may predate the commit of a
 * concurrent first use of the key it waited for, and would take that key from its task.)
 */
async function freeOrphanKeys(pool: PoolClient, orphans: OrphanKey[]): Promise<void> {
  await pool.query(
    `DELETE FROM idempotency_keys k USING unnest($1::text[], $2::text[], $3::uuid[]) AS o(tenant, key, task_id)
      WHERE k.tenant = o.tenant AND k.key = o.key AND k.task_id = o.task_id
        AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = o.task_id)`,
    [orphans.map((o) => o.tenant), orphans.map((o) => o.key), orphans.map((o) => o.taskId)],
  );
}

/** One task; see createTasks. */
export async function createTask(pool: Pool, t: NewTask, requestHash: string | null, idempotencyTtlMs: number): Promise<CreateOutcome> {
  const [res] = await createTasks(pool, [{ task: t, requestHash }], idempotencyTtlMs);
  return res!;
}

/**
 * A task of `tenant` with its runs; null when there is none (another tenant's task is none). Both
 * are read in one snapshot: read apart, a task could show its final status while its last run,
 * committed with that status, was not yet visible to the other read.
 */
export async function getTask(pool: Pool, id: string, tenant: string): Promise<{ task: TaskRow; runs: RunRow[] } | null> {
  return inTransaction(pool, async (client) => {
    const t = await client.query<TaskRow>(`SELECT ${TASK_COLUMNS} FROM tasks WHERE id = $1 AND tenant = $2`, [id, tenant]);
    const task = t.rows[0];
    const r = task
      ? await client.query<RunRow>(
          `SELECT attempt, worker_id, started_at, finished_at, outcome, error, error_type, error_stack, duration_ms
             FROM task_runs WHERE task_id = $1 ORDER BY attempt, started_at, finished_at`,
          [id],
        )
      : null;
    return task ? { task, runs: r!.rows } : null;
  }, READ_SNAPSHOT);
}

/**
 * Deletes expired idempotency keys in bounded batches; returns how many went. The expiry is checked
 * again on the row deleted: a key claimed again by a new request (createRound) while this statement
 * waited for its row lock is live, and Postgres rechecks only the outer condition on the row's new
 * version, not the subquery's; without it the new task lost its key, and a replay made a second task.
 */
export async function pruneIdempotencyKeys(pool: Pool, limit: number): Promise<number> {
  const res = await pool.query(
    `DELETE FROM idempotency_keys WHERE (tenant, key) IN (
       SELECT tenant, key FROM idempotency_keys WHERE expires_at <= now() ORDER BY expires_at LIMIT $1)
       AND expires_at <= now()`,
    [limit],
  );
  return res.rowCount ?? 0;
}
