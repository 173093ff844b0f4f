/**
 * A reaper pass whose settle fails (a partition that did not answer within its bound) after
 * Postgres took the lost attempts: those attempts are counted all the same. Redis reclaimed their
 * leases already, so no later pass sees them again: a count skipped here is lost for good.
 */
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { DependencyTimeoutError } from '../../services/core/process/with-timeout';
import type { TaskQueue } from '../../services/core/queue/queue';
import { submitTask } from '../../services/core/tasks/submit';
import { Reaper } from '../../services/worker/reaper';
import { silentLog, stackFixture, taskStatus } from '../support/stack';

const fx = stackFixture();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('the lost attempts Postgres took are counted even when the settle of another reclaimed lease fails', async () => {
  const deps = { pool: fx.stack.pool, queue: fx.stack.queue, log: silentLog, idempotencyTtlMs: 60_000 };
  const submit = async (maxRetries: number) => {
    const res = await submitTask(deps, { type: 'noop', priority: 'high', payload: {}, maxRetries, tenant: 'default', idempotencyKey: null, canonical: '' });
    if (res.kind === 'conflict') throw new Error('unexpected conflict');
    return res.task.id;
  };
  const lost = await submit(0);
  const deleted = await submit(2);
  // Both leased by a worker that died; one of them is deleted from Postgres meanwhile, so its
  // reclaimed lease is settled with what Postgres says.
  expect(await fx.stack.queue.lease({ max: 2, visibilityMs: 1, owner: 'gone' })).toHaveLength(2);
  await fx.stack.pool.query('DELETE FROM tasks WHERE id = $1', [deleted]);
  await sleep(5);
  // The settle's partition does not answer in time.
  const queue: TaskQueue = Object.create(fx.stack.queue, {
    settle: { value: () => Promise.reject(new DependencyTimeoutError('partition 1 did not answer a settle call within 2000 ms')) },
  });
  const registry = createRegistry('worker');
  const reaper = new Reaper({ pool: fx.stack.pool, queue, metrics: workerMetrics(registry), typeLabel: (t) => t }, 100, 60_000, silentLog);
  await expect(reaper.runOnce()).rejects.toThrow(DependencyTimeoutError);
  expect(await taskStatus(fx.stack.pool, lost)).toMatchObject({ status: 'dead', attempts: 1 });
  const value = async (name: string) => (await registry.getMetricsAsJSON()).find((m) => m.name === name)!.values.reduce((n, v) => n + v.value, 0);
  expect(await value('tasks_dead_total')).toBe(1);
  expect(await value('tasks_failed_total')).toBe(1);
  // Nothing left for a later pass to count.
  expect(await fx.stack.queue.reap(100, 50)).toEqual([]);
});
