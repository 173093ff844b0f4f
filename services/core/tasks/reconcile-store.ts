/**
 * Postgres side of the reconciler: which unfinished tasks exist, and the payloads of those it
 * re-queues. Pages carry no payloads (up to 1 MiB each, a page of them could outgrow the worker's
 * heap); payloads are read for the tasks actually re-queued, a bounded number of bytes at a time.
 */
import type { Pool, PoolClient } from 'pg';
import type { EnqueueItem } from '../queue/queue';
import { maxAttempts, RetryPolicy } from './backoff';
import type { Priority, TaskStatus } from './priority';

export interface UnfinishedTask {
  id: string;
  tenant: string;
  type: string;
  priority: Priority;
  status: TaskStatus;
  attempts: number;
  max_retries: number;
  /** Attempts counted before an operator's retry (see backoff.ts maxAttempts). */
  retry_base: number;
  /** The task's own retry policy and timeout, carried in its Redis message. */
  retry: RetryPolicy | null;
  timeout_ms: number | null;
  lease_token: string | null;
  run_after: Date | null;
  /** A delayed task's due time (`scheduled`: it waits in its due-time set until then). */
  run_at: Date | null;
  /** An operator asked to cancel it (POST /tasks/:id/cancel answered 202). */
  cancel_requested: boolean;
  created_at: Date;
  /** updated_at as Postgres prints it: microsecond precision, which a JS Date would truncate. */
  updated_at_text: string;
  /** created_at so, for the walk's cursor. */
  created_at_text: string;
  /** A workflow step's key (null: not a step). */
  step_key: string | null;
}

const UNFINISHED = "status IN ('queued', 'running', 'retrying')";
/**
 * Read by id, a delayed task (`scheduled`) counts too: Redis holds one due within the horizon, and
 * one the sweep found held nowhere is indexed again by due time (the walk by page leaves them to
 * the delayed loader, whose mark is past it).
 */
const UNFINISHED_OR_SCHEDULED = "status IN ('scheduled', 'queued', 'running', 'retrying')";
export const UNFINISHED_COLUMNS = 'id, tenant, type, priority, status, attempts, max_retries, retry_base, retry, timeout_ms, lease_token, run_after, run_at, cancel_requested_at IS NOT NULL AS cancel_requested, created_at, updated_at::text AS updated_at_text, created_at::text AS created_at_text, step_key';

/** Where a walk of the unfinished tasks stopped: they are walked in (tenant, created_at, id) order. */
export interface Cursor {
  tenant: string;
  createdAt: string;
  id: string;
}

/** What Redis needs to index a task read as UnfinishedTask, with its payload as JSON text. */
export function queueItemOf(t: UnfinishedTask, payloadJson: string): EnqueueItem {
  const item: EnqueueItem = {
    id: t.id,
    tenant: t.tenant,
    type: t.type,
    priority: t.priority,
    payload: undefined,
    payloadJson,
    maxAttempts: maxAttempts(t.max_retries, t.retry_base),
    createdAtMs: t.created_at.getTime(),
    attempts: t.attempts,
    dueAtMs: t.status === 'retrying' && t.run_after ? t.run_after.getTime() : 0,
  };
  if (t.status === 'scheduled' && t.run_at) item.dueAtMs = item.runAtMs = t.run_at.getTime();
  if (t.retry) item.retry = t.retry;
  if (t.timeout_ms) item.timeoutMs = t.timeout_ms;
  if (t.step_key) item.stepKey = t.step_key;
  if (t.retry_base > 0) item.retryBase = t.retry_base;
  return item;
}

/**
 * The next `limit` unfinished tasks in (tenant, created_at, id) order after `after`, read through
 * tasks_tenant_unfinished_idx, and of them those untouched for `graceMs` (the others are busy, not
 * lost): the reconciler walks the whole set a bounded page at a time, however many were just
 * submitted. Creation order, unlike update order, does not move under the walk.
 */
