/**
 * GET /queues on the test profile's Redis Cluster with the master of the control slot (worker
 * announcements) stalled (CLIENT PAUSE ALL): a tenant whose partition another master serves gets
 * its queues within passWaitMs, `workers` null (not known). Before, every tenant's GET /queues
 * waited for that master (or failed with it), whichever partition held the tenant.
 */
process.env.TEST_REDIS_MODE = 'cluster';
// It stalls masters: on a cluster of its jest worker's own (cluster-mode.ts, testClusterProfile).
process.env.TEST_CLUSTER_STALLS = '1';
import { QueuesView } from '../../services/api/operator/queues-route';
import { partitionMasters, passWaitQueue, tenantWhere, whilePaused } from '../support/cluster-stall';
import { stackFixture } from '../support/stack';

const fx = stackFixture({}, { each: true, timeoutMs: 120_000 });

it('a stalled control slot leaves the other masters\' tenants their queues, workers not known', async () => {
  const { stack } = fx;
  const prefix = stack.cfg.REDIS_KEY_PREFIX;
  const queue = passWaitQueue(stack);
  const { control, masters } = await partitionMasters(stack.redis, prefix);
  const tenant = tenantWhere(masters, (m) => m !== control, 't');
  await queue.enqueue([{ id: '00000000-0000-4000-8000-000000000001', tenant, type: 'noop', priority: 'default', payload: {}, maxAttempts: 3, createdAtMs: Date.now(), attempts: 0 }]);
  await queue.announceWorker('worker-q', 60_000, 4);
  const view = new QueuesView({ pool: stack.pool, queue }, 0);
  expect((await view.get(tenant)).workers).toEqual([{ id: 'worker-q', slots: 4 }]);

  await whilePaused(control, 4000, 'ALL', async () => {
    const started = Date.now();
    const answer = await view.get(tenant);
    // Before: the answer waited for the pause to end (about 4 s).
    expect(Date.now() - started).toBeLessThan(2000);
    expect(answer.workers).toBeNull();
    expect((answer.priorities as Record<string, { queued: number }>).default!.queued).toBe(1);
  });
}, 60_000);
