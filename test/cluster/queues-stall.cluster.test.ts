/**
 * GET /queues on the test profile's Redis Cluster with the master of the control slot (worker
 * announcements) stalled (CLIENT PAUSE ALL): a tenant whose partition another master serves gets
 * its queues within passWaitMs, `workers` null (not known). Before, every tenant's GET /queues
 * waited for that master (or failed with it), whichever partition held the tenant.
 */
process.env.TEST_REDIS_MODE = 'cluster';
import Redis from 'ioredis';
import { QueuesView } from '../../services/api/operator/queues-route';
import { PartitionedQueue } from '../../services/core/queue/partitioned-queue';
import { partitionOf, slotOfTag } from '../../services/core/queue/partitions';
import { TEST_PARTITIONS } from '../support/cluster-mode';
import { createStack, Stack } from '../support/stack';

let stack: Stack;
beforeEach(async () => {
  stack = await createStack();
}, 120_000);
afterEach(async () => {
  await stack?.close();
});

async function masterOf(tag: string): Promise<string> {
  const slots = await stack.redis.cluster('SLOTS');
  const [host, port] = slots.find(([from, to]) => slotOfTag(tag) >= from && slotOfTag(tag) <= to)![2]!;
  return `${host}:${port}`;
}

const tagOf = (key: string) => key.slice(0, key.indexOf('}') + 1);

it('a stalled control slot leaves the other masters\' tenants their queues, workers not known', async () => {
  const prefix = stack.cfg.REDIS_KEY_PREFIX;
  const queue = new PartitionedQueue(stack.redis, { prefix, strategy: 'weighted', weights: stack.cfg.QUEUE_WEIGHTS, partitions: TEST_PARTITIONS, passWaitMs: 300 });
  const control = await masterOf(`{${prefix}}`);
  let tenant = '';
  for (let i = 0; !tenant; i++) if ((await masterOf(tagOf(queue.parts[partitionOf(`t${i}`, TEST_PARTITIONS)]!.keys.meta))) !== control) tenant = `t${i}`;
  await queue.enqueue([{ id: '00000000-0000-4000-8000-000000000001', tenant, type: 'noop', priority: 'default', payload: {}, maxAttempts: 3, createdAtMs: Date.now(), attempts: 0 }]);
  await queue.announceWorker('worker-q', 60_000, 4);
  const view = new QueuesView({ pool: stack.pool, queue }, 0);
  expect((await view.get(tenant)).workers).toEqual([{ id: 'worker-q', slots: 4 }]);

  const [host, port] = control.split(':');
  const pauser = new Redis({ host, port: Number(port), lazyConnect: false, maxRetriesPerRequest: 1 });
  try {
    await pauser.client('PAUSE', 4000, 'ALL');
    const started = Date.now();
    const answer = await view.get(tenant);
    // Before: the answer waited for the pause to end (about 4 s).
    expect(Date.now() - started).toBeLessThan(2000);
    expect(answer.workers).toBeNull();
    expect((answer.priorities as Record<string, { queued: number }>).default!.queued).toBe(1);
  } finally {
    await pauser.client('UNPAUSE').catch(() => undefined);
    pauser.disconnect();
  }
}, 60_000);
