/**
 * Fires due schedules: one transaction locks a batch of due schedules (FOR UPDATE SKIP LOCKED, so
 * replicas share the work without waiting for each other), inserts their ticks' tasks and advances
 * their next_tick, on the database's clock. A schedule's tasks and its advance commit together: a
 * failed insert never moves next_tick past a tick it did not create (river#1304), and a firer that
 * dies mid-pass leaves the schedule as it was. The unique index on (tenant, schedule,
 * scheduled_for) backs the lock up: a tick's task exists at most once whatever fires it.
 * Tasks are indexed in Redis after the commit; a failed push is left to the reconciler.
 *
 * Admission: ticks do not pass the API's per-tenant rate limit and unfinished cap (those guard the
 * HTTP edge, in Redis; a tick refused there would be lost or need a retry of its own). Their tasks
 * are counted by the unfinished true-up like any other, so the cap applies to the tenant's next
 * API submissions.
 */
import type { PoolClient } from 'pg';
import { nextTick } from './cron';
import { planTicks } from './tick-plan';
import { SCHEDULE_COLUMNS, ScheduleRow, TickOutcome } from './schedule';
import { indexScheduleTasks, insertScheduleTasks, ScheduleTaskDeps } from './schedule-tasks';
import type { TaskRow } from '../tasks/task';

export interface FireOptions {
  /** Schedules locked per transaction. */
  batch: number;
  /** SCHEDULE_MISFIRE_GRACE_MS. */
  graceMs: number;
  /** Schedules to leave out of this pass (`tenant NUL name`): ones that just failed, backing off. */
  exclude?: Iterable<string>;
}

export interface FireResult {
  /** Schedules handled (failed ones included); ones locked after FIRE_BYTES of tasks were read are left due. */
  schedules: number;
  /** Ticks whose task was created, dropped as missed, and skipped while the previous task ran. */
  fired: number;
  skippedMisfire: number;
  skippedOverlap: number;
  /** Ticks whose task existed already (nothing was created for them). */
  existing: number;
  /** Schedules whose firing failed: left unchanged, with the error. */
  failed: { key: string; err: Error }[];
  /** The batch was full, or stopped at FIRE_BYTES: more schedules may be due. */
  more: boolean;
  tasks: TaskRow[];
}

export const scheduleKey = (s: { tenant: string; name: string }): string => `${s.tenant}\u0000${s.name}`;

/**
 * Bytes of tasks (as JSON text) a pass reads before it stops taking schedules: a task's payload may
 * be up to MAX_BODY_BYTES, and a batch of them read at once (their tasks held until indexed after
 * the commit) could outgrow the worker's heap. Schedules locked past it stay due for the next pass.
 */
const FIRE_BYTES = 8 * 1048576;

/** A locked schedule without its task, read only when a tick fires. */
type LockedSchedule = Omit<ScheduleRow, 'task'> & { db_now: Date };
const LOCK_COLUMNS = SCHEDULE_COLUMNS.split(', ')
  .filter((c) => c !== 'task')
  .join(', ');