export async function unfinishedTasks(pool: Pool, graceMs: number, limit: number, after: Cursor | null): Promise<{ settled: UnfinishedTask[]; next: Cursor | null }> {
  // The cursor condition only when there is one, so it bounds the index scan.
  const cursor = after ? 'AND (tenant, created_at, id) > ($3::text, $4::timestamptz, $5::uuid)' : '';
  const { rows } = await pool.query<UnfinishedTask & { settled: boolean }>(
    `SELECT ${UNFINISHED_COLUMNS}, updated_at < now() - $1 * interval '1 millisecond' AS settled
       FROM tasks
      WHERE ${UNFINISHED} ${cursor}
      ORDER BY tenant, created_at, id
      LIMIT $2`,
    [graceMs, limit, ...(after ? [after.tenant, after.createdAt, after.id] : [])],
  );
  const last = rows[rows.length - 1];
  return {
    settled: rows.filter((r) => r.settled),
    next: rows.length === limit && last ? { tenant: last.tenant, createdAt: last.created_at_text, id: last.id } : null,
  };
}

/** Those of `ids` a page of unfinishedTasks would check now: unfinished, untouched for graceMs. */
export async function settledByIds(pool: Pool, ids: string[], graceMs: number): Promise<UnfinishedTask[]> {
  if (ids.length === 0) return [];
  const { rows } = await pool.query<UnfinishedTask>(
    `SELECT ${UNFINISHED_COLUMNS} FROM tasks WHERE id = ANY($1::uuid[]) AND ${UNFINISHED} AND updated_at < now() - $2 * interval '1 millisecond'`,
    [ids, graceMs],
  );
  return rows;
}

/** Those of `ids` that are unfinished (delayed ones too), whenever they were last touched. */
export async function unfinishedByIds(pool: Pool, ids: string[]): Promise<UnfinishedTask[]> {
  if (ids.length === 0) return [];
  const { rows } = await pool.query<UnfinishedTask>(
    `SELECT ${UNFINISHED_COLUMNS} FROM tasks WHERE id = ANY($1::uuid[]) AND ${UNFINISHED_OR_SCHEDULED}`,
    [ids],
  );
  return rows;
}

/**
 * Per id still unfinished, the size in bytes of its payload as JSON text (what payloadTexts would
 * read); ids finished or gone meanwhile are absent. Postgres renders each payload to measure it,
 * but none crosses the wire.
 */
export async function payloadSizes(pool: Pool, ids: string[]): Promise<Map<string, number>> {
  if (ids.length === 0) return new Map();
  const { rows } = await pool.query<{ id: string; bytes: number }>(
    `SELECT id, octet_length(payload::text) AS bytes FROM tasks WHERE id = ANY($1::uuid[]) AND ${UNFINISHED_OR_SCHEDULED}`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, Number(r.bytes)]));
}

/**
 * Per id still unfinished, its payload as JSON text, unparsed: the queue sends it on as is
 * (EnqueueItem.payloadJson), so it is held once, as a string, and never as an object tree.
 */
export async function payloadTexts(pool: Pool | PoolClient, ids: string[], share = false): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  // `share`: the rows stay share-locked for the caller's transaction (see pushUnderShareLocks).
  const { rows } = await pool.query<{ id: string; payload: string }>(
    `SELECT id, payload::text AS payload FROM tasks WHERE id = ANY($1::uuid[]) AND ${UNFINISHED_OR_SCHEDULED}${share ? ' ORDER BY id FOR SHARE' : ''}`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r.payload]));
}

/**
 * Ends waiting tasks (queued, retrying) that an operator asked to cancel as `cancelled`, fenced on
 * both; returns the ids it ended.
 */
export async function finishCancelled(pool: Pool, ids: string[], reason: string): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const { rows } = await pool.query<{ id: string }>(
    `UPDATE tasks SET status = 'cancelled', finished_at = now(), run_after = NULL, lease_token = NULL, last_error = $2, updated_at = now()
      WHERE id = ANY($1::uuid[]) AND status IN ('scheduled', 'queued', 'retrying') AND cancel_requested_at IS NOT NULL
      RETURNING id`,
    [ids, reason],
  );
  return new Set(rows.map((r) => r.id));
}
