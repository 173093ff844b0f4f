/**
 * The tasks a schedule creates: one per tick (scheduled_for = the tick), inserted inside the
 * caller's transaction so the schedule's own update commits with them or not at all, and manual
 * runs (scheduled_for = NULL) outside the schedule's ticks.
 */
import { inTransaction } from '../db/transaction';
import type { Pool, PoolClient } from 'pg';
import type { Logger } from '../observability/logger';
import type { TaskQueue } from '../queue/queue';
import type { EnqueueItem } from '../queue/queue';
import { enqueueItem } from '../tasks/submit';
import { TASK_COLUMNS, TaskRow } from '../tasks/task';
import { uuidv7 } from '../tasks/uuid';
import type { ScheduleTask } from './schedule';

/** What a schedule's tasks are made from: its key and the task each tick creates. */
export interface ScheduleSource {
  tenant: string;
  name: string;
  task: ScheduleTask;
}

/**
 * Inserts one `queued` task per entry of `ticks` (null: a manual run) for `schedule`, in the
 * caller's transaction. A tick that already has its task is skipped by the unique index
 * tasks_schedule_tick_key (ON CONFLICT DO NOTHING), so however many workers fire the same tick,
 * it creates at most one task. Returns the rows actually inserted.
 *
 * The rows share the schedule's payload object rather than each reading its copy back: a catch-up
 * of a thousand ticks of a large payload would otherwise hold a thousand copies at once.
 */
export async function insertScheduleTasks(client: PoolClient, schedule: ScheduleSource, ticks: (Date | null)[]): Promise<TaskRow[]> {
  if (ticks.length === 0) return [];
  const t = schedule.task;
  const payload = t.payload ?? null;
  const { rows } = await client.query<TaskRow>({
    name: 'insert-schedule-tasks',
    text: `INSERT INTO tasks (id, tenant, type, priority, payload, max_retries, retry, timeout_ms, schedule, scheduled_for, status)
           SELECT i.id, $3, $4, $5, $6::jsonb, $7, $8::jsonb, $9, $10, i.scheduled_for, 'queued'
             FROM unnest($1::uuid[], $2::timestamptz[]) AS i(id, scheduled_for)
           ON CONFLICT (tenant, schedule, scheduled_for) WHERE scheduled_for IS NOT NULL DO NOTHING
           RETURNING ${COLUMNS_BUT_PAYLOAD}`,
    values: [
      ticks.map(() => uuidv7()),
      ticks.map((d) => (d ? d.toISOString() : null)),
      schedule.tenant,
      t.type,
      t.priority,
      JSON.stringify(payload),
      t.max_retries,
      t.retry ? JSON.stringify(t.retry) : null,
      t.timeout_ms ?? null,
      schedule.name,
    ],
  });
  for (const row of rows) row.payload = payload;
  return rows;
}

const COLUMNS_BUT_PAYLOAD = TASK_COLUMNS.split(', ')
  .filter((c) => c !== 'payload')
  .join(', ');

/** Payload bytes pushed to Redis in one call while indexing a pass's tasks. */
const PUSH_BYTES = 8 * 1048576;

export interface ScheduleTaskDeps {
  pool: Pool;
  queue: TaskQueue;
  log: Logger;
}

/**
 * Indexes tasks committed in Postgres in Redis, a bounded number of payload bytes per call, each
 * payload written out once however many ticks share it. Never throws: a failed push leaves them
 * `queued` in Postgres, and the reconciler queues them.
 */
export async function indexScheduleTasks(deps: ScheduleTaskDeps, tasks: TaskRow[]): Promise<void> {
  const texts = new Map<unknown, string>();
  let items: EnqueueItem[] = [];
  let bytes = 0;
  for (const task of tasks) {
    let text = texts.get(task.payload);
    if (text === undefined) texts.set(task.payload, (text = JSON.stringify(task.payload)));
    items.push(enqueueItem(task, text));
    bytes += text.length;
    if (bytes >= PUSH_BYTES) {
      await push(deps, items);
      items = [];
      bytes = 0;
    }
  }
  await push(deps, items);
}

async function push(deps: ScheduleTaskDeps, items: EnqueueItem[]): Promise<void> {
  if (items.length === 0) return;
  try {
    // On a Redis Cluster, each partition within its bound: a stalled master must not hold the
    // pass, and every tenant's schedules with it (its tasks are the reconciler's, as below).
    const pushed = deps.queue.pushAnswering ? await deps.queue.pushAnswering(items, false) : await deps.queue.enqueue(items);
    const missed = items.filter((_, i) => pushed[i] === undefined);
    if (missed.length > 0) deps.log.warn({ count: missed.length, taskIds: missed.slice(0, 10).map((t) => t.id) }, 'tasks stored but their Redis partition did not answer; the reconciler will queue them');
  } catch (err) {
    deps.log.error({ err, count: items.length, taskIds: items.slice(0, 10).map((t) => t.id) }, 'tasks stored but not queued in Redis; the reconciler will queue them');
  }
}

/**
 * Runs a schedule now, outside its ticks (POST /schedules/:name/trigger): one task with
 * `schedule = name` and `scheduled_for = NULL`, so it never takes the place of a tick's task. A
 * paused schedule may be triggered too. Returns null when `tenant` has no schedule `name`.
 */
export async function triggerSchedule(deps: ScheduleTaskDeps, tenant: string, name: string): Promise<TaskRow | null> {
  const task = await inTransaction(deps.pool, async (client) => {
    // FOR KEY SHARE: a concurrent delete of the schedule waits for this run's commit (or the run sees no schedule).
    const { rows } = await client.query<ScheduleSource>('SELECT tenant, name, task FROM schedules WHERE tenant = $1 AND name = $2 FOR KEY SHARE', [tenant, name]);
    const schedule = rows[0];
    return schedule ? ((await insertScheduleTasks(client, schedule, [null]))[0] ?? null) : null;
  });
  if (task) await indexScheduleTasks(deps, [task]);
  return task;
}
