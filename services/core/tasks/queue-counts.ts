/**
 * The Postgres half of GET /queues: one tenant's tasks scheduled (delayed, not yet due), running
 * (recorded as such), retrying, dead and cancelled, per priority. Read through the partial indexes
 * of scheduled, unfinished, and dead and cancelled tasks, never the whole table; queued tasks are
 * counted in Redis (their ready lists). Delayed tasks are only in Postgres until due.
 */
import type { Pool } from 'pg';
import { PRIORITIES, Priority } from './priority';

export interface PriorityCounts {
  scheduled: number;
  running: number;
  retrying: number;
  dead: number;
  cancelled: number;
}

export async function tenantTaskCounts(pool: Pool, tenant: string): Promise<Record<Priority, PriorityCounts>> {
  const { rows } = await pool.query<{ priority: Priority; status: keyof PriorityCounts; n: number }>(
    `SELECT priority, status::text AS status, count(*)::int AS n FROM tasks
      WHERE tenant = $1 AND status IN ('running', 'retrying') GROUP BY 1, 2
     UNION ALL
     SELECT priority, status::text, count(*)::int FROM tasks
      WHERE tenant = $1 AND status IN ('scheduled') GROUP BY 1, 2
     UNION ALL
     SELECT priority, status::text, count(*)::int FROM tasks
      WHERE tenant = $1 AND status IN ('dead', 'cancelled') GROUP BY 1, 2`,
    [tenant],
  );
  const out = Object.fromEntries(PRIORITIES.map((p) => [p, { scheduled: 0, running: 0, retrying: 0, dead: 0, cancelled: 0 }])) as Record<Priority, PriorityCounts>;
  for (const r of rows) if (out[r.priority]) out[r.priority][r.status] = r.n;
  return out;
}
