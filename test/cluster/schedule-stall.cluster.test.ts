/**
 * Schedules firing on the test profile's Redis Cluster with one master stalled (CLIENT PAUSE
 * WRITE): a pass that fired schedules of tenants in several partitions indexes the answering
 * partitions' tasks and ends within passWaitMs; the stalled partition's tasks stay queued in
 * Postgres for the reconciler. Before, the pass waited for the stalled master, and no schedule of
 * any tenant fired meanwhile.
 */
process.env.TEST_REDIS_MODE = 'cluster';
import Redis from 'ioredis';
import { PartitionedQueue } from '../../services/core/queue/partitioned-queue';
import { partitionOf, slotOfTag } from '../../services/core/queue/partitions';
import { fireDueSchedules } from '../../services/core/schedules/fire-due';
import { TEST_PARTITIONS } from '../support/cluster-mode';
import { createStack, silentLog, Stack } from '../support/stack';

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

it('a stalled master holds up neither the pass nor the other partitions\' scheduled tasks', async () => {
  const prefix = stack.cfg.REDIS_KEY_PREFIX;
  const queue = new PartitionedQueue(stack.redis, { prefix, strategy: 'weighted', weights: stack.cfg.QUEUE_WEIGHTS, partitions: TEST_PARTITIONS, passWaitMs: 300 });
  const control = await masterOf(`{${prefix}}`);
  const masters = await Promise.all(queue.parts.map((q) => masterOf(tagOf(q.keys.meta))));
  const stalled = masters.find((m) => m !== control)!;
  const tenantWhere = (wanted: (m: string) => boolean) => {
    for (let i = 0; ; i++) if (wanted(masters[partitionOf(`s${i}`, TEST_PARTITIONS)]!)) return `s${i}`;
  };
  const healthy = tenantWhere((m) => m !== stalled);
  const other = tenantWhere((m) => m === stalled);
  await stack.pool.query('INSERT INTO tenants (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING', [[healthy, other]]);
  const task = { type: 'noop', payload: {}, priority: 'default', max_retries: 0, retry: null, timeout_ms: null };
  for (const t of [healthy, other]) {
    await stack.pool.query(
      `INSERT INTO schedules (tenant, name, cron, task, misfire, catch_up_limit, overlap, paused, next_tick)
       VALUES ($1, 'tick', '0 0 1 1 *', $2, 'run_once', 1, 'allow', false, now() - interval '1 second')`,
      [t, JSON.stringify(task)],
    );
  }
  const [host, port] = stalled.split(':');
  const pauser = new Redis({ host, port: Number(port), lazyConnect: false, maxRetriesPerRequest: 1 });
  try {
    await pauser.client('PAUSE', 4000, 'WRITE');
    const started = Date.now();
    const res = await fireDueSchedules({ pool: stack.pool, queue, log: silentLog }, { batch: 10, graceMs: 60_000 });
    // Before: the pass waited for the pause to end (about 4 s).
    expect(Date.now() - started).toBeLessThan(2000);
    expect(res.fired).toBe(2);
    const { rows } = await stack.pool.query<{ id: string; tenant: string }>('SELECT id, tenant FROM tasks WHERE schedule = $1', ['tick']);
    const mine = rows.find((r) => r.tenant === healthy)!;
    expect(await queue.indexed([mine])).toEqual([{ deadLetteredAfter: null }]);
  } finally {
    await pauser.client('UNPAUSE').catch(() => undefined);
    pauser.disconnect();
  }
}, 60_000);
