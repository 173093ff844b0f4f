/**
 * Helpers for the schedule tests on real worker processes: a database and Redis namespace of their
 * own, N built workers (dist/services/worker/main.js) on them, and the schedules' tasks as seen in
 * Postgres.
 */
import { Client } from 'pg';
import { ChildHandle, freePort, spawnService } from './processes';
import { createTestDatabase, TestDatabase, testRedisAddr, uniqueRedisPrefix } from './test-env';

export interface ScheduleWorld {
  db: TestDatabase;
  pg: Client;
  env: Record<string, string>;
  workers: ChildHandle[];
}

export async function createWorld(label: string, env: Record<string, string>): Promise<ScheduleWorld> {
  const db = await createTestDatabase();
  const pg = new Client({ connectionString: db.url });
  await pg.connect();
  return { db, pg, workers: [], env: { POSTGRES_URL: db.url, REDIS_ADDR: testRedisAddr(), REDIS_KEY_PREFIX: uniqueRedisPrefix(label), LOG_LEVEL: 'info', ...env } };
}

export async function startWorkers(w: ScheduleWorld, n: number): Promise<void> {
  const started = await Promise.all(
    Array.from({ length: n }, async (_, i) => spawnService('dist/services/worker/main.js', { ...w.env, WORKER_ID: `sched-${i}-${Date.now()}`, METRICS_ADDR: `127.0.0.1:${await freePort()}` })),
  );
  w.workers.push(...started);
}

/** SIGTERM to every worker (a graceful stop); each must exit 0. */
export async function stopWorkers(w: ScheduleWorld): Promise<(number | null)[]> {
  const codes = await Promise.all(w.workers.map((c) => c.stop('SIGTERM', 20_000)));
  w.workers = [];
  return codes;
}

export async function createSchedule(pg: Client, name: string, fields: { cron?: string; misfire?: string; catch_up_limit?: number; nextTick: string }): Promise<void> {
  const task = { type: 'noop', payload: { schedule: name }, priority: 'high', max_retries: 0, retry: null, timeout_ms: null };
  await pg.query(
    `INSERT INTO schedules (tenant, name, cron, task, misfire, catch_up_limit, next_tick) VALUES ('default', $1, $2, $3, $4, $5, ${fields.nextTick})`,
    [name, fields.cron ?? '* * * * * *', JSON.stringify(task), fields.misfire ?? 'skip', fields.catch_up_limit ?? 10],
  );
}

export interface TickTask {
  tick: number;
  createdAt: number;
  status: string;
  runs: number;
}

/** The schedule's tasks by tick, with how many attempts each recorded. */
export async function tickTasks(pg: Client, name: string): Promise<TickTask[]> {
  const { rows } = await pg.query<{ tick: Date; created_at: Date; status: string; runs: number }>(
    `SELECT t.scheduled_for AS tick, t.created_at, t.status::text AS status, (SELECT count(*)::int FROM task_runs r WHERE r.task_id = t.id) AS runs
       FROM tasks t WHERE t.tenant = 'default' AND t.schedule = $1 ORDER BY t.scheduled_for`,
    [name],
  );
  return rows.map((r) => ({ tick: r.tick.getTime(), createdAt: r.created_at.getTime(), status: r.status, runs: r.runs }));
}

/** Whole seconds in [fromMs, toMs], as epoch milliseconds. */
export function seconds(fromMs: number, toMs: number): number[] {
  const out: number[] = [];
  for (let t = Math.ceil(fromMs / 1000) * 1000; t <= toMs; t += 1000) out.push(t);
  return out;
}
