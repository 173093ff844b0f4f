/**
 * Postgres side of delayed tasks (`run_at`, `delay_ms`): the ones coming within the horizon, for
 * the loader to put into Redis ahead of time; marking the ones long due but not started as
 * `queued`; and counting those still waiting. All read through tasks_scheduled_due_idx (migration
 * 0014), so far-future tasks cost nothing until they come close.
 */
import type { Pool } from 'pg';
import { PRIORITIES, Priority } from './priority';
import { TASK_COLUMNS, TaskRow } from './task';

/** A task read without its payload (up to 1 MiB each, a page of them could outgrow a worker's heap), with the payload's size as JSON text. */
export type DueTask = TaskRow & { payload_bytes: number };

export interface DueSoon {
  tasks: DueTask[];
  /** The database's now() + horizon: everything due up to here was read, unless the page was full. */
  until: Date;
}

/** Where a walk of scheduled tasks by due time stopped. */
export interface DueCursor {
  runAt: Date;
  id: string;
}

/**
 * Scheduled tasks due within `horizonMs` of the database's clock, after `after` (null: from the
 * start) and more than `leadMs` from now, in due order, at most `limit` (payloads as JSON text).
 * Tasks due sooner are left alone: they may be leased already (the API indexes a task due within
 * its horizon at once), and a task due but not in Redis is marked `queued` (markDueQueued) and
 * then indexed by the reconciler, which checks that it is still waiting. Payloads are not read
 * here: the loader reads them a bounded number of bytes at a time (reconcile-store's payloadTexts).
 */
export async function scheduledDueSoon(pool: Pool, after: DueCursor | null, horizonMs: number, leadMs: number, limit: number): Promise<DueSoon> {
  const cols = TASK_COLUMNS.split(', ').filter((c) => c !== 'payload');
  // One statement, one now(): `until` must be the bound this read used, also when it found nothing.
  // (Read again afterwards, it moved on: a task due in between lay behind the loader's mark, unread.)
  type Due = DueTask;
  const { rows } = await pool.query<(Due | { id: null }) & { until: Date }>({
    name: after ? 'delayed-due-soon-after' : 'delayed-due-soon',
    text: `SELECT t.*, w.until
             FROM (SELECT now() + $1 * interval '1 millisecond' AS until, now() + $2 * interval '1 millisecond' AS lead) w
             LEFT JOIN LATERAL (
               SELECT ${cols.join(', ')}, NULL AS payload, octet_length(payload::text) AS payload_bytes
                 FROM tasks
                WHERE status = 'scheduled' AND run_at <= w.until AND run_at > w.lead
                  ${after ? 'AND (run_at, id) > ($4::timestamptz, $5::uuid)' : ''}
                ORDER BY run_at, id LIMIT $3) t ON true`,
    values: after ? [horizonMs, leadMs, limit, after.runAt.toISOString(), after.id] : [horizonMs, leadMs, limit],
  });
  return { tasks: rows.filter((r): r is Due & { until: Date } => r.id !== null), until: rows[0]!.until };
}

/**
 * Marks scheduled tasks due more than `lagMs` ago as `queued` (at most `limit`): they are due and
 * waiting for a worker. Those started within that time went from `scheduled` to `running` at their
 * start and are never touched here. Returns how many.
 */
export async function markDueQueued(pool: Pool, lagMs: number, limit: number): Promise<number> {
  const res = await pool.query({
    name: 'delayed-mark-due',
    text: `UPDATE tasks SET status = 'queued', updated_at = now()
            WHERE id IN (SELECT id FROM tasks
                          WHERE status = 'scheduled' AND run_at <= now() - $1 * interval '1 millisecond'
                          ORDER BY run_at LIMIT $2 FOR UPDATE SKIP LOCKED)
              AND status = 'scheduled'`,
    values: [lagMs, limit],
  });
  return res.rowCount ?? 0;
}

/** Scheduled tasks not yet due, by priority; a statement timeout bounds the cost on a huge table (null then). */
export async function countScheduled(pool: Pool, timeoutMs: number): Promise<Record<Priority, number> | null> {
  const client = await pool.connect();
  let failed: Error | undefined;
  try {
    await client.query('BEGIN');
    await client.query(`SET LOCAL statement_timeout = ${Math.max(1, Math.floor(timeoutMs))}`);
    const { rows } = await client.query<{ priority: Priority; n: number }>(`SELECT priority, count(*)::int AS n FROM tasks WHERE status = 'scheduled' GROUP BY priority`);
    await client.query('COMMIT');
    const out = Object.fromEntries(PRIORITIES.map((p) => [p, 0])) as Record<Priority, number>;
    for (const r of rows) if (r.priority in out) out[r.priority] = r.n;
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    if ((err as { code?: string }).code === '57014') return null;
    failed = err as Error;
    throw err;
  } finally {
    client.release(failed);
  }
}