export async function fireDueSchedules(deps: ScheduleTaskDeps, opts: FireOptions): Promise<FireResult> {
  const excluded = [...(opts.exclude ?? [])].map((k) => k.split('\u0000'));
  const res: FireResult = { schedules: 0, fired: 0, skippedMisfire: 0, skippedOverlap: 0, existing: 0, failed: [], more: false, tasks: [] };
  const client = await deps.pool.connect();
  try {
    await client.query('BEGIN');
    await rewindAhead(client, opts.batch, excluded);
    // now(): the transaction's start, the one clock every decision of this pass uses.
    const { rows } = await client.query<LockedSchedule>({
      name: 'lock-due-schedules',
      text: `SELECT ${LOCK_COLUMNS}, now() AS db_now FROM schedules
              WHERE NOT paused AND next_tick IS NOT NULL AND next_tick <= now()
                AND (tenant, name) NOT IN (SELECT * FROM unnest($2::text[], $3::text[]))
              ORDER BY next_tick LIMIT $1 FOR UPDATE SKIP LOCKED`,
      values: [opts.batch, excluded.map((k) => k[0]), excluded.map((k) => k[1])],
    });
    res.more = rows.length === opts.batch;
    let bytes = 0;
    for (const s of rows) {
      if (bytes >= FIRE_BYTES) {
        res.more = true;
        break;
      }
      res.schedules++;
      // One schedule's failure (a bad row, a refused insert) is rolled back alone; the others still fire.
      await client.query('SAVEPOINT fire_schedule');
      try {
        const r = await fireOne(client, s, s.db_now, opts.graceMs);
        await client.query('RELEASE SAVEPOINT fire_schedule');
        bytes += r.taskBytes;
        res.fired += r.tasks.length;
        res.existing += r.existing;
        res.skippedMisfire += r.skippedMisfire;
        res.skippedOverlap += r.skippedOverlap;
        res.tasks.push(...r.tasks);
      } catch (err) {
        await client.query('ROLLBACK TO SAVEPOINT fire_schedule');
        res.failed.push({ key: scheduleKey(s), err: err as Error });
        deps.log.warn({ err, tenant: s.tenant, schedule: s.name }, 'firing a schedule failed; it stays due and is retried');
      }
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release(err as Error);
    throw err;
  }
  client.release();
  await indexScheduleTasks(deps, res.tasks);
  return res;
}

/**
 * Schedules whose last decided tick lies ahead of the database's clock: it was set back after a
 * pass fired by it (a forward step of hours, corrected), leaving next_tick as far ahead, and the
 * schedule would fire nothing until the clock caught up (the lag gauge reads 0 meanwhile). Their
 * next_tick goes back to the first tick after now; a tick fired already keeps its one task (the
 * unique index), and last_tick is set again by the next firing. Read through
 * schedules_last_tick_idx (migration 0026): normally an empty range.
 */
async function rewindAhead(client: PoolClient, batch: number, excluded: string[][]): Promise<void> {
  const { rows } = await client.query<Pick<ScheduleRow, 'tenant' | 'name' | 'cron' | 'timezone' | 'next_tick'> & { db_now: Date }>({
    name: 'lock-schedules-ahead',
    text: `SELECT tenant, name, cron, timezone, next_tick, now() AS db_now FROM schedules
            WHERE NOT paused AND last_tick IS NOT NULL AND last_tick > now()
              AND (tenant, name) NOT IN (SELECT * FROM unnest($2::text[], $3::text[]))
            LIMIT $1 FOR UPDATE SKIP LOCKED`,
    values: [batch, excluded.map((k) => k[0]), excluded.map((k) => k[1])],
  });
  for (const s of rows) {
    let next: Date | null;
    try {
      next = nextTick(s, s.db_now);
    } catch {
      continue; // An expression this runtime cannot read: its firing fails and is logged as such.
    }
    if (next === null || (s.next_tick !== null && next >= s.next_tick)) continue;
    await client.query({
      name: 'rewind-schedule',
      text: 'UPDATE schedules SET next_tick = $3, updated_at = now() WHERE tenant = $1 AND name = $2',
      values: [s.tenant, s.name, next],
    });
  }
}

interface OneResult {
  tasks: TaskRow[];
  /** Size of the task read (0: none fired, none read). */
  taskBytes: number;
  existing: number;
  skippedMisfire: number;
  skippedOverlap: number;
}

/** One locked, due schedule: plan its ticks, apply the overlap policy, insert, advance. */
async function fireOne(client: PoolClient, s: LockedSchedule, now: Date, graceMs: number): Promise<OneResult> {
  const plan = planTicks({ cron: s.cron, timezone: s.timezone, next_tick: s.next_tick!, misfire: s.misfire, catch_up_limit: s.catch_up_limit }, now, graceMs);
  let fire = plan.fire;
  let lastOutcome: TickOutcome = plan.lastOutcome;
  let skippedOverlap = 0;
  if (s.overlap === 'skip' && fire.length > 0) {
    // Ticks after the first would overlap the task it creates: a pass fires at most one, its latest.
    if (await anyTaskUnfinished(client, s)) {
      skippedOverlap = fire.length;
      fire = [];
      if (lastOutcome === 'fired') lastOutcome = 'skipped_overlap';
    } else {
      skippedOverlap = fire.length - 1;
      fire = fire.slice(-1);
    }
  }
  const task = fire.length > 0 ? await scheduleTask(client, s) : null;
  const tasks = task ? await insertScheduleTasks(client, { tenant: s.tenant, name: s.name, task: task.task }, fire) : [];
  await client.query({
    name: 'advance-schedule',
    text: `UPDATE schedules SET next_tick = $3, last_tick = $4, last_outcome = $5, updated_at = now() WHERE tenant = $1 AND name = $2`,
    values: [s.tenant, s.name, plan.nextTick, plan.lastTick, lastOutcome],
  });
  return { tasks, taskBytes: task?.bytes ?? 0, existing: fire.length - tasks.length, skippedMisfire: plan.missed, skippedOverlap };
}

/** The task of a schedule this transaction holds locked, and its size as JSON text. */
async function scheduleTask(client: PoolClient, s: Pick<ScheduleRow, 'tenant' | 'name'>): Promise<{ task: ScheduleRow['task']; bytes: number }> {
  const { rows } = await client.query<{ task: string }>({ name: 'schedule-task', text: 'SELECT task::text AS task FROM schedules WHERE tenant = $1 AND name = $2', values: [s.tenant, s.name] });
  const text = rows[0]!.task;
  return { task: JSON.parse(text) as ScheduleRow['task'], bytes: text.length };
}

/**
 * A task of the schedule (a tick's or a manual run's, however old) has not finished; read in the
 * firing transaction through tasks_schedule_unfinished_idx (migration 0024).
 */
async function anyTaskUnfinished(client: PoolClient, s: Pick<ScheduleRow, 'tenant' | 'name'>): Promise<boolean> {
  const { rows } = await client.query({
    name: 'schedule-unfinished-task',
    text: `SELECT 1 FROM tasks WHERE tenant = $1 AND schedule = $2 AND status IN ('scheduled', 'queued', 'running', 'retrying') LIMIT 1`,
    values: [s.tenant, s.name],
  });
  return rows.length > 0;
}

/** When the earliest unpaused schedule is due, on the database's clock, for the ticker's sleep and lag gauge. */
export interface DueSoon {
  /** Milliseconds until the earliest next_tick not excluded (negative: due already); null when none. */
  nextInMs: number | null;
  /** now − the earliest next_tick of all unpaused schedules, in seconds; 0 when none is due. */
  lagSeconds: number;
}

export async function dueSoon(deps: Pick<ScheduleTaskDeps, 'pool'>, exclude: Iterable<string> = []): Promise<DueSoon> {
  const excluded = [...exclude].map((k) => k.split('\u0000'));
  // Both minimums walk schedules_due_idx from its start; the excluded ones are few (they just failed).
  const { rows } = await deps.pool.query<{ next_ms: number | null; lag_s: number | null }>({
    name: 'schedules-due-soon',
    text: `SELECT (SELECT extract(epoch FROM min(next_tick) - clock_timestamp()) * 1000 FROM schedules
                    WHERE NOT paused AND next_tick IS NOT NULL AND (tenant, name) NOT IN (SELECT * FROM unnest($1::text[], $2::text[])))::float8 AS next_ms,
                  (SELECT extract(epoch FROM clock_timestamp() - min(next_tick)) FROM schedules WHERE NOT paused AND next_tick IS NOT NULL)::float8 AS lag_s`,
    values: [excluded.map((k) => k[0]), excluded.map((k) => k[1])],
  });
  const r = rows[0]!;
  return { nextInMs: r.next_ms, lagSeconds: Math.max(0, r.lag_s ?? 0) };
}
