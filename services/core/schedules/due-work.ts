/**
 * Work only a worker starts, and when it is next due: the earliest tick of an unpaused cron
 * schedule (the workers' ticker fires it) and the earliest delayed task still waiting in Postgres
 * (status `scheduled`; the workers' loader brings those due beyond DELAYED_HORIZON_MS into Redis).
 * Neither shows in the queue gauges until a worker acts, so the API exports this for the
 * autoscaler to wake a worker from zero (docs/autoscaling.md).
 */
import type { Pool } from 'pg';

/** Seconds until each kind of work is next due (negative: overdue); null when there is none. */
export interface DueWork {
  schedule: number | null;
  delayed: number | null;
}

export async function nextDueWork(pool: Pool): Promise<DueWork> {
  // Each minimum is the first entry of a partial index (schedules_due_idx, tasks_scheduled_due_idx).
  const { rows } = await pool.query<DueWork>({
    name: 'next-due-work',
    text: `SELECT (SELECT extract(epoch FROM min(next_tick) - clock_timestamp()) FROM schedules WHERE NOT paused AND next_tick IS NOT NULL)::float8 AS schedule,
                  (SELECT extract(epoch FROM min(run_at) - clock_timestamp()) FROM tasks WHERE status = 'scheduled')::float8 AS delayed`,
  });
  return rows[0]!;
}
