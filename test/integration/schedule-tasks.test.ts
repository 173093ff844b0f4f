/**
 * A schedule's tasks against real Postgres and Redis: a tick's task is inserted at most once, a
 * manual trigger never takes a tick's place, and triggered tasks reach Redis after the commit.
 */
import { insertScheduleTasks, triggerSchedule } from '../../services/core/schedules/schedule-tasks';
import type { ScheduleTask } from '../../services/core/schedules/schedule';
import { createStack, silentLog, Stack } from '../support/stack';

let stack: Stack;
beforeEach(async () => {
  stack = await createStack();
});
afterEach(async () => {
  await stack.close();
});

const task: ScheduleTask = { type: 'noop', payload: { report: 'daily' }, priority: 'high', max_retries: 2, retry: null, timeout_ms: 5000 };

async function createSchedule(tenant: string, name: string): Promise<void> {
  await stack.pool.query(`INSERT INTO schedules (tenant, name, cron, task, next_tick) VALUES ($1, $2, '* * * * *', $3, now() + interval '1 minute')`, [tenant, name, JSON.stringify(task)]);
}

it("inserts a tick's task once, however often it is inserted", async () => {
  const tick = new Date('2026-12-06T01:00:00Z');
  const client = await stack.pool.connect();
  try {
    const [first] = await insertScheduleTasks(client, { tenant: 'default', name: 'nightly', task }, [tick]);
    expect(first).toMatchObject({ tenant: 'default', type: 'noop', priority: 'high', status: 'queued', payload: { report: 'daily' }, max_retries: 2, timeout_ms: 5000, schedule: 'nightly', scheduled_for: tick, attempts: 0 });
    expect(await insertScheduleTasks(client, { tenant: 'default', name: 'nightly', task }, [tick])).toEqual([]);
    // Another tenant's schedule of the same name has ticks of its own.
    expect(await insertScheduleTasks(client, { tenant: 'other', name: 'nightly', task }, [tick])).toHaveLength(1);
  } finally {
    client.release();
  }
  const { rows } = await stack.pool.query('SELECT tenant, count(*)::int AS n FROM tasks GROUP BY tenant ORDER BY tenant');
  expect(rows).toEqual([{ tenant: 'default', n: 1 }, { tenant: 'other', n: 1 }]);
});

it('triggers a schedule now: a task outside its ticks, indexed in Redis; null for no such schedule', async () => {
  await createSchedule('acme', 'report');
  const deps = { pool: stack.pool, queue: stack.queue, log: silentLog };
  const a = await triggerSchedule(deps, 'acme', 'report');
  const b = await triggerSchedule(deps, 'acme', 'report');
  expect(a).toMatchObject({ tenant: 'acme', schedule: 'report', scheduled_for: null, status: 'queued', type: 'noop' });
  expect(b!.id).not.toBe(a!.id);
  expect(await triggerSchedule(deps, 'default', 'report')).toBeNull();
  expect(await triggerSchedule(deps, 'acme', 'missing')).toBeNull();
  const leases = await stack.queue.lease({ max: 10, visibilityMs: 10_000, owner: 'test' });
  expect(leases.map((l) => l.message.id).sort()).toEqual([a!.id, b!.id].sort());
  expect(leases[0]!.message).toMatchObject({ tenant: 'acme', type: 'noop', priority: 'high', payload: { report: 'daily' }, timeoutMs: 5000 });
});
