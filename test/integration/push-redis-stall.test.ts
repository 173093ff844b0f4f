/**
 * A single Redis connected but not answering writes (CLIENT PAUSE WRITE, as a failover or a stalled
 * server does): POST /tasks/batch and POST /workflows answer once Postgres has their tasks, and a
 * tenant sync pass fails within its bound, instead of waiting as long as the pause; the reconciler
 * queues what did not reach Redis. (test/cluster/partition-stall-bounds covers one stalled master.)
 */
import type Redis from 'ioredis';
import { createRedis } from '../../services/core/db/redis';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { Reconciler } from '../../services/worker/reconciler';
import { TenantSync } from '../../services/worker/tenant-sync';
import { within } from '../support/cluster-stall';
import { withPrivateRedis } from '../support/private-redis';
import { silentLog, stackWithApi, waitFor } from '../support/stack';

let pauser: Redis;
// Its Redis is paused: one of its own (private-redis.ts).
const world = withPrivateRedis(() => {
  const made = stackWithApi();
  beforeAll(() => {
    pauser = createRedis({ addr: made.stack.cfg.REDIS_ADDR, name: 'test-pauser', offlineQueue: true });
  });
  afterAll(async () => {
    await pauser.client('UNPAUSE').catch(() => undefined);
    pauser.disconnect();
  });
  return made;
});

// A single Redis (its own): the cluster's masters are paused in test/cluster.
it(
  'pushes and tenant sync do not wait on a paused Redis; the reconciler queues the tasks once it answers',
  async () => {
    const { stack } = world;
    const post = (path: string, body: unknown) => within(world.post(path, body).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, any> })));
    await pauser.client('PAUSE', 600_000, 'WRITE');
    let ids: string[];
    try {
      const [batch, workflow] = await Promise.all([post('/tasks/batch', { tasks: [{ type: 'noop' }] }), post('/workflows', { name: 'stall', tasks: [{ key: 'a', type: 'noop' }] })]);
      expect([batch, workflow]).not.toContain('no answer');
      const b = batch as { status: number; body: Record<string, any> };
      const w = workflow as { status: number; body: Record<string, any> };
      expect([b.status, w.status]).toEqual([200, 201]);
      ids = [b.body.results[0].task.id, ...(await stack.pool.query('SELECT id FROM tasks WHERE workflow_id = $1', [w.body.workflow.id])).rows.map((r) => r.id as string)];
      const sync = new TenantSync({ pool: stack.pool, queue: stack.queue }, 0, 1000, silentLog, 500);
      expect(String(await within(sync.runOnce().then(() => 'answered', (e: unknown) => e)))).toMatch(/tenant settings: no answer within 500 ms/);
    } finally {
      await pauser.client('UNPAUSE');
    }
    await new Reconciler({ pool: stack.pool, queue: stack.queue, metrics: workerMetrics(createRegistry('worker')) }, { intervalMs: 1000, graceMs: 0, batchSize: 100 }, silentLog).runOnce();
    await waitFor(async () => (await stack.queue.indexed(ids.map((id) => ({ id, tenant: 'default' })))).every((e) => e != null), 10_000, 'the tasks to reach Redis');
  },
  30_000,
);
