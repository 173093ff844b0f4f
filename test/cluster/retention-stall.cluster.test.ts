/**
 * Retention on the test profile's Redis Cluster with one master stalled (CLIENT PAUSE ALL): the
 * purge of each batch's dead-letter entries waits for each partition at most passWaitMs, so the
 * dead tasks of the other masters' tenants are deleted while the stalled master's stay, in
 * Postgres, for a later pass. Before, a batch waited for every partition it had a task in (the
 * oldest due tasks of every tenant): a stalled master held up the deletion of every tenant's.
 */
process.env.TEST_REDIS_MODE = 'cluster';
// It stalls masters: on a cluster of its jest worker's own (cluster-mode.ts, testClusterProfile).
process.env.TEST_CLUSTER_STALLS = '1';
import Redis from 'ioredis';
import { createRegistry, workerMetrics } from '../../services/core/observability/metrics';
import { PartitionedQueue } from '../../services/core/queue/partitioned-queue';
import { partitionOf, slotOfTag } from '../../services/core/queue/partitions';
import { submitTasks } from '../../services/core/tasks/submit';
import { RetentionSweeper } from '../../services/worker/retention';
import { TEST_PARTITIONS } from '../support/cluster-mode';
import { createStack, silentLog, Stack } from '../support/stack';

const DAY = 86_400_000;
let stack: Stack;
beforeEach(async () => {
  stack = await createStack();
}, 120_000);
afterEach(async () => {
  await stack?.close();
});

/** host:port of the master serving `tag`'s slot. */
async function masterOf(tag: string): Promise<{ host: string; port: number }> {
  const slots = await stack.redis.cluster('SLOTS');
  const [host, port] = slots.find(([from, to]) => slotOfTag(tag) >= from && slotOfTag(tag) <= to)![2]!;
  return { host, port };
}

const tagOf = (key: string) => key.slice(0, key.indexOf('}') + 1);

it('a stalled master holds up neither the other partitions’ deletion of dead tasks nor the pass; its tenants’ dead tasks stay for a later pass', async () => {
  const prefix = stack.cfg.REDIS_KEY_PREFIX;
  const queue = new PartitionedQueue(stack.redis, { prefix, strategy: 'weighted', weights: stack.cfg.QUEUE_WEIGHTS, partitions: TEST_PARTITIONS, passWaitMs: 300 });
  // A master that does not serve the control slot (retention's lock): the partitions it serves stall.
  const control = await masterOf(`{${prefix}}`);
  const masters = await Promise.all(queue.parts.map((q) => masterOf(tagOf(q.keys.meta))));
  const stalled = masters.find((m) => m.host !== control.host || m.port !== control.port)!;
  const isStalled = (tenant: string) => {
    const m = masters[partitionOf(tenant, TEST_PARTITIONS)]!;
    return m.host === stalled.host && m.port === stalled.port;
  };
  // One tenant per partition, with two tasks each, dead-lettered in Redis and dead 40 days ago in Postgres.
  const tenants: string[] = [];
  for (let i = 0; tenants.length < TEST_PARTITIONS; i++) if (partitionOf(`t${i}`, TEST_PARTITIONS) === tenants.length) tenants.push(`t${i}`);
  await stack.pool.query('INSERT INTO tenants (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING', [tenants]);
  const reqs = tenants.flatMap((tenant) => [0, 1].map((i) => ({ tenant, type: 'noop', priority: 'default' as const, payload: { i }, maxRetries: 0, idempotencyKey: null, canonical: '' })));
  const tasks = (await submitTasks({ pool: stack.pool, queue, log: silentLog, idempotencyTtlMs: 60_000 }, reqs)).map((r) => r.task);
  const leased = [];
  while (leased.length < tasks.length) leased.push(...(await queue.lease({ max: 100, visibilityMs: 60_000, owner: 'w1' })));
  await queue.finish(leased.map((l) => ({ id: l.message.id, token: l.token, priority: 'default', outcome: 'dead', settleAttempts: 1 })));
  await stack.pool.query(`UPDATE tasks SET status = 'dead', attempts = 1, finished_at = now() - interval '40 days' WHERE tenant = ANY($1::text[])`, [tenants]);
  const stalledTasks = tasks.filter((t) => isStalled(t.tenant)).map((t) => t.id);
  const sweeper = new RetentionSweeper(
    { pool: stack.pool, queue, metrics: workerMetrics(createRegistry('worker')) },
    { intervalMs: 60_000, policy: { succeeded: 0, dead: 30 * DAY, cancelled: 0 }, batch: 1000, pauseMs: 0 },
    silentLog,
  );
  const stored = async () => (await stack.pool.query<{ id: string }>('SELECT id FROM tasks ORDER BY id')).rows.map((r) => r.id);

  const pauser = new Redis({ ...stalled, lazyConnect: false, maxRetriesPerRequest: 1 });
  const probe = new Redis({ ...stalled, lazyConnect: false, maxRetriesPerRequest: 1 });
  try {
    await probe.ping();
    // Nothing the master serves answers for 3 s: this pass's purge there waits.
    await pauser.client('PAUSE', 3000, 'ALL');
    let pauseOver = false;
    const probed = probe.ping().then(() => (pauseOver = true));
    const first = await sweeper.runOnce();
    // The pass ended while the master still answered nothing (before: only after the pause).
    expect(pauseOver).toBe(false);
    expect(first).toMatchObject({ deleted: { dead: tasks.length - stalledTasks.length }, unanswered: stalledTasks.length });
    expect(await stored()).toEqual([...stalledTasks].sort());
    await probed;
    // Answering again: the next pass goes back for them.
    expect(await sweeper.runOnce()).toMatchObject({ deleted: { dead: stalledTasks.length }, unanswered: 0 });
    expect(await stored()).toEqual([]);
    expect((await queue.stats()).dead.default).toBe(0);
  } finally {
    pauser.disconnect();
    probe.disconnect();
    await sweeper.stop();
  }
}, 60_000);
