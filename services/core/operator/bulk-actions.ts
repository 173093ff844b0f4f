/**
 * Bulk cancel and retry (POST /tasks/cancel, POST /tasks/retry: the dead-letter redrive). The tasks
 * matching a filter are walked newest first in pages of `batch` (a keyset cursor, so the walk ends
 * even when some cannot change), and each page goes through the single-task use cases, which lock
 * and check every row again. So a task is changed at most once however many bulk calls race, each
 * page is committed on its own (a call that fails part way has changed what it reported so far,
 * and calling again carries on with the rest: the changed ones no longer match), and one call
 * changes at most `limit` tasks, which the caller bounds by a setting.
 */
import type { Pool } from 'pg';
import type { Logger } from '../observability/logger';
import type { TaskQueue } from '../queue/queue';
import type { TaskStatus } from '../tasks/priority';
import { newestFirst } from '../tasks/status-indexes';
import { cancelTasks } from './cancel-tasks';
import { retryTasks } from './retry-tasks';

/** A condition on `tasks` (no tenant, no status: those are added here) and its parameters, numbered from $1. */
export interface TaskCondition {
  sql: string;
  values: unknown[];
}

export interface BulkRequest {
  /** The caller's filter besides tenant and status. */
  where: TaskCondition;
  /** The statuses to act on (each action allows only some). */
  statuses: string[];
  limit: number;
  dryRun: boolean;
}

export interface BulkResult {
  /** Tasks that matched, up to `limit`. */
  matched: number;
  /** Of those, the ones this call changed (a racing call may have changed the others first). */
  changed: number;
  /** More tasks match beyond `limit`: call again to carry on. */
  has_more: boolean;
}

export interface BulkDeps {
  pool: Pool;
  queue: TaskQueue;
  log: Logger;
  /** Tasks per page (BULK_BATCH): one transaction and one Redis call each. */
  batch: number;
}

export type BulkAction = 'cancel' | 'retry';

/** Runs `action` over the tasks of `tenant` that `req` selects. */
export async function bulkAction(deps: BulkDeps, action: BulkAction, tenant: string, req: BulkRequest): Promise<BulkResult & { byKind: Record<string, number> }> {
  const byKind: Record<string, number> = {};
  let matched = 0;
  let changed = 0;
  let after: { createdAt: string; id: string } | null = null;
  for (;;) {
    const want = Math.min(deps.batch, req.limit - matched);
    if (want <= 0) break;
    const page = await matching(deps.pool, tenant, req, after, want);
    if (page.length === 0) break;
    matched += page.length;
    const last = page[page.length - 1]!;
    after = { createdAt: last.created_at, id: last.id };
    if (req.dryRun) {
      if (page.length < want) break;
      continue;
    }
    const ids = page.map((r) => r.id);
    if (action === 'cancel') {
      for (const o of await cancelTasks(deps, tenant, ids)) {
        if (o.kind === 'cancelled' || o.kind === 'cancelling') {
          changed++;
          byKind[o.kind === 'cancelled' ? 'waiting' : 'running'] = (byKind[o.kind === 'cancelled' ? 'waiting' : 'running'] ?? 0) + 1;
        }
      }
    } else {
      for (const o of await retryTasks(deps, tenant, ids)) {
        if (o.kind === 'retried') {
          changed++;
          byKind[o.from] = (byKind[o.from] ?? 0) + 1;
        }
      }
    }
    if (page.length < want) break;
  }
  const hasMore = matched >= req.limit && after !== null && (await matching(deps.pool, tenant, req, after, 1)).length > 0;
  return { matched, changed, has_more: hasMore, byKind };
}

/** The next page of matching tasks after `after`, newest first: ids and created_at at full precision. */
async function matching(pool: Pool, tenant: string, req: BulkRequest, after: { createdAt: string; id: string } | null, limit: number): Promise<{ id: string; created_at: string }[]> {
  const n = req.where.values.length;
  // The cursor condition only when there is one, so it bounds the index scan.
  const cursor = after ? `AND (created_at, id) < ($${n + 3}::timestamptz, $${n + 4}::uuid)` : '';
  const { rows } = await pool.query<{ id: string; created_at_text: string }>(
    newestFirst(
      req.statuses as TaskStatus[],
      (p) => `SELECT id, created_at, created_at::text AS created_at_text FROM tasks
        WHERE tenant = $${n + 1} AND ${p} AND status = ANY($${n + 2}::task_status[])
          ${req.where.sql ? `AND (${req.where.sql})` : ''} ${cursor}
        ORDER BY created_at DESC, id DESC
        LIMIT ${limit}`,
      limit,
    ),
    [...req.where.values, tenant, req.statuses, ...(after ? [after.createdAt, after.id] : [])],
  );
  return rows.map((r) => ({ id: r.id, created_at: r.created_at_text }));
}
