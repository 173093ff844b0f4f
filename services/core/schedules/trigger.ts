/**
 * A manual trigger (POST /schedules/{name}/trigger): one task of the schedule's, created now, outside
 * its ticks. It names the schedule with no tick (scheduled_for NULL), so it never takes a tick's
 * place, and is indexed in Redis like any submission (a failed push is the reconciler's).
 */
import type { Pool } from 'pg';
import type { Logger } from '../observability/logger';
import type { TaskQueue } from '../queue/queue';
import { indexStored } from '../tasks/submit';
import { TASK_COLUMNS, TaskRow } from '../tasks/task';
import { uuidv7 } from '../tasks/uuid';

export interface TriggerDeps {
  pool: Pool;
  queue: TaskQueue;
  log: Logger;
  idempotencyTtlMs: number;
}

/** The task created, or null when the tenant has no schedule of that name (paused or not). */
export async function triggerSchedule(deps: TriggerDeps, tenant: string, name: string): Promise<TaskRow | null> {
  const { rows } = await deps.pool.query<TaskRow>({
    name: 'trigger-schedule',
    text: `INSERT INTO tasks (id, tenant, type, priority, payload, max_retries, retry, timeout_ms, status, schedule, scheduled_for)
           SELECT $3, tenant, task->>'type', task->>'priority', COALESCE(task->'payload', '{}'::jsonb), (task->>'max_retries')::int,
                  NULLIF(task->'retry', 'null'::jsonb), (task->>'timeout_ms')::int, 'queued', name, NULL
             FROM schedules WHERE tenant = $1 AND name = $2
           RETURNING ${TASK_COLUMNS}`,
    values: [tenant, name, uuidv7()],
  });
  const task = rows[0];
  if (!task) return null;
  await indexStored(deps, [{ kind: 'created', task }]);
  return task;
}
